"""Writing gradient statistics as TensorBoard scalars and histograms.

TensorBoard's summary ops live in the `tensorboard` package, which is not a dependency; the
event format is plain protobuf, so this writes it with `tf.summary.write` and the plugin metadata
TensorBoard expects.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from seqclf.gradients.graph_stats import HIST_RANGE, STAGES

__all__ = ["write_gradient_summaries", "write_histogram", "write_probe_summaries",
           "write_scalar"]


def _metadata(plugin):
    meta = tf.compat.v1.SummaryMetadata()
    meta.plugin_data.plugin_name = plugin
    return meta.SerializeToString()


def write_scalar(tag, value, step):
    tf.summary.write(
        tag, tf.constant(float(value), tf.float32), step=step, metadata=_metadata("scalars")
    )


def write_histogram(tag, edges, counts, step):
    tensor = np.stack([edges[:-1], edges[1:], counts], axis=1).astype(np.float64)
    tf.summary.write(tag, tf.constant(tensor), step=step, metadata=_metadata("histograms"))


def write_gradient_summaries(writer, names, step, stats, global_norms, fired, clipping,
                             hists=None):
    """One sampled step's norms (per variable, layer and globally), clip_fired and histograms.

    `names` is `[(layer, variable)]` in the rows' order, `stats` `[stage, variable, statistic]`
    (norm first), `hists` `[variable, bin]` counts over `HIST_RANGE` or None.
    """
    # Tags start with the layer name: TensorBoard groups a run's charts by the tag's first
    # component, so each layer's norms (its own and its variables', both stages) and
    # histograms sit together, and the global ones under "global".
    stages = STAGES if clipping else STAGES[:1]
    with writer.as_default():
        for s, stage in enumerate(stages):
            write_scalar(f"global/grad_norm/{stage}", global_norms[s], step)
            squares = {}
            for i, (layer, variable) in enumerate(names):
                norm = stats[s, i, 0]
                write_scalar(f"{layer}/grad_norm/{variable}/{stage}", norm, step)
                squares[layer] = squares.get(layer, 0.0) + float(norm) ** 2
            for layer, total in squares.items():
                write_scalar(f"{layer}/grad_norm/{stage}", math.sqrt(total), step)
        if clipping:
            write_scalar("global/clip_fired", fired.max(initial=0.0), step)
        if hists is not None:
            lo, hi = HIST_RANGE
            edges = np.linspace(lo, hi, hists.shape[1] + 1)
            for i, (layer, variable) in enumerate(names):
                write_histogram(f"{layer}/grad_log10_abs/{variable}", edges, hists[i], step)


def write_probe_summaries(writer, curves, step):
    """The probe's d=0 and mean input-gradient norm per recurrent layer."""
    with writer.as_default():
        for layer, curve in curves.items():
            write_scalar(f"{layer}/input_grad_norm/d0", curve[0], step)
            write_scalar(f"{layer}/input_grad_norm/mean", np.nanmean(curve), step)

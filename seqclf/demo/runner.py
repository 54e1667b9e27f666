"""`run_demo`: runs the three experiments and writes every output file of `seqclf demo`."""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np

from seqclf._io import atomic_path, atomic_write_text
from seqclf.demo.config import DemoConfig
from seqclf.demo.experiments import decay_sweep, explode_and_clip, learning_comparison, progress_bar
from seqclf.demo.plots import write_plots
from seqclf.demo.report import acceptance_checks, jsonable, keras_defaults_notes, render_report
from seqclf.errors import SeqclfError
from seqclf.gradients.frames import GLOBAL_LAYER


def run_demo(out_dir, *, smoke=False, quiet=False, seed=0, data_dir=None, config=None):
    """Runs the demonstration and writes its outputs to `out_dir`; returns the summary dict.

    Args:
        out_dir: output directory (created if needed).
        smoke: tiny sizes (< 1 minute), for tests: temporal order at length 12 only and no
            word-order runs (which would need the dataset prepared); only the decay sweep's
            numbers stay meaningful at that size.
        quiet: no progress bar or messages.
        seed: seed of data generation, weight initialisation and shuffling.
        data_dir: TFDS data directory for the word-order dataset (default `~/tensorflow_datasets`).
        config: a `DemoConfig` overriding the presets.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise SeqclfError(f"`seed` must be an integer. Received: seed={seed!r}")
    if out_dir is None or not str(out_dir).strip():
        raise SeqclfError(f"`out_dir` must be a directory path. Received: out_dir={out_dir!r}")
    cfg = config or (DemoConfig.smoke() if smoke else DemoConfig.default())
    out = os.fspath(out_dir)
    if os.path.exists(out) and not os.path.isdir(out):
        raise SeqclfError(f"`out_dir` exists and is not a directory. Received: out_dir={out!r}")
    os.makedirs(out, exist_ok=True)
    start = time.time()

    import keras
    import pandas as pd
    import tensorflow as tf

    n_runs = (
        len(cfg.decay_gains) + 2
        + 3 * (len(cfg.temporal_lengths) + len(cfg.word_order_configs))
        + 2
    )
    bar = progress_bar(n_runs, quiet)
    # The demo builds many small models on purpose; TensorFlow's retracing warnings are noise here.
    tf_logger = tf.get_logger()
    tf_level = tf_logger.level
    tf_logger.setLevel("ERROR")
    try:
        bar.set_description("decay sweep")
        decay, decay_lstm, curves = decay_sweep(cfg, seed, bar, quiet)
        bar.set_description("learning comparison")
        learning, frames, probes = learning_comparison(cfg, seed, bar, quiet, data_dir)
        bar.set_description("exploding/clipping")
        explode, explode_frames, explode_losses = explode_and_clip(cfg, seed, bar, quiet)
    finally:
        bar.close()
        tf_logger.setLevel(tf_level)
    stats = pd.concat(frames + explode_frames, ignore_index=True)
    for rec in explode:
        g = stats[(stats["run"] == rec["run"]) & (stats["layer"] == GLOBAL_LAYER)
                  & (stats["statistic"] == "global_norm") & (stats["stage"] == "pre_clip")]
        vals = g["value"].to_numpy(float)
        rec["max_global_norm"] = float(np.nanmax(vals)) if len(vals) else None
        rec["median_global_norm"] = float(np.nanmedian(vals)) if len(vals) else None
        rec["sampled_steps"] = int(len(vals))

    stats_path = os.path.join(out, "gradient_stats.csv")
    with atomic_path(stats_path) as tmp:
        stats.to_csv(tmp, index=False)
    width = max(len(c) for c in curves.values())
    decay_frame = pd.DataFrame({"distance": np.arange(width)})
    for label, c in curves.items():
        col = np.full(width, np.nan)
        col[: len(c)] = c
        decay_frame[label] = col
    with atomic_path(os.path.join(out, "decay_curves.csv")) as tmp:
        decay_frame.to_csv(tmp, index=False)
    loss_rows = [
        {"run": run, "step": i, "loss": float(v)}
        for run, losses in explode_losses.items()
        for i, v in enumerate(losses)
    ]
    with atomic_path(os.path.join(out, "step_losses.csv")) as tmp:
        pd.DataFrame(loss_rows, columns=["run", "step", "loss"]).to_csv(tmp, index=False)

    summary = {
        "smoke": bool(smoke),
        "seed": seed,
        "config": dataclasses.asdict(cfg),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "models": learning + explode,
        "decay": decay,
        "decay_lstm": decay_lstm,
    }
    summary["checks"] = acceptance_checks(summary, cfg)
    summary["keras_defaults_notes"] = keras_defaults_notes(summary)
    summary["plots"] = write_plots(
        out, curves, learning, explode, explode_losses, stats, probes, cfg
    )
    summary["files"] = sorted(
        ["summary.json", "report.md", "gradient_stats.csv", "decay_curves.csv", "step_losses.csv"]
        + summary["plots"]
    )
    summary["wall_seconds"] = round(time.time() - start, 1)
    atomic_write_text(os.path.join(out, "report.md"), render_report(summary, cfg))
    atomic_write_text(os.path.join(out, "summary.json"),
                      json.dumps(jsonable(summary), indent=2, allow_nan=True))
    if not quiet:
        print(f"seqclf demo: wrote {len(summary['files'])} files to {out} "
              f"in {summary['wall_seconds']:.0f} s")
    return summary

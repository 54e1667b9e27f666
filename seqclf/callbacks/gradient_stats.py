"""`GradientStats`: per-layer gradient statistics of the real training steps of `model.fit`.

How it works (TensorFlow backend only; the parts are in `seqclf.gradients`: `optimizer_hook`,
`graph_stats`, `frames`, `tensorboard`, and the `timestep_probe` that `probe_data` uses):

* `on_train_begin` wraps two methods of the model's optimizer *instance* (the class is not
  touched): `_backend_apply_gradients`, only to learn which variables the gradients belong to,
  and `_clip_gradients`, which Keras 3 calls from inside the compiled train step with the
  gradients just before clipping and returns the clipped ones. The wrapper reduces both lists
  to a few statistics per variable and writes them into non-trainable `tf.Variable`s. Nothing is
  copied to the host inside the step; the callback reads the small variables in
  `on_train_batch_end`, and only on sampled steps.
* Statistics are computed only when a flag variable is set (`tf.cond`), and the callback sets it
  only before the executions that contain a sampled step, so an unsampled step costs one
  conditional plus, with `check_finite=True`, one sum per gradient (a non-finite entry makes
  the sum non-finite; only then does the exact per-variable check run). Measured on a small
  LSTM (`bench/bench_gradient_stats.py`): unsampled steps cost ~0.5%, a sampled step ~12% of
  a step, so ~3% of the epoch at the default `frequency=10`.
* The train function is rebuilt (`make_train_function(force=True)`) so a function traced before
  the callback existed does not bypass the wrapper, and dropped again in `on_train_end`, when
  the optimizer is restored, so later `fit` calls trace a clean one.

What the numbers mean:

* `step` is the optimizer's iteration count when the update was applied (0-based; it continues
  across `fit` calls). Sampled steps are those where the callback's own step counter (0 at
  train begin) is a multiple of `frequency`, or the first step of each epoch with
  `frequency="epoch"`.
* With `steps_per_execution=k`, Keras runs k steps per call and the callback can only switch
  sampling on per call: the recorded values are those of the *last* step of each execution that
  contains a sampled step (the `step` column says which one).
* `stage="pre_clip"` is the gradient handed to the optimizer (after loss-scale unscaling,
  before clipping); `stage="post_clip"` is what the optimizer applies. When the optimizer has no
  clipping configured, post_clip equals pre_clip and is not recorded separately.
* Under `tf.distribute` (e.g. `MirroredStrategy`) Keras clips each replica's *share* of the
  gradient (computed on its part of the batch, scaled by 1/replicas) before summing the shares.
  The callback records the summed gradients: pre_clip is the gradient of the loss on the whole
  global batch (the same numbers a single device would produce), post_clip is the sum of the
  clipped shares, i.e. the update the optimizer applies. `clip_fired` is 1 when clipping
  changed the gradient on at least one replica. (Consequence worth knowing: with N replicas a
  `clipnorm` threshold acts on shares that are roughly 1/N of the full gradient.)
  Cost: without XLA, TensorFlow cannot all-reduce inside `tf.cond`, so under a multi-replica
  strategy the summing all-reduce (gradients, twice when clipping is configured) runs on every
  step, sampled or not. Under `MultiWorkerMirroredStrategy` that all-reduce spans the workers,
  so every worker must run the callback (same `frequency`); all of them then hold the same
  statistics, and `seqclf train` saves only the chief's (tests/test_distributed.py).
* With gradient accumulation, statistics are those of the accumulated gradient on update steps.
* Embedding gradients are `tf.IndexedSlices`; statistics describe the dense gradient (repeated
  tokens summed, untouched rows counting as zeros). Keras's `clipnorm` (`tf.clip_by_norm`)
  measures such a gradient by its un-summed slices instead, so with repeated tokens the
  post-clip norm of an embedding gradient can exceed `clipnorm`; `clip_fired` follows Keras.
  `seqclf.lazy_adam.LazyAdam` sums repeated tokens before clipping, and `clip_fired` follows it.
"""

from __future__ import annotations

import bisect
import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from seqclf._checks import check_int, check_positive_int
from seqclf.errors import SeqclfError
from seqclf.gradients.frames import (
    GLOBAL_LAYER,
    frame_from_rows,
    load_frame,
    probe_rows,
    save_frame,
)
from seqclf.gradients.graph_stats import STAGES, STATISTICS, GraphStatistics, clipping_configured
from seqclf.gradients.growth import GrowthMonitor
from seqclf.gradients.optimizer_hook import OptimizerHook
from seqclf.gradients.tensorboard import write_gradient_summaries, write_probe_summaries
from seqclf.gradients.timestep_probe import timestep_gradient_norms

# load_frame and save_frame stay importable from here, where `GradientStats.save` points.
__all__ = ["GradientStats", "STATISTICS", "load_frame", "save_frame"]


def _variable_names(model):
    """`[(layer_name, variable_name)]` for `model.trainable_variables`, in the same order.

    The layer is the model's direct child that owns the variable; the variable name is its path
    below that layer with RNN cell components dropped (`lstm/lstm_cell/kernel` -> `kernel`,
    `bidirectional/forward_lstm/lstm_cell/kernel` -> `forward_lstm/kernel`).
    """
    owner = {}
    for layer in model.layers:
        for v in layer.trainable_weights:
            owner.setdefault(id(v), layer.name)
    names = []
    for v in model.trainable_variables:
        layer = owner.get(id(v), model.name)
        parts = v.path.split("/")
        rel = parts[parts.index(layer) + 1 :] if layer in parts else [v.name]
        keep = [p for p in rel[:-1] if not p.endswith("_cell")] + rel[-1:]
        names.append((layer, "/".join(keep) or v.name))
    return names


class GradientStats(keras.callbacks.Callback):
    """Records per-layer gradient statistics, before and after clipping, during `model.fit`.

    Works with any Keras 3 model on the TensorFlow backend (Sequential, functional, subclassed)
    compiled with a Keras optimizer; the model code needs no change. See the module docstring
    for the mechanism and for what the numbers mean with `steps_per_execution > 1`,
    `tf.distribute` strategies and clipping.

    Recorded per sampled step, per variable and stage (`pre_clip`, `post_clip`): `norm` (L2),
    `mean`, `std`, `max_abs`, `frac_near_zero` (fraction of entries with |g| <= zero_threshold)
    and `norm_ratio` (||g|| / ||w||, NaN when ||w|| = 0), `clip_fired` (post_clip, 0/1); and for
    `layer="(global)"`: `global_norm` per stage and `clip_fired`. With `probe_data`, the
    per-timestep input-gradient norms of each recurrent layer (`stage="probe"`,
    `statistic="input_grad_norm"`, `timestep` = distance from each sequence's end, see
    `timestep_gradient_norms`) at train begin (`epoch=-1`) and every `probe_frequency` epochs.

    Args:
        frequency: Sample every `frequency`-th training step (int >= 1), or `"epoch"` to sample
            the first step of each epoch.
        zero_threshold: |g| at or below this counts as near zero for `frac_near_zero`.
        probe_data: Optional `(x, y)` probe batch for the per-timestep gradients.
        probe_frequency: Measure the probe every this many epochs (and at train begin).
        check_finite: Check every step's gradients for NaN/Inf (in the graph; the first
            non-finite step and its variables are kept there). The host looks at the result on
            sampled steps and at epoch end (looking on every step would force a host sync per
            step), then sets `model.stop_training` (Keras stops after that batch) and
            `on_train_end` raises a `SeqclfError` naming the first non-finite step, its layer
            and variables, after restoring the optimizer. So training runs on for at most
            `frequency` steps (or to the epoch end) after the bad step. The event is also in
            `events`.
        growth_factor: Warn (and record an event) when a sampled step's pre-clip global norm
            exceeds `growth_factor` times the median of the previous `growth_window` sampled
            global norms (needs at least 3) and `growth_factor` times the median of all sampled
            norms of the fit (so that the small gradients of a nearly fitted model, beside which
            an ordinary batch looks large, are no alarm). None disables the check.
        growth_window: Number of previous sampled steps in that running median.
        log_dir: When given, write TensorBoard scalars (norm per layer, per variable and
            stage, global norm, clip_fired) and histograms of log10|g| per variable (pre-clip),
            plus the probe's d=0 and mean input-gradient norms, to this directory. Tags begin
            with the layer name (`lstm_0/grad_norm/pre_clip`, `lstm_0/grad_norm/kernel/post_clip`,
            `lstm_0/grad_log10_abs/kernel`, `lstm_0/input_grad_norm/d0`; `global/grad_norm/...`,
            `global/clip_fired`), so TensorBoard groups the charts by layer.
        histogram_bins: Number of bins of the log10|g| histograms (only with `log_dir`).

    Attributes:
        events: List of dicts for non-finite gradients and growth alerts.
    """

    def __init__(
        self,
        frequency=10,
        zero_threshold=1e-8,
        probe_data=None,
        probe_frequency=1,
        check_finite=True,
        growth_factor=10.0,
        growth_window=20,
        log_dir=None,
        histogram_bins=30,
    ):
        super().__init__()
        if frequency != "epoch":
            try:
                frequency = check_positive_int("frequency", frequency)
            except SeqclfError:
                raise SeqclfError(
                    "`frequency` must be a positive integer or 'epoch'. "
                    f"Received: frequency={frequency!r}"
                ) from None
        if not isinstance(zero_threshold, (int, float)) or zero_threshold < 0:
            raise SeqclfError(
                "`zero_threshold` must be a number >= 0. "
                f"Received: zero_threshold={zero_threshold!r}"
            )
        if probe_data is not None and (
            not isinstance(probe_data, (tuple, list)) or len(probe_data) != 2
        ):
            raise SeqclfError(
                "`probe_data` must be an `(x, y)` pair. "
                f"Received: probe_data of type {type(probe_data).__name__}"
            )
        probe_frequency = check_positive_int("probe_frequency", probe_frequency)
        if growth_factor is not None and (
            not isinstance(growth_factor, (int, float)) or growth_factor <= 1
        ):
            raise SeqclfError(
                "`growth_factor` must be a number > 1 or None. "
                f"Received: growth_factor={growth_factor!r}"
            )
        growth_window = check_int("growth_window", growth_window, 3)
        histogram_bins = check_int("histogram_bins", histogram_bins, 2)
        self.frequency = frequency
        self.zero_threshold = float(zero_threshold)
        self.probe_data = probe_data
        self.probe_frequency = probe_frequency
        self.check_finite = bool(check_finite)
        self.growth_factor = None if growth_factor is None else float(growth_factor)
        self.growth_window = growth_window
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.histogram_bins = histogram_bins

        self._rows = []
        self.events = []
        self._target = None
        self._hook = None
        self._graph = None

    def get_config(self):
        """The constructor arguments except `probe_data` (arrays are not config)."""
        return {
            "frequency": self.frequency,
            "zero_threshold": self.zero_threshold,
            "probe_frequency": self.probe_frequency,
            "check_finite": self.check_finite,
            "growth_factor": self.growth_factor,
            "growth_window": self.growth_window,
            "log_dir": self.log_dir,
            "histogram_bins": self.histogram_bins,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ------------------------------------------------------------------ training hooks

    def on_train_begin(self, logs=None):
        if keras.backend.backend() != "tensorflow":
            raise SeqclfError(
                "GradientStats needs the TensorFlow backend. "
                f"Received: backend={keras.backend.backend()!r}"
            )
        model = self.model
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None:
            raise SeqclfError(
                "GradientStats needs a compiled model with an optimizer. Received: optimizer=None"
            )
        # Restore first in case a previous fit ended with an exception (no on_train_end).
        self._restore()
        # Reset everything a previous fit recorded.
        self._rows = []
        self.events = []
        self._growth = GrowthMonitor(self.growth_factor, self.growth_window)
        self._all_norms = []  # every sampled pre-clip global norm of this fit, sorted
        self._epoch = 0
        self._seen_steps = 0
        self._batch_begin = None
        self._flag_on = False
        self._last_step = None
        self._nonfinite_error = None
        self._writer = None
        self._epoch_first = True

        # A LossScaleOptimizer unscales and delegates to its inner optimizer, which clips.
        target = getattr(optimizer, "inner_optimizer", optimizer)
        self._target = target
        variables = list(model.trainable_variables)
        self._names = _variable_names(model)
        bins = self.histogram_bins if self.log_dir else 0
        self._graph = GraphStatistics(model, target, variables, self.zero_threshold,
                                      self.check_finite, bins)
        self._hook = OptimizerHook(target, self._graph.record)
        self._hook.install()
        # A train function traced earlier (previous fit, train_on_batch) would bypass the
        # wrappers; force a fresh one, traced on its first call with the wrappers in place.
        model.make_train_function(force=True)

        if self.log_dir:
            os.makedirs(self.log_dir, exist_ok=True)
            self._writer = tf.summary.create_file_writer(self.log_dir)
        if self.probe_data is not None:
            self._probe(epoch=-1)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_first = True

    def on_train_batch_begin(self, batch, logs=None):
        self._batch_begin = batch
        spe = max(int(getattr(self.model, "steps_per_execution", 1) or 1), 1)
        if self.frequency == "epoch":
            want = self._epoch_first
        else:
            # Sampled steps are multiples of `frequency` in the callback's step count; an
            # execution of `spe` steps is sampled when it contains one.
            first, last = self._seen_steps, self._seen_steps + spe - 1
            want = (last // self.frequency) * self.frequency >= first
        self._epoch_first = False
        if want != self._flag_on:
            # Only assign on changes: an unsampled stretch costs no host->device traffic.
            self._graph.flag.assign(int(want))
            self._flag_on = want

    def on_train_batch_end(self, batch, logs=None):
        begin = self._batch_begin if self._batch_begin is not None else batch
        self._seen_steps += max(batch - begin + 1, 1)
        self._batch_begin = None
        if self._flag_on:
            # Reading forces the host to wait for the step, so it is only done on sampled
            # steps: unsampled ones stay asynchronous.
            self._check_nonfinite()
            self._read_sample()

    def on_epoch_end(self, epoch, logs=None):
        self._check_nonfinite()
        if self.probe_data is not None and (epoch + 1) % self.probe_frequency == 0:
            self._probe(epoch=epoch)

    def on_train_end(self, logs=None):
        self._restore()
        if self.model is not None:
            # The traced function contains the wrappers and references this callback's
            # variables; drop it so the next fit traces a clean one.
            self.model.train_function = None
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
        if self._nonfinite_error is not None:
            raise SeqclfError(self._nonfinite_error)

    # ------------------------------------------------------------------ outputs

    def to_dataframe(self):
        """A tidy frame: step, epoch, layer, variable, stage, statistic, timestep, value.

        `timestep` (nullable int) is the distance from the sequence end for probe rows and
        missing otherwise; `variable` is "" for global and probe rows.
        """
        return frame_from_rows(self._rows)

    def save(self, path):
        """Write `to_dataframe()` to `path` (atomically): `.csv` or `.parquet`/`.pq`, by extension.

        `load_frame(path)` reads it back.
        """
        return save_frame(self.to_dataframe(), path)

    def _restore(self):
        if self._hook is not None:
            self._hook.restore()
        self._hook = None
        self._target = None

    # ------------------------------------------------------------------ host side

    def _read_sample(self):
        step = int(self._graph.step_var.numpy())
        if step < 0 or step == self._last_step:
            return  # Nothing new written (e.g. an empty execution at the end of an epoch).
        self._last_step = step
        epoch = self._epoch
        stats = self._graph.stats_var.numpy()
        global_norms = self._graph.global_var.numpy()
        fired = self._graph.fired_var.numpy()
        clipping = clipping_configured(self._target)
        stages = STAGES if clipping else STAGES[:1]
        rows = self._rows
        for s, stage in enumerate(stages):
            for i, (layer, variable) in enumerate(self._names):
                for k, stat in enumerate(STATISTICS):
                    rows.append(
                        (step, epoch, layer, variable, stage, stat, None, float(stats[s, i, k]))
                    )
            rows.append(
                (step, epoch, GLOBAL_LAYER, "", stage, "global_norm", None, float(global_norms[s]))
            )
        if clipping:
            for i, (layer, variable) in enumerate(self._names):
                rows.append(
                    (step, epoch, layer, variable, "post_clip", "clip_fired", None, float(fired[i]))
                )
            rows.append(
                (
                    step,
                    epoch,
                    GLOBAL_LAYER,
                    "",
                    "post_clip",
                    "clip_fired",
                    None,
                    float(fired.max(initial=0.0)),
                )
            )
        self._check_growth(step, float(global_norms[0]))
        if self._writer is not None:
            hists = self._graph.hist_var.numpy() if self._graph.bins else None
            write_gradient_summaries(self._writer, self._names, step, stats, global_norms, fired,
                                     clipping, hists)

    def _check_growth(self, step, global_norm):
        previous = len(self._growth.history)
        median = self._growth.check(global_norm)
        norms = self._all_norms
        typical = norms[len(norms) // 2] if norms else None
        if np.isfinite(global_norm):
            bisect.insort(norms, global_norm)
        # Near the end of training the loss, and so the typical gradient, is small: a batch
        # holding one misclassified example then has a norm many times the recent median
        # without anything exploding. A norm that is also far above the fit's own typical scale
        # (the median of all its sampled steps) is what an explosion looks like.
        if median is None or (typical is not None and global_norm <= self.growth_factor * typical):
            return
        message = (
            f"GradientStats: pre-clip global gradient norm {global_norm:.4g} at step "
            f"{step} (epoch {self._epoch}) is more than {self.growth_factor:g}x the "
            f"median {median:.4g} of the previous {previous} sampled steps, and more than "
            f"{self.growth_factor:g}x the median {typical:.4g} of all sampled steps of this fit."
        )
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        self.events.append(
            {
                "kind": "growth",
                "step": step,
                "epoch": self._epoch,
                "global_norm": global_norm,
                "median": median,
                "message": message,
            }
        )

    @property
    def nonfinite_step(self):
        """The first step whose gradient was not finite in this fit, or -1 if none was."""
        return int(self._graph.nf_step_var.numpy())

    def _check_nonfinite(self):
        if self.check_finite and self._nonfinite_error is None:
            step = self.nonfinite_step
            if step >= 0:
                self._on_nonfinite(step)

    def _on_nonfinite(self, step):
        mask = self._graph.nf_mask_var.numpy()
        where = [self._names[i] for i in np.nonzero(mask > 0)[0]]
        listed = ", ".join(f"layer {layer!r} variable {variable!r}" for layer, variable in where)
        self._nonfinite_error = (
            f"Non-finite (NaN or Inf) gradient at step {step} (epoch {self._epoch}) in "
            f"{listed or 'an unknown variable'} (before clipping). Training was stopped. "
            "Check the input data for NaN/Inf, lower the learning rate or enable clipping. "
            f"Received: step={step}"
        )
        self.events.append(
            {
                "kind": "nonfinite",
                "step": step,
                "epoch": self._epoch,
                "variables": where,
                "message": self._nonfinite_error,
            }
        )
        self.model.stop_training = True

    def _probe(self, epoch):
        x, y = self.probe_data
        curves = timestep_gradient_norms(self.model, x, y)
        step = int(self._target.iterations.numpy()) if self._target is not None else 0
        self._rows.extend(probe_rows(curves, step, epoch))
        if self._writer is not None:
            write_probe_summaries(self._writer, curves, step)

"""`GradientStats`: per-layer gradient statistics of the real training steps of `model.fit`.

How it works (TensorFlow backend only):

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

import math
import os
import threading
import warnings
from collections import deque

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from seqclf._io import atomic_path
from seqclf.callbacks.timestep_gradients import timestep_gradient_norms
from seqclf.errors import SeqclfError
from seqclf.lazy_adam import LazyAdam

__all__ = ["GradientStats", "STATISTICS", "load_frame", "save_frame"]

#: Statistics recorded per variable, in the order of the in-graph statistics vector.
STATISTICS = ("norm", "mean", "std", "max_abs", "frac_near_zero", "norm_ratio")
_STAGES = ("pre_clip", "post_clip")
GLOBAL_LAYER = "(global)"
_COLUMNS = ["step", "epoch", "layer", "variable", "stage", "statistic", "timestep", "value"]
# log10|g| histogram range for TensorBoard; values outside land in the edge bins.
_HIST_RANGE = (-10.0, 2.0)


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


def _dense(g):
    return tf.cast(tf.convert_to_tensor(g), tf.float32)


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
            global norms (needs at least 3). None disables the check.
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
        if frequency != "epoch" and (
            isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 1
        ):
            raise SeqclfError(
                "`frequency` must be a positive integer or 'epoch'. "
                f"Received: frequency={frequency!r}"
            )
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
        if (
            isinstance(probe_frequency, bool)
            or not isinstance(probe_frequency, int)
            or (probe_frequency < 1)
        ):
            raise SeqclfError(
                "`probe_frequency` must be a positive integer. "
                f"Received: probe_frequency={probe_frequency!r}"
            )
        if growth_factor is not None and (
            not isinstance(growth_factor, (int, float)) or growth_factor <= 1
        ):
            raise SeqclfError(
                "`growth_factor` must be a number > 1 or None. "
                f"Received: growth_factor={growth_factor!r}"
            )
        if (
            isinstance(growth_window, bool)
            or not isinstance(growth_window, int)
            or (growth_window < 3)
        ):
            raise SeqclfError(
                "`growth_window` must be an integer >= 3. "
                f"Received: growth_window={growth_window!r}"
            )
        if (
            isinstance(histogram_bins, bool)
            or not isinstance(histogram_bins, int)
            or (histogram_bins < 2)
        ):
            raise SeqclfError(
                "`histogram_bins` must be an integer >= 2. "
                f"Received: histogram_bins={histogram_bins!r}"
            )
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
        self._local = threading.local()

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
        self._history = deque(maxlen=self.growth_window)
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
        self._index = {id(v): i for i, v in enumerate(variables)}
        self._path_index = {v.path: i for i, v in enumerate(variables)}
        n = len(variables)
        bins = self.histogram_bins if self.log_dir else 0
        strategy = model.distribute_strategy
        # Written inside the step: sync-on-read, so a replica writes its own copy with no
        # merge_call (which TensorFlow refuses inside tf.cond). After the in-graph all-reduce
        # every replica holds the same statistics, so reading the first replica's is exact.
        agg = tf.VariableAggregation.ONLY_FIRST_REPLICA
        on_read = tf.VariableSynchronization.ON_READ
        with strategy.scope():

            def var(value, dtype):
                return tf.Variable(
                    value, dtype=dtype, trainable=False, synchronization=on_read, aggregation=agg
                )

            # The flag is only written from the host and read in the step: a plain variable.
            self._flag = tf.Variable(0, dtype=tf.int64, trainable=False)
            self._step_var = var(-1, tf.int64)
            self._stats_var = var(np.zeros((2, n, len(STATISTICS))), tf.float32)
            self._global_var = var(np.zeros(2), tf.float32)
            self._fired_var = var(np.zeros(n), tf.float32)
            self._hist_var = var(np.zeros((n, max(bins, 1))), tf.float32)
            self._nf_step_var = var(-1, tf.int64)
            self._nf_mask_var = var(np.zeros(n), tf.float32)
        self._bins = bins

        self._install(target)
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
            self._flag.assign(int(want))
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
        return _typed(pd.DataFrame(self._rows, columns=_COLUMNS))

    def save(self, path):
        """Write `to_dataframe()` to `path` (atomically): `.csv` or `.parquet`/`.pq`, by extension.

        `load_frame(path)` reads it back.
        """
        return save_frame(self.to_dataframe(), path)

    # ------------------------------------------------------------------ optimizer wrapping

    def _install(self, target):
        original_apply = target._backend_apply_gradients
        original_clip = target._clip_gradients
        local = self._local

        def _backend_apply_gradients(grads, trainable_variables):
            # Remember (per replica thread, at trace time) which variables the gradients of
            # the coming `_clip_gradients` call belong to.
            local.variables = list(trainable_variables)
            try:
                return original_apply(grads, trainable_variables)
            finally:
                local.variables = None

        def _clip_gradients(grads):
            clipped = original_clip(grads)
            variables = getattr(local, "variables", None)
            if variables is not None and len(variables) == len(grads):
                self._graph_record(list(grads), list(clipped), variables)
            return clipped

        self._saved = {}
        for name, fn in (
            ("_backend_apply_gradients", _backend_apply_gradients),
            ("_clip_gradients", _clip_gradients),
        ):
            self._saved[name] = target.__dict__.get(name)
            # object.__setattr__: a plain instance attribute, invisible to Keras tracking.
            object.__setattr__(target, name, fn)

    def _restore(self):
        target = self._target
        if target is None:
            return
        for name, previous in self._saved.items():
            if previous is None:
                if name in target.__dict__:
                    object.__delattr__(target, name)
            else:
                object.__setattr__(target, name, previous)
        self._target = None

    def _graph_record(self, grads, clipped, variables):
        """Builds, inside the train step, the ops that write the statistics variables."""
        n = len(self._names)
        rows = []
        for v in variables:
            i = self._index.get(id(v))
            if i is None:
                i = self._path_index.get(getattr(v, "path", None))
            rows.append(i)
        if any(i is None for i in rows):
            return  # Not the model's variables (e.g. a custom train_step): leave them alone.
        rows_t = tf.constant(rows, dtype=tf.int32)[:, None]
        ctx = tf.distribute.get_replica_context()
        replicas = ctx.num_replicas_in_sync if ctx is not None else 1
        iterations = self._target.iterations

        def read_step():
            # Read inside the branches that use it: outside, it would be two more ops on every
            # step. Automatic control dependencies still order the read before the optimizer's
            # increment, as they order the whole branch.
            return tf.cast(tf.convert_to_tensor(iterations), tf.int64)

        target = self._target
        clipping = bool(
            (target.clipnorm and target.clipnorm > 0)
            or (target.global_clipnorm and target.global_clipnorm > 0)
            or (target.clipvalue and target.clipvalue > 0)
        )
        reduced = None
        if replicas > 1:
            # Each replica holds its share of the gradient; the optimizer sums the shares after
            # clipping. Sum here too so the statistics describe the whole batch. Without XLA,
            # MirroredStrategy's all-reduce is a merge_call, which TensorFlow refuses inside
            # control flow, so this runs on every step, not only on sampled ones.
            pre = [_dense(g) for g in grads]
            post = [_dense(c) for c in clipped] if clipping else []
            flat = ctx.all_reduce(
                tf.distribute.ReduceOp.SUM, pre + post + [self._fired(grads, pre)]
            )
            reduced = (
                flat[: len(pre)],
                flat[len(pre) : len(pre) + len(post)] if clipping else None,
                tf.cast(flat[-1] > 0, tf.float32),
            )

        if self.check_finite:
            checked = [
                g.values if isinstance(g, tf.IndexedSlices) else g
                for g in (reduced[0] if reduced else grads)
            ]
            # Every step pays for this check, and a step op costs ~10 us of executor time
            # whatever its size, so it uses as few ops as possible: one sum per gradient and
            # their total. A sum is NaN or +-Inf when any of its terms is (IEEE arithmetic), so
            # a finite total means finite gradients. A total that is not finite runs the exact
            # per-variable check, which decides (it also rules out a finite sum that overflowed).
            total = tf.add_n([tf.reduce_sum(tf.cast(g, tf.float32)) for g in checked])

            def check_exact():
                bad = [
                    tf.cast(tf.logical_not(tf.reduce_all(tf.math.is_finite(g))), tf.float32)
                    for g in checked
                ]
                bad = tf.scatter_nd(rows_t, tf.stack(bad), [n])

                def write_nonfinite():
                    self._nf_step_var.assign(read_step())
                    self._nf_mask_var.assign(bad)
                    return tf.constant(True)

                return tf.cond(
                    tf.logical_and(tf.reduce_max(bad) > 0, self._nf_step_var < 0),
                    write_nonfinite,
                    lambda: tf.constant(False),
                )

            tf.cond(tf.math.is_finite(total), lambda: tf.constant(False), check_exact)

        def record():
            if reduced is not None:
                pre, post, fired = reduced
            else:
                pre = [_dense(g) for g in grads]
                fired = self._fired(grads, pre)
                post = [_dense(c) for c in clipped] if clipping else None
            weights = [tf.cast(tf.convert_to_tensor(v), tf.float32) for v in variables]
            w_norms = [tf.norm(w) for w in weights]
            pre_stats, pre_sq = self._stats(pre, w_norms)
            if clipping:
                post_stats, post_sq = self._stats(post, w_norms)
            else:
                post_stats, post_sq = pre_stats, pre_sq
            nan_row = tf.fill([len(STATISTICS)], float("nan"))
            full = []
            for stats in (pre_stats, post_stats):
                table = tf.tile(nan_row[None, :], [n, 1])
                full.append(tf.tensor_scatter_nd_update(table, rows_t, stats))
            self._stats_var.assign(tf.stack(full))
            self._global_var.assign(tf.sqrt(tf.stack([pre_sq, post_sq])))
            self._fired_var.assign(tf.scatter_nd(rows_t, fired, [n]))
            if self._bins:
                lo, hi = _HIST_RANGE
                hists = [
                    tf.cast(
                        tf.histogram_fixed_width(
                            tf.math.log(tf.abs(g) + 1e-30) / math.log(10.0),
                            [lo, hi],
                            nbins=self._bins,
                        ),
                        tf.float32,
                    )
                    for g in pre
                ]
                self._hist_var.assign(tf.scatter_nd(rows_t, tf.stack(hists), [n, self._bins]))
            self._step_var.assign(read_step())
            return tf.constant(True)

        tf.cond(self._flag > 0, record, lambda: tf.constant(False))

    def _stats(self, grads, w_norms):
        """[k, len(STATISTICS)] statistics and the total sum of squares."""
        rows, total = [], 0.0
        for g, wn in zip(grads, w_norms, strict=True):
            a = tf.abs(g)
            sq = tf.reduce_sum(tf.square(g))
            norm = tf.sqrt(sq)
            rows.append(
                tf.stack(
                    [
                        norm,
                        tf.reduce_mean(g),
                        tf.math.reduce_std(g),
                        tf.reduce_max(a),
                        tf.reduce_mean(tf.cast(a <= self.zero_threshold, tf.float32)),
                        tf.where(wn > 0, norm / tf.maximum(wn, 1e-30), float("nan")),
                    ]
                )
            )
            total = total + sq
        return tf.stack(rows), total

    def _fired(self, raw, grads):
        """Per-gradient 0/1: whether the optimizer's clipping changes it (Keras's precedence)."""
        t = self._target
        if t.clipnorm and t.clipnorm > 0:
            # tf.clip_by_norm measures an IndexedSlices gradient (Embedding) by its slices,
            # duplicates not summed, so decide on exactly what it measures; LazyAdam sums them
            # first, so it measures the dense gradient.
            by_slices = not isinstance(t, LazyAdam)
            return tf.stack(
                [
                    tf.cast(
                        tf.norm(_dense(g.values if by_slices and isinstance(g, tf.IndexedSlices)
                                       else g))
                        > t.clipnorm,
                        tf.float32,
                    )
                    for g in raw
                ]
            )
        if t.global_clipnorm and t.global_clipnorm > 0:
            total = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(g)) for g in grads]))
            return tf.fill([len(grads)], tf.cast(total > t.global_clipnorm, tf.float32))
        if t.clipvalue and t.clipvalue > 0:
            return tf.stack(
                [tf.cast(tf.reduce_max(tf.abs(g)) > t.clipvalue, tf.float32) for g in grads]
            )
        return tf.zeros([len(grads)], tf.float32)

    # ------------------------------------------------------------------ host side

    def _read_sample(self):
        step = int(self._step_var.numpy())
        if step < 0 or step == self._last_step:
            return  # Nothing new written (e.g. an empty execution at the end of an epoch).
        self._last_step = step
        epoch = self._epoch
        stats = self._stats_var.numpy()
        global_norms = self._global_var.numpy()
        fired = self._fired_var.numpy()
        clipping = self._clipping()
        stages = _STAGES if clipping else _STAGES[:1]
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
            self._write_summaries(step, stats, global_norms, fired, clipping)

    def _clipping(self):
        t = self._target
        if t is None:
            return False
        return bool(
            (t.clipnorm and t.clipnorm > 0)
            or (t.global_clipnorm and t.global_clipnorm > 0)
            or (t.clipvalue and t.clipvalue > 0)
        )

    def _check_growth(self, step, global_norm):
        if self.growth_factor is None or not math.isfinite(global_norm):
            return
        history = self._history
        if len(history) >= 3:
            median = float(np.median(history))
            if median > 0 and global_norm > self.growth_factor * median:
                message = (
                    f"GradientStats: pre-clip global gradient norm {global_norm:.4g} at step "
                    f"{step} (epoch {self._epoch}) is more than {self.growth_factor:g}x the "
                    f"median {median:.4g} of the previous {len(history)} sampled steps."
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
        history.append(global_norm)

    def _check_nonfinite(self):
        if self.check_finite and self._nonfinite_error is None:
            step = int(self._nf_step_var.numpy())
            if step >= 0:
                self._on_nonfinite(step)

    def _on_nonfinite(self, step):
        mask = self._nf_mask_var.numpy()
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
        for layer, curve in curves.items():
            for d, value in enumerate(curve):
                self._rows.append(
                    (step, epoch, layer, "", "probe", "input_grad_norm", d, float(value))
                )
        if self._writer is not None:
            with self._writer.as_default():
                for layer, curve in curves.items():
                    _write_scalar(f"{layer}/input_grad_norm/d0", curve[0], step)
                    _write_scalar(f"{layer}/input_grad_norm/mean", np.nanmean(curve), step)

    def _write_summaries(self, step, stats, global_norms, fired, clipping):
        # Tags start with the layer name: TensorBoard groups a run's charts by the tag's first
        # component, so each layer's norms (its own and its variables', both stages) and
        # histograms sit together, and the global ones under "global".
        stages = _STAGES if clipping else _STAGES[:1]
        with self._writer.as_default():
            for s, stage in enumerate(stages):
                _write_scalar(f"global/grad_norm/{stage}", global_norms[s], step)
                squares = {}
                for i, (layer, variable) in enumerate(self._names):
                    norm = stats[s, i, 0]
                    _write_scalar(f"{layer}/grad_norm/{variable}/{stage}", norm, step)
                    squares[layer] = squares.get(layer, 0.0) + float(norm) ** 2
                for layer, total in squares.items():
                    _write_scalar(f"{layer}/grad_norm/{stage}", math.sqrt(total), step)
            if clipping:
                _write_scalar("global/clip_fired", fired.max(initial=0.0), step)
            if self._bins:
                hists = self._hist_var.numpy()
                lo, hi = _HIST_RANGE
                edges = np.linspace(lo, hi, self._bins + 1)
                for i, (layer, variable) in enumerate(self._names):
                    _write_histogram(f"{layer}/grad_log10_abs/{variable}", edges, hists[i], step)


def _typed(frame):
    frame["step"] = frame["step"].astype("int64")
    frame["epoch"] = frame["epoch"].astype("int64")
    frame["timestep"] = frame["timestep"].astype("Int64")
    frame["value"] = frame["value"].astype("float64")
    return frame


def _frame_format(path):
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".csv", ".parquet", ".pq"):
        raise SeqclfError(
            "Unsupported file extension; expected .csv, .parquet or .pq. "
            f"Received: path={path!r}"
        )
    return path, ext


def save_frame(frame, path):
    """Write a `GradientStats.to_dataframe()` frame to `.csv` or `.parquet`/`.pq`, atomically.

    The file is written beside `path` and renamed over it, so a crash never leaves a truncated
    file (see `seqclf._io`). Returns `path`.
    """
    path, ext = _frame_format(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with atomic_path(path) as tmp:
        if ext == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return path


def load_frame(path):
    """Read a file written by `GradientStats.save` with the dtypes of `to_dataframe()`."""
    path, ext = _frame_format(path)
    if ext != ".csv":
        return _typed(pd.read_parquet(path))
    # `variable` is "" for global and probe rows; pandas would read those as NaN.
    text = {c: str for c in ("layer", "variable", "stage", "statistic")}
    frame = pd.read_csv(path, dtype=text, keep_default_na=False,
                        na_values={"timestep": [""], "value": [""]})
    return _typed(frame)


# TensorBoard's summary ops live in the `tensorboard` package, which is not a dependency; the
# event format is plain protobuf, so write it with `tf.summary.write` and the plugin metadata
# TensorBoard expects.
def _metadata(plugin):
    from tensorflow.core.framework import summary_pb2

    meta = summary_pb2.SummaryMetadata()
    meta.plugin_data.plugin_name = plugin
    return meta.SerializeToString()


def _write_scalar(tag, value, step):
    tf.summary.write(
        tag, tf.constant(float(value), tf.float32), step=step, metadata=_metadata("scalars")
    )


def _write_histogram(tag, edges, counts, step):
    tensor = np.stack([edges[:-1], edges[1:], counts], axis=1).astype(np.float64)
    tf.summary.write(tag, tf.constant(tensor), step=step, metadata=_metadata("histograms"))

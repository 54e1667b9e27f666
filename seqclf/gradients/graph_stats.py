"""The gradient statistics computed inside the train step, and the variables that hold them.

`GraphStatistics.record` is called (through `OptimizerHook`) while the train step is traced; the
ops it builds reduce the raw and clipped gradients to a few statistics per variable and write
them into non-trainable `tf.Variable`s, so nothing is copied to the host inside the step: the
host reads the small variables, and only on sampled steps (`GradientStats`).

Statistics are computed only when a flag variable is set (`tf.cond`), so an unsampled step costs
one conditional plus, with `check_finite=True`, one sum per gradient (a non-finite entry makes
the sum non-finite; only then does the exact per-variable check run).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from seqclf.lazy_adam import LazyAdam

__all__ = ["HIST_RANGE", "STAGES", "STATISTICS", "GraphStatistics", "clipping_configured"]

#: Statistics recorded per variable, in the order of the in-graph statistics vector.
STATISTICS = ("norm", "mean", "std", "max_abs", "frac_near_zero", "norm_ratio")
STAGES = ("pre_clip", "post_clip")
#: log10|g| histogram range; values outside land in the edge bins.
HIST_RANGE = (-10.0, 2.0)


def _dense(g):
    return tf.cast(tf.convert_to_tensor(g), tf.float32)


def clipping_configured(optimizer):
    """Whether the optimizer clips (clipnorm, global_clipnorm or clipvalue above 0)."""
    if optimizer is None:
        return False
    return bool(
        (optimizer.clipnorm and optimizer.clipnorm > 0)
        or (optimizer.global_clipnorm and optimizer.global_clipnorm > 0)
        or (optimizer.clipvalue and optimizer.clipvalue > 0)
    )


class GraphStatistics:
    """The statistics variables of one `fit` and the in-step ops that write them.

    Args:
        model: The model being trained (its `distribute_strategy` holds the variables).
        target: The optimizer that clips (a LossScaleOptimizer's inner optimizer).
        variables: `model.trainable_variables`, in the order of the recorded rows.
        zero_threshold: |g| at or below this counts as near zero for `frac_near_zero`.
        check_finite: Check every step's gradients for NaN/Inf.
        bins: Number of log10|g| histogram bins, 0 for none.
    """

    def __init__(self, model, target, variables, zero_threshold, check_finite, bins):
        self.target = target
        self.zero_threshold = zero_threshold
        self.check_finite = check_finite
        self.bins = bins
        self._n = n = len(variables)
        self._index = {id(v): i for i, v in enumerate(variables)}
        self._path_index = {v.path: i for i, v in enumerate(variables)}
        # Written inside the step: sync-on-read, so a replica writes its own copy with no
        # merge_call (which TensorFlow refuses inside tf.cond). After the in-graph all-reduce
        # every replica holds the same statistics, so reading the first replica's is exact.
        agg = tf.VariableAggregation.ONLY_FIRST_REPLICA
        on_read = tf.VariableSynchronization.ON_READ
        with model.distribute_strategy.scope():

            def var(value, dtype):
                return tf.Variable(
                    value, dtype=dtype, trainable=False, synchronization=on_read, aggregation=agg
                )

            # The flag is only written from the host and read in the step: a plain variable.
            self.flag = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.step_var = var(-1, tf.int64)
            self.stats_var = var(np.zeros((2, n, len(STATISTICS))), tf.float32)
            self.global_var = var(np.zeros(2), tf.float32)
            self.fired_var = var(np.zeros(n), tf.float32)
            self.hist_var = var(np.zeros((n, max(bins, 1))), tf.float32)
            self.nf_step_var = var(-1, tf.int64)
            self.nf_mask_var = var(np.zeros(n), tf.float32)

    def record(self, grads, clipped, variables):
        """Builds, inside the train step, the ops that write the statistics variables."""
        n = self._n
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
        iterations = self.target.iterations

        def read_step():
            # Read inside the branches that use it: outside, it would be two more ops on every
            # step. Automatic control dependencies still order the read before the optimizer's
            # increment, as they order the whole branch.
            return tf.cast(tf.convert_to_tensor(iterations), tf.int64)

        clipping = clipping_configured(self.target)
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
                    self.nf_step_var.assign(read_step())
                    self.nf_mask_var.assign(bad)
                    return tf.constant(True)

                return tf.cond(
                    tf.logical_and(tf.reduce_max(bad) > 0, self.nf_step_var < 0),
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
            self.stats_var.assign(tf.stack(full))
            self.global_var.assign(tf.sqrt(tf.stack([pre_sq, post_sq])))
            self.fired_var.assign(tf.scatter_nd(rows_t, fired, [n]))
            if self.bins:
                lo, hi = HIST_RANGE
                hists = [
                    tf.cast(
                        tf.histogram_fixed_width(
                            tf.math.log(tf.abs(g) + 1e-30) / math.log(10.0),
                            [lo, hi],
                            nbins=self.bins,
                        ),
                        tf.float32,
                    )
                    for g in pre
                ]
                self.hist_var.assign(tf.scatter_nd(rows_t, tf.stack(hists), [n, self.bins]))
            self.step_var.assign(read_step())
            return tf.constant(True)

        tf.cond(self.flag > 0, record, lambda: tf.constant(False))

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
        t = self.target
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

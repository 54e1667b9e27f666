"""`StepProgress`: an epoch progress bar that counts the training steps really run.

Keras' own bar (`ProgbarLogger`) shows the `end_step` that `fit` hands to callbacks. With
`steps_per_execution=k` that is the last step the execution *could* have run, so the last
execution of an epoch of 154 steps shows `160/154`; the first update's ETA includes tracing
(`13s` for a 2 s epoch); and when an epoch's length is not declared (token-budget batches) the
bar keeps the overshot count as the next epochs' total.

This bar counts the optimizer's `iterations` (the updates applied since the epoch began, read on
the host once per execution), so the count never passes the number of steps run, and the total
is never below it: the declared number of steps when `fit` knows it, otherwise an estimate
(`expected_steps`, then the previous epoch's count) that is dropped ("Unknown") once the count
passes it. The epoch ends on `N/N`, N the steps run, with the epoch's validation metrics. The
ETA uses the time per step measured after the epoch's first execution (which pays for tracing
and filling caches); until that is known it uses the previous epoch's, so from the second epoch
on the first update's ETA is already meaningful. Validation inside `fit` stays silent.
"""

import time

import keras

from seqclf import _compat

__all__ = ["StepProgress"]


class _Bar(_compat.ProgbarStepDurationOverride, keras.utils.Progbar):
    """A Progbar whose ETA and time per step come from `seconds_per_step` when set."""

    seconds_per_step = None

    def step_duration(self, current, now, keras_estimate):
        # Keras' estimate is (now - start) / current until it has seen step 1, which an
        # execution of k > 1 steps never reports: tracing time would then stay in the ETA.
        if self.seconds_per_step is not None:
            return self.seconds_per_step
        return keras_estimate(current, now)


class StepProgress(keras.callbacks.Callback):
    """Progress bar of `model.fit` epochs; use it with `fit(verbose=0)`.

    Args:
        expected_steps: Estimated steps per epoch, shown as the total while `fit` does not know
            the epoch's length (e.g. token-budget batches) and no epoch has ended yet.
        verbose: 1 for a bar updated in place, 2 for one line per epoch (Keras' meanings).
    """

    def __init__(self, expected_steps=None, verbose=1):
        super().__init__()
        self.expected_steps = expected_steps
        self.verbose = verbose
        self._epochs = 1
        self._declared = None
        self._previous_count = None
        self._previous_rate = None
        self.bar = None

    def set_params(self, params):
        super().set_params(params)
        self._epochs = params.get("epochs") or 1
        self._declared = params.get("steps")

    def _iterations(self):
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_epoch_begin(self, epoch, logs=None):
        if self._declared:
            target, self._estimated = self._declared, False
        else:
            target = self._previous_count or self.expected_steps
            self._estimated = True
        self.bar = _Bar(target=target, verbose=self.verbose, unit_name="step",
                        stateless_metrics=set())
        self.bar.seconds_per_step = self._previous_rate
        self._start_iterations = self._iterations()
        self._count = 0
        self._first = None  # (time, count) after the epoch's first execution
        if self.verbose and self._epochs > 1:
            print(f"Epoch {epoch + 1}/{self._epochs}", flush=True)

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        count = self._iterations() - self._start_iterations
        if count <= self._count:
            return  # an execution that found no data left ran no step
        self._count = count
        if self._first is None:
            self._first = (now, count)
        elif count > self._first[1]:
            self.bar.seconds_per_step = (now - self._first[0]) / (count - self._first[1])
        if self._estimated and self.bar.target is not None and count > self.bar.target:
            self.bar.target = None  # the estimate was short: say so rather than overshoot
        self.bar.update(count, list((logs or {}).items()), finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        count = max(self._count, self._iterations() - self._start_iterations)
        self._previous_count = count
        if self._first is not None and count > self._first[1]:
            self._previous_rate = self.bar.seconds_per_step
        self.bar.target = count
        self.bar.update(count, list((logs or {}).items()), finalize=True)

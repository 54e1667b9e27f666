"""`StepProgress`: an epoch progress bar that counts the training steps really run;
`StepProgbarLogger`: Keras' own bar, counting the steps run, as `TextClassifier` shows it.

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

`StepProgbarLogger` is the smaller fix for `fit`, `evaluate` and `predict` run with their own
`verbose`: being a `ProgbarLogger`, it takes the place of the bar Keras would add, and passes it
the steps run instead of Keras' `end_step`.
"""

import time

import keras

from seqclf import _compat

__all__ = ["StepProgbarLogger", "StepProgress"]


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


class StepProgbarLogger(keras.callbacks.ProgbarLogger):
    """Keras' progress bar (`verbose` 1 or 2, as `fit`, `evaluate` and `predict` take it), with
    the count of steps really run.

    Keras' epoch iterator hands each execution of `steps_per_execution=k` steps to the callbacks
    as `(step, step + k - 1)`, whatever is left of the epoch, and `ProgbarLogger` shows that
    `end_step + 1`: `16/7` for an epoch of 7 steps run in one execution of up to 16, `48/47` for
    one of 47. Every execution but an epoch's last runs all k steps, so where the number of steps
    is declared (`params["steps"]`) the steps run are that count clamped to it. Where it is not
    (a training dataset of unknown length, such as token-budget batches), a training epoch counts
    the optimizer's `iterations` since it began; its total is the previous epoch's count, dropped
    ("Unknown") once passed, and the epoch ends on `N/N`, N the steps run. (Evaluation and
    prediction of unknown length still end on a multiple of k, Keras' count.)

    In a callback list it is the bar: Keras adds its own `ProgbarLogger` only to a list with none.
    """

    def __init__(self):
        super().__init__()
        self._declared = None
        self._previous_count = None
        self._start_iterations = None

    def set_params(self, params):
        super().set_params(params)
        self._declared = params.get("steps")

    def _steps_run(self, batch):
        return min(batch + 1, self._declared) if self._declared else batch + 1

    def _iterations(self):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return None
        return int(keras.ops.convert_to_numpy(optimizer.iterations))

    def on_epoch_begin(self, epoch, logs=None):
        if not self._declared:
            self.target = self._previous_count  # an estimate, dropped once passed
            self._start_iterations = self._iterations()
        super().on_epoch_begin(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        count = self._steps_run(batch)
        if not self._declared and self._start_iterations is not None:
            # A train step that updates no optimizer leaves Keras' count.
            count = self._iterations() - self._start_iterations or count
            if self.target is not None and count > self.target:
                self.target = self.progbar.target = None
        super().on_train_batch_end(count - 1, logs)

    def on_epoch_end(self, epoch, logs=None):
        if not self._declared:
            self.target = None  # Keras then ends the bar on the count seen: the steps run
        super().on_epoch_end(epoch, logs)
        self._previous_count = self.target

    def on_test_batch_end(self, batch, logs=None):
        super().on_test_batch_end(self._steps_run(batch) - 1, logs)

    def on_predict_batch_end(self, batch, logs=None):
        super().on_predict_batch_end(self._steps_run(batch) - 1, logs)

"""`StepProgress` counts the steps run, with steps_per_execution > 1, declared or not."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqclf.callbacks import progress
from seqclf.callbacks.progress import StepProgress


def _model(steps_per_execution):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=steps_per_execution)
    return model


@pytest.fixture
def updates(monkeypatch):
    seen = []
    original = progress._Bar.update

    def update(bar, current, values=None, finalize=None):
        seen.append({"count": current, "target": bar.target, "finalize": finalize,
                     "names": [k for k, _ in values or []], "rate": bar.seconds_per_step})
        return original(bar, current, values, finalize)

    monkeypatch.setattr(progress._Bar, "update", update)
    return seen


def _epochs(updates):
    epochs, current = [], []
    for u in updates:
        current.append(u)
        if u["finalize"]:
            epochs.append(current)
            current = []
    return epochs


def _check(epochs, steps):
    for epoch in epochs:
        counts = [u["count"] for u in epoch[:-1]]  # the final update may repeat the last count
        assert counts == sorted(set(counts)), counts  # strictly increasing
        for u in epoch:
            assert u["target"] is None or u["count"] <= u["target"], epoch
        last = epoch[-1]
        assert last["count"] == last["target"] == steps
        assert "val_accuracy" in last["names"]


@pytest.mark.parametrize("declared", [True, False])
def test_counts_never_pass_the_total_and_end_at_n_of_n(updates, declared, capsys):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)).astype("float32"), rng.integers(0, 2, 40)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)  # 10 steps per epoch
    if not declared:
        ds = ds.filter(lambda a, b: True)  # cardinality unknown, as token-budget batches
    # Keras' own bar would show 12/10 on the last execution of 4 steps.
    callback = StepProgress(expected_steps=None if declared else 7)
    _model(4).fit(ds, validation_data=ds, epochs=3, verbose=0, callbacks=[callback],
                   shuffle=False)
    epochs = _epochs(updates)
    assert len(epochs) == 3
    _check(epochs, steps=10)
    assert [u["count"] for u in epochs[0]][:-1] == [4, 8, 10]
    if not declared:
        # The short estimate (7) is dropped once passed; later epochs know the length.
        assert [u["target"] for u in epochs[0]] == [7, None, None, 10]
        assert {u["target"] for u in epochs[1]} == {10}
    # From the second epoch on, the first update's ETA uses a measured time per step.
    assert epochs[1][0]["rate"] is not None and epochs[1][0]["rate"] > 0
    out = capsys.readouterr().out
    assert "Epoch 1/3" in out and "12/10" not in out


@pytest.fixture
def bar_updates(monkeypatch):
    """Every update of Keras' Progbar (the printed ones are rate-limited)."""
    seen = []
    original = keras.utils.Progbar.update

    def update(bar, current, values=None, finalize=None):
        seen.append({"count": current, "target": bar.target, "finalize": finalize})
        return original(bar, current, values, finalize)

    monkeypatch.setattr(keras.utils.Progbar, "update", update)
    return seen


@pytest.mark.parametrize("declared", [True, False])
def test_step_progbar_logger_replaces_keras_bar_and_counts_steps_run(bar_updates, declared,
                                                                       capsys):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)).astype("float32"), rng.integers(0, 2, 40)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)  # 10 steps per epoch
    if not declared:
        ds = ds.filter(lambda a, b: True)  # cardinality unknown, as token-budget batches
    model = _model(4)  # executions end at steps 4, 8, 12: Keras' bar shows 12/10
    bar = progress.StepProgbarLogger()
    model.fit(ds, validation_data=ds, epochs=3, callbacks=[bar], shuffle=False)
    epochs = _epochs(bar_updates)
    assert len(epochs) == 3  # one bar: Keras added none of its own, validation is silent
    for epoch in epochs:
        assert [u["count"] for u in epoch] == [4, 8, 10, 10]
        for u in epoch:
            assert u["target"] is None or u["count"] <= u["target"], epoch
        assert epoch[-1]["target"] == 10
    if not declared:
        # Unknown, then the previous epoch's count as the total.
        assert [u["target"] for u in epochs[0]] == [None, None, None, 10]
        assert {u["target"] for u in epochs[1]} == {10}
    assert "12/10" not in capsys.readouterr().out
    if declared:  # evaluate and predict count alike where their length is known
        for run in (lambda cb: model.evaluate(ds, callbacks=cb),
                    lambda cb: model.predict(ds.map(lambda a, b: a), callbacks=cb)):
            bar_updates.clear()
            run([progress.StepProgbarLogger()])
            assert [u["count"] for u in bar_updates] == [4, 8, 10, 10]
            assert {u["target"] for u in bar_updates} == {10}

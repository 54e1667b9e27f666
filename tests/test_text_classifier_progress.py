"""`TextClassifier`'s progress bars count the steps run, with its 16 steps per execution.

Keras' own bar shows the last step an execution *could* have run: `16/7` for an epoch of 7
steps, `48/47` for one of 47. The user meets it on a pandas DataFrame with a classifier built by
`TextClassifier.from_texts` or read back by `keras.saving.load_model`.
"""

import re

import keras
import numpy as np
import pandas as pd
import pytest

from seqclf.models import TextClassifier

ROWS = 200  # 7 batches of 32, 4 of 64 (predict's default): shorter than one execution of 16

_COUNT = re.compile(r"^\s*(\d+)/(\d+) ")
_STYLE = re.compile(r"\x1b\[[0-9;]*m")  # the bar's bold and colours


def _frame(rows=ROWS, seed=0):
    rng = np.random.default_rng(seed)
    words = np.array(["good", "bad", "film", "plot", "great", "awful", "music", "fine"])
    texts = [" ".join(rng.choice(words, size=rng.integers(1, 9))) for _ in range(rows)]
    labels = ["pos" if t.count("good") + t.count("great") >= t.count("bad") else "neg"
              for t in texts]
    return pd.DataFrame({"text": texts, "label": labels})


def _counts(out):
    """The `N/M` counts of Keras' bars in captured stdout (in-place updates split apart)."""
    lines = _STYLE.sub("", out).replace("\b", "\n").replace("\r", "\n").splitlines()
    return [(int(m[1]), int(m[2])) for m in map(_COUNT.match, lines) if m]


def _check_bar(out, steps):
    counts = _counts(out)
    assert counts, out
    for n, total in counts:
        assert total == steps and n <= total, counts
    assert counts[-1] == (steps, steps), counts


def _epoch_bars(out):
    """The counts of each epoch's bar in the output of a `fit` of several epochs."""
    return [_counts(part) for part in re.split(r"Epoch \d+/\d+", _STYLE.sub("", out))[1:]]


@pytest.fixture(scope="module")
def clf():
    model = TextClassifier.from_texts(_frame()["text"], _frame()["label"], model="gru",
                                      units=4, embedding_dim=4)
    model.compile()  # 16 steps per execution
    assert model.steps_per_execution == 16
    return model


def test_fit_evaluate_predict_bars_end_at_n_of_n(clf, capsys):
    df = _frame()
    capsys.readouterr()
    clf.fit(df, epochs=1, batch_size=32)
    _check_bar(capsys.readouterr().out, steps=7)
    clf.evaluate(df["text"], df["label"], batch_size=32)
    _check_bar(capsys.readouterr().out, steps=7)
    clf.predict(df, verbose=1)
    _check_bar(capsys.readouterr().out, steps=4)


def test_bars_with_several_executions_and_epochs(clf, capsys):
    df = _frame(rows=300, seed=1)  # 10 batches of 32, 5 of 64
    clf.compile(steps_per_execution=3)  # executions end at steps 3, 6, 9, 12
    try:
        capsys.readouterr()
        clf.fit(df, epochs=2, batch_size=32, validation_split=0.2)  # 8 steps, 3 + 3 + 2
        out = capsys.readouterr().out
        assert "Epoch 1/2" in out and "Epoch 2/2" in out
        _check_bar(out, steps=8)
        clf.evaluate(df, batch_size=32)
        _check_bar(capsys.readouterr().out, steps=10)
        clf.predict(df["text"], verbose=1)
        _check_bar(capsys.readouterr().out, steps=5)
    finally:
        clf.compile()


def test_epochs_of_unknown_length_end_on_the_steps_run(clf, capsys):
    import tensorflow as tf

    df = _frame()
    # Token-budget batches: the dataset does not declare its length.
    ds = clf.text_dataset(df, shuffle=True, batch_tokens=128)
    assert ds.cardinality() == tf.data.UNKNOWN_CARDINALITY
    assert sum(1 for _ in ds) < 16  # an epoch is one execution: Keras' bar shows 16/16
    updates = [int(clf.optimizer.iterations)]

    class Steps(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            updates.append(int(self.model.optimizer.iterations))

    capsys.readouterr()
    clf.fit(df, epochs=2, batch_tokens=128, callbacks=[Steps()])
    bars = _epoch_bars(capsys.readouterr().out)
    assert len(bars) == 2
    for counts, steps in zip(bars, np.diff(updates)):
        assert all(n <= total for n, total in counts), counts
        assert counts[-1] == (steps, steps), (counts, updates)


def test_verbose_0_prints_nothing_and_verbose_2_one_line_per_epoch(clf, capsys):
    df = _frame()
    capsys.readouterr()
    clf.fit(df, epochs=1, verbose=0)
    clf.evaluate(df, verbose=0)
    clf.predict(df)  # predict on texts is silent unless asked
    assert capsys.readouterr().out == ""
    clf.fit(df, epochs=2, verbose=2)
    out = capsys.readouterr().out
    assert _counts(out) == [(7, 7), (7, 7)] and "\b" not in out and "\r" not in out
    clf.evaluate(df, verbose=2)
    assert _counts(capsys.readouterr().out) == [(7, 7)]


def test_user_callbacks_and_progbar_are_kept(clf, capsys):
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((batch, self.params["verbose"]))

    own = keras.callbacks.ProgbarLogger()
    clf.fit(_frame(), epochs=1, verbose=1, callbacks=[Record(), own])
    assert seen == [(15, 1)]  # Keras' own batch index and verbose, as the user's callbacks see
    assert own.model is clf and own.progbar is not None  # the user's bar is the bar
    assert _counts(capsys.readouterr().out)[-1] == (7, 7)


def test_loaded_model_in_the_users_script(clf, tmp_path, capsys):
    df = _frame(seed=2)
    clf.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.steps_per_execution == 16
    capsys.readouterr()
    loaded.evaluate(df["text"], df["label"])
    _check_bar(capsys.readouterr().out, steps=7)
    loaded.fit(df, epochs=1)
    _check_bar(capsys.readouterr().out, steps=7)

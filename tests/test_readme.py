"""The README's quick-tour script runs as written (on the tiny word-order config, one epoch):
it trains, evaluates, predicts labels, saves, reloads and exports an export that TensorFlow's
C++ loader serves."""

import pathlib
import re
import warnings

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"

# What makes the tour test-sized; each must be found, so the test notices when the README moves on.
SMALLER = [
    ('load_spec("word_order:train")', 'load_spec("word_order/tiny:train", data_dir=TFDS_DIR)'),
    ('load_spec("word_order:validation")',
     'load_spec("word_order/tiny:validation", data_dir=TFDS_DIR)'),
    ("units=128", "units=8"),
    ("epochs=3", "epochs=1"),
    # Keeps a handle on the callback to look at what it recorded.
    ("callbacks=[GradientStats()]", "callbacks=[stats := GradientStats()]"),
    # ... and on the fit's history (`model` is the reloaded classifier by the end).
    ("model.fit(train.texts", "history = model.fit(train.texts"),
]
MAX_LINES = 15


def quick_tour_code():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick tour", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's quick tour has no ```python block"
    return match.group(1)


def test_quick_tour_is_short():
    assert len(quick_tour_code().strip().splitlines()) <= MAX_LINES


def test_quick_tour_script_trains_reloads_and_exports(tfds_dir, tmp_path, monkeypatch):
    from seqclf.serving import capi

    code = quick_tour_code()
    for old, new in SMALLER:
        assert old in code, f"README's quick tour no longer holds {old!r}: update this test"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    namespace = {"TFDS_DIR": tfds_dir}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - the README's own code
    # The datasets declare their number of batches: no "ran out of data" at an epoch's end.
    assert not [w for w in caught if "ran out of data" in str(w.message)]

    history = namespace["history"].history  # one epoch, validated
    assert len(history["loss"]) == 1 and len(history["val_accuracy"]) == 1
    model, val = namespace["model"], namespace["val"]  # `model`: the reloaded classifier
    rows = namespace["stats"].to_dataframe()  # one epoch, its gradients recorded
    assert len(rows) > 0 and rows["epoch"].eq(0).all()
    texts = [str(t) for t in val.texts[:16]] + ["", "?!", "an unseen zzzqqq text"]
    probs = model.predict(texts)
    assert probs.shape == (len(texts), val.num_classes)
    assert model.predict_labels(texts[:2]) == [val.label_names[k] for k in probs[:2].argmax(1)]

    # `model` is the tour's own reload of the file it saved; a TextClassifier file loading in a
    # fresh process is test_text_classifier's (one fresh TensorFlow import fewer here).
    # The export (validated through the C API as it was written) serves the same answers.
    export_dir = tmp_path / "serving" / "word_order" / "1"
    with capi.CApiHarness() as harness:
        harness.load(str(export_dir))
        served = harness.predict(texts)
    np.testing.assert_allclose(served["probabilities"], probs, atol=1e-5)
    assert [label.decode() for label in served["label"]] == \
        [val.label_names[k] for k in probs.argmax(1)]

"""The README's quick-tour script runs as written (on the tiny word-order config, one epoch)."""

import pathlib
import re
import warnings

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
]


def quick_tour_code():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick tour", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's quick tour has no ```python block"
    return match.group(1)


def test_quick_tour_script_trains_and_records_gradients(tfds_dir):
    code = quick_tour_code()
    for old, new in SMALLER:
        assert old in code, f"README's quick tour no longer holds {old!r}: update this test"
        code = code.replace(old, new)
    namespace = {"TFDS_DIR": tfds_dir}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - the README's own code
    # The datasets declare their number of batches: no "ran out of data" at an epoch's end.
    assert not [w for w in caught if "ran out of data" in str(w.message)]

    model = namespace["model"]
    history = model.history.history
    assert len(history["loss"]) == 1 and "val_accuracy" in history
    rows = namespace["stats"].to_dataframe()
    assert len(rows) > 0 and rows["epoch"].eq(0).all()
    ids, _ = next(iter(namespace["val_ds"]))
    probs = model.predict(ids, verbose=0)
    assert probs.shape == (ids.shape[0], namespace["train"].num_classes)

"""The README runs as written, at test size: the "Your CSV" quick start (its `seqclf` commands, each
in a fresh process as a user types them, and its `model.fit` script on a pandas DataFrame), and
the quick tour (it trains, evaluates, predicts labels, saves, reloads and exports an export that
TensorFlow's C++ loader serves). Also: the README stays short and its links, and those of
docs/*.md, point at files and headings that exist."""

import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd

REPO = pathlib.Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MAX_README_LINES = 250

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

# The quick start's script at test size (each must be found, as above).
SMALLER_FIT = [
    ("from_texts(data.text, data.label)",
     "from_texts(data.text, data.label, units=8, embedding_dim=8)"),
    ("model.fit(data, validation_split=0.1)",
     "history = model.fit(data, validation_split=0.1, epochs=1, verbose=0)"),
]
# ... and its `seqclf train` command.
SMALLER_CLI = [("--out runs/my", "--out runs/my --epochs 1 --units 8 --embedding-dim 8 --quiet")]
MAX_QUICK_START_LINES = 10


def section(title):
    text = README.read_text(encoding="utf-8")
    assert f"\n## {title}" in text, f"README has no '## {title}' section"
    return text.split(f"\n## {title}", 1)[1].split("\n## ", 1)[0]


def code_block(title, language):
    match = re.search(rf"```{language}\n(.*?)```", section(title), re.S)
    assert match, f"README's {title!r} section has no ```{language} block"
    return match.group(1)


def quick_tour_code():
    return code_block("Quick tour", "python")


def write_user_files(directory, tfds_dir):
    """`my.csv` and `test.csv` (the tiny word-order data, with label names) and `new.csv`, where
    the quick start reads them."""
    from seqclf.data import load_spec

    for split, name in (("train", "my.csv"), ("test", "test.csv")):
        data = load_spec(f"word_order/tiny:{split}", data_dir=tfds_dir, quiet=True)
        pd.DataFrame({"text": [str(t) for t in data.texts],
                      "label": [data.label_names[k] for k in data.labels]}).to_csv(
            directory / name, index=False)
    pd.DataFrame({"id": [7, 3, 5], "text": ["not good , just bad", "", "not bad , just good"]}
                 ).to_csv(directory / "new.csv", index=False)


def test_readme_is_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= MAX_README_LINES


def test_quick_tour_is_short():
    assert len(quick_tour_code().strip().splitlines()) <= MAX_LINES


def test_quick_start_is_short():
    assert len(code_block("Your CSV", "python").strip().splitlines()) <= MAX_QUICK_START_LINES
    assert len(code_block("Your CSV", "bash").strip().splitlines()) <= 5


def _slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces to
    `-`."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path):
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


def test_relative_links_point_at_existing_files_and_headings():
    pages = [README, *sorted((REPO / "docs").glob("*.md"))]
    checked, broken = 0, []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            checked += 1
            if not resolved.exists():
                broken.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert checked > 10
    assert not broken, "\n".join(broken)


def test_quick_start_commands_run_as_written(tfds_dir, tmp_path):
    write_user_files(tmp_path, tfds_dir)
    lines = [line for line in code_block("Your CSV", "bash").splitlines() if line.strip()]
    commands = [shlex.split(line, comments=True) for line in lines]
    assert [c[:2] for c in commands] == [["seqclf", "train"], ["seqclf", "evaluate"],
                                         ["seqclf", "predict"], ["seqclf", "explain"]]
    train = lines[0]
    for old, new in SMALLER_CLI:
        assert old in train, f"README's quick start no longer holds {old!r}: update this test"
        train = train.replace(old, new)
    commands[0] = shlex.split(train, comments=True)
    # The checkout's seqclf, in a fresh process each, as the `seqclf` command runs it.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = {}
    for command in commands:
        proc = subprocess.run([sys.executable, "-m", "seqclf", *command[1:]], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, f"{shlex.join(command)}\n{proc.stdout}\n{proc.stderr}"
        out[command[1]] = proc.stdout

    metrics = json.loads((tmp_path / "runs" / "my" / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and "validation_report" in metrics
    report = json.loads(out["evaluate"].strip().splitlines()[-1])
    assert report["n"] == 200 and {"accuracy", "macro_f1", "per_class", "confusion_matrix",
                                   "majority_baseline"} <= set(report)
    assert set(report["per_class"]) == {"negative", "positive"}
    preds = pd.read_csv(tmp_path / "preds.csv", keep_default_na=False)
    assert list(preds["id"]) == [7, 3, 5]  # every row, in order, its columns kept
    assert {"text", "predicted_label", "probability_negative", "probability_positive"} <= set(
        preds.columns)
    assert set(preds["predicted_label"]) <= {"negative", "positive"}
    assert re.search(r"superb\([+-]\d", out["explain"]), out["explain"]


def test_quick_start_script_fits_a_dataframe(tfds_dir, tmp_path, monkeypatch):
    code = code_block("Your CSV", "python")
    for old, new in SMALLER_FIT:
        assert old in code, f"README's quick start no longer holds {old!r}: update this test"
        code = code.replace(old, new)
    write_user_files(tmp_path, tfds_dir)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - the README's own code

    history = namespace["history"].history  # one epoch, validated on the held-out 10%
    assert len(history["loss"]) == 1 and len(history["val_accuracy"]) == 1
    model = namespace["model"]
    assert model.label_names == ["negative", "positive"]  # from the CSV's label names
    assert len(namespace["data"]) == 600
    # The last 60 rows validated; the linear path was blended in on them, then fitted again on
    # all 600, as `seqclf train` does.
    assert model.settings["blend"]["linear_refit_on_validation"]
    saved = tmp_path / "runs" / "my_fit"
    assert {"config.json", "vocabulary.txt", "model.keras"} <= set(os.listdir(saved))


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

"""Per-class results (`seqclf.class_report`), the collapse warning, and `--class-weight`: on a
hand-computed case, and end to end on a tiny imbalanced file whose rare class has a weak cue."""

import json
import os

import numpy as np
import pytest

from seqclf.class_report import class_report, collapse_warning, format_report
from seqclf.cli import main
from seqclf.errors import SeqclfError

NAMES = ["a", "b", "c", "d"]  # "d": a class of the model that these rows do not hold


def test_class_report_matches_a_hand_computed_case():
    labels = [0, 0, 0, 1, 1, 2]
    predicted = [0, 0, 1, 1, 0, 2]
    report = class_report(labels, predicted, NAMES)
    assert report["n"] == 6 and report["accuracy"] == pytest.approx(4 / 6)
    # a: 2 right of 3 predicted and of 3 true; b: 1 of 2 and 1 of 2; c: 1 of 1; d: nothing.
    expected = {"a": (2 / 3, 2 / 3, 2 / 3, 3), "b": (1 / 2, 1 / 2, 1 / 2, 2),
                "c": (1.0, 1.0, 1.0, 1), "d": (0.0, 0.0, 0.0, 0)}
    for name, (precision, recall, f1, support) in expected.items():
        got = report["per_class"][name]
        assert got["precision"] == pytest.approx(precision)
        assert got["recall"] == pytest.approx(recall)
        assert got["f1"] == pytest.approx(f1)
        assert got["support"] == support
    # Macro-F1 over the three classes present: (2/3 + 1/2 + 1) / 3.
    assert report["macro_f1"] == pytest.approx(13 / 18)
    assert report["confusion_matrix"] == {
        "labels": NAMES, "counts": [[2, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]}
    # Always "a": accuracy 3/6; F1 of "a" = 2 * 0.5 / 1.5, averaged over 3 classes.
    assert report["majority_baseline"] == pytest.approx(
        {"label": "a", "accuracy": 0.5, "macro_f1": 2 / 9})
    json.dumps(report)  # JSON-ready: plain Python numbers
    assert collapse_warning(report) is None


def test_format_report_shows_each_class_and_the_confusion_matrix():
    table = format_report(class_report([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 0, 2], NAMES))
    lines = table.splitlines()
    assert lines[0].split() == ["class", "precision", "recall", "f1", "support"]
    assert lines[1].split() == ["a", "0.667", "0.667", "0.667", "3"]
    assert "always answering 'a' would score accuracy 0.500" in table
    assert lines[-5].split() == NAMES  # the matrix's header, then one row per true class
    assert lines[-3].split() == ["b", "1", "1", "0", "0"]


def test_collapse_warning_names_the_class_never_predicted():
    labels = np.array([0] * 18 + [1] * 2)
    report = class_report(labels, np.zeros(20, "int64"), ["common", "rare"])
    warning = collapse_warning(report)
    assert warning is not None and "\n" not in warning
    assert "never predicts 'rare' correctly" in warning
    assert "always answering 'common'" in warning and "--class-weight balanced" in warning
    assert "--class-weight" not in collapse_warning(report, class_weighted=True)
    # Right on the rare rows, wrong on a few common ones: not collapsed.
    better = class_report(labels, np.r_[np.zeros(15), np.ones(5)].astype(int),
                          ["common", "rare"])
    assert collapse_warning(better) is None


def test_class_report_refuses_mismatched_input():
    with pytest.raises(SeqclfError, match="Received: 3 labels, 2 predictions"):
        class_report([0, 1, 0], [0, 1], ["a", "b"])
    with pytest.raises(SeqclfError, match="Received: ids from 0 to 2"):
        class_report([0, 1], [0, 2], ["a", "b"])


# --------------------------------------------------------------------------- end to end

def _write(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        f.writelines(f"{text}\t{label}\n" for text, label in rows)
    return str(path)


def _texts(rng, n, label, cue_rate):
    """Texts of filler words, "awful" in a `cue_rate` share of them."""
    words = [f"w{i}" for i in range(30)]
    out = []
    for _ in range(n):
        text = list(rng.choice(words, 6))
        if rng.random() < cue_rate:
            text.insert(int(rng.integers(0, 6)), "awful")
        out.append((" ".join(text), label))
    return out


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    """9 "fine" rows to 1 "bad": "awful" is in 80% of "bad" texts and 15% of "fine" ones, so
    that unweighted, even a text with "awful" is more likely "fine" (0.1 * 0.8 < 0.9 * 0.15);
    weighted by class, it is "bad". Validation: as many rows of each."""
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("imbalanced")
    train = _texts(rng, 540, "fine", 0.15) + _texts(rng, 60, "bad", 0.8)
    rng.shuffle(train)
    val = _texts(rng, 60, "fine", 0.15) + _texts(rng, 60, "bad", 0.8)
    only_bad = _texts(rng, 40, "bad", 0.8)
    return (_write(folder / "train.tsv", train), _write(folder / "val.tsv", val),
            _write(folder / "bad.tsv", only_bad), folder)


def _train(data, val, out, *extra):
    return main(["train", "--data", data, "--val", val, "--out", str(out), "--model", "bow",
                 "--embedding-dim", "8", "--epochs", "6", "--ngram-buckets", "0",
                 "--batch-size", "32", "--seed", "0", "--quiet", *extra])


@pytest.fixture(scope="module")
def two_runs(imbalanced):
    train, val, _, folder = imbalanced
    runs = {}
    for name, extra in (("plain", ()), ("balanced", ("--class-weight", "balanced"))):
        assert _train(train, val, folder / name, *extra) == 0
        runs[name] = str(folder / name)
    return runs


def _metrics(run):
    with open(os.path.join(run, "metrics.json"), encoding="utf-8") as f:
        return json.load(f)


def test_class_weight_balanced_raises_the_rare_class_recall(two_runs):
    recall = {name: _metrics(run)["validation_report"]["per_class"]["bad"]["recall"]
              for name, run in two_runs.items()}
    assert recall["balanced"] >= recall["plain"] + 0.3, recall
    with open(os.path.join(two_runs["balanced"], "config.json"), encoding="utf-8") as f:
        assert json.load(f)["class_weight"] == "balanced"


def test_the_run_records_and_draws_its_per_class_results(two_runs):
    run = two_runs["balanced"]
    report = _metrics(run)["validation_report"]
    assert report["model"] == "the saved model" and report["n"] == 120
    assert set(report["per_class"]) == {"bad", "fine"}
    assert sum(map(sum, report["confusion_matrix"]["counts"])) == 120
    assert report["majority_baseline"]["accuracy"] == pytest.approx(0.5)
    assert _metrics(run)["val_accuracy"] == pytest.approx(report["accuracy"])
    for png in ("confusion.png", "curves.png"):
        assert os.path.getsize(os.path.join(run, png)) > 1000


def test_evaluate_prints_per_class_json_and_the_table_on_stderr(two_runs, imbalanced, capsys):
    _, val, _, _ = imbalanced
    assert main(["evaluate", two_runs["balanced"], "--data", val]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # stdout: one JSON object, nothing else
    assert {"macro_f1", "per_class", "confusion_matrix", "majority_baseline"} <= set(result)
    assert result["accuracy"] == pytest.approx(
        np.trace(result["confusion_matrix"]["counts"]) / result["n"])
    assert "confusion matrix (rows: true class, columns: predicted):" in captured.err


def test_a_collapsed_model_says_so_in_one_line_even_when_quiet(two_runs, imbalanced, capsys):
    # The unweighted model answers "fine" everywhere: on rows that are all "bad", it is right
    # on none.
    _, _, only_bad, _ = imbalanced
    assert main(["evaluate", two_runs["plain"], "--data", only_bad, "--quiet"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["per_class"]["bad"]["recall"] == 0
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "never predicts 'bad' correctly" in warnings[0]
    assert "class  " not in captured.err  # --quiet: no table


def test_train_ends_with_the_saved_models_validation_score(imbalanced, tmp_path, capsys):
    train, val, _, _ = imbalanced
    assert main(["train", "--data", train, "--val", val, "--out", str(tmp_path / "r"),
                 "--model", "bow", "--embedding-dim", "8", "--epochs", "1",
                 "--ngram-buckets", "0", "--members", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "member 1 of 2 (seed 0)" in out and "member 2 of 2 (seed 1)" in out
    report = _metrics(str(tmp_path / "r"))["validation_report"]
    # The last line is the JSON; the one before it, the saved model's (2 members averaged).
    assert out[-2].startswith(
        f"validation accuracy of the saved model: {report['accuracy']:.4f} (2 members averaged)")


@pytest.mark.parametrize("value, says", [
    ("often", "'often' is not LABEL=WEIGHT"),
    ("bad=-1", "weights must be finite and positive, 'bad' has -1"),
    ("bad=nan", "weights must be finite and positive, 'bad' has nan"),
    ("bad=2,bad=3", "label 'bad' is given twice"),
    ("bad=x", "the weight of 'bad' is not a number"),
    ("worse=2", "names labels the training data does not have: 'worse'; its labels are bad, "
                "fine"),
])
def test_bad_class_weights_are_one_line_errors(imbalanced, tmp_path, capsys, value, says):
    train, val, _, _ = imbalanced
    assert _train(train, val, tmp_path / "r", f"--class-weight={value}") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err
    assert err.endswith(f"Received: class_weight={value!r}")
    assert not os.path.exists(tmp_path / "r")


def test_a_run_older_than_class_weights_resumes_with_the_default():
    from seqclf.training import check_same_config

    saved = {"model": "bow"}  # config.json of a run that predates the field
    check_same_config("out", saved, {"model": "bow", "class_weight": None},
                      {"class_weight": None})
    with pytest.raises(SeqclfError, match="class_weight='balanced'"):
        check_same_config("out", saved, {"model": "bow", "class_weight": "balanced"},
                          {"class_weight": None})

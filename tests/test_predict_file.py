"""`seqclf predict RUN --data FILE`: every format and stdin, row order and columns kept, a
streamed (bounded-memory) pass, and refusals that leave the user's files alone."""

import csv
import io
import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from seqclf import batch_predict
from seqclf.batch_predict import predict_file
from seqclf.cli import main
from seqclf.errors import SeqclfError
from seqclf.models import TextClassifier
from tests.test_files import _write_frame

TEXTS = ["good film", "a bad bad film indeed", "film", "great movie", "awful awful",
         "fine good", "bad plot", "good good music"] * 4
LABELS = ["pos", "neg", "pos", "pos", "neg", "pos", "neg", "pos"] * 4
# Rows to classify: an empty text and punctuation only among them, and a column of ids.
ROWS = pd.DataFrame({
    "id": [f"r{i}" for i in range(7)],
    "review": ["awful awful", "good film", "", "?!", "bad plot indeed", "great", "film"],
    "stars": [1, 5, 3, 2, 1, 5, 4],
})


@pytest.fixture(scope="module")
def clf():
    model = TextClassifier.from_texts(TEXTS, LABELS, model="bow", embedding_dim=4)
    model.compile()
    model.fit(TEXTS, LABELS, epochs=2, batch_size=8, verbose=0)
    return model


@pytest.fixture(scope="module")
def run_dir(clf, tmp_path_factory):
    return clf.save_run(str(tmp_path_factory.mktemp("run") / "r"))


def _write(df, path):
    return str(_write_frame(df, path, os.path.splitext(path)[1][1:]))


@pytest.mark.parametrize("fmt", [".tsv", ".csv", ".jsonl", ".parquet"])
@pytest.mark.parametrize("out", [".jsonl", ".csv"])
def test_every_format_keeps_rows_in_order_with_their_columns(clf, run_dir, tmp_path, capsys,
                                                            fmt, out):
    data = _write(ROWS, tmp_path / f"in{fmt}")
    output = str(tmp_path / f"out{out}")
    assert main(["predict", run_dir, "--data", data, "--output", output,
                 "--text-column", "review", "--batch-size", "2"]) == 0
    assert "2 had no words (empty or punctuation only)" in capsys.readouterr().err
    if out == ".csv":
        got = pd.read_csv(output, keep_default_na=False)
        probs = got[["probability_neg", "probability_pos"]].to_numpy()
    else:
        got = pd.read_json(output, lines=True, dtype=False)
        probs = np.array([[p["neg"], p["pos"]] for p in got["probabilities"]])
    assert list(got.columns[:3]) == ["id", "review", "stars"]
    assert got["id"].tolist() == ROWS["id"].tolist()
    assert got["review"].tolist() == ROWS["review"].tolist()
    assert [int(s) for s in got["stars"]] == ROWS["stars"].tolist()
    # The same answers as the classifier gives these texts in memory (`predict RUN TEXT...`).
    expected = clf.predict(ROWS["review"].tolist())
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert got["predicted_label"].tolist() == [clf.label_names[k] for k in expected.argmax(1)]


def test_stdin_one_text_per_line_in_a_real_process(clf, run_dir):
    lines = ["good film", "", "awful awful", "  bad plot  "]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "seqclf", "predict", run_dir, "--data", "-"],
                          input="\n".join(lines) + "\n", capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["text"] for r in rows] == lines
    expected = clf.predict(lines)
    np.testing.assert_allclose([[r["probabilities"]["neg"], r["probabilities"]["pos"]]
                                for r in rows], expected, atol=1e-5)
    # Not a terminal: no progress bar, only the summary line.
    assert proc.stderr.strip().splitlines() == [
        "seqclf predict: 4 rows of stdin classified into standard output; 1 had no words "
        "(empty or punctuation only), classified as `predict RUN \"\"` is"]


def test_predict_text_arguments_still_work(clf, run_dir, capsys):
    assert main(["predict", run_dir, "good film", ""]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["good film", ""]
    # An empty text gets the same answer whether given as an argument or as a file row.
    np.testing.assert_allclose(rows[1]["probabilities"]["pos"], clf.predict([""])[0, 1],
                               atol=1e-6)


class _CountingClassifier:
    """Stands in for a `TextClassifier` (with `_counting_probabilities` standing in for the
    model) and records how far the reader had got at each call."""

    label_names = ["neg", "pos"]

    def __init__(self, source_lines):
        self.source_lines = source_lines
        self.reads_at_call = []


def _counting_probabilities(classifier, texts, batch_size=64):
    classifier.reads_at_call.append((classifier.source_lines.consumed, len(texts)))
    return np.tile([[0.25, 0.75]], (len(texts), 1)).astype("float32")


class _Lines(io.RawIOBase):
    """A stdin of `n` generated lines that counts the lines handed out."""

    def __init__(self, n):
        self.n, self.consumed = n, 0

    def __iter__(self):
        for i in range(self.n):
            self.consumed += 1
            yield f"text number {i} of the stream\n".encode()


def _peak_bytes(n, monkeypatch):
    monkeypatch.setattr(batch_predict, "text_probabilities", _counting_probabilities)
    lines = _Lines(n)
    clf = _CountingClassifier(lines)
    tracemalloc.start()
    try:
        predict_file(clf, "-", stdin=lines, stdout=_Discard(), chunk_rows=1000, progress=False)
        return tracemalloc.get_traced_memory()[1], clf
    finally:
        tracemalloc.stop()


class _Discard:
    """An output stream that counts lines and keeps none (the sink must not hold memory)."""

    def __init__(self):
        self.lines = 0

    def write(self, text):
        self.lines += text.count("\n")

    def flush(self):
        pass


def test_100000_lines_stream_in_bounded_memory(monkeypatch):
    small, _ = _peak_bytes(5_000, monkeypatch)
    peak, clf = _peak_bytes(100_000, monkeypatch)
    # Each call classifies one chunk, read just before it: the reader is never ahead by more.
    assert len(clf.reads_at_call) == 100
    assert all(size == 1000 and read == 1000 * (k + 1)
               for k, (read, size) in enumerate(clf.reads_at_call))
    # Twenty times the rows, about the same peak: nothing grows with the file (the rows of
    # 100,000 outputs held at once would take megabytes).
    assert peak < 1.5 * small + 200_000, (small, peak)


def test_existing_output_is_refused_and_left_alone(run_dir, tmp_path, capsys):
    data = _write(ROWS, tmp_path / "in.csv")
    output = tmp_path / "out.jsonl"
    output.write_text("the user's own file\n")
    assert main(["predict", run_dir, "--data", data, "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the file exists; seqclf does not replace it" in err
    assert err.rstrip().endswith(f"Received: output={str(output)!r}")
    assert output.read_text() == "the user's own file\n"
    assert sorted(os.listdir(tmp_path)) == ["in.csv", "out.jsonl"]


@pytest.mark.parametrize("args, message", [
    (["--output", "x.txt"], "`output` must end in one of: .csv, .json, .jsonl"),
    (["--text-column", "nope"], "no text column 'nope'"),
    (["hello"], "give no TEXT and no --server"),
    (["--output", "no/such/dir/out.csv"], "no such directory"),
])
def test_user_errors_exit_2_with_one_line(run_dir, tmp_path, capsys, args, message):
    data = _write(ROWS, tmp_path / "in.csv")
    argv = ["predict", run_dir, "--data", data, *args]
    if args == ["hello"]:
        argv = ["predict", run_dir, "hello", "--data", data]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Received:" in err
    assert os.listdir(tmp_path) == ["in.csv"]  # no output, no temporary left


def test_a_failure_midway_leaves_no_output(clf, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "good film"}\n' * 3000 + '{"text": 5}\n')
    with pytest.raises(SeqclfError, match=r"in.jsonl:3001: column 'text' must hold text"):
        predict_file(clf, str(path), output=str(tmp_path / "out.csv"), progress=False)
    assert os.listdir(tmp_path) == ["in.jsonl"]


def test_csv_output_quotes_texts_and_keeps_blank_line_counts(clf, tmp_path):
    path = tmp_path / "in.tsv"
    path.write_text('text\tnote\nsaid "good", then left\ta,b\n\nfilm\t\n')
    out = tmp_path / "out.csv"
    result = predict_file(clf, str(path), output=str(out), progress=False)
    assert result == {"rows": 2, "empty_texts": 0, "skipped": {"blank_line": 1},
                      "output": str(out)}
    rows = list(csv.reader(open(out, newline="")))
    assert rows[0] == ["text", "note", "predicted_label", "probability_neg", "probability_pos"]
    assert [r[:2] for r in rows[1:]] == [['said "good", then left', "a,b"], ["film", ""]]


def test_missing_texts_are_empty_texts_and_stay_missing_in_the_output(clf, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "good film", "n": 1}\n{"text": null, "n": 2}\n{"n": 3}\n')
    out = io.StringIO()
    result = predict_file(clf, str(path), stdout=out, progress=False)
    assert result["rows"] == 3 and result["empty_texts"] == 2
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["n"] for r in rows] == [1, 2, 3]
    assert rows[1]["text"] is None and "text" not in rows[2]
    empty = clf.predict([""])[0, 1]
    assert rows[2]["probabilities"]["pos"] == pytest.approx(float(empty), abs=1e-5)

"""Hostile input, property-based (hypothesis): arbitrary Unicode, control characters, NUL,
invalid UTF-8, 1 MB texts, empty / header-only files, ragged and mis-quoted lines.

Properties:
* loaders (`read_table`, `load_spec`, the streaming reader) either return every row - kept, or
  skipped and counted in `TextData.skipped` - or raise a `SeqclfError` naming the file (and the
  line and column where there is one) and ending with what was received; nothing else escapes;
* the vectorizer and `make_dataset` give one example per text, ids in range, never empty;
* `seqclf.run.predict` and the exported serving signature answer every text (str, or bytes that
  need not be UTF-8) with one finite probability row per input, and agree with each other.

Example counts are set per test (`settings(max_examples=...)`) so the file runs in about a
minute on 2 cores; the C API check at the end sends one batch of nasty strings through the C++
loader (a subprocess per example would be too slow for hypothesis).
"""

import csv
import io
import json
import os
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from seqclf.data import load_spec, make_dataset, make_vectorizer, open_stream, read_table
from seqclf.data.pipeline import token_lengths
from seqclf.errors import SeqclfError


def examples(n):
    """`n` examples, no per-example deadline (TensorFlow's first calls trace graphs); tmp_path
    is shared by a test's examples, which each rewrite their file."""
    return settings(max_examples=n, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


# Hand-picked troublemakers: NUL, BOM, bidi override, Unicode line/paragraph separators (Python's
# splitlines breaks on them), NEL, lone CR, combining marks, case mappings that change length,
# astral emoji, quotes and backslashes.
NASTY = ["\x00", "\ufeff", "\u202e", "\u2028", "\u2029", "\x85", "\r", "\x0b", "\x0c", "\x1c",
         "e\u0301", "İ", "ß", "ﬃ", "\U0001f600", "\U0001f3f3\ufe0f\u200d\U0001f308", '"', "'",
         "\\", "\\n", "  ", "日本語", "naïve", "\x7f", "\x1b[31m"]
ANY_TEXT = st.one_of(
    st.text(),  # every code point except surrogates: controls and NUL included
    st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=5)), max_size=8).map("".join),
)
# Labels as their class names: no control characters (an error, tested below) and no numbers
# other than canonical ones ("1.0" and "01" are class "1": tested below).
LABEL = st.one_of(
    st.sampled_from(["0", "1", "2", "pos", "neg", " 1 ", "10"]),
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=6).filter(
        lambda s: s.strip() and not re.fullmatch(r"[\s+\-\d.eE]+", s)),
)
MEGABYTE = 1_000_000


def megabyte(unit):
    """`unit` repeated to one million characters: a 1 MB text (more in UTF-8)."""
    return (unit * (MEGABYTE // len(unit) + 1))[:MEGABYTE]


LONG_TEXT = st.text(min_size=1, max_size=6).filter(lambda s: s.strip()).map(megabyte)


def tsv_safe(text):
    # A TSV cannot carry tabs or newlines inside a field (no quoting, as in GLUE).
    return text.replace("\t", " ").replace("\n", " ")


def check_error(e, path):
    """A clear SeqclfError: names the file first and ends with what was received."""
    message = str(e)
    assert message.startswith(str(path)), message
    assert "Received:" in message, message


def check_rows(data, rows):
    """`data` holds exactly the rows with a non-blank text, in order, with their labels; the
    others are counted as `empty_text`."""
    kept = [(t, y.strip()) for t, y in rows if t.strip()]
    assert data.texts.tolist() == [t for t, _ in kept]
    assert [data.label_names[i] for i in data.labels] == [y for _, y in kept]
    assert sorted(data.label_names) == sorted({y for _, y in kept})
    assert data.skipped.get("empty_text", 0) == len(rows) - len(kept)


def same_result(load_a, load_b):
    """Two loaders agree: the same rows and counts, or the same error message."""
    try:
        a = load_a()
    except SeqclfError as e:
        with pytest.raises(SeqclfError) as info:
            load_b()
        assert str(info.value) == str(e)
        return None
    b = load_b()
    examples = list(b.examples()) if hasattr(b, "examples") else list(zip(b.texts, b.labels))
    assert [t for t, _ in examples] == a.texts.tolist()
    assert [y for _, y in examples] == a.labels.tolist()
    assert b.label_names == a.label_names and b.skipped == a.skipped
    return a


# --- loaders: well-formed files with hostile texts round-trip exactly --------------------------


@examples(60)
@given(rows=st.lists(st.tuples(ANY_TEXT.map(tsv_safe), LABEL.map(tsv_safe)), min_size=1,
                     max_size=12), crlf=st.booleans())
def test_tsv_round_trip(tmp_path, rows, crlf):
    assume(any(t.strip() for t, _ in rows))
    path = tmp_path / "d.tsv"
    end = "\r\n" if crlf else "\n"
    path.write_bytes(("sentence\tlabel" + end + "".join(f"{t}\t{y}{end}" for t, y in rows))
                     .encode("utf-8"))
    data = load_spec(str(path))
    check_rows(data, rows)
    same_result(lambda: data, lambda: load_spec(str(path), stream=True))


@examples(60)
@given(rows=st.lists(st.tuples(ANY_TEXT, LABEL), min_size=1, max_size=12),
       terminator=st.sampled_from(["\n", "\r\n"]))
def test_csv_round_trip(tmp_path, rows, terminator):
    # Quoted fields carry commas, quotes, newlines and carriage returns.
    assume(any(t.strip() for t, _ in rows))
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator=terminator)
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    path = tmp_path / "d.csv"
    path.write_bytes(buf.getvalue().encode("utf-8"))
    check_rows(read_table(path), rows)


@examples(60)
@given(rows=st.lists(st.tuples(st.one_of(ANY_TEXT, st.none()),
                               st.one_of(LABEL, st.integers(-5, 12))), min_size=1, max_size=12),
       ascii_only=st.booleans())
def test_jsonl_round_trip(tmp_path, rows, ascii_only):
    assume(any(t and t.strip() for t, _ in rows))
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": y}, ensure_ascii=ascii_only) + "\n"
                            for t, y in rows), encoding="utf-8")
    check_rows(read_table(path), [(t or "", str(y)) for t, y in rows])


@examples(25)
@given(rows=st.lists(st.tuples(st.one_of(ANY_TEXT, st.none()), LABEL), min_size=1, max_size=12))
def test_parquet_round_trip(tmp_path, rows):
    assume(any(t and t.strip() for t, _ in rows))
    path = tmp_path / "d.parquet"
    pd.DataFrame({"text": [t for t, _ in rows], "label": [y for _, y in rows]}).to_parquet(path)
    data = read_table(path)
    check_rows(data, [(t or "", y) for t, y in rows])
    same_result(lambda: data, lambda: load_spec(str(path), stream=True))


@examples(4)
@given(text=LONG_TEXT, fmt=st.sampled_from(["tsv", "csv", "jsonl", "parquet"]))
def test_megabyte_texts_load(tmp_path, text, fmt):
    rows = [(tsv_safe(text), "1"), ("short", "0")]
    path = tmp_path / f"d.{fmt}"
    frame = pd.DataFrame({"text": [t for t, _ in rows], "label": [y for _, y in rows]})
    if fmt == "tsv":
        path.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows), "utf-8")
    elif fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(path)
    check_rows(read_table(path), rows)


# --- loaders: arbitrary bytes either load with every line accounted for, or fail clearly -------

JUNK = st.lists(st.one_of(
    st.sampled_from([b"\t", b"\n", b"\r\n", b"\r", b'"', b"'", b",", b"\xff", b"\xc3",
                     b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\x00", b" ", b"a", b"1", b"0", b"{",
                     b"}", b":", b"[", b'"text"', b'"label"', b"null", b"\\u", b"\\ud800"]),
    st.binary(max_size=4)), max_size=40).map(b"".join)


@examples(120)
@given(body=JUNK, header=st.booleans())
def test_tsv_junk_accounts_for_every_line(tmp_path, body, header):
    path = tmp_path / "d.tsv"
    content = (b"sentence\tlabel\n" if header else b"") + body
    path.write_bytes(content)
    # The streaming reader gives the same rows and counts, or the same error.
    data = same_result(lambda: read_table(path), lambda: load_spec(str(path), stream=True))
    if data is None:
        with pytest.raises(SeqclfError) as info:
            read_table(path)
        check_error(info.value, path)
        return
    lines = content.split(b"\n")
    lines = lines[:-1] if lines[-1] == b"" else lines
    # One header line; every other line is a row kept, a blank line or an empty text.
    counted = len(data) + data.skipped.get("blank_line", 0) + data.skipped.get("empty_text", 0)
    assert counted == len(lines) - 1


@examples(120)
@given(body=JUNK, fmt=st.sampled_from(["csv", "jsonl"]))
def test_csv_and_jsonl_junk_load_or_fail_clearly(tmp_path, body, fmt):
    path = tmp_path / f"d.{fmt}"
    header = b"text,label\n" if fmt == "csv" else b'{"text": "a", "label": 1}\n'
    path.write_bytes(header + body)
    try:
        data = read_table(path)
    except SeqclfError as e:
        check_error(e, path)
        if "invalid UTF-8" in str(e) or "cannot parse" in str(e):
            assert re.match(rf"{re.escape(str(path))}:\d+", str(e)), str(e)  # names the line
        return
    if fmt == "jsonl":
        lines = (header + body).split(b"\n")
        lines = lines[:-1] if lines[-1] == b"" else lines
        counted = len(data) + data.skipped.get("blank_line", 0) + data.skipped.get("empty_text", 0)
        assert counted == len(lines)


@examples(60)
@given(rows=st.lists(ANY_TEXT.map(tsv_safe), min_size=1, max_size=8), data=st.data(),
       bad=st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"]))
def test_invalid_utf8_names_line_and_byte_column(tmp_path, rows, data, bad):
    lines = [b"sentence\tlabel"] + [f"{t}\t1".encode() for t in rows]
    n = data.draw(st.integers(1, len(lines) - 1), label="line index")
    line = lines[n].decode()
    k = data.draw(st.integers(0, len(line)), label="character index")
    col = len(line[:k].encode())  # byte column of the first invalid byte, 0-based
    lines[n] = lines[n][:col] + bad + lines[n][col:]
    path = tmp_path / "d.tsv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    for load in (read_table, open_stream):
        with pytest.raises(SeqclfError) as info:
            load(path)
        message = str(info.value)
        assert message.startswith(f"{path}:{n + 1}:{col + 1}: invalid UTF-8"), message
        assert "Received: bytes b'" in message


@examples(40)
@given(rows=st.lists(ANY_TEXT.map(tsv_safe).filter(str.strip), min_size=1, max_size=8),
       data=st.data(), extra=st.integers(-1, 2).filter(bool))
def test_ragged_tsv_line_names_line_and_column(tmp_path, rows, data, extra):
    lines = ["sentence\tlabel"] + [f"{t}\t1" for t in rows]
    n = data.draw(st.integers(1, len(lines) - 1), label="line index")
    text = lines[n].rsplit("\t", 1)[0]
    if extra < 0:
        text = text.rstrip("\r")  # a CR at the end of a line belongs to its line break
        assume(text.strip())
    lines[n] = text if extra < 0 else lines[n] + "\tx" * extra
    path = tmp_path / "d.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(SeqclfError) as info:
        read_table(path)
    column = len(text) + 1 if extra < 0 else len(lines[n].split("\t", 2)[0]) + len("\t1") + 1
    assert str(info.value).startswith(f"{path}:{n + 1}:{column}: cannot parse as TSV: line "
                                      f"{n + 1} has {2 + extra} tab-separated fields, the header "
                                      "has 2. Received: ")


@examples(40)
@given(rows=st.lists(st.text(alphabet="ab ,", max_size=6), min_size=1, max_size=6),
       data=st.data())
def test_misquoted_csv_names_the_record_line(tmp_path, rows, data):
    lines = ["text,label"] + [f'"{t}",1' for t in rows]
    n = data.draw(st.integers(1, len(lines) - 1), label="line index")
    kind = data.draw(st.sampled_from(["unterminated", "after_quote"]), label="kind")
    lines[n] = f'"{rows[n - 1]},1' if kind == "unterminated" else f'"{rows[n - 1]}"x,1'
    path = tmp_path / "d.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(SeqclfError) as info:
        read_table(path)
    check_error(info.value, path)
    assert str(info.value).startswith(f"{path}:{n + 1}: cannot parse as CSV"), str(info.value)


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl"])
@pytest.mark.parametrize("content", ["", "\n", "\r\n\r\n", "   \n\t\n", "HEADER", "HEADER\n",
                                     "HEADER\n\n\n"])
def test_empty_and_header_only_files(tmp_path, fmt, content):
    header = {"tsv": "sentence\tlabel", "csv": "text,label", "jsonl": ""}[fmt]
    path = tmp_path / f"d.{fmt}"
    path.write_text(content.replace("HEADER", header), encoding="utf-8")
    for load in (read_table, open_stream):
        with pytest.raises(SeqclfError, match="the file is empty|the file has no data rows") as e:
            load(path)
        check_error(e.value, path)


@pytest.mark.parametrize("content, kwargs, pattern", [
    ('{"text": "a", "label": 1}\n[1, 2]\n', {},
     r"d\.jsonl:2: each JSONL line must hold a JSON object"),
    ('{"text": "a", "label": [1]}\n{"text": "b", "label": 0}\n', {},
     r"d\.jsonl:1: column 'label' must hold one label"),
    ('{"text": "a\\ud800", "label": 1}\n', {}, r"d\.jsonl:1: .*lone UTF-16 surrogate.*'\\ud800'"),
    ('{"text": "a", "label": 1}\n{"text": "b", "label": \n', {},
     r"d\.jsonl:2:24: cannot parse as JSONL: Expecting"),
    # Python's own limits are parse errors too, not crashes.
    ('{"text": "a", "label": 1' + "0" * 5000 + '}\n', {},
     r"d\.jsonl:1: cannot parse as JSONL: ValueError"),
    ('{"text": ' + "[" * 100_000 + "]" * 100_000 + ', "label": 1}\n', {},
     r"d\.jsonl:1: cannot parse as JSONL: RecursionError"),
    ('{"text": "a", "label": 1}\n', {"label_column": "text"},
     r"must differ. Received: text_column='text'"),
], ids=["not_object", "list_label", "surrogate", "truncated", "huge_int", "deep", "same_column"])
def test_malformed_jsonl_rows(tmp_path, content, kwargs, pattern):
    path = tmp_path / "d.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SeqclfError, match=pattern) as info:
        read_table(path, **kwargs)
    check_error(info.value, path)


def test_blank_lines_keep_line_numbers_and_are_counted(tmp_path):
    # pandas skipped blank lines, shifting every later line number in messages.
    path = tmp_path / "d.tsv"
    path.write_text("sentence\tlabel\na\t1\n\n\nb\t0\nc\t\n", encoding="utf-8")
    with pytest.raises(SeqclfError, match=r"d\.tsv:6: missing label"):
        read_table(path)
    path.write_text("sentence\tlabel\na\t1\n\n\nb\r\t0\n", encoding="utf-8")
    data = read_table(path)
    # A lone carriage return inside a TSV line is text, not a line break.
    assert data.texts.tolist() == ["a", "b\r"] and data.skipped == {"blank_line": 2}


def test_held_out_split_keeps_the_skipped_counts(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"t{i}\t{i % 2}\n" for i in range(20))
                    + " \t1\n\n", encoding="utf-8")
    rest, held = read_table(path).split(0.2, seed=0)
    assert rest.skipped == {"empty_text": 1, "blank_line": 1} and held.skipped == {}


# --- vectorizer and tf.data pipeline -------------------------------------------------------------

PIPELINE_TEXT = st.one_of(ANY_TEXT, st.binary(max_size=12))


def token_like(text):
    # Alphanumerics survive the vectorizer's punctuation stripping.
    return any(c.isalnum() for c in text)


@examples(20)
@given(train=st.lists(ANY_TEXT, min_size=1, max_size=10),
       texts=st.lists(PIPELINE_TEXT, min_size=1, max_size=10),
       long_text=st.one_of(st.none(), LONG_TEXT), max_length=st.integers(1, 6))
def test_vectorizer_and_dataset_answer_every_text(train, texts, long_text, max_length):
    if long_text is not None:
        texts = texts + [long_text]
    try:
        vectorizer = make_vectorizer(train, max_tokens=50)
    except SeqclfError as e:
        assert "hold no tokens" in str(e) and "Received:" in str(e)
        assert not any(token_like(t) for t in train)
        return
    vocab_size = len(vectorizer.get_vocabulary())
    labels = np.arange(len(texts)) % 3
    ds = make_dataset(np.array(texts, dtype=object), labels, vectorizer, batch_size=4,
                      max_length=max_length, bucketing=False)
    ids, got = [], []
    for x, y in ds:
        ids.extend(x.numpy())
        got.extend(y.numpy().tolist())
    assert got == labels.tolist()  # unshuffled: one example per text, in order
    expected = np.clip(token_lengths(vectorizer, np.array(texts, dtype=object)), 1, max_length)
    for row, n in zip(ids, expected):
        assert len(row) <= max_length and ((0 <= row) & (row < vocab_size)).all()
        assert int((row != 0).sum()) == n  # never an all-padding row


# --- predict and the exported serving signature -----------------------------------------------

TRAIN_ROWS = [
    ("a naïve café film , great fun", "pos"), ("日本語 の 映画 great", "pos"),
    ("dull plot 😀 boring", "neg"), ("not good , just bad", "neg"), ("great acting ß", "pos"),
    ("boring and far too long", "neg"), ("fun fun fun", "pos"), ("bad bad \x00 bad", "neg"),
] * 4


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A tiny trained run and its export, shared by every example."""
    import tensorflow as tf

    from seqclf.models import TextClassifier
    from seqclf.run import TrainConfig, train
    from seqclf.serving.run_export import export_run

    base = tmp_path_factory.mktemp("hostile")
    data = base / "train.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in TRAIN_ROWS), "utf-8")
    out = str(base / "run")
    train(TrainConfig(data=str(data), out=out, model="gru", units=4, embedding_dim=4,
                      epochs=1, batch_size=8, max_length=8, steps_per_execution=1, quiet=True,
                      val_fraction=0.25))
    run = TextClassifier.from_run(out)
    path = export_run(out, str(base / "models" / "tiny"), validate=False)
    signature = tf.saved_model.load(path).signatures["serving_default"]
    return run, path, signature


def serve(signature, texts):
    import tensorflow as tf

    values = [t.encode("utf-8", "surrogatepass") if isinstance(t, str) else t for t in texts]
    out = signature(text=tf.constant(values, dtype=tf.string, shape=[len(values)]))
    return {k: v.numpy() for k, v in out.items()}


SERVE_TEXT = st.one_of(ANY_TEXT, st.binary(max_size=16), st.sampled_from(NASTY))


@examples(25)
@given(texts=st.lists(SERVE_TEXT, max_size=6), long_text=st.one_of(st.none(), LONG_TEXT))
def test_predict_and_serving_answer_every_text_and_agree(trained, texts, long_text):
    from seqclf.run import predict

    run, _, signature = trained
    if long_text is not None:
        texts = texts + [long_text]
    results = predict(run, texts)
    served = serve(signature, texts)
    assert len(results) == len(texts) and served["probabilities"].shape == (len(texts), 2)
    assert served["class_id"].shape == (len(texts),) and served["label"].shape == (len(texts),)
    for r, text, p, k, label in zip(results, texts, served["probabilities"], served["class_id"],
                                    served["label"]):
        assert r["text"] is text
        probs = np.array(list(r["probabilities"].values()))
        assert np.isfinite(probs).all() and abs(probs.sum() - 1) < 1e-5
        assert r["label"] in run.label_names
        np.testing.assert_allclose(probs, p, atol=1e-5)
        assert label.decode() == run.label_names[int(k)]


def test_predict_rejects_a_bare_string_and_non_texts(trained):
    from seqclf.run import predict

    run = trained[0]
    with pytest.raises(SeqclfError, match=r"must be a list of texts. Received: texts='good"):
        predict(run, "good film")
    with pytest.raises(SeqclfError, match=r"texts\[1\] must be a string.*Received: NoneType"):
        predict(run, ["good", None])
    assert predict(run, []) == []


def test_capi_answers_a_batch_of_nasty_strings(trained):
    """The same batch through TensorFlow's C++ loader (as TF Serving loads it)."""
    from seqclf.serving import capi

    run, path, signature = trained
    texts = ([t.encode("utf-8") for t in NASTY]
             + [b"", b" \t\r\n", b"\xff\xfe\xfd", b"ok\x00ok\x00", b"\xed\xa0\x80",
                b"\xc3", "great".encode("utf-16"), megabyte("great ").encode(),
                megabyte("x").encode(), megabyte("日本語 ").encode()])
    with capi.CApiHarness() as harness:
        harness.load(path)
        out = harness.predict(np.array(texts, dtype=object))
    probs = out["probabilities"]
    assert probs.shape == (len(texts), 2) and out["class_id"].shape == (len(texts),)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, serve(signature, texts)["probabilities"], atol=1e-5)
    assert os.path.isdir(path)


# ---------------------------------------------------------------------- the CLI, as users meet it
# Each hostile argument or path: exit 2 and one line naming the argument or path (issue 28).

from seqclf.cli import main as cli_main  # noqa: E402

FAST = ["--epochs", "1", "--units", "8", "--embedding-dim", "8", "--members", "1", "--quiet",
        "--model", "bow", "--ngram-buckets", "0"]


@pytest.fixture(scope="module")
def small_tsv(tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "small.tsv"
    words = ["good", "bad", "film", "plot", "great", "awful", "fine", "dull"]
    rows = [f"{words[i % 8]} {words[(i * 3) % 8]}\t{i % 2}" for i in range(120)]
    path.write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, small_tsv):
    out = tmp_path_factory.mktemp("small_run") / "run"
    assert main(["train", "--data", str(small_tsv), "--out", str(out), *FAST]) == 0
    return out


def main(argv):
    """`seqclf.cli.main`'s exit status, argparse's refusals (SystemExit) included."""
    try:
        return cli_main(argv)
    except SystemExit as e:
        return e.code


def one_line(capsys, *needles):
    """One error line naming `needles` (argparse's usage lines before it aside)."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines and "error:" in lines[-1], err
    assert len([line for line in lines if "error" in line]) == 1, err
    for needle in needles:
        assert needle in lines[-1], err
    return err


@pytest.mark.parametrize("flags, needles", [
    (["--clipnorm", "inf"], ["--clipnorm", "inf"]),
    (["--learning-rate", "inf"], ["--learning-rate", "inf"]),
    (["--learning-rate", "nan"], ["--learning-rate", "nan"]),
    (["--seed", "-1"], ["seed", "-1"]),
    (["--val-fraction", "nan"], ["val_fraction", "nan"]),
    (["--val-fraction", "-1"], ["val_fraction", "-1"]),
    (["--val-fraction", "0"], ["val_fraction", "0"]),
    (["--val-fraction", "1"], ["val_fraction", "1"]),
    (["--max-tokens", "1"], ["max_tokens", "1"]),
    (["--max-tokens", "2"], ["max_tokens", "2"]),
    (["--dropout", "inf"], ["dropout", "inf"]),
])
def test_bad_train_arguments_exit_2_naming_them(tmp_path, small_tsv, capsys, flags, needles):
    out = tmp_path / "r"
    assert main(["train", "--data", str(small_tsv), "--out", str(out), *FAST, *flags]) == 2
    one_line(capsys, *needles)
    assert not (out / "metrics.json").exists()


@pytest.mark.parametrize("where", ["file", "under_file", "tensorboard_file"])
def test_out_and_tensorboard_paths_that_cannot_be_folders(tmp_path, small_tsv, capsys, where):
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    out, extra = tmp_path / "r", []
    if where == "file":
        out = a_file
    elif where == "under_file":
        out = a_file / "r"
    else:
        extra = ["--tensorboard", str(a_file)]
    assert main(["train", "--data", str(small_tsv), "--out", str(out), *FAST, *extra]) == 2
    one_line(capsys, str(a_file))
    assert a_file.read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes whatever the mode says")
def test_unreadable_data_and_read_only_out(tmp_path, small_tsv, capsys):
    data = tmp_path / "locked.tsv"
    data.write_text(small_tsv.read_text())
    data.chmod(0)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), *FAST]) == 2
    one_line(capsys, str(data))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    assert main(["train", "--data", str(small_tsv), "--out", str(ro / "r"), *FAST]) == 2
    one_line(capsys, str(ro))


@pytest.mark.parametrize("kind", ["directory", "fifo", "symlink_loop"])
def test_data_paths_that_exist_but_are_not_files(tmp_path, small_tsv, capsys, kind):
    path = tmp_path / "data.tsv"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        os.symlink(path, path)
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "r"), *FAST]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "No such data file" not in err, err
    assert "not a regular file" in err or "symbolic link" in err, err


def test_huge_units_is_one_line(tmp_path, small_tsv, capsys):
    assert main(["train", "--data", str(small_tsv), "--out", str(tmp_path / "r"), *FAST,
                 "--model", "lstm", "--units", str(2**40)]) == 2
    one_line(capsys, "units")


def test_disk_full_while_training_is_one_line(tmp_path, small_tsv, capsys, monkeypatch):
    import errno

    from seqclf.run_dir import RunDir

    def full(self, metrics):
        raise OSError(errno.ENOSPC, "No space left on device", self.file("metrics.json"))

    monkeypatch.setattr(RunDir, "write_metrics", full)
    assert main(["train", "--data", str(small_tsv), "--out", str(tmp_path / "r"), *FAST]) == 2
    one_line(capsys, "No space left on device", "metrics.json")


@pytest.fixture
def tiny_disk(tmp_path, request):
    """A file system of its own (tmpfs) of `request.param` bytes, made larger by `grow()`;
    skipped where this process may not mount one (not root, or no CAP_SYS_ADMIN)."""
    import subprocess

    where = tmp_path / "tiny"
    where.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={request.param}", "tmpfs", str(where)],
        capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("needs to mount a small tmpfs (root with CAP_SYS_ADMIN) to fill a disk")
    try:
        yield where, lambda: subprocess.run(
            ["mount", "-o", "remount,size=20m", str(where)], check=True)
    finally:
        # Lazily: files the run opened may still be open in this process.
        subprocess.run(["umount", "-l", str(where)], check=False)


# 40 KB fills before the first epoch's backup is written (the model alone is ~65 KB), 200 KB
# before the second's.
@pytest.mark.parametrize("tiny_disk", ["40k", "200k"], indirect=True)
def test_a_disk_that_fills_up_during_train_is_one_line_and_the_run_resumes(
        tiny_disk, small_tsv, capsys):
    """A real full disk, no simulated error: one line naming the file and what to do next, no
    h5py errors or crash (HDF5 is never left to meet the full disk), and the same command
    resumes once there is room."""
    where, grow = tiny_disk
    out = where / "run"
    argv = ["train", "--data", str(small_tsv), "--out", str(out), *FAST, "--model", "lstm",
            "--epochs", "2"]
    assert main(argv) == 2
    assert not (out / "metrics.json").exists()
    one_line(capsys, "No space left on device", str(out / "backup"), "run the same command again")
    grow()
    assert main(argv) == 0, capsys.readouterr().err
    assert {"model.keras", "metrics.json", "curves.png", "confusion.png"} <= {
        p.name for p in out.iterdir()}


@pytest.mark.parametrize("tiny_disk", ["40k"], indirect=True)
def test_export_to_a_full_disk_is_one_line_not_out_of_memory(tiny_disk, small_run, capsys):
    """TensorFlow's SavedModel writer reports ENOSPC as ResourceExhaustedError, which read as
    "out of memory; choose smaller sizes"."""
    where, _ = tiny_disk
    base = where / "exported"
    assert main(["export", str(small_run), "--model-base-path", str(base)]) == 2
    assert "memory" not in one_line(capsys, "No space left on device", str(base))


def test_a_disk_that_fills_up_while_plotting_says_how_to_draw_them(
        tmp_path, small_tsv, capsys, monkeypatch):
    """The model and metrics.json are written before the plots: the line says so and names the
    command that draws the plots; that command then does."""
    import errno

    import seqclf.plotting

    out = tmp_path / "r"
    real = seqclf.plotting.plot_run

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", os.path.join(path, "curves.png"))

    monkeypatch.setattr(seqclf.plotting, "plot_run", full)
    assert main(["train", "--data", str(small_tsv), "--out", str(out), *FAST]) == 2
    one_line(capsys, "No space left on device", "model.keras and metrics.json were saved",
             f"seqclf plot {out}")
    monkeypatch.setattr(seqclf.plotting, "plot_run", real)
    assert main(["plot", str(out)]) == 0
    assert (out / "curves.png").is_file() and (out / "model.keras").is_file()


def test_one_class_per_row_is_named_not_a_batch_size_error(tmp_path, capsys):
    ids = tmp_path / "ids.tsv"
    ids.write_text("sentence\tlabel\n" + "".join(f"text {i}\t{i}\n" for i in range(40)))
    assert main(["train", "--data", str(ids), "--out", str(tmp_path / "r"), *FAST]) == 2
    err = capsys.readouterr().err
    assert "batch_size" not in err and "label" in err and "one row" in err, err


def test_corrupt_run_files_are_one_line(tmp_path, small_run, capsys):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(small_run, bad)
    (bad / "config.json").write_text("{")
    assert main(["predict", str(bad), "good film"]) == 2
    one_line(capsys, "config.json")
    shutil.rmtree(bad)
    shutil.copytree(small_run, bad)
    model = (bad / "model.keras").read_bytes()
    (bad / "model.keras").write_bytes(model[: len(model) // 2])
    assert main(["predict", str(bad), "good film"]) == 2
    err = capsys.readouterr().err
    assert "model.keras" in err and "not found" not in err.lower() and "Traceback" not in err


@pytest.mark.parametrize("flags, needles", [
    (["--version", str(2**63)], ["version"]),
    (["--name", ".."], ["name", "'..'"]),
    (["--name", "a/b"], ["name", "'a/b'"]),
])
def test_bad_export_arguments(tmp_path, small_run, capsys, flags, needles):
    assert main(["export", str(small_run), "--model-base-path", str(tmp_path / "m"), *flags]) == 2
    one_line(capsys, *needles)


def test_evaluation_files_do_not_collide(tmp_path, small_run, small_tsv, capsys):
    import shutil

    a, b = tmp_path / "dev set.tsv", tmp_path / "dev_set.tsv"
    shutil.copy(small_tsv, a)
    shutil.copy(small_tsv, b)
    assert main(["evaluate", str(small_run), "--data", str(a), "--quiet"]) == 0
    assert main(["evaluate", str(small_run), "--data", str(b), "--quiet"]) == 0
    capsys.readouterr()
    written = [json.loads(p.read_text())["data"]
               for p in (small_run / "evaluations").iterdir()]
    assert str(a) in written and str(b) in written


@pytest.mark.parametrize("fmt", ["tsv", "csv", "parquet", "jsonl"])
def test_duplicate_column_names_are_an_error(tmp_path, fmt):
    path = tmp_path / f"dup.{fmt}"
    rows = [("good film", "1"), ("bad film", "0")]
    if fmt in ("tsv", "csv"):
        sep = "\t" if fmt == "tsv" else ","
        path.write_text(f"sentence{sep}sentence{sep}label\n"
                        + "".join(f"{t}{sep}{t} x{sep}{y}\n" for t, y in rows))
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_arrays(
            [pa.array([t for t, _ in rows]), pa.array([t for t, _ in rows]),
             pa.array([y for _, y in rows])], names=["text", "text", "label"])
        pq.write_table(table, path)
    else:
        path.write_text("".join(f'{{"text": "{t}", "text": "{t} x", "label": {y}}}\n'
                                for t, y in rows))
    with pytest.raises(SeqclfError) as e:
        load_spec(str(path))
    assert str(path) in str(e.value) and "duplicate" in str(e.value).lower(), e.value
    assert "text" in str(e.value) or "sentence" in str(e.value)


def test_labels_and_groups_read_alike_in_every_format(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = ["good film", "bad film", "fine plot", "dull plot"]
    labels_str, labels_num = ["1", "1.0", "0", "0.0"], [1, 1.0, 0, 0.0]
    (tmp_path / "a.tsv").write_text("sentence\tlabel\tg\n" + "".join(
        f"{t}\t{y}\t{y}\n" for t, y in zip(texts, labels_str)))
    (tmp_path / "a.jsonl").write_text("".join(
        json.dumps({"text": t, "label": y, "g": y}) + "\n" for t, y in zip(texts, labels_num)))
    pq.write_table(pa.table({"text": texts, "label": [1.0, 1.0, 0.0, 0.0],
                             "g": [1.0, 1.0, 0.0, 0.0]}), tmp_path / "a.parquet")
    for name in ("a.tsv", "a.jsonl", "a.parquet"):
        data = load_spec(str(tmp_path / name), group_column="g", quiet=True)
        assert data.label_names == ["0", "1"], (name, data.label_names)
        assert sorted(set(data.groups)) == ["0", "1"], (name, data.groups)
    (tmp_path / "nul.tsv").write_text("sentence\tlabel\ngood\t0\x00\nbad\t1\n")
    with pytest.raises(SeqclfError) as e:
        load_spec(str(tmp_path / "nul.tsv"))
    assert "label" in str(e.value) and "nul.tsv:2" in str(e.value), e.value


def _peak_rss_mb(*argv):
    """Peak resident memory (MB) of a fresh `seqclf` process running `argv`; asserts exit 0."""
    import subprocess
    import sys

    code = ("import resource, sys\nfrom seqclf.cli import main\nrc = main(sys.argv[1:])\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, file=sys.stderr)\n"
            "sys.exit(rc)\n")
    done = subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stderr.strip().splitlines()[-1])


def test_one_long_token_costs_no_more_than_its_size(tmp_path, small_tsv):
    # Keras holds a vocabulary as a fixed-width NumPy string array: a 200 KB token made every
    # entry 200 KB wide (GBs for a few thousand tokens), in training and in every later load.
    words = small_tsv.read_text()
    # A vocabulary of a few thousand distinct tokens, as real data has.
    extra = "".join(f"w{i} w{i + 1} w{i + 2}\t{i % 2}\n" for i in range(0, 3000, 3))
    plain, long = tmp_path / "plain.tsv", tmp_path / "long.tsv"
    plain.write_text(words + extra)
    long.write_text(words + extra + "x" * 200_000 + "\t1\n")
    peaks = {}
    for name, data in (("plain", plain), ("long", long)):
        out = tmp_path / f"run_{name}"
        train_peak = _peak_rss_mb("train", "--data", data, "--out", out, *FAST)
        predict_peak = _peak_rss_mb("predict", out, "good film")
        peaks[name] = (train_peak, predict_peak)
    print(f"\npeak MB (train, predict): {peaks}")
    assert peaks["long"][0] - peaks["plain"][0] < 200, peaks
    assert peaks["long"][1] - peaks["plain"][1] < 200, peaks


def test_a_run_whose_loss_goes_non_finite_is_not_saved_as_finished(tmp_path, small_tsv, capsys):
    out = tmp_path / "r"
    assert main(["train", "--data", str(small_tsv), "--out", str(out), *FAST,
                 "--learning-rate", "1e30", "--no-clip"]) == 2
    one_line(capsys, "loss", "learning_rate")
    assert not (out / "metrics.json").exists() and not (out / "model.keras").exists()

"""`seqclf predict RUN --data FILE`: a whole file classified as a stream.

The file is read with `seqclf.data.files.scan_rows` (TSV, CSV, JSONL, Parquet; the same text
column detection, `text_column` and one-line errors as training data; no label column needed),
or from standard input (`-`: one text per line). Rows are classified `CHUNK_ROWS` at a time and
written as they come, so memory holds one chunk whatever the file's size; the model is loaded
once. Every input row gives one output row, in input order, with all its input columns and:

* `predicted_label`: the most probable class;
* the probabilities: a `probabilities` object (`{label: p}`) in JSONL, one
  `probability_<label>` column per class in CSV.

An empty text (empty, whitespace or punctuation only, a JSON null, a missing Parquet value) is
classified like any other: the model reads no words (one out-of-vocabulary token, as
`seqclf predict RUN ""` does), so it answers from what it learnt about texts in general, as a
tf-idf + logistic regression baseline answers with its intercept. Such rows are counted in the
summary, so they can be told apart.

Output goes to standard output as JSONL, or to `output` as CSV (`.csv`) or JSONL (`.jsonl`,
`.json`). An existing `output` is never replaced: the rows go into a temporary file beside it,
which becomes `output` only once every row is written (a failure leaves nothing behind).
"""

import contextlib
import csv
import json
import math
import os
import re
import sys

from seqclf._checks import check_new_file
from seqclf.data.pipeline import PUNCTUATION
from seqclf.errors import SeqclfError
from seqclf.models.token_rows import text_probabilities

# Rows read before they are classified (sorted by length into batches): memory holds this many.
CHUNK_ROWS = 2048
OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
LABEL_KEY = "predicted_label"
PROBABILITIES_KEY = "probabilities"
PROBABILITY_PREFIX = "probability_"
# A text of only whitespace, punctuation and NULs: no token once standardized (the default
# `seqclf.data.pipeline.standardize`), so the model reads none of its words.
_NO_WORDS = re.compile(f"(?:{PUNCTUATION}|\\s|\x00)*")


def output_format(output):
    """The format (`csv`, `jsonl`) of an output path; errors for an unknown suffix or a path
    that exists (nothing of the user's is replaced)."""
    return OUTPUT_FORMATS[check_new_file("output", output, OUTPUT_FORMATS)]


class _Source:
    """The rows of `data`: `columns`, and iterating gives `(where, text, record)`; `read` /
    `total` / `unit` describe progress (bytes of a text file, rows of Parquet, stdin lines)."""

    def __init__(self, data, text_column=None, stdin=None):
        self.data = data
        if data == "-":
            if text_column is not None:
                raise SeqclfError(
                    "Standard input holds one text per line, without columns. "
                    f"Received: text_column={text_column!r}"
                )
            self.columns, self.text_column = ["text"], "text"
            self.read, self.total, self.unit = [0], None, "line"
            self.skipped = {}
            self._rows = self._lines(stdin if stdin is not None else sys.stdin.buffer)
            return
        from seqclf.data.files import scan_rows

        scan = scan_rows(data, text_column, records=True)
        self.columns, self.text_column = list(scan.columns), scan.text_col
        self.read, self.total, self.unit = scan.read, scan.total, scan.unit
        self.skipped = scan.skipped  # blank lines, which hold no row (counted by the scan)
        self._rows = ((scan.where(pos), text, record) for pos, text, record in scan)

    def _lines(self, stream):
        for n, raw in enumerate(stream, 1):
            self.read[0] = n
            raw = raw.rstrip(b"\n").rstrip(b"\r")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise SeqclfError(
                    f"<stdin>:{n}:{e.start + 1}: invalid UTF-8 ({e.reason}). "
                    f"Received: bytes {raw[e.start:e.end]!r}"
                ) from None
            yield f"<stdin>:{n}", text, {"text": text}

    def __iter__(self):
        return self._rows


def _text_of(where, value, column):
    """The text to classify of one row's text-column value: missing values are empty texts."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return ""
    if not isinstance(value, str):
        raise SeqclfError(f"{where}: column {column!r} must hold text. Received: {value!r:.80}")
    # A lone surrogate (a JSON "\ud800" escape) is no Unicode text: TensorFlow cannot read it.
    with contextlib.suppress(UnicodeEncodeError):
        value.encode("utf-8")
        return value
    raise SeqclfError(f"{where}: column {column!r} holds a lone UTF-16 surrogate, which is not "
                      f"valid Unicode text. Received: {value!r:.80}")


class _Writer:
    """Writes result rows as JSONL or CSV to a text stream."""

    def __init__(self, stream, fmt, columns, label_names):
        self.stream, self.fmt, self.label_names = stream, fmt, list(label_names)
        prob_columns = [PROBABILITY_PREFIX + n for n in self.label_names]
        added = [LABEL_KEY, PROBABILITIES_KEY] if fmt == "jsonl" else [LABEL_KEY, *prob_columns]
        clash = [c for c in added if c in columns]
        if clash:
            raise SeqclfError(
                f"The input already has a column named {clash[0]!r}, which the output adds; "
                f"rename it. Received: columns {list(columns)}"
            )
        if fmt == "csv":
            self.columns = [*columns, *added]
            self._csv = csv.writer(stream)
            self._csv.writerow(self.columns)

    def write(self, where, record, probs):
        k = max(range(len(probs)), key=probs.__getitem__)
        label = self.label_names[k]
        if self.fmt == "jsonl":
            row = {**record, LABEL_KEY: label,
                   PROBABILITIES_KEY: {n: float(p) for n, p in zip(self.label_names, probs)}}
            self.stream.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            return
        extra = sorted(set(record) - set(self.columns), key=str)
        if extra:
            # A later JSONL object with keys the first one lacks: no CSV column holds them.
            raise SeqclfError(
                f"{where}: keys {extra} are not columns of the first row, so a CSV output has no "
                f"place for them; write JSONL instead. Received: {sorted(record, key=str)}"
            )
        values = [_cell(record.get(c)) for c in self.columns[: -1 - len(self.label_names)]]
        self._csv.writerow([*values, label, *(repr(float(p)) for p in probs)])


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def predict_file(classifier, data, *, output=None, text_column=None, batch_size=64,
                 chunk_rows=CHUNK_ROWS, progress=True, stdout=None, stdin=None):
    """Classifies every row of `data` with `classifier` (a `TextClassifier`), writing as it goes.

    Args:
        data: a `.tsv`/`.csv`/`.jsonl`/`.parquet` file, or `"-"` for `stdin` (one text a line).
        output: a `.csv` or `.jsonl` path that must not exist; None: JSONL on `stdout`.
        text_column: the column holding the texts (default: as `read_table` finds it).
        batch_size: texts per model call; `chunk_rows`: rows read before they are classified.
        progress: show a progress bar on standard error (only on a terminal).

    Returns `{"rows": n, "empty_texts": m, "skipped": {reason: count}, "output": output}`:
    rows written, those with an empty text, and lines that hold no row (blank lines of a file).
    """
    fmt = "jsonl" if output is None else output_format(output)
    source = _Source(data, text_column, stdin)
    stdout = sys.stdout if stdout is None else stdout
    with _destination(output, stdout) as stream:
        writer = _Writer(stream, fmt, source.columns, classifier.label_names)
        bar = _bar(source, progress)
        rows = empty = 0
        chunk = []
        try:
            for row in source:
                text = _text_of(row[0], row[1], source.text_column)
                empty += _NO_WORDS.fullmatch(text) is not None
                chunk.append((row[0], text, row[2]))
                if len(chunk) == chunk_rows:
                    rows += _flush(classifier, chunk, writer, batch_size, bar, source)
            if chunk:
                rows += _flush(classifier, chunk, writer, batch_size, bar, source)
        finally:
            if bar is not None:
                bar.close()
    return {"rows": rows, "empty_texts": empty, "skipped": dict(source.skipped),
            "output": output}


def _flush(classifier, chunk, writer, batch_size, bar, source):
    probs = text_probabilities(classifier, [text for _, text, _ in chunk], batch_size)
    for (where, _, record), p in zip(chunk, probs.tolist(), strict=True):
        writer.write(where, record, p)
    n = len(chunk)
    chunk.clear()
    if bar is not None:
        bar.update(source.read[0] - bar.n)
    return n


def _bar(source, progress):
    if not progress:
        return None
    from tqdm.auto import tqdm

    name = "stdin" if source.data == "-" else os.path.basename(source.data)
    # `disable=None`: no bar when standard error is not a terminal (logs, pipes, CI).
    return tqdm(total=source.total, unit=source.unit, unit_scale=True, disable=None,
                unit_divisor=1024 if source.unit == "B" else 1000, desc=f"predicting {name}")


@contextlib.contextmanager
def _destination(output, stdout):
    """The stream to write; for a file, a temporary beside it, linked to `output` at the end
    (`os.link` fails rather than replace a file that appeared meanwhile)."""
    if output is None:
        yield stdout
        stdout.flush()
        return
    import secrets

    from seqclf._io import TMP_PREFIX

    directory, name = os.path.split(os.path.abspath(output))
    # Named as `seqclf._io.atomic_path` names its temporaries.
    tmp = os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{name}")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, output)
        except FileExistsError:
            raise SeqclfError(
                f"{output}: the output file appeared while predicting; seqclf does not replace "
                f"it. Received: output={output!r}"
            ) from None
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)


def summary(result, data):
    """One line for standard error: rows written, where, and the empty texts among them."""
    where = "standard output" if result["output"] is None else result["output"]
    line = f"{result['rows']} rows of {'stdin' if data == '-' else data} classified into {where}"
    if result["empty_texts"]:
        line += (f"; {result['empty_texts']} had no words (empty or punctuation only), "
                 "classified as `predict RUN \"\"` is")
    for reason, count in sorted(result["skipped"].items()):
        line += f"; {count} {reason.replace('_', ' ')}s skipped (no row)"
    return line



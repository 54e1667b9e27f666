"""Local labelled text files (TSV, CSV, JSONL, Parquet), read row by row.

The GLUE SST-2 layout (`sentence<TAB>label` with a header) loads with no options; so do files
whose columns are named like `text`/`Text`/`review` and `label`/`Sentiment`. Other layouts name
their columns with `text_column` / `label_column`.

Every format is read one row at a time by `scan_rows`, which both `read_table` (in memory) and
`seqclf.data.streaming` (files larger than memory) use, so the two paths accept, skip and reject
exactly the same rows. Positions in messages are real file lines (TSV, CSV, JSONL; 1-based, the
header is line 1) or 1-based data rows (Parquet):

* TSV: split on newlines only (a lone carriage return is part of the text) and on tabs, without
  quoting, because GLUE sentences hold bare quote characters;
* CSV: RFC 4180 quoting, strict: an unterminated quoted field or text after a closing quote is an
  error naming the line where the record starts;
* JSONL: one JSON object per line;
* Parquet: read in record batches with pyarrow.

Blank lines are skipped and counted (`skipped["blank_line"]`); so are rows whose text is empty,
whitespace-only or missing (`skipped["empty_text"]`). Invalid UTF-8, a line with the wrong number
of fields, malformed JSON, missing or non-scalar labels and non-string texts are `SeqclfError`s
naming file, line (and column where there is one) and what was received.
"""

import csv
import json
import math
import os
import re
import sys

import numpy as np

from seqclf.data.text_data import TextData
from seqclf.errors import SeqclfError

TEXT_COLUMNS = ("sentence", "text", "Text", "review", "Review", "content")
LABEL_COLUMNS = ("label", "Label", "sentiment", "Sentiment", "class", "target")
FORMATS = {
    ".tsv": "tsv",
    ".txt": "tsv",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_BOM = b"\xef\xbb\xbf"
_SURROGATE = re.compile("[\ud800-\udfff]")
_LONE_CR = re.compile(r"\r(?!\n|\Z)")
_CR_STANDIN = "\udcff"
# A label or group written as a number (read as the number it is, whatever the format).
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# NUL and the other C0 controls: no class name holds them (a NUL label is a broken file).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
# Quoted CSV fields may legitimately hold whole documents; the csv module's default limit
# (131,072 characters) would reject a long review.
csv.field_size_limit(max(csv.field_size_limit(), min(sys.maxsize, 2**31 - 1)))


def _show(value, limit=80):
    """`repr` of a received value, shortened so a 1 MB line does not flood the message."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, (str, bytes)) else len(text)
    return f"{text[:limit]}... ({size} characters)"


def table_format(path):
    """The format (`tsv`, `csv`, `jsonl`, `parquet`) of an existing data file; errors otherwise."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        if os.path.islink(path) and not os.path.exists(path):
            what = "a symbolic link that leads nowhere (or to itself)"
        elif os.path.exists(path):
            what = "not a regular file (a directory, FIFO or device)"
        else:
            raise SeqclfError(f"No such data file. Received: {path!r}")
        raise SeqclfError(f"{path}: the data file is {what}. Received: {path!r}")
    if not os.access(path, os.R_OK):
        raise SeqclfError(f"{path}: the data file cannot be read (permission denied). "
                          f"Received: {path!r}")
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise SeqclfError(
            f"Unknown data file type. Expected one of: {', '.join(sorted(FORMATS))}. "
            f"Received: {path!r}"
        )
    return FORMATS[ext]


def _pick(columns, requested, candidates, what, path, option):
    if requested is not None:
        if requested not in columns:
            raise SeqclfError(
                f"{path}: no {what} column {requested!r}. Available columns: {list(columns)}. "
                f"Received: {option}={requested!r}"
            )
        return requested
    for c in candidates:
        if c in columns:
            return c
    raise SeqclfError(
        f"{path}: cannot find the {what} column (looked for {', '.join(candidates)}); name it "
        f"with {option}. Received: columns {list(columns)}"
    )


def label_names_of(values):
    """Sorted class names; integer-like labels sort numerically (so '10' follows '9')."""
    unique = sorted(set(values))
    try:
        return [str(v) for v in sorted(unique, key=lambda v: int(v))]
    except (TypeError, ValueError):
        return [str(v) for v in unique]


# --- one pass over a file: (position, raw text, raw label) per row -------------------------------


def _lines(path, keep_ends=False, read=None):
    """(line number, decoded line) for every line of a text file.

    Lines end at `\n` only. Unless `keep_ends`, the `\n` and a `\r` before it (Windows files)
    are dropped; the CSV reader keeps them, as a quoted field may hold a line break. Invalid
    UTF-8 is an error naming the line and the byte column, found line by line so the file is
    never read whole. `read`, a one-item list, counts the bytes read so far (for progress).
    """
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if read is not None:
                read[0] += len(raw)
            if not keep_ends and raw.endswith(b"\n"):
                raw = raw[:-1]
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
            offset = 0
            if n == 1 and raw.startswith(_BOM):
                raw, offset = raw[len(_BOM) :], len(_BOM)
            try:
                yield n, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise SeqclfError(
                    f"{path}:{n}:{e.start + offset + 1}: invalid UTF-8 ({e.reason}). "
                    f"Received: bytes {raw[e.start:e.end]!r}"
                ) from None


class _Scan:
    """The header of a file and an iterator over its rows.

    `columns` is known on construction; iterating yields `(position, text, label)` with the raw
    values of the two chosen columns (and the group column's as a fourth, when one is named), and
    counts blank lines in `skipped`.
    """

    def __init__(self, path, fmt, text_column=None, label_column=None, group_column=None, *,
                 records=False):
        self.path, self.fmt = path, fmt
        # Unlabelled reading (`seqclf predict --data`): no label column, and each row comes
        # with all its columns, `(position, text, {column: value})`.
        self.records = records
        self.skipped = {}
        # Progress of the pass: `read[0]` of `total` bytes (rows for Parquet, in `unit`s).
        self.read, self.total, self.unit = [0], os.path.getsize(path), "B"
        self._rows = {"tsv": self._tsv, "csv": self._csv, "jsonl": self._jsonl,
                      "parquet": self._parquet}[fmt]()
        # The generators read up to the header (or first object) here, so errors about columns
        # come before any row is consumed.
        self.columns = next(self._rows)
        duplicates = sorted({c for c in self.columns if self.columns.count(c) > 1}, key=str)
        if duplicates:
            # Which of two same-named columns holds the texts is a guess either way.
            raise SeqclfError(
                f"{path}: duplicate column names {duplicates}; each column must have its own "
                f"name. Received: columns {list(self.columns)}"
            )
        self.text_col = _pick(self.columns, text_column, TEXT_COLUMNS, "text", path, "text_column")
        self._ti, self.group_col, self._gi = self.columns.index(self.text_col), None, None
        if records:
            self.label_col = self._li = None
            return
        self.label_col = _pick(
            self.columns, label_column, LABEL_COLUMNS, "label", path, "label_column"
        )
        if self.text_col == self.label_col:
            raise SeqclfError(
                f"{path}: the text and label columns must differ. Received: text_column="
                f"{self.text_col!r}, label_column={self.label_col!r}"
            )
        self._li = self.columns.index(self.label_col)
        if group_column is not None:
            self.group_col = _pick(self.columns, group_column, (), "group", path, "group_column")
            if self.group_col in (self.text_col, self.label_col):
                raise SeqclfError(
                    f"{path}: the group column must differ from the text and label columns. "
                    f"Received: group_column={group_column!r}"
                )
            self._gi = self.columns.index(self.group_col)

    def _row(self, pos, fields):
        """What iterating yields for a row whose fields are `fields` (a list, by column)."""
        if self.records:
            return pos, fields[self._ti], dict(zip(self.columns, fields))
        if self._gi is None:
            return pos, fields[self._ti], fields[self._li]
        return pos, fields[self._ti], fields[self._li], fields[self._gi]

    def where(self, pos):
        return f"{self.path} row {pos}" if self.fmt == "parquet" else f"{self.path}:{pos}"

    def _blank(self):
        self.skipped["blank_line"] = self.skipped.get("blank_line", 0) + 1

    def _empty(self):
        raise SeqclfError(f"{self.path}: the file is empty. Received: 0 rows")

    def __iter__(self):
        return self._rows

    def _check_fields(self, n, fields, line, sep_name, column=None):
        if len(fields) != len(self.columns):
            raise SeqclfError(
                f"{self.path}:{n}{'' if column is None else f':{column}'}: cannot parse as "
                f"{self.fmt.upper()}: line {n} has {len(fields)} {sep_name} fields, the header "
                f"has {len(self.columns)}. Received: {_show(line)}"
            )

    def _tsv(self):
        lines = _lines(self.path, read=self.read)
        for _, line in lines:
            if line.strip():
                header = line.split("\t")
                break
            self._blank()
        else:
            self._empty()
        yield header
        width = len(header)
        for n, line in lines:
            if not line.strip():
                self._blank()
                continue
            fields = line.split("\t")
            if len(fields) != width:
                # Column of the first surplus tab, or the end of a short line.
                column = (len("\t".join(fields[:width])) if len(fields) > width else len(line)) + 1
                self._check_fields(n, fields, line, "tab-separated", column)
            yield self._row(n, fields)

    def _csv(self):
        current = [0]
        first = {}  # the first line of the record being read, for messages

        def feed():
            for n, line in _lines(self.path, keep_ends=True, read=self.read):
                current[0] = n
                if n == end + 1:
                    first[n] = line.rstrip("\r\n")
                if "\r" in line:
                    # csv writers quote fields holding the line terminator only ("\n" for pandas
                    # and Python on Linux), so a text's lone "\r" comes unquoted, where the csv
                    # reader would take it for a line break. It travels as a lone surrogate,
                    # which decoded UTF-8 never holds, and is put back in the fields below.
                    line = _LONE_CR.sub(_CR_STANDIN, line)
                yield line

        reader = csv.reader(feed(), strict=True)
        end = 0  # last line of the previous record: a record spans lines when a quote does
        header = None
        while True:
            start = end + 1
            first.clear()
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                raise SeqclfError(
                    f"{self.path}:{start}: cannot parse as CSV: {e} (in the record that starts on "
                    f"line {start}; read up to line {current[0]}). Received: line {start} "
                    f"{_show(first.get(start, ''))}"
                ) from None
            end = current[0]
            record = [f.replace(_CR_STANDIN, "\r") if _CR_STANDIN in f else f for f in record]
            if not record or not "".join(record).strip() and len(record) == 1:
                self._blank()
                continue
            if header is None:
                header = record
                yield header
                continue
            self._check_fields(start, record, ",".join(record), "comma-separated")
            yield self._row(start, record)
        if header is None:
            self._empty()

    def _jsonl(self):
        header = None
        for n, line in _lines(self.path, read=self.read):
            if not line.strip():
                self._blank()
                continue
            try:
                obj = json.loads(line, object_pairs_hook=_object)
            except _DuplicateKeys as e:
                raise SeqclfError(
                    f"{self.path}:{n}: duplicate column names {e.args[0]}; each key of a JSONL "
                    f"object must be its own. Received: {_show(line)}"
                ) from None
            except json.JSONDecodeError as e:
                raise SeqclfError(
                    f"{self.path}:{n}:{e.colno}: cannot parse as JSONL: {e.msg}. "
                    f"Received: {_show(line)}"
                ) from None
            except (ValueError, RecursionError) as e:
                # Python's own limits: nesting depth, integers of more than 4,300 digits.
                raise SeqclfError(
                    f"{self.path}:{n}: cannot parse as JSONL: {type(e).__name__}: {e}. "
                    f"Received: {_show(line)}"
                ) from None
            if not isinstance(obj, dict):
                raise SeqclfError(
                    f"{self.path}:{n}: each JSONL line must hold a JSON object. "
                    f"Received: {type(obj).__name__} {_show(line)}"
                )
            if header is None:
                # Columns come from the first object; later rows may lack a key (a missing text
                # is skipped as empty, a missing label is an error).
                header = list(obj)
                yield header
            if self.records:
                yield n, obj.get(self.text_col), obj
                continue
            row = (n, obj.get(self.text_col), obj.get(self.label_col))
            yield row if self.group_col is None else (*row, obj.get(self.group_col))
        if header is None:
            self._empty()

    def _parquet(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            f = pq.ParquetFile(self.path)
            self.total, self.unit = f.metadata.num_rows, "row"
            yield list(f.schema_arrow.names)
            row = 0
            if self.records:
                wanted = list(self.columns)
            else:
                wanted = [self.text_col, self.label_col] + (
                    [] if self.group_col is None else [self.group_col])
            for batch in f.iter_batches(batch_size=8192, columns=wanted):
                values = [batch.column(k).to_pylist() for k in range(len(wanted))]
                self.read[0] = row + len(values[0])
                for fields in zip(*values):
                    row += 1
                    yield self._row(row, fields) if self.records else (row, *fields)
        except (pa.ArrowException, OSError) as e:
            raise SeqclfError(
                f"{self.path}: cannot parse as PARQUET: {str(e).rstrip('.')}. "
                f"Received: {self.path!r}"
            ) from None


class _DuplicateKeys(ValueError):
    pass


def _object(pairs):
    """A JSON object as a dict; a key given twice is an error (`json` keeps the last)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        keys = [k for k, _ in pairs]
        raise _DuplicateKeys(sorted({k for k in keys if keys.count(k) > 1}))
    return obj


def _label_text(value):
    """A label as its class name; None when missing; `TypeError` when not a single value."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        return str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, str):
        value = value.strip()
        if _NUMBER.fullmatch(value):
            # One rule for every format: TSV/CSV "1.0" is the class JSON's 1.0 and Parquet's
            # 1 are ("1"); "0.50" is 0.5's.
            number = float(value)
            if math.isfinite(number):
                whole, _, fraction = value.lstrip("+").partition(".")
                if not fraction.strip("0") and "e" not in value.lower():
                    return str(int(whole or "0"))
                return _label_text(number)
        if _CONTROL.search(value):
            raise TypeError("a control character")
        return value or None
    if isinstance(value, (list, dict, tuple, bytes, np.ndarray)):
        raise TypeError(type(value).__name__)
    return str(value)


class RowChecker:
    """Checks rows of one file, counting each kind of problem; raises after the whole pass.

    `check(pos, text, label)` returns `(text, label name)` for a row to keep, or `None` for a
    row skipped (counted in `skipped`). `finish()` raises the first problem found, with the
    number of rows that have it, so one message tells how widespread a problem is.
    """

    def __init__(self, scan, label_names=None):
        self.scan = scan
        self.label_names = None if label_names is None else [str(n) for n in label_names]
        self._known = None if label_names is None else set(self.label_names)
        self.skipped = scan.skipped  # shared: blank lines are counted by the scan itself
        self.problems = {}  # kind -> [count, first message]
        self.check_surrogates = scan.fmt == "jsonl"  # "\ud800" escapes decode to lone surrogates

    def _problem(self, kind, message):
        entry = self.problems.setdefault(kind, [0, message])
        entry[0] += 1

    def check(self, pos, text, label):
        scan = self.scan
        try:
            name = _label_text(label)
        except TypeError:
            self._problem("label_type", lambda n: (
                f"{scan.where(pos)}: column {scan.label_col!r} must hold one label per row "
                f"({n} rows in all). Received: {_show(label)}"))
            return None
        if name is None:
            self._problem("missing_label", lambda n: (
                f"{scan.where(pos)}: missing label in column {scan.label_col!r} ({n} rows in "
                f"all). Received: {_show(label)}"))
            return None
        if text is None or isinstance(text, float) and math.isnan(text):
            text = ""  # JSON null / Parquet null: an empty text, skipped below
        if not isinstance(text, str):
            self._problem("text_type", lambda n: (
                f"{scan.where(pos)}: column {scan.text_col!r} must hold text ({n} rows in all). "
                f"Received: {_show(text)}"))
            return None
        if self.check_surrogates and _SURROGATE.search(text):
            m = _SURROGATE.search(text)
            self._problem("surrogate", lambda n: (
                f"{scan.where(pos)}: column {scan.text_col!r} holds a lone UTF-16 surrogate "
                f"escape at character {m.start() + 1}, which is not valid Unicode text ({n} rows "
                f"in all). Received: {_show(m.group())}"))
            return None
        if not text.strip():
            self.skipped["empty_text"] = self.skipped.get("empty_text", 0) + 1
            return None
        if self._known is not None and name not in self._known:
            self._problem("unknown_label", lambda n: (
                f"{scan.where(pos)}: label unknown to the model in column {scan.label_col!r} "
                f"({n} rows in all). Expected one of: {self.label_names}. Received: {name!r}"))
            return None
        return text, name

    def group(self, pos, value):
        """A row's group as a name, read as labels are (`_label_text`: JSON 3, 3.0 and "3 " are
        one group). Empty, missing (None, NaN: a numeric column's gaps) or nested is a problem
        counted like the others (raised by `finish`); it returns None then."""
        try:
            name = _label_text(value)
        except TypeError:
            name = None
        if name is None:
            scan = self.scan
            self._problem("missing_group", lambda n: (
                f"{scan.where(pos)}: the group column {scan.group_col!r} holds no group name "
                f"({n} rows in all). Received: {_show(value)}"))
        return name

    def finish(self):
        for kind in ("missing_label", "label_type", "text_type", "surrogate", "unknown_label",
                     "missing_group"):
            if kind in self.problems:
                count, message = self.problems[kind]
                raise SeqclfError(message(count))


def scan_rows(path, text_column=None, label_column=None, group_column=None, *, records=False):
    """Opens a data file for one pass; returns a `_Scan` (columns known, rows iterable).

    With `records`, the file needs no label column and each row is `(position, text, {column:
    value})`, every column kept (a JSONL row is its whole object).
    """
    path = os.fspath(path)
    return _Scan(path, table_format(path), text_column, label_column, group_column,
                 records=records)


def read_table(path, text_column=None, label_column=None, label_names=None, group_column=None):
    """Reads a labelled text file into a `TextData`.

    Args:
        path: a `.tsv`, `.csv`, `.jsonl` (`.json` lines) or `.parquet` file.
        text_column / label_column: column names; by default the first of `TEXT_COLUMNS` /
            `LABEL_COLUMNS` present.
        label_names: the class names to map labels onto (a trained model's); labels outside
            them are an error. By default they are the sorted distinct labels.
        group_column: a column naming each row's group (rows that must not be split between
            training and validation: a review and its edited twin, augmented copies); read into
            `TextData.groups`, which `TextData.split` then holds out whole. A row with an empty
            group is an error that names it.

    Blank lines and rows with empty or whitespace-only text are skipped and counted in
    `TextData.skipped`; invalid UTF-8, ragged lines, malformed quoting or JSON, missing labels,
    unknown labels and empty files are errors that name the line.
    """
    scan = scan_rows(path, text_column, label_column, group_column)
    checker = RowChecker(scan, label_names)
    texts, names, groups = [], [], []
    rows = 0
    for pos, text, label, *group in scan:
        rows += 1
        kept = checker.check(pos, text, label)
        if kept is not None:
            texts.append(kept[0])
            names.append(kept[1])
            if group:
                groups.append(checker.group(pos, group[0]))
    checker.finish()
    if rows == 0:
        raise SeqclfError(f"{scan.path}: the file has no data rows. Received: 0 rows")
    if not texts:
        raise SeqclfError(
            f"{scan.path}: every row has an empty text. Received: {rows} rows, skipped "
            f"{scan.skipped}"
        )
    label_names = checker.label_names or label_names_of(names)
    index = {n: k for k, n in enumerate(label_names)}
    return TextData(
        np.array(texts, dtype=object),
        np.fromiter((index[n] for n in names), dtype="int64", count=len(names)),
        label_names,
        source=scan.path,
        skipped=dict(scan.skipped),
        groups=None if group_column is None else np.array(groups, dtype=object),
    )

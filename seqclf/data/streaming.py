"""Training data read from a file as a stream, for files larger than the memory given to them.

`open_stream(path)` makes one checking pass over the file with the same row reader as
`read_table` (so both paths keep, skip and reject the same rows, and a bad line at 1.9 GB fails
before training starts rather than hours into it). The pass keeps only:

* the number of rows per class and per hash bucket of the row's position, or of its group's
  name when a group column is named (see `split`);
* the counts of skipped rows, by reason;
* a seeded uniform reservoir sample of at most `sample_size` training texts, each cut to
  `sample_chars` characters: the vectorizer is adapted on it, and the number of truncated texts
  (and, with `batch_tokens`, the bucket boundaries) are estimated from it.

Its memory is bounded by the sample, whatever the file's size. `StreamedTextData.dataset` then
reads the file again on every epoch (a Python generator feeding batches of rows into `tf.data`),
vectorizes, shuffles within a bounded buffer and buckets by length; nothing is cached.

Shuffling is local (a window of `shuffle_buffer` examples): a file sorted by label must be
shuffled once beforehand (`shuf`, `terashuf`), or training sees one class at a time.
"""

import hashlib
import os
import random

import numpy as np
import tensorflow as tf

from seqclf._checks import check_positive_int
from seqclf.data.files import RowChecker, label_names_of, scan_rows
from seqclf.data.pipeline import (
    batch_examples,
    bucket_boundaries,
    token_lengths,
    vectorize_batches,
)
from seqclf.data.text_data import label_mapping
from seqclf.errors import SeqclfError

NUM_BUCKETS = 10_000
READ_BATCH = 1024
# The checking pass's progress bar appears after this many seconds, and moves every
# `PROGRESS_EVERY` rows (measured on one core: about 90,000 TSV rows, 35 MB, a second).
PROGRESS_DELAY_S = 2.0
PROGRESS_EVERY = 4096
_M64 = (1 << 64) - 1


def position_bucket(position):
    """Hash bucket (0..NUM_BUCKETS-1) of a line or row number: splitmix64's finalizer.

    A hash of the position, not of the text, so duplicated texts can fall on both sides of the
    split (as with a random split) and the bucket costs no more to compute for a 1 MB line.
    """
    z = (position + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return (z ^ (z >> 31)) % NUM_BUCKETS


def group_bucket(name):
    """Hash bucket (0..NUM_BUCKETS-1) of a group's name: every row of a group shares it.

    BLAKE2b rather than Python's `hash`, which is salted per process: the checking pass and
    every later epoch (and a resumed run) must put a group on the same side.
    """
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % NUM_BUCKETS


class _FileStats:
    """What the checking pass keeps of one file."""

    def __init__(self, path, text_column, label_column, label_names, columns, fmt, counts,
                 skipped, sample, group_column=None):
        self.path, self.text_column, self.label_column = path, text_column, label_column
        self.group_column = group_column
        self.label_names, self.columns, self.fmt = label_names, columns, fmt
        self.counts = counts  # int64 [NUM_BUCKETS, classes]
        self.skipped = skipped
        self.sample = sample  # (position, bucket, text, class id), in file order


def open_stream(path, text_column=None, label_column=None, label_names=None, *,
                group_column=None, sample_size=50_000, sample_chars=5_000, sample_seed=0,
                progress=False):
    """Checks a data file in one pass and returns it as a `StreamedTextData`.

    Args:
        path: a `.tsv`, `.csv`, `.jsonl` or `.parquet` file (see `seqclf.data.read_table`).
        text_column / label_column: as for `read_table`.
        label_names: map the labels onto these class names (a trained model's); others are
            errors. By default the sorted distinct labels of the whole file.
        group_column: a column naming each row's group (as for `read_table`): `split` then
            holds out whole groups, by a hash of the group's name instead of the row's position.
        sample_size: at most this many texts are kept to adapt the vectorizer on.
        sample_chars: each sampled text is cut to this many characters (bounds the sample's
            memory even when texts are megabytes long; 5,000 characters are ~900 words, more
            than the default `max_length` of 256 tokens).
        sample_seed: seed of the reservoir sample.
        progress: show a progress bar of the pass (bytes, or rows of a Parquet file) once it
            has taken `PROGRESS_DELAY_S` seconds; short passes show nothing.
    """
    for name, value in (("sample_size", sample_size), ("sample_chars", sample_chars)):
        check_positive_int(name, value)
    scan = scan_rows(path, text_column, label_column, group_column)
    checker = RowChecker(scan, label_names)
    counts = {}  # label name -> [rows per bucket]
    rng = random.Random(sample_seed)
    reservoir = []
    rows = kept = 0
    bar = _progress_bar(scan) if progress else None
    try:
        for pos, text, label, *group in scan:
            rows += 1
            if bar is not None and not rows % PROGRESS_EVERY:
                bar.update(scan.read[0] - bar.n)
            row = checker.check(pos, text, label)
            if row is None:
                continue
            text, name = row
            bucket = _bucket(checker, pos, group)
            per_bucket = counts.get(name)
            if per_bucket is None:
                per_bucket = counts[name] = [0] * NUM_BUCKETS
            per_bucket[bucket] += 1
            kept += 1
            # Reservoir sampling (Algorithm R): every kept row ends up in the sample with the
            # same probability, sample_size / kept.
            if len(reservoir) < sample_size:
                reservoir.append((pos, bucket, text[:sample_chars], name))
            else:
                j = rng.randrange(kept)
                if j < sample_size:
                    reservoir[j] = (pos, bucket, text[:sample_chars], name)
        if bar is not None:
            bar.update(scan.read[0] - bar.n)
    finally:
        if bar is not None:
            bar.close()
    checker.finish()
    if rows == 0:
        raise SeqclfError(f"{scan.path}: the file has no data rows. Received: 0 rows")
    if kept == 0:
        raise SeqclfError(
            f"{scan.path}: every row has an empty text. Received: {rows} rows, skipped "
            f"{scan.skipped}"
        )
    names = checker.label_names or label_names_of(counts)
    table = np.zeros((NUM_BUCKETS, len(names)), dtype="int64")
    for k, name in enumerate(names):
        if name in counts:
            table[:, k] = counts[name]
    index = {n: k for k, n in enumerate(names)}
    sample = [(p, b, t, index[n]) for p, b, t, n in sorted(reservoir)]
    stats = _FileStats(scan.path, scan.text_col, scan.label_col, names, scan.columns, scan.fmt,
                       table, dict(scan.skipped), sample, scan.group_col)
    return StreamedTextData(stats)


def _bucket(checker, pos, group):
    """The split's hash bucket of a row: of its group's name if it has one. A row without a
    group name is counted by `checker` (its `finish` raises) and given bucket 0 meanwhile."""
    if not group:
        return position_bucket(pos)
    name = checker.group(pos, group[0])
    return 0 if name is None else group_bucket(name)


def _progress_bar(scan):
    from tqdm.auto import tqdm

    # `delay`: a small file's pass ends before the bar would show, so it never clutters output.
    return tqdm(total=scan.total, unit=scan.unit, unit_scale=True,
                unit_divisor=1024 if scan.unit == "B" else 1000,
                desc=f"checking {os.path.basename(scan.path)}", delay=PROGRESS_DELAY_S)


class StreamedTextData:
    """A labelled text file read as a stream: the `TextData` interface, without the texts.

    `len()`, `label_names`, `num_classes`, `class_counts` and `skipped` are exact (from the
    checking pass); `texts` / `labels` are the bounded sample (for the vectorizer and length
    statistics), not the data; `dataset()` streams the data itself.
    """

    def __init__(self, stats, buckets=None, skipped=None):
        self._stats = stats
        self._buckets = np.ones(NUM_BUCKETS, dtype=bool) if buckets is None else buckets
        self.skipped = dict(stats.skipped if skipped is None else skipped)

    @property
    def source(self):
        return self._stats.path

    @property
    def label_names(self):
        return list(self._stats.label_names)

    @property
    def num_classes(self):
        return len(self._stats.label_names)

    @property
    def class_counts(self):
        """Rows per class in this part of the file (int64 array in class-id order)."""
        return self._stats.counts[self._buckets].sum(axis=0)

    def __len__(self):
        return int(self.class_counts.sum())

    def _sample(self):
        return [s for s in self._stats.sample if self._buckets[s[1]]]

    @property
    def texts(self):
        """The sampled texts of this part (file order), cut to `sample_chars` characters."""
        return np.array([s[2] for s in self._sample()], dtype=object)

    @property
    def labels(self):
        """The class ids of `texts`."""
        return np.array([s[3] for s in self._sample()], dtype="int64")

    def split(self, fraction, seed):
        """Holds out a `fraction` of the rows by a hash of their line (row) number.

        A row is held out when its bucket, rotated by an offset derived from `seed`, falls in
        the first `fraction * NUM_BUCKETS` buckets: deterministic for a file and seed, about
        `fraction` of the rows (not stratified), and both parts' sizes are exact without
        another pass. With a group column the bucket is the group's (`group_bucket`), so
        groups are held out whole: about `fraction` of the groups, hence of the rows when no
        group is a large share of the file. Returns (rest, held_out); the rest keeps the
        file's skipped counts.
        """
        if not 0 < fraction < 1:
            raise SeqclfError(
                f"`val_fraction` must be in (0, 1). Received: val_fraction={fraction!r}"
            )
        width = round(fraction * NUM_BUCKETS)
        if width == 0:
            raise SeqclfError(
                f"`val_fraction` is below the hash split's resolution of 1/{NUM_BUCKETS}. "
                f"Received: val_fraction={fraction!r}"
            )
        offset = (int(seed) * 7_919) % NUM_BUCKETS
        held = ((np.arange(NUM_BUCKETS) - offset) % NUM_BUCKETS) < width
        rest = StreamedTextData(self._stats, self._buckets & ~held, self.skipped)
        held_out = StreamedTextData(self._stats, self._buckets & held, {})
        for part, what in ((rest, "training"), (held_out, "held-out")):
            if len(part) == 0:
                raise SeqclfError(
                    f"{self.source}: the hash split leaves no {what} rows; give the validation "
                    f"data with --val or change the fraction. Received: val_fraction={fraction}, "
                    f"{len(self)} rows"
                )
        return rest, held_out

    def relabel(self, label_names):
        """This data with its class ids in the order of `label_names` (e.g. a trained model's)."""
        label_names = [str(n) for n in label_names]
        if label_names == self.label_names:
            return self
        old = self._stats
        position = label_mapping(self.source, old.label_names, label_names)
        counts = np.zeros((NUM_BUCKETS, len(label_names)), dtype="int64")
        counts[:, position] = old.counts
        sample = [(p, b, t, int(position[y])) for p, b, t, y in old.sample]
        stats = _FileStats(old.path, old.text_column, old.label_column, label_names,
                           old.columns, old.fmt, counts, old.skipped, sample, old.group_column)
        return StreamedTextData(stats, self._buckets, self.skipped)

    def _iter_batches(self, rows=READ_BATCH):
        """Reads the file: `(texts, class ids)` numpy batches of the rows in this part."""
        stats = self._stats
        scan = scan_rows(stats.path, stats.text_column, stats.label_column, stats.group_column)
        checker = RowChecker(scan, stats.label_names)
        index = {n: k for k, n in enumerate(stats.label_names)}
        buckets = self._buckets
        expected, read = len(self), 0
        texts, labels = [], []
        for pos, text, label, *group in scan:
            if not buckets[_bucket(checker, pos, group)]:
                continue  # cheaper than checking: this row belongs to the other part
            row = checker.check(pos, text, label)
            if row is None:
                continue
            read += 1
            if read > expected:  # before the extra rows reach a batch
                raise self._changed(expected, f"more than {expected}")
            texts.append(row[0].encode("utf-8"))
            labels.append(index[row[1]])
            if len(texts) == rows:
                yield np.array(texts, dtype=object), np.array(labels, dtype="int64")
                texts, labels = [], []
        # The file changed since the checking pass: fail rather than train on other data (and
        # rather than let the dataset's declared number of batches be wrong).
        checker.finish()
        if read != expected:
            raise self._changed(expected, read)
        if texts:
            yield np.array(texts, dtype=object), np.array(labels, dtype="int64")

    def _changed(self, expected, read):
        return SeqclfError(
            f"{self.source} changed while it was read as a stream: its checking pass counted "
            f"{expected} rows for this part, this pass read {read}. Received: a file modified "
            "after it was opened"
        )

    def examples(self):
        """Every `(text, class id)` of this part, in file order (reads the file)."""
        for texts, labels in self._iter_batches():
            for t, y in zip(texts, labels):
                yield t.decode("utf-8"), int(y)

    def dataset(self, vectorizer, *, max_length=256, batch_size=64, shuffle=False, seed=0,
                boundaries=None, bucketing=True, batch_tokens=None, shuffle_buffer=10_000):
        """A batched `tf.data.Dataset` of `(ids, labels)` that reads the file on every epoch.

        Args as for `make_dataset`, plus `shuffle_buffer`: the number of examples shuffled
        together (bounded memory: shuffling is local, see the module docstring). Default
        bucket boundaries (used with `batch_tokens` only) come from the sample.
        """
        check_positive_int("batch_size", batch_size)
        check_positive_int("max_length", max_length)
        check_positive_int("shuffle_buffer", shuffle_buffer)
        ds = tf.data.Dataset.from_generator(
            self._iter_batches,
            output_signature=(
                tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.int64)
            ),
        )
        ds = vectorize_batches(ds, vectorizer, max_length).unbatch()
        if shuffle:
            ds = ds.shuffle(min(shuffle_buffer, max(len(self), 1)), seed=seed,
                            reshuffle_each_iteration=True)
        if bucketing and batch_tokens is not None and boundaries is None:
            lengths = token_lengths(vectorizer, self.texts)
            boundaries = bucket_boundaries(np.minimum(lengths, max_length))
        # The checking pass counted the rows exactly (a pass that reads another number fails:
        # `_changed`), so the number of batches can be declared as for in-memory data: without
        # it, `fit(steps_per_epoch=...)` keeps an exhausted iterator into the next epoch.
        return batch_examples(ds, batch_size, boundaries, bucketing, batch_tokens,
                              shuffle_seed=seed if shuffle else None, num_examples=len(self))

    def __repr__(self):
        return (f"StreamedTextData({self.source!r}, rows={len(self)}, "
                f"label_names={self.label_names}, skipped={self.skipped})")

"""Data specs: one string names a dataset split for the CLI and the Python API.

* a file path (`.tsv`, `.csv`, `.jsonl`, `.parquet`), read by `seqclf.data.files.read_table`;
* `word_order[/CONFIG][:SPLIT]`: the embedded generated dataset (`seqclf_word_order` in TFDS),
  prepared offline on first use;
* `tfds:NAME[/CONFIG][:SPLIT]`: a TFDS catalog dataset (`imdb_reviews`, `glue/sst2`) already
  prepared in the data directory. Nothing is downloaded unless `download=True`: offline and
  unprepared, loading fails at once with instructions instead of hanging on the network.
"""

import contextlib
import dataclasses
import io
import logging
import os
import re
import sys

import numpy as np
import tensorflow_datasets as tfds

from seqclf.data.files import read_table
from seqclf.data.text_data import TextData
from seqclf.data.word_order import SeqclfWordOrder
from seqclf.errors import SeqclfError

WORD_ORDER_TFDS_NAME = SeqclfWordOrder.name  # "seqclf_word_order"
_SPEC = re.compile(
    r"^(?P<name>[A-Za-z0-9_]+(?:/[A-Za-z0-9_.]+)?)(?::(?P<split>[A-Za-z0-9_\[\]:%+-]+))?$"
)
DEFAULT_DATA_DIR = os.path.join(os.path.expanduser("~"), "tensorflow_datasets")


@dataclasses.dataclass
class Spec:
    kind: str  # "file", "word_order" or "tfds"
    name: str  # path, or TFDS name with config
    split: str | None


def parse_spec(spec):
    """Parses a data spec string into a `Spec`."""
    if not isinstance(spec, str) or not spec.strip():
        raise SeqclfError(f"A data spec must be a non-empty string. Received: {spec!r}")
    if spec.startswith("tfds:"):
        m = _SPEC.match(spec[len("tfds:") :])
        if not m:
            raise SeqclfError(
                f"Expected a spec of the form tfds:NAME[/CONFIG][:SPLIT]. Received: {spec!r}"
            )
        return Spec("tfds", m["name"], m["split"])
    if spec == "word_order" or spec.startswith(("word_order/", "word_order:")):
        m = _SPEC.match(spec)
        if not m:
            raise SeqclfError(
                f"Expected a spec of the form word_order[/CONFIG][:SPLIT]. Received: {spec!r}"
            )
        config = m["name"].partition("/")[2]
        name = WORD_ORDER_TFDS_NAME + (f"/{config}" if config else "")
        return Spec("word_order", name, m["split"])
    return Spec("file", spec, None)


def _text_and_label_keys(info, name):
    features = info.features
    label_keys = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
    text_keys = [k for k, f in features.items() if isinstance(f, tfds.features.Text)]
    if info.supervised_keys and len(info.supervised_keys) == 2:
        text_key, label_key = info.supervised_keys
        if text_key in text_keys and label_key in label_keys:
            return text_key, label_key
    if len(label_keys) == 1 and len(text_keys) >= 1:
        return text_keys[0], label_keys[0]
    raise SeqclfError(
        f"tfds:{name}: expected one text feature and one class-label feature. "
        f"Received: features {dict((k, type(f).__name__) for k, f in features.items())}"
    )


def _from_builder(builder, split, spec_text, quiet):
    try:
        ds = builder.as_dataset(split=split, shuffle_files=False)
    except (ValueError, KeyError) as e:
        raise SeqclfError(
            f"{spec_text}: unknown split. Available splits: {list(builder.info.splits)}. "
            f"Received: split={split!r} ({e})"
        ) from None
    text_key, label_key = _text_and_label_keys(builder.info, builder.name)
    texts, labels = [], []
    for ex in tfds.as_numpy(ds):
        texts.append(ex[text_key].decode("utf-8", errors="replace"))
        labels.append(int(ex[label_key]))
    texts = np.array(texts, dtype=object)
    labels = np.array(labels, dtype="int64")
    keep = np.array([bool(t.strip()) for t in texts], dtype=bool)
    skipped = {"empty_text": int((~keep).sum())} if not keep.all() else {}
    if (labels < 0).any():
        # GLUE test splits carry label -1 (hidden): they cannot be trained or scored on.
        raise SeqclfError(
            f"{spec_text}: the split has no labels (label -1). Received: split={split!r}"
        )
    names = builder.info.features[label_key].names
    return TextData(texts[keep], labels[keep], names, source=spec_text, skipped=skipped)


def _prepare_generated(builder, spec, data_dir, quiet):
    """Prepares the embedded generated dataset, saying so in one line (none when `quiet`).

    TFDS would print "Downloading and preparing dataset Unknown size" (nothing is downloaded),
    warn through absl that the new folder has no dataset_info.json yet, and draw its own
    progress bars inside the caller's; generating takes about a second, so they only mislead.
    """
    if not quiet:
        print(f"{spec}: generating the embedded dataset once, into {data_dir}", file=sys.stderr,
              flush=True)
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            builder.download_and_prepare()
    finally:
        absl_logger.setLevel(level)


def load_spec(spec, *, data_dir=None, split=None, text_column=None, label_column=None,
              label_names=None, download=False, quiet=False, stream=False, group_column=None):
    """Loads the data a spec names as a `TextData`.

    Args:
        spec: a file path, `word_order[/CONFIG][:SPLIT]` or `tfds:NAME[/CONFIG][:SPLIT]`.
        data_dir: the TFDS data directory (default `~/tensorflow_datasets`).
        split: the split if the spec names none (default `train`).
        text_column / label_column: column names for files.
        label_names: map the labels onto these class names (a trained model's).
        download: allow TFDS catalog datasets to download and prepare (needs the network).
        quiet: no progress bars.
        stream: for a file, return a `seqclf.data.streaming.StreamedTextData` (one checking
            pass; the texts are read again by its `dataset()`), for files larger than memory.
            TFDS datasets are loaded in memory either way.
        group_column: for a file, the column naming each row's group (`read_table`).
    """
    parsed = parse_spec(spec)
    data_dir = data_dir or DEFAULT_DATA_DIR
    if group_column is not None and parsed.kind != "file":
        raise SeqclfError(
            "`group_column` needs a data file: it cannot be used with a TFDS or built-in "
            f"dataset. Received: spec={spec!r}, group_column={group_column!r}"
        )
    if parsed.kind == "file":
        if stream:
            from seqclf.data.streaming import open_stream

            return open_stream(parsed.name, text_column, label_column, label_names=label_names,
                               group_column=group_column, progress=not quiet)
        return read_table(parsed.name, text_column, label_column, label_names=label_names,
                          group_column=group_column)
    split = parsed.split or split or "train"
    if quiet:
        tfds.disable_progress_bar()
    try:
        builder = tfds.builder(parsed.name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise SeqclfError(
            f"{spec}: no such TFDS dataset or config ({e}). Received: {spec!r}"
        ) from None
    except ValueError as e:
        raise SeqclfError(f"{spec}: {e}. Received: {spec!r}") from None
    if not builder.is_prepared():
        if parsed.kind == "word_order":
            # Generated locally and deterministically: always safe to prepare offline.
            _prepare_generated(builder, spec, data_dir, quiet)
        elif download:
            builder.download_and_prepare()
        else:
            raise SeqclfError(
                f"{spec}: the TFDS dataset {parsed.name!r} is not prepared in {data_dir}, and "
                "seqclf does not download at run time. Prepare it where the network is "
                f"reachable with `tfds build {parsed.name} --data_dir {data_dir}` (or pass "
                "download=True / --download), then copy that directory here and point "
                f"--data-dir at it. Received: data_dir={data_dir!r}"
            )
    data = _from_builder(builder, split, spec, quiet)
    if label_names is not None:
        data = data.relabel(label_names)
    if len(data) == 0:
        raise SeqclfError(f"{spec}: the split has no examples. Received: 0 rows")
    return data

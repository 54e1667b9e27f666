"""What `TextClassifier.fit`, `evaluate` and `predict` accept as texts, labels and weights.

Texts: a list, tuple or NumPy array of strings, a pandas Series, a pandas DataFrame, or a
`tf.data.Dataset` of texts, `(text, label)` or `(text, label, weight)` (batched or not; read once
into memory, as the pipeline caches it anyway). `predict` also takes one string.

A DataFrame is read by column name: the texts are its `text` column (or its only column); the
labels are `y` when given, else its `label` column; the weights `sample_weight` when given, else
its `sample_weight` column. Other columns are not read. Labels given twice (`y` and a `label`
column) or a text column that cannot be told are errors, not guesses.

Labels are class ids or label names; weights are finite numbers >= 0, one per text.
"""

import numpy as np

from seqclf.data.pipeline import string_values
from seqclf.errors import SeqclfError

TEXT_COLUMN, LABEL_COLUMN, WEIGHT_COLUMN = "text", "label", "sample_weight"


def _is_dataframe(x):
    return type(x).__name__ == "DataFrame" and hasattr(x, "columns")


def _is_series(x):
    return type(x).__name__ == "Series" and hasattr(x, "to_numpy")


def _is_dataset(x):
    import sys

    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(x, tf.data.Dataset)


def is_text(x):
    """Whether `x` holds texts (to preprocess) rather than token ids (for Keras as they are)."""
    if _is_dataset(x):
        import tensorflow as tf

        spec = x.element_spec
        spec = spec[0] if isinstance(spec, tuple) else spec
        return getattr(spec, "dtype", None) == tf.string
    if _is_dataframe(x):
        return True
    if _is_series(x):
        x = x.to_numpy()
    if x is None or isinstance(x, (str, bytes)):
        return False
    if isinstance(x, np.ndarray):
        return x.dtype.kind in "OSUT" and (x.size == 0 or isinstance(x.flat[0], (str, bytes)))
    return isinstance(x, (list, tuple)) and len(x) > 0 and isinstance(x[0], (str, bytes))


def _from_dataset(ds):
    """`(texts, labels or None, weights or None)` of a dataset's elements."""
    texts, labels, weights = [], [], []
    for element in ds.as_numpy_iterator():
        parts = element if isinstance(element, tuple) else (element,)
        if len(parts) > 3:
            raise SeqclfError(
                "A dataset's elements must be text, (text, label) or (text, label, weight). "
                f"Received: elements of {len(parts)} parts"
            )
        texts.extend(np.asarray(parts[0], dtype=object).reshape(-1))
        if len(parts) > 1:
            labels.extend(np.asarray(parts[1]).reshape(-1))
        if len(parts) > 2:
            weights.extend(np.asarray(parts[2], dtype="float64").reshape(-1))
    return texts, (np.asarray(labels) if labels else None), (weights if weights else None)


def _from_dataframe(df, y, sample_weight):
    columns = [str(c) for c in df.columns]
    if TEXT_COLUMN in columns:
        text_column = TEXT_COLUMN
    elif len(columns) == 1:
        text_column = columns[0]
    else:
        raise SeqclfError(
            f"A DataFrame's texts are its {TEXT_COLUMN!r} column or its only column; pass the "
            f"text column as a Series (x=df[name]). Received: columns={columns}"
        )
    if LABEL_COLUMN in columns and text_column != LABEL_COLUMN:
        if y is not None:
            raise SeqclfError(
                f"Labels given twice: as `y` and as the DataFrame's {LABEL_COLUMN!r} column. "
                f"Pass one. Received: y={type(y).__name__}, columns={columns}"
            )
        y = df[LABEL_COLUMN]
    if WEIGHT_COLUMN in columns and sample_weight is None:
        sample_weight = df[WEIGHT_COLUMN]
    return df[text_column], y, sample_weight


def read_inputs(x, y=None, sample_weight=None, *, single_text=False):
    """`(texts, labels or None, weights or None, one)`: texts as `string_values` gives them,
    labels and weights as arrays as given. `one`: `x` was a single string (only with
    `single_text`, for `predict`)."""
    if isinstance(x, (str, bytes)):
        if not single_text:
            raise SeqclfError(
                f"`x` must be a collection of texts. Received: x={x!r:.80}"
            )
        return string_values([x]), None, None, True
    if _is_dataset(x):
        if y is not None or sample_weight is not None:
            raise SeqclfError(
                "A dataset carries its labels and weights: give no `y` or `sample_weight` with "
                f"it. Received: y={type(y).__name__}, "
                f"sample_weight={type(sample_weight).__name__}"
            )
        x, y, sample_weight = _from_dataset(x)
    elif _is_dataframe(x):
        x, y, sample_weight = _from_dataframe(x, y, sample_weight)
    texts = string_values(x.to_numpy() if _is_series(x) else x)
    if y is not None:
        y = np.asarray(y.to_numpy() if _is_series(y) else y).reshape(-1)
        if len(y) != len(texts):
            raise SeqclfError(
                f"`y` must hold one label per text. Received: {len(texts)} texts, {len(y)} labels"
            )
    if sample_weight is not None:
        sample_weight = check_weights(sample_weight, len(texts))
    return texts, y, sample_weight, False


def check_weights(sample_weight, n):
    """`sample_weight` as a float64 array of `n` finite numbers >= 0."""
    if _is_series(sample_weight):
        sample_weight = sample_weight.to_numpy()
    try:
        weights = np.asarray(sample_weight, dtype="float64").reshape(-1)
    except (TypeError, ValueError):
        raise SeqclfError(
            f"`sample_weight` must be numbers. Received: sample_weight={sample_weight!r:.80}"
        ) from None
    if len(weights) != n:
        raise SeqclfError(
            "`sample_weight` must hold one weight per text. "
            f"Received: {n} texts, {len(weights)} weights"
        )
    if len(weights) and not (np.isfinite(weights).all() and weights.min() >= 0):
        bad = weights[~(np.isfinite(weights) & (weights >= 0))][:3].tolist()
        raise SeqclfError(f"`sample_weight` must be finite and >= 0. Received: {bad}")
    return weights


def class_weights(class_weight, labels, label_names, *, counts=None):
    """Per-class weights (an array by class id) from `class_weight`: a dict of label names or
    class ids to weights, or `"balanced"` (scikit-learn's n / (k * count), k the classes seen).
    `counts` (rows per class id) stands in for `labels` where they are not all in memory."""
    k = len(label_names)
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise SeqclfError(
                "`class_weight` must be a dict or 'balanced'. "
                f"Received: class_weight={class_weight!r}"
            )
        if counts is None:
            counts = np.bincount(labels, minlength=k)
        counts = np.asarray(counts, dtype="float64")
        seen = counts > 0
        out = np.zeros(k)
        out[seen] = counts.sum() / (seen.sum() * counts[seen])
        return out
    if not isinstance(class_weight, dict):
        raise SeqclfError(
            "`class_weight` must be a dict of label names or class ids to weights, or "
            f"'balanced'. Received: class_weight={type(class_weight).__name__}"
        )
    out = np.ones(k)
    for key, value in class_weight.items():
        if isinstance(key, (str, bytes)):
            name = key.decode() if isinstance(key, bytes) else key
            if name not in label_names:
                raise SeqclfError(
                    f"`class_weight` names a label the model does not have. Expected labels "
                    f"among {list(label_names)}. Received: {key!r}"
                )
            index = label_names.index(name)
        elif isinstance(key, (int, np.integer)) and 0 <= key < k:
            index = int(key)
        else:
            raise SeqclfError(
                f"`class_weight` keys must be label names or class ids 0..{k - 1}. "
                f"Received: {key!r}"
            )
        out[index] = float(value)
    return check_weights(out, k)


def validation_split_at(n, validation_split):
    """Where the last `validation_split` of `n` rows begins (Keras' rule: the split is taken
    before shuffling, the validation rows are the last ones)."""
    if not isinstance(validation_split, (int, float)) or not 0 < validation_split < 1:
        raise SeqclfError(
            "`validation_split` must be a number between 0 and 1. "
            f"Received: validation_split={validation_split!r}"
        )
    split_at = int(np.ceil(n * (1.0 - validation_split)))
    if split_at <= 0 or split_at >= n:
        raise SeqclfError(
            f"`validation_split` leaves no rows for training or validation. Received: "
            f"validation_split={validation_split}, {n} texts"
        )
    return split_at

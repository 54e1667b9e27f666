"""Vectorization and the tf.data input pipeline.

Order: vectorize (deterministic map, on batches of 1024 texts) → cache → unbatch →
shuffle → bucket by length (sorted pools; pad within the batch only) → prefetch. Bucketing
batches texts of similar length, so a batch is padded to its own longest text instead of the
longest text in a random batch: a recurrent layer's cost grows with the padded length. The
measurements behind these choices are in `bench/bench_pipeline.py`'s docstring.
"""

import weakref

import keras
import numpy as np
import tensorflow as tf

from seqclf import _compat
from seqclf._checks import check_int, check_positive_int
from seqclf.errors import SeqclfError

# Every vectorizer is made here: its vocabulary held token by token, not as an array as wide
# as the longest token times the vocabulary (one long token would cost GBs).
_compat.patch_string_vocabulary()

OOV_ID = 1
# Keras' "lower_and_strip_punctuation" punctuation class.
PUNCTUATION = r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']'
# A ragged twin of each vectorizer (same standardization, split and vocabulary): see `ragged_twin`.
_RAGGED_TWINS = weakref.WeakKeyDictionary()
_TWINS = weakref.WeakSet()


@keras.saving.register_keras_serializable(package="seqclf")
def standardize(texts):
    """Keras' `lower_and_strip_punctuation`, with NUL characters turned into spaces.

    A token holding NUL does not survive `get_vocabulary()` / `set_vocabulary()` (numpy drops
    trailing NULs, so "\\x00" comes back as "", the padding token): a run trained on such a text
    could not be loaded again. NUL is no word character, so it separates tokens instead.
    """
    texts = tf.strings.lower(texts)
    texts = tf.strings.regex_replace(texts, PUNCTUATION, "")
    return tf.strings.regex_replace(texts, r"\x00", " ")


def string_values(texts, what="texts"):
    """`texts` (str or bytes) as a 1-D object array of bytes, ready for a `tf.string` tensor.

    Strings are UTF-8 encoded here rather than by numpy's `astype(str)`, which makes a
    fixed-width array as wide as the longest text (one 1 MB text among 100k short ones asks for
    400 GB) and drops trailing NUL characters. A `str` holding lone surrogates (not valid
    Unicode) is encoded with `surrogatepass`: the vectorizer then sees invalid UTF-8 bytes, as it
    would from a bytes input, and tokenizes them instead of failing. Any other type is an error.
    """
    texts = np.asarray(texts, dtype=object).reshape(-1)
    out = np.empty(len(texts), dtype=object)
    for i, t in enumerate(texts):
        if isinstance(t, str):
            out[i] = t.encode("utf-8", "surrogatepass")
        elif isinstance(t, (bytes, np.bytes_)):
            out[i] = bytes(t)
        else:
            raise SeqclfError(
                f"{what}[{i}] must be a string (str or UTF-8 bytes). "
                f"Received: {type(t).__name__} {t!r:.80}"
            )
    return out


def ragged_twin(vectorizer):
    """`vectorizer`'s ragged twin: ids without padding.

    The vectorizer pads a batch to its longest text, so a single 1 MB text in a batch of 1024
    would make a 1024 x 170,000 id matrix (1.4 GB) before truncation to `max_length`. The twin
    returns one row per text; truncating it first keeps memory proportional to the batch's tokens.
    It is kept apart from the layer (not an attribute, which Keras would track and export).
    A twin is its own twin (so a traced function given the twin reads no vocabulary).
    """
    if vectorizer in _TWINS:
        return vectorizer
    vocabulary = vectorizer.get_vocabulary()
    twin, made_from = _RAGGED_TWINS.get(vectorizer, (None, None))
    # The whole vocabulary, not its size: a re-adapted vectorizer at `max_tokens` keeps its size.
    # Compared with the list the twin was made from (reading the twin's own costs as much again).
    if twin is None or made_from != vocabulary:
        config = vectorizer.get_config()
        config.update(ragged=True, output_sequence_length=None, vocabulary=None, idf_weights=None)
        # The constructor, not from_config: the config holds the standardize function itself.
        twin = keras.layers.TextVectorization(**config)
        twin.set_vocabulary(_tokens(vocabulary))
        _RAGGED_TWINS[vectorizer] = (twin, vocabulary)
        _TWINS.add(twin)
    return twin


def _tokens(vocabulary):
    """`vocabulary` without the padding and OOV entries `get_vocabulary()` starts with (which
    `set_vocabulary` adds itself)."""
    vocabulary = list(vocabulary)
    return vocabulary[2:] if vocabulary[:2] == ["", "[UNK]"] else vocabulary


def ragged_vectorizer(vocabulary=None, *, standardize=standardize, split="whitespace"):
    """A ragged `TextVectorization` (seqclf's tokenization by default), its own twin.

    What `seqclf.models.TextPreprocessor` holds: `ragged_twin` returns it unchanged, so the
    pipeline and the serving graph read the same layer. Without `vocabulary` it stays empty until
    one is set (as `keras.saving.load_model` does from the saved assets).
    """
    layer = keras.layers.TextVectorization(
        max_tokens=None, output_mode="int", standardize=standardize, split=split, ragged=True
    )
    if vocabulary is not None:
        layer.set_vocabulary(_tokens(vocabulary))
    _TWINS.add(layer)
    return layer


def make_vectorizer(texts=None, *, max_tokens=20_000, vocabulary=None):
    """A `keras.layers.TextVectorization` adapted on `texts` (the training split only).

    Lower-cases, strips punctuation and splits on whitespace and NUL (`standardize`); id 0 is
    padding, 1 out-of-vocabulary. It pads to the longest text of each batch (no fixed
    `output_sequence_length`); the tf.data pipeline truncates to the model's maximum length
    before padding (see `ragged_twin`). Pass `vocabulary` (as saved by
    `vectorizer.get_vocabulary()`) instead of `texts` to rebuild a trained one.
    """
    check_int("max_tokens", max_tokens, 3, allow_none=True)
    if vocabulary is not None:
        vocabulary = _tokens(vocabulary)
        if not vocabulary:
            raise SeqclfError("`vocabulary` holds no tokens. Received: vocabulary=[]")
        vectorizer = keras.layers.TextVectorization(
            max_tokens=None, output_mode="int", standardize=standardize
        )
        vectorizer.set_vocabulary(vocabulary)
        return vectorizer
    texts = string_values(texts)
    vectorizer = keras.layers.TextVectorization(
        max_tokens=max_tokens, output_mode="int", standardize=standardize
    )
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(2048))
    if len(vectorizer.get_vocabulary()) <= 2:
        # Only padding and OOV: the lookup table stays uninitialized and every later call fails
        # inside TensorFlow ("Table not initialized").
        raise SeqclfError(
            "The texts to adapt the vectorizer on hold no tokens (empty or punctuation only). "
            f"Received: {len(texts)} texts, e.g. {texts[:3].tolist()!r:.120}"
        )
    return vectorizer


def token_lengths(vectorizer, texts, batch_size=2048):
    """Number of tokens of each text after vectorization (before truncation)."""
    return token_counts(vectorizer, texts, batch_size)[0]


def token_counts(vectorizer, texts, batch_size=2048):
    """`(lengths, counts)`: tokens per text, and occurrences of each vocabulary id (one pass)."""
    lengths = []
    counts = np.zeros(len(vectorizer.get_vocabulary()), dtype="int64")
    texts = string_values(texts)
    ragged = ragged_twin(vectorizer)
    for start in range(0, len(texts), batch_size):
        ids = ragged(tf.constant(texts[start : start + batch_size], dtype=tf.string))
        lengths.append(ids.row_lengths().numpy())
        counts += np.bincount(ids.flat_values.numpy(), minlength=len(counts))
    lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype="int64")
    return lengths, counts


def bucket_boundaries(lengths, num_buckets=8):
    """Bucket boundaries at length quantiles of the training data."""
    lengths = np.asarray(lengths)
    if len(lengths) == 0:
        return [2]
    quantiles = np.percentile(lengths, np.linspace(0, 100, num_buckets + 1)[1:-1])
    boundaries = sorted({int(q) + 1 for q in quantiles if q >= 1})
    return boundaries or [int(lengths.max()) + 1]


def pad_ids(ragged_ids, max_length):
    """Ragged token ids → int64 `[batch, width >= 1]`, as the model is fed everywhere.

    Each row is cut to `max_length` *before* the batch is padded with 0 to its longest row, so a
    batch holding one text of a million tokens costs memory for the tokens, not for a million
    columns. A row without tokens (an empty or punctuation-only text) becomes one OOV id: a fully
    masked sequence would give the recurrent layer nothing to read. Usable eagerly, in tf.data
    and in a traced (exported) function.
    """
    # Ragged slicing adds `max_length` to each row's start offset in int64: bound it (no text
    # holds 2**31 tokens) so that a huge value cannot overflow into wrong rows.
    ids = tf.cast(ragged_ids[:, : min(max_length, 2**31 - 1)].to_tensor(0), "int64")
    # A batch of only empty texts has width 0: one padding column to put the OOV id in.
    ids = tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])
    first = tf.where(tf.reduce_any(ids != 0, axis=1), ids[:, 0], tf.constant(OOV_ID, "int64"))
    return tf.concat([first[:, None], ids[:, 1:]], axis=1)


def token_ids(vectorizer, texts, max_length):
    """Texts → token ids (int64 `[batch, >=1]`): seqclf's one text→ids step.

    The vectorizer's ragged twin, then `pad_ids`: each text cut to `max_length` before the batch
    is padded (one text of a million tokens among short ones costs memory for its tokens, not
    for a batch a million columns wide), and a text without any token (empty, whitespace or
    punctuation only) fed as a single OOV token, so that its answer is defined. Training batches
    (`vectorize_fn`), `seqclf.models.TextPreprocessor` and hence the exported serving graph all
    call it. Usable eagerly and, given a twin itself (which reads no vocabulary), in a traced
    function.
    """
    return pad_ids(ragged_twin(vectorizer)(texts), max_length)


def vectorize_fn(vectorizer, max_length):
    """A tf.data map function on a *batch*: texts → (padded int64 ids, lengths, labels).

    Vectorizing a batch at once costs far less than one call per text; the ids come from
    `token_ids`.
    """

    ragged = ragged_twin(vectorizer)

    def fn(texts, labels):
        ids = token_ids(ragged, texts, max_length)
        lengths = tf.math.count_nonzero(ids, axis=1)
        return ids, lengths, labels

    return fn


def vectorize_batches(ds, vectorizer, max_length):
    """A dataset of `(texts [n], labels [n])` batches → `(ids [n, width], labels [n])` batches.

    Ids are right-padded with 0 to the batch's longest text (`pad_ids`). `unbatch()` the
    result for one example per text: its trailing zeros are padding, which batching cuts again
    (`batch_examples`). Keeping the padding, rather than slicing each text to its length after
    unbatching, saves a per-text map (measured in `bench/bench_pipeline.py`).
    """
    fn = vectorize_fn(vectorizer, max_length)

    def ids_and_labels(texts, labels):
        ids, _, labels = fn(texts, labels)
        return ids, labels

    return ds.map(ids_and_labels, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _cut_to_longest(ids, labels):
    """A padded batch cut to its longest text (examples may carry padding of their own)."""
    return ids[:, : tf.reduce_max(tf.math.count_nonzero(ids, axis=1))], labels


def bucket_batch_sizes(boundaries, batch_size, batch_tokens=None):
    """Examples per batch for each length bucket.

    Without `batch_tokens` every bucket uses `batch_size`. With it, a bucket whose texts have at
    most L tokens takes `max(batch_size, batch_tokens // L)` of them: on a CPU a step's cost is
    mostly fixed (dispatch, the optimizer update of the whole embedding), so batches of short
    texts are made bigger to keep the number of tokens per step, and thus the work per fixed
    cost, roughly even. `batch_size` stays the size of the batches of the longest texts.
    """
    if batch_tokens is None:
        return [batch_size] * (len(boundaries) + 1)
    check_positive_int("batch_tokens", batch_tokens, allow_none=True)
    # Bucket i holds lengths in [boundaries[i-1], boundaries[i]); the last one is open-ended.
    longest = [b - 1 for b in boundaries]
    return [max(batch_size, batch_tokens // max(n, 1)) for n in longest] + [batch_size]


# Texts sorted by length together (a multiple of the batch size): big enough that neighbours in
# a sorted pool have nearly equal lengths, small enough that a pool's batches stay a random draw.
POOL_BATCHES = 64


def _split_sorted_pool(ids, labels, batch_size):
    """A padded pool of examples → its batches, texts of similar length together.

    The pool is sorted by length (stable, so the order is reproducible) and cut into batches of
    `batch_size`; each batch is cut to its own longest text. Done on the whole pool in a few
    vectorized ops rather than per-example grouping (`group_by_window`; measured in
    `bench/bench_pipeline.py`).
    """
    lengths = tf.math.count_nonzero(ids, axis=1)
    order = tf.argsort(lengths, stable=True)
    ids, labels = tf.gather(ids, order), tf.gather(labels, order)
    lengths = tf.gather(lengths, order)
    # Rows, not elements: labels may carry a weight beside each label (`make_dataset`).
    num_batches = (tf.shape(labels, out_type=tf.int64)[0] + batch_size - 1) // batch_size

    def batch(i):
        start, stop = i * batch_size, (i + 1) * batch_size
        return ids[start:stop, : tf.reduce_max(lengths[start:stop])], labels[start:stop]

    return tf.data.Dataset.range(num_batches).map(batch)


def batch_examples(ds, batch_size, boundaries=None, bucketing=True, batch_tokens=None,
                   shuffle_seed=None, num_examples=None):
    """`(ids, label)` examples → padded batches, bucketed by length, prefetched.

    Bucketing (default): consecutive examples are taken in pools of `POOL_BATCHES` batches, each
    pool sorted by length and cut into batches padded to their own longest text; with
    `shuffle_seed`, the batches of a pool are shuffled so training does not see them short to
    long. With `batch_tokens`
    the batches come instead from length buckets at `boundaries`, each bucket with its own
    batch size (`bucket_batch_sizes`). `bucketing=False` pads each batch to its longest text.

    With `num_examples` (and no `batch_tokens`), the dataset declares its number of batches,
    `ceil(num_examples / batch_size)` (a pool holds a whole number of batches, so only the last
    one is short): `model.fit` then shows the epoch's length in its progress bar from the first
    epoch and does not warn that the input "ran out of data" at its end.
    """
    if bucketing and batch_tokens is not None:
        ds = ds.bucket_by_sequence_length(
            element_length_func=lambda ids, label: tf.cast(tf.math.count_nonzero(ids), tf.int32),
            bucket_boundaries=list(boundaries),
            bucket_batch_sizes=bucket_batch_sizes(boundaries, batch_size, batch_tokens),
        ).map(_cut_to_longest)
    elif bucketing:
        pool = batch_size * POOL_BATCHES
        ds = ds.padded_batch(pool).flat_map(
            lambda ids, labels: _split_sorted_pool(ids, labels, batch_size)
        )
        if shuffle_seed is not None:
            ds = ds.shuffle(POOL_BATCHES, seed=shuffle_seed, reshuffle_each_iteration=True)
    else:
        ds = ds.padded_batch(batch_size).map(_cut_to_longest)
    if num_examples is not None and not (bucketing and batch_tokens is not None):
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-num_examples // batch_size)))
    return ds.prefetch(tf.data.AUTOTUNE)


def make_dataset(
    texts,
    labels,
    vectorizer,
    *,
    max_length=256,
    batch_size=64,
    shuffle=False,
    seed=0,
    boundaries=None,
    bucketing=True,
    batch_tokens=None,
    weights=None,
):
    """A batched `tf.data.Dataset` of `(ids [batch, time], labels [batch])`, or with `weights`
    of `(ids, labels, weights [batch])`.

    Args:
        texts, labels: parallel arrays; texts are `str` or UTF-8 `bytes`.
        vectorizer: an adapted `TextVectorization`.
        max_length: longer texts are truncated to this many tokens.
        batch_size: examples per batch.
        shuffle: reshuffle every epoch (training); seeded, so the order is reproducible.
        boundaries: length-bucket boundaries for `batch_tokens` (default: length quantiles of
            these texts); unused otherwise.
        bucketing: batch texts of similar length together (sorted pools, see
            `batch_examples`); `False` pads each batch to its longest text.
        batch_tokens: with bucketing, grow the batches of short texts to about this many
            tokens each (see `bucket_batch_sizes`); `None` keeps every batch at `batch_size`.
        weights: one number per text (Keras' sample weights), kept with its text through the
            shuffling and batching.
    """
    check_positive_int("batch_size", batch_size)
    check_positive_int("max_length", max_length)
    texts = string_values(texts)
    labels = np.asarray(labels, dtype="int64").reshape(-1)
    if len(texts) != len(labels):
        raise SeqclfError(
            f"`texts` and `labels` must have the same length. Received: {len(texts)} texts, "
            f"{len(labels)} labels"
        )
    if weights is not None:
        weights = np.asarray(weights, dtype="float64").reshape(-1)
        if len(weights) != len(texts):
            raise SeqclfError(
                f"`texts` and `weights` must have the same length. Received: {len(texts)} "
                f"texts, {len(weights)} weights"
            )
        # Each label travels with its weight as one row [label, weight] (float64 holds every
        # class id exactly), so that every reordering below moves both; split at the end.
        labels = np.stack([labels.astype("float64"), weights], axis=1)
    if bucketing:
        # Vectorized blocks are cached padded to their longest text, and each example keeps
        # that padding (in the shuffle buffer too): blocks of texts of similar (byte) length
        # keep both near the data's true size. Bucketing reorders the examples anyway (and
        # training reshuffles all of them every epoch), so the input order only changes which
        # seeded permutation comes out. Without bucketing the order is kept (predict).
        order = np.argsort([len(t) for t in texts], kind="stable")
        texts, labels = texts[order], labels[order]
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(texts, dtype=tf.string, shape=[len(texts)]), labels)
    )
    ds = vectorize_batches(ds.batch(1024), vectorizer, max_length).cache().unbatch()
    if shuffle:
        ds = ds.shuffle(max(len(texts), 1), seed=seed, reshuffle_each_iteration=True)
    if bucketing and batch_tokens is not None and boundaries is None:
        boundaries = bucket_boundaries(np.minimum(token_lengths(vectorizer, texts), max_length))
    ds = batch_examples(ds, batch_size, boundaries, bucketing, batch_tokens,
                        shuffle_seed=seed if shuffle else None, num_examples=len(texts))
    if weights is not None:
        ds = ds.map(lambda ids, rows: (ids, tf.cast(rows[:, 0], "int64"),
                                       tf.cast(rows[:, 1], "float32")))
    return ds


def shuffle_words(texts, seed=0):
    """Randomly permutes the words of each text (seeded): the order-blind control."""
    rng = np.random.default_rng(seed)
    out = []
    for t in texts:
        words = str(t).split()
        rng.shuffle(words)
        out.append(" ".join(words))
    return np.array(out, dtype=object)

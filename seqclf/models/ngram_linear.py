"""`NgramLinear`: a linear TF-IDF bag-of-n-grams path on token ids (the "wide" of wide-and-deep)."""

import keras
import numpy as np
import tensorflow as tf

from seqclf._checks import check_positive_int, check_positive_number
from seqclf.errors import SeqclfError

# Multiplier of the bigram hash (Knuth's multiplicative constant): spreads the pair key
# `first * vocab_size + second` over the buckets. int64 products wrap, deterministically.
HASH_MULTIPLIER = 2654435761


def ngram_indices(ids, vocab_size, buckets):
    """Token ids `[batch, time]` (0 = padding) → n-gram indices `[batch, 2 * time - 1]` and mask.

    Unigrams keep their token id; bigrams of two real tokens are hashed into
    `[vocab_size, vocab_size + buckets)`. Masked entries (padding) point at row 0.
    """
    ids = tf.cast(ids, "int64")
    first, second = ids[:, :-1], ids[:, 1:]
    pair_mask = (first != 0) & (second != 0)
    key = first * vocab_size + second
    bigrams = vocab_size + tf.math.floormod(key * HASH_MULTIPLIER, buckets)
    bigrams = tf.where(pair_mask, bigrams, tf.zeros_like(bigrams))
    index = tf.concat([ids, bigrams], axis=1)
    mask = tf.concat([ids != 0, pair_mask], axis=1)
    return index, mask


def ngram_idf(id_batches, vocab_size, buckets):
    """Smoothed inverse document frequencies (scikit-learn's `smooth_idf`) of every n-gram row.

    `id_batches` yields padded token-id arrays of the training texts. An n-gram never seen gets
    the largest idf, as a term of document frequency 0 would.
    """
    size = vocab_size + buckets
    df = np.zeros(size, dtype="int64")
    n = 0
    for ids in id_batches:
        index, mask = ngram_indices(tf.constant(ids), vocab_size, buckets)
        rows = tf.cast(tf.where(mask)[:, 0], "int64")
        # Each n-gram once per document: unique (row, n-gram) pairs.
        pairs = tf.unique(rows * size + tf.boolean_mask(index, mask))[0] % size
        df += np.bincount(pairs.numpy(), minlength=size)
        n += int(ids.shape[0])
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    idf[0] = 0.0  # padding
    return idf.astype("float32")


def present_ngrams(ids, vocab_size, buckets):
    """Each text's distinct n-gram rows `[batch, n]`, sorted, with a mask of the real ones.

    Sorting puts repeats of an n-gram side by side; only the first of each counts, so a text's
    features are the *presence* of its n-grams (binary bag of n-grams), as in NBSVM and in
    `seqclf.linear_path`, which fits the weights on exactly these features.
    """
    index, _ = ngram_indices(ids, vocab_size, buckets)  # padding points at row 0
    index = tf.sort(index, axis=1)
    first = tf.concat([tf.ones_like(index[:, :1], dtype="bool"), index[:, 1:] != index[:, :-1]],
                      axis=1)
    return index, first & (index != 0)


@keras.saving.register_keras_serializable(package="seqclf")
class NgramLinear(keras.layers.Layer):
    """Class logits of a linear model on the unigrams and hashed bigrams of a text.

    Reads the same right-padded token ids as the recurrent path, so the exported model still
    takes raw strings and needs no second vectorizer. Two feature modes:

    * `features="binary"`: the distinct n-grams of the text, n-gram i weighted `idf_i` (the
      per-feature weights: idf for tf-idf, 1 for NBSVM, whose naive-Bayes ratios are folded into
      `W`), L2-normalized over the text when `normalize`; the output is `sum_i x_i W[i] + b`.
      `seqclf.linear_path` fits `W` and `b` on these features as the convex problem it is.
    * `features="occurrences"` (trained jointly with a recurrent model by gradient descent, and
      what older runs saved): each occurrence i has weight `idf_i`; the output is
      `sum_i idf_i * W[i] / sqrt(sum_i idf_i ** 2) + b` (the L2 norm counts each occurrence, a
      close and cheap stand-in for the norm of the tf-idf vector), times `scale`. `W` starts at
      zero, as a logistic regression does. Its gradient is sparse (only the rows of the batch's
      n-grams), so `LazyAdam` updates only those rows.

    Args:
        vocab_size: size of the token-id space (padding and OOV included).
        units: number of outputs (classes).
        buckets: hash buckets for bigrams.
        idf: optional `[vocab_size + buckets]` per-feature weights (`ngram_idf`); all ones if
            omitted.
        features: `"occurrences"` or `"binary"` (above).
        normalize: L2-normalize each text's binary features (`features="binary"` only).
        scale: the output is multiplied by this (`features="occurrences"` only). Adam moves a
            weight by about its learning rate per update whatever the gradient's size, so this
            is the wide path's learning-rate multiplier: a bigram seen in 5 training texts gets
            5 updates an epoch, and at the recurrent path's rate it stays near 0 (the scales
            tried: bench/tune_recipe.md).
    """

    def __init__(self, vocab_size, units, buckets=2**18, idf=None, scale=10.0,
                 features="occurrences", normalize=True, **kwargs):
        super().__init__(**kwargs)
        if features not in ("occurrences", "binary"):
            raise SeqclfError("`features` must be 'occurrences' or 'binary'. "
                              f"Received: features={features!r}")
        self.features, self.normalize = features, bool(normalize)
        vocab_size, units, buckets = (
            check_positive_int(arg, value)
            for arg, value in (("vocab_size", vocab_size), ("units", units), ("buckets", buckets))
        )
        check_positive_number("scale", scale)
        self.vocab_size, self.units, self.buckets = vocab_size, units, buckets
        self.scale = float(scale)
        self._idf_init = None if idf is None else np.asarray(idf, dtype="float32")
        if self._idf_init is not None and self._idf_init.shape != (vocab_size + buckets,):
            raise SeqclfError(
                "`idf` must have shape (vocab_size + buckets,) = "
                f"({vocab_size + buckets},). Received: shape={self._idf_init.shape}"
            )

    def build(self, input_shape):
        rows = self.vocab_size + self.buckets
        self.kernel = self.add_weight(
            shape=(rows, self.units), initializer="zeros", name="kernel"
        )
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")
        idf_init = (
            "ones" if self._idf_init is None
            else keras.initializers.Constant(self._idf_init)
        )
        # Saved with the model (and in the exported graph), never trained.
        self.idf = self.add_weight(shape=(rows,), initializer=idf_init, trainable=False,
                                   name="idf")
        self._idf_init = None  # the weight holds it now; do not keep a second copy

    def call(self, ids):
        if self.features == "binary":
            index, present = present_ngrams(ids, self.vocab_size, self.buckets)
            weights = tf.gather(self.idf, index) * tf.cast(present, self.compute_dtype)
            if self.normalize:
                norm = tf.sqrt(tf.reduce_sum(tf.square(weights), axis=1, keepdims=True))
                weights = weights / tf.maximum(norm, 1e-12)
            rows = keras.ops.take(self.kernel, index, axis=0)
            return tf.einsum("bn,bnu->bu", weights, rows) + self.bias
        index, mask = ngram_indices(ids, self.vocab_size, self.buckets)
        weights = tf.gather(self.idf, index) * tf.cast(mask, self.compute_dtype)
        rows = keras.ops.take(self.kernel, index, axis=0)  # [batch, n, units], sparse gradient
        total = tf.einsum("bn,bnu->bu", weights, rows)
        norm = tf.sqrt(tf.reduce_sum(tf.square(weights), axis=1, keepdims=True))
        return self.scale * (total / tf.maximum(norm, 1e-6) + self.bias)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, units=self.units, buckets=self.buckets,
                      scale=self.scale, features=self.features, normalize=self.normalize)
        return config

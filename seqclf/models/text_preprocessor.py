"""`TextPreprocessor`: raw strings → the padded int64 token ids a seqclf backbone reads."""

import keras

from seqclf._checks import check_positive_int
from seqclf.data.pipeline import (
    make_vectorizer,
    ragged_vectorizer,
    standardize,
    token_counts,
    token_ids,
)


@keras.saving.register_keras_serializable(package="seqclf")
class TextPreprocessor(keras.layers.Layer):
    """The vocabulary and `max_length` of a classifier, as one layer: texts in, token ids out.

    Lower-cases, strips punctuation and splits on whitespace (`seqclf.data.pipeline.standardize`),
    looks the tokens up (id 0 padding, 1 out of vocabulary), cuts each text to `max_length`
    tokens and pads the batch to its longest text (`seqclf.data.pipeline.token_ids`, the same step
    as the training pipeline and the exported serving graph). A text without tokens becomes one
    OOV id.

    The vocabulary is saved as an asset of the layer (as `TextVectorization` saves it), not in its
    config: `keras.saving.load_model` restores it.

    Args:
        vocabulary: the tokens, as `get_vocabulary()` lists them (with or without the leading
            padding and OOV entries); None: set later (loading).
        max_length: the most tokens kept per text.
        standardize, split: as for `TextVectorization`; None: seqclf's (`make_vectorizer`'s).
    """

    def __init__(self, vocabulary=None, max_length=256, standardize=None, split="whitespace",
                 **kwargs):
        super().__init__(**kwargs)
        check_positive_int("max_length", max_length)
        self.max_length = max_length
        self._standardize, self._split = standardize, split
        # Ragged and its own twin: the pipeline and the serving graph read this very layer.
        self.tokenizer = ragged_vectorizer(
            vocabulary, split=split,
            **({} if standardize is None else {"standardize": standardize}),
        )

    @classmethod
    def from_texts(cls, texts, *, max_tokens=20_000, max_length=256, **kwargs):
        """Adapted on `texts` (the training split only): the `max_tokens` most frequent tokens."""
        vocabulary = make_vectorizer(texts, max_tokens=max_tokens).get_vocabulary()
        return cls(vocabulary, max_length, **kwargs)

    @classmethod
    def from_vectorizer(cls, vectorizer, max_length, **kwargs):
        """The preprocessor of an adapted `TextVectorization` (as `make_vectorizer` returns)."""
        if isinstance(vectorizer, cls):
            if vectorizer.max_length == max_length and not kwargs:
                return vectorizer
            # Another length: the same vocabulary and tokenization, cut elsewhere.
            return cls(vectorizer.vocabulary, max_length, standardize=vectorizer._standardize,
                       split=vectorizer._split, **kwargs)
        config = vectorizer.get_config()
        if config["standardize"] is standardize:
            config["standardize"] = None
        return cls(vectorizer.get_vocabulary(), max_length, standardize=config["standardize"],
                   split=config["split"], **kwargs)

    @property
    def vocabulary(self):
        """The tokens by id: `vocabulary[0]` is padding (""), `vocabulary[1]` OOV ("[UNK]")."""
        return self.tokenizer.get_vocabulary()

    @property
    def vocabulary_size(self):
        return self.tokenizer.vocabulary_size()

    def vectorizer(self):
        """A padded (non-ragged) `TextVectorization` with this vocabulary (`make_vectorizer`)."""
        return make_vectorizer(vocabulary=self.vocabulary)

    def token_counts(self, texts):
        """`(lengths, counts)`: tokens per text and occurrences of each id (before truncation)."""
        return token_counts(self.tokenizer, texts)

    def build(self, input_shape=None):
        # No weights to create: the vocabulary lives in the tokenizer's lookup table (restored
        # from the saved assets when a file is loaded).
        self.built = True

    def call(self, texts):
        return token_ids(self.tokenizer, texts, self.max_length)

    def compute_output_spec(self, texts):
        return keras.KerasTensor((texts.shape[0], None), dtype="int64")

    def get_config(self):
        config = super().get_config()
        config.update(max_length=self.max_length, standardize=self._standardize,
                      split=self._split)
        return config

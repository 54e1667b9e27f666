"""Texts as lists of token ids, and a classifier's probabilities for such lists.

`seqclf.explain` edits the lists (a token deleted) and `seqclf.batch_predict` classifies a file
chunk by chunk; both run the backbone on batches of rows of similar length, built here, rather
than through `TextClassifier.predict`, whose dataset and Keras predict loop cost a fixed time on
every call (a 100,000-line file in 2,048-row chunks took 14 s that way, 3 s this way).
"""

import numpy as np
import tensorflow as tf

from seqclf.data.pipeline import OOV_ID, standardize


def tokenize(preprocessor, texts):
    """`(tokens, ids)`: each text's tokens (strings) and token ids (lists, not cut to
    `max_length`), as `preprocessor` (a `TextPreprocessor`) reads the texts."""
    ids = preprocessor.tokenizer(tf.constant(texts)).to_list()
    config = preprocessor.get_config()
    if config["standardize"] is None and config["split"] == "whitespace":
        words = [row.decode("utf-8", "replace").split()
                 for row in standardize(tf.constant(texts)).numpy()]
        if [len(w) for w in words] == [len(i) for i in ids]:
            return words, ids
    # Another tokenization: the vocabulary's names of the ids ("[UNK]" for unknown words).
    vocabulary = preprocessor.vocabulary
    return [[vocabulary[i] for i in row] for row in ids], ids


def probabilities(classifier, rows, batch_size=256):
    """The backbone's probabilities `[len(rows), classes]` for token-id lists (each already cut
    to `max_length`), run in batches of similar lengths; an empty list is one OOV id, as
    `seqclf.data.pipeline.pad_ids` feeds a text without words."""
    order = np.argsort([len(r) for r in rows], kind="stable")
    out = np.zeros((len(rows), len(classifier.label_names)), "float32")
    for start in range(0, len(rows), batch_size):
        part = order[start : start + batch_size]
        out[part] = classifier.backbone.predict_on_batch(pad_rows([rows[i] for i in part]))
    return out


def text_probabilities(classifier, texts, batch_size=64):
    """`TextClassifier.predict`'s probabilities for a list of strings, computed this way."""
    cut = classifier.preprocessor.max_length
    ids = classifier.preprocessor.tokenizer(tf.constant(texts)).to_list()
    return probabilities(classifier, [row[:cut] for row in ids], batch_size)


def pad_rows(rows):
    """Token-id lists as one right-padded int64 batch; an empty list becomes one OOV id."""
    width = max(1, max(len(r) for r in rows))
    batch = np.zeros((len(rows), width), "int64")
    for i, r in enumerate(rows):
        if r:
            batch[i, : len(r)] = r
        else:
            batch[i, 0] = OOV_ID
    return batch

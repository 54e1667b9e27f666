"""A raw-strings-in classifier assembled from a trained model, with no retraining."""

import keras

from seqclf._checks import check_positive_int
from seqclf.models.text_preprocessor import TextPreprocessor


def build_end_to_end(model, vectorizer, max_length):
    """Wraps `vectorizer` → truncate to `max_length` → `model` into one `keras.Model`.

    The result takes a batch of raw strings (shape `[batch]`) and returns the same probabilities
    as `model` on the ids that training and the exported serving graph feed it (a
    `TextPreprocessor`, the layer named `padded_ids`: each text cut to `max_length`, then padded;
    a text without tokens read as one OOV token). The weights are shared with `model`: this is a
    view for prediction and export, not a copy. The vocabulary is the vectorizer's at build time
    (copied into the preprocessor): build the model again after re-adapting the vectorizer.
    `seqclf.models.TextClassifier` holds the same parts and also trains on texts.
    """
    max_length = check_positive_int("max_length", max_length)
    texts = keras.Input(shape=(), dtype="string", name="text")
    preprocessor = TextPreprocessor.from_vectorizer(vectorizer, max_length, name="padded_ids")
    probabilities = model(preprocessor(texts))
    return keras.Model(texts, probabilities, name=f"{model.name}_end_to_end")

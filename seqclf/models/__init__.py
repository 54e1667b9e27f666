"""Text classifiers: recurrent (SimpleRNN, LSTM, GRU; stacked, bidirectional) and bag-of-words."""

# Not public: registered so that end-to-end models saved by earlier versions still load.
from seqclf.models import padded_ids as _padded_ids  # noqa: F401
from seqclf.models.classifier import (
    CELLS,
    LSTM_INITS,
    MODEL_NAMES,
    POOLINGS,
    build_classifier,
    compile_classifier,
)
from seqclf.models.fast_gru import FastGRU
from seqclf.models.fast_lstm import FastLSTM
from seqclf.models.fast_simple_rnn import FastSimpleRNN
from seqclf.models.initializers import ChronoBias, ForgetBias
from seqclf.models.logit_blend import LogitBlend
from seqclf.models.masked_max_pooling import MaskedGlobalMaxPooling1D
from seqclf.models.ngram_linear import NgramLinear
from seqclf.models.text_classifier import TextClassifier
from seqclf.models.text_preprocessor import TextPreprocessor

__all__ = [
    "CELLS",
    "LSTM_INITS",
    "MODEL_NAMES",
    "ChronoBias",
    "FastGRU",
    "FastLSTM",
    "FastSimpleRNN",
    "ForgetBias",
    "LogitBlend",
    "MaskedGlobalMaxPooling1D",
    "NgramLinear",
    "POOLINGS",
    "TextClassifier",
    "TextPreprocessor",
    "build_classifier",
    "compile_classifier",
]

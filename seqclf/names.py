"""The names seqclf's options accept, in a module without TensorFlow.

The command line builds its parser from these (choices and help), so `seqclf --help` and
`seqclf CMD --help` answer without importing TensorFlow; the modules that implement the options
import the same tuples, so the two cannot drift apart.
"""

CELL_NAMES = ("simple_rnn", "lstm", "gru")
MODEL_NAMES = (*CELL_NAMES, "bow")
LSTM_INITS = ("default", "chrono")
POOLINGS = ("last", "max", "mean")
STRATEGIES = ("default", "mirrored", "multi_worker")
LR_SCHEDULES = ("constant", "cosine", "plateau")
RECIPES = ("auto", "fixed")
OPTIMIZERS = ("adam", "lazy_adam", "adamw", "rmsprop", "sgd")
# Per-token attribution methods of `seqclf.explain` (the default first).
EXPLAIN_METHODS = ("occlusion", "gradient_x_input", "integrated_gradients")
# The configurations of the embedded word-order dataset (`seqclf.data.word_order`).
WORD_ORDER_CONFIGS = ("default", "distance_25", "distance_50", "distance_100", "distance_200",
                      "tiny")

"""Builders for recurrent and bag-of-words text classifiers.

Every builder returns a plain functional `keras.Model` mapping right-padded int token ids
`[batch, time]` (0 is padding; the embedding masks it) to softmax probabilities
`[batch, num_classes]`. It works with `model.fit(dataset)` after `compile_classifier`, and contains
stock Keras layers, seqclf's registered layers and initializers, and, on CPU, the recurrent layers
of `FAST_CELLS` (stock subclasses with the same variables and config), so it saves to and loads
from `.keras` files without seqclf-specific code at load time beyond import.
"""

import keras

from seqclf._checks import check_positive_int
from seqclf.errors import SeqclfError
from seqclf.models import _fast_recurrence
from seqclf.models.fast_gru import FastGRU
from seqclf.models.fast_lstm import FastLSTM
from seqclf.models.fast_simple_rnn import FastSimpleRNN
from seqclf.models.initializers import ChronoBias, ForgetBias
from seqclf.models.masked_max_pooling import MaskedGlobalMaxPooling1D
from seqclf.models.ngram_linear import NgramLinear
from seqclf.names import CELL_NAMES, LSTM_INITS, MODEL_NAMES, POOLINGS

CELLS = dict(zip(CELL_NAMES, (keras.layers.SimpleRNN, keras.layers.LSTM, keras.layers.GRU)))
# The same layers with the input projection hoisted out of the time loop on CPU
# (`seqclf.models._fast_recurrence`); same variables and config as `CELLS`.
FAST_CELLS = dict(zip(CELL_NAMES, (FastSimpleRNN, FastLSTM, FastGRU)))


def recurrent_layer_class(cell):
    """The layer class `build_classifier` uses for `cell`: the fast CPU one unless a GPU is
    visible (the stock layer then runs cuDNN) or `SEQCLF_STOCK_RNN=1` asks for the stock one."""
    if _fast_recurrence.gpu_visible() or _fast_recurrence.stock_forced():
        return CELLS[cell]
    return FAST_CELLS[cell]


def build_classifier(
    cell,
    *,
    vocab_size,
    num_classes,
    embedding_dim=128,
    units=128,
    layers=1,
    bidirectional=False,
    dropout=0.0,
    embedding_dropout=0.0,
    pooling="last",
    lstm_init="default",
    forget_bias=None,
    chrono_max_timescale=None,
    recurrent_gain=None,
    embeddings=None,
    train_embeddings=True,
    ngram_buckets=None,
    ngram_idf=None,
    seed=None,
    name=None,
):
    """Builds an (uncompiled) text classifier.

    Args:
        cell: `simple_rnn`, `lstm`, `gru`, or `bow` (mean of word embeddings, order-blind).
        vocab_size: size of the token-id space, padding (0) and OOV (1) included.
        num_classes: number of output classes (>= 2); the head is a softmax.
        embedding_dim: width of the word embeddings.
        units: width of each recurrent layer (or of the hidden layer of `bow`).
        layers: number of stacked recurrent layers.
        bidirectional: wrap each recurrent layer in `keras.layers.Bidirectional`.
        dropout: dropout before the classifier head and between stacked layers.
        embedding_dropout: dropout on the embedded sequence.
        pooling: how the last recurrent layer's outputs become one vector: `last` (its final
            state), `max` or `mean` over the real (unmasked) steps of its output sequence.
            Pooling lets every position reach the head directly, so the gradient no longer has
            to travel back through time from the last step. Recurrent models only.
        lstm_init: `default` (Keras' `unit_forget_bias=True`) or `chrono`
            (`seqclf.models.initializers.ChronoBias`). LSTM only.
        forget_bias: a constant forget-gate bias instead of Keras' 1.0. LSTM only.
        chrono_max_timescale: the longest memory span chrono initialization targets; typically
            the expected dependency length (default: 100).
        recurrent_gain: if set, the recurrent kernel is `Orthogonal(gain=recurrent_gain)`:
            below 1 the gradient through time shrinks geometrically, above 1 it can explode.
        embeddings: optional `[vocab_size, embedding_dim]` array of pretrained vectors.
        train_embeddings: whether pretrained embeddings are fine-tuned.
        ngram_buckets: if set, a linear TF-IDF bag of unigrams and hashed bigrams
            (`seqclf.models.NgramLinear`, with this many bigram buckets) reads the same token ids
            and its logits are added to the recurrent path's before the softmax (wide and deep).
        ngram_idf: the idf weights of that path (`seqclf.models.ngram_linear.ngram_idf`).
        seed: seed for the initializers (weights are then reproducible).
        name: the model's name (default: the cell name).
    """
    if cell not in MODEL_NAMES:
        raise SeqclfError(
            f"Unknown model name. Expected one of: {', '.join(MODEL_NAMES)}. "
            f"Received: model={cell!r}"
        )
    for arg, value in (
        ("vocab_size", vocab_size),
        ("num_classes", num_classes),
        ("embedding_dim", embedding_dim),
        ("units", units),
        ("layers", layers),
    ):
        check_positive_int(arg, value)
    if num_classes < 2:
        raise SeqclfError(
            f"A classifier needs at least 2 classes. Received: num_classes={num_classes}"
        )
    for arg, value in (("dropout", dropout), ("embedding_dropout", embedding_dropout)):
        if not 0.0 <= value < 1.0:
            raise SeqclfError(f"`{arg}` must be in [0, 1). Received: {arg}={value}")
    if pooling not in POOLINGS:
        raise SeqclfError(
            f"Unknown pooling. Expected one of: {', '.join(POOLINGS)}. "
            f"Received: pooling={pooling!r}"
        )
    if cell == "bow" and pooling != "last":
        raise SeqclfError(
            "`pooling` applies to recurrent models; `bow` always averages. "
            f"Received: pooling={pooling!r}"
        )
    if lstm_init not in LSTM_INITS:
        raise SeqclfError(
            f"Unknown LSTM initialization. Expected one of: {', '.join(LSTM_INITS)}. "
            f"Received: lstm_init={lstm_init!r}"
        )
    if cell != "lstm" and (lstm_init != "default" or forget_bias is not None):
        raise SeqclfError(
            "`lstm_init` and `forget_bias` apply to LSTM models only. "
            f"Received: model={cell!r}, lstm_init={lstm_init!r}, forget_bias={forget_bias!r}"
        )
    if lstm_init == "chrono" and forget_bias is not None:
        raise SeqclfError(
            "Chrono initialization sets the forget-gate bias itself; drop `forget_bias`. "
            f"Received: lstm_init='chrono', forget_bias={forget_bias!r}"
        )
    if recurrent_gain is not None and not recurrent_gain > 0:
        raise SeqclfError(
            f"`recurrent_gain` must be positive. Received: recurrent_gain={recurrent_gain}"
        )

    seeds = keras.random.SeedGenerator(seed) if seed is not None else None

    def next_seed():
        # Distinct, reproducible integer seeds per initializer (a shared SeedGenerator cannot be
        # serialized inside layer configs).
        return None if seeds is None else int(keras.random.randint((), 0, 2**31 - 1, seed=seeds))

    inputs = keras.Input(shape=(None,), dtype="int64", name="token_ids")
    if embeddings is not None:
        if tuple(embeddings.shape) != (vocab_size, embedding_dim):
            raise SeqclfError(
                "Pretrained embeddings must have shape (vocab_size, embedding_dim) = "
                f"({vocab_size}, {embedding_dim}). Received: shape={tuple(embeddings.shape)}"
            )
        emb_init = keras.initializers.Constant(embeddings)
    else:
        emb_init = keras.initializers.RandomUniform(-0.05, 0.05, seed=next_seed())
    x = keras.layers.Embedding(
        vocab_size,
        embedding_dim,
        mask_zero=True,
        embeddings_initializer=emb_init,
        trainable=train_embeddings or embeddings is None,
        name="embedding",
    )(inputs)
    if embedding_dropout:
        x = keras.layers.Dropout(embedding_dropout, seed=next_seed(), name="embedding_dropout")(x)

    if cell == "bow":
        x = keras.layers.GlobalAveragePooling1D(name="mean_of_embeddings")(x)
        x = keras.layers.Dense(
            units,
            activation="relu",
            kernel_initializer=keras.initializers.GlorotUniform(seed=next_seed()),
            name="hidden",
        )(x)
    else:
        for i in range(layers):
            kwargs = dict(
                return_sequences=i < layers - 1 or pooling != "last",
                kernel_initializer=keras.initializers.GlorotUniform(seed=next_seed()),
                recurrent_initializer=keras.initializers.Orthogonal(
                    gain=1.0 if recurrent_gain is None else float(recurrent_gain), seed=next_seed()
                ),
            )
            if cell == "lstm":
                if lstm_init == "chrono":
                    kwargs.update(
                        unit_forget_bias=False,
                        bias_initializer=ChronoBias(chrono_max_timescale or 100, seed=next_seed()),
                    )
                elif forget_bias is not None:
                    kwargs.update(unit_forget_bias=False, bias_initializer=ForgetBias(forget_bias))
            layer = recurrent_layer_class(cell)(units, name=f"{cell}_{i}", **kwargs)
            if bidirectional:
                layer = keras.layers.Bidirectional(layer, name=f"bidirectional_{cell}_{i}")
            x = layer(x)
            if dropout and i < layers - 1:
                x = keras.layers.Dropout(dropout, seed=next_seed(), name=f"dropout_{i}")(x)
        if pooling == "max":
            x = MaskedGlobalMaxPooling1D(name="max_over_time")(x)
        elif pooling == "mean":
            x = keras.layers.GlobalAveragePooling1D(name="mean_over_time")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, seed=next_seed(), name="head_dropout")(x)
    head = keras.layers.Dense(
        num_classes,
        activation=None if ngram_buckets else "softmax",
        kernel_initializer=keras.initializers.GlorotUniform(seed=next_seed()),
        name="classifier",
    )
    if ngram_buckets:
        wide = NgramLinear(vocab_size, num_classes, buckets=ngram_buckets, idf=ngram_idf,
                           name="ngram_linear")(inputs)
        logits = keras.layers.Add(name="wide_and_deep")([head(x), wide])
        outputs = keras.layers.Activation("softmax", name="probabilities")(logits)
    else:
        outputs = head(x)
    return keras.Model(inputs, outputs, name=name or cell)


def compile_classifier(model, optimizer=None, *, steps_per_execution=1, weighted_accuracy=False,
                       **optimizer_kwargs):
    """Compiles with sparse categorical cross-entropy and accuracy.

    `weighted_accuracy=True`: the accuracy (still named `accuracy`) counts each example by its
    sample weight, as the loss does; with class weights, validation accuracy then rewards the
    rare classes as training does (Keras' `weighted_metrics`).

    `steps_per_execution=k` runs k training steps per call into the compiled train function.
    On CPU, a small recurrent model's step is short enough that Python and dispatch overhead per
    call is a large share of it; k > 1 amortises that. Batch-level callback hooks then run every
    k steps.

    `optimizer` is a Keras optimizer; without one,
    `seqclf.optimizers.make_optimizer(**optimizer_kwargs)` builds it (`make_optimizer`'s
    default, Adam, learning rate 1e-3, unless given; `seqclf train` uses `lazy_adam`).
    """
    from seqclf.optimizers import make_optimizer

    if optimizer is None:
        optimizer = make_optimizer(**optimizer_kwargs)
    elif optimizer_kwargs:
        raise SeqclfError(
            "Pass either an optimizer or optimizer arguments, not both. "
            f"Received: optimizer={optimizer!r}, {optimizer_kwargs}"
        )
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        **{"weighted_metrics" if weighted_accuracy else "metrics": ["accuracy"]},
        steps_per_execution=steps_per_execution,
        **compile_options(optimizer),
    )
    return model


def compile_options(optimizer):
    """The `compile` arguments `optimizer` needs besides Keras' defaults."""
    from seqclf.lazy_adam import LazyAdam

    # Keras' "auto" turns XLA on for a single GPU when every layer allows it (`bow`, or a
    # recurrent layer that cannot use cuDNN); LazyAdam's `tf.unique` has no XLA kernel.
    return {"jit_compile": False} if isinstance(optimizer, LazyAdam) else {}

"""The fast CPU recurrent layers (`FastLSTM`, `FastGRU`, `FastSimpleRNN`) against Keras' own.

Same weights, same inputs: outputs and gradients must equal the stock layers' to 1e-5, with and
without masks, forward and backward, inside `Bidirectional`, with `return_sequences`; saved
models load into the other kind of layer and predict the same.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqclf.models import _fast_recurrence
from seqclf.models.classifier import CELLS, FAST_CELLS, build_classifier, recurrent_layer_class

TOL = 1e-5
LENGTHS = (9, 4, 1, 7, 2)


def token_ids(lengths=LENGTHS, steps=9, seed=0):
    ids = np.random.default_rng(seed).integers(2, 40, (len(lengths), steps))
    for row, length in enumerate(lengths):
        ids[row, length:] = 0
    return ids


def layer_model(layer_class, *, return_sequences, bidirectional, go_backwards=False,
                mask_zero=True):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((None,), dtype="int64")
    x = keras.layers.Embedding(40, 5, mask_zero=mask_zero)(inputs)
    # A random bias: the default zeros would hide a bias applied twice or to the wrong gate.
    layer = layer_class(4, return_sequences=return_sequences, go_backwards=go_backwards,
                        bias_initializer="random_normal")
    if bidirectional:
        layer = keras.layers.Bidirectional(layer)
    x = layer(x)
    if return_sequences:
        x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def outputs_and_grads(model, ids, training=True):
    labels = np.arange(len(ids)) % 3
    with tf.GradientTape() as tape:
        probs = model(ids, training=training)
        loss = keras.losses.sparse_categorical_crossentropy(labels, probs)
    grads = tape.gradient(loss, model.trainable_variables)
    return probs.numpy(), [tf.convert_to_tensor(g).numpy() for g in grads]


def assert_same(stock_model, fast_model, ids, training=True):
    fast_model.set_weights(stock_model.get_weights())
    stock_out, stock_grads = outputs_and_grads(stock_model, ids, training)
    fast_out, fast_grads = outputs_and_grads(fast_model, ids, training)
    np.testing.assert_allclose(fast_out, stock_out, atol=TOL, rtol=0)
    assert len(fast_grads) == len(stock_grads)
    for fast_g, stock_g in zip(fast_grads, stock_grads):
        assert np.abs(stock_g).max() > 0  # a vanished gradient would match trivially
        np.testing.assert_allclose(fast_g, stock_g, atol=TOL, rtol=0)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("direction", ["forward", "backward", "bidirectional"])
@pytest.mark.parametrize("mask_zero", [True, False])
def test_outputs_and_gradients_equal_the_stock_layers(cell, return_sequences, direction,
                                                      mask_zero):
    kwargs = dict(return_sequences=return_sequences, bidirectional=direction == "bidirectional",
                  go_backwards=direction == "backward", mask_zero=mask_zero)
    assert_same(layer_model(CELLS[cell], **kwargs), layer_model(FAST_CELLS[cell], **kwargs),
                token_ids())


@pytest.mark.parametrize("cell", list(CELLS))
def test_inference_equals_the_stock_layers(cell):
    kwargs = dict(return_sequences=True, bidirectional=True)
    stock, fast = layer_model(CELLS[cell], **kwargs), layer_model(FAST_CELLS[cell], **kwargs)
    fast.set_weights(stock.get_weights())
    ids = token_ids()
    np.testing.assert_allclose(fast.predict(ids, verbose=0), stock.predict(ids, verbose=0),
                               atol=TOL, rtol=0)


@pytest.mark.parametrize("cell", list(CELLS))
def test_a_mask_that_is_not_right_padded_gives_the_stock_result(cell):
    # Left padding and a hole: the fast LSTM's one-op path needs right padding and must fall
    # back to its loop, which handles any mask as Keras does.
    ids = token_ids()
    ids[1] = [0, 0, 5, 6, 7, 8, 0, 0, 0]
    ids[3] = [3, 0, 4, 5, 0, 6, 7, 0, 0]
    assert not bool(_fast_recurrence.right_padded(tf.constant(ids != 0)))
    for return_sequences in (False, True):
        kwargs = dict(return_sequences=return_sequences, bidirectional=True)
        assert_same(layer_model(CELLS[cell], **kwargs), layer_model(FAST_CELLS[cell], **kwargs),
                    ids)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("pooling", ["last", "max"])
def test_classifier_equals_the_stock_one(cell, pooling, monkeypatch):
    kwargs = dict(vocab_size=40, num_classes=3, embedding_dim=6, units=5, layers=2,
                  bidirectional=True, pooling=pooling, seed=0)
    fast = build_classifier(cell, **kwargs)
    monkeypatch.setenv(_fast_recurrence.STOCK_ENV, "1")
    stock = build_classifier(cell, **kwargs)
    assert {type(la) for la in fast._flatten_layers()} & set(FAST_CELLS.values())
    assert not {type(la) for la in stock._flatten_layers()} & set(FAST_CELLS.values())
    monkeypatch.delenv(_fast_recurrence.STOCK_ENV)
    assert_same(stock, fast, token_ids())


def test_chrono_lstm_equals_the_stock_one(monkeypatch):
    kwargs = dict(vocab_size=40, num_classes=3, embedding_dim=6, units=5, lstm_init="chrono",
                  seed=0)
    fast = build_classifier("lstm", **kwargs)
    monkeypatch.setenv(_fast_recurrence.STOCK_ENV, "1")
    assert_same(build_classifier("lstm", **kwargs), fast, token_ids())


def test_the_stock_layer_is_chosen_when_a_gpu_is_visible_or_asked_for(monkeypatch):
    assert recurrent_layer_class("gru") is FAST_CELLS["gru"]  # this CPU-only test machine
    monkeypatch.setattr(_fast_recurrence, "gpu_visible", lambda: True)
    assert recurrent_layer_class("gru") is keras.layers.GRU
    # A fast layer loaded on a GPU machine runs the stock call (cuDNN there).
    assert not _fast_recurrence.fast_path_applies(FAST_CELLS["gru"](3), True, True)
    monkeypatch.undo()
    monkeypatch.setenv(_fast_recurrence.STOCK_ENV, "1")
    assert recurrent_layer_class("lstm") is keras.layers.LSTM
    assert not _fast_recurrence.fast_path_applies(FAST_CELLS["lstm"](3), True, True)


def test_dropout_inside_the_recurrence_takes_the_stock_path():
    layer = FAST_CELLS["lstm"](3, recurrent_dropout=0.5)
    assert not _fast_recurrence.fast_path_applies(layer, True, True)
    assert _fast_recurrence.fast_path_applies(layer, False, True)


def test_the_config_is_the_stock_layers():
    for cell in CELLS:
        fast = FAST_CELLS[cell](4, return_sequences=True, go_backwards=True)
        stock = CELLS[cell].from_config(fast.get_config())
        assert stock.get_config() == fast.get_config()


@pytest.mark.parametrize("cell", list(CELLS))
def test_saved_weights_load_into_the_other_layers(cell, tmp_path, monkeypatch):
    # Bidirectional: the same variables under the same names, either way.
    kwargs = dict(vocab_size=40, num_classes=3, embedding_dim=6, units=5, bidirectional=True,
                  seed=0)
    ids = token_ids()
    fast = build_classifier(cell, **kwargs)
    monkeypatch.setenv(_fast_recurrence.STOCK_ENV, "1")
    stock = build_classifier(cell, **{**kwargs, "seed": 1})
    monkeypatch.delenv(_fast_recurrence.STOCK_ENV)
    assert [v.path for v in stock.weights] == [v.path for v in fast.weights]
    fast.save(tmp_path / "fast.keras")
    stock.load_weights(tmp_path / "fast.keras")
    np.testing.assert_allclose(stock.predict(ids, verbose=0), fast.predict(ids, verbose=0),
                               atol=TOL, rtol=0)
    fast2 = build_classifier(cell, **{**kwargs, "seed": 2})
    stock.save(tmp_path / "stock.keras")
    fast2.load_weights(tmp_path / "stock.keras")
    np.testing.assert_allclose(fast2.predict(ids, verbose=0), stock.predict(ids, verbose=0),
                               atol=TOL, rtol=0)

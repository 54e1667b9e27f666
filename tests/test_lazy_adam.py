import keras
import numpy as np
import pytest
import tensorflow as tf

from seqclf.lazy_adam import LazyAdam
from seqclf.optimizers import make_optimizer

CLIPPING = [{}, {"clipnorm": 0.05}, {"global_clipnorm": 0.05}, {"clipvalue": 0.01}]


def _apply(optimizer_cls, steps, clipping, rows=6, dense=False):
    """Applies `steps` (row indices, values) as IndexedSlices to a (rows, 3) table and a bias.

    `dense=True` passes the same gradient as a dense tensor (duplicate rows summed).
    """
    table = keras.Variable(np.arange(rows * 3, dtype="float32").reshape(rows, 3) / 10)
    bias = keras.Variable(np.ones(3, dtype="float32"))
    opt = optimizer_cls(learning_rate=0.1, **clipping)
    for indices, values in steps:
        slices = tf.IndexedSlices(tf.constant(values, "float32"), tf.constant(indices, "int64"),
                                  tf.constant([rows, 3], "int64"))
        if dense:
            slices = tf.convert_to_tensor(slices)
        bias_gradient = tf.constant(np.sum(values, axis=0), "float32")
        opt.apply_gradients([(slices, table), (bias_gradient, bias)])
    return table.numpy(), bias.numpy()


@pytest.mark.parametrize("clipping", CLIPPING, ids=lambda c: next(iter(c), "none"))
def test_equals_adam_when_every_row_is_in_every_batch(clipping):
    rng = np.random.default_rng(0)
    # Every row present each step, some twice (an embedding's gradient repeats a row per use).
    steps = [(rng.permutation(np.r_[np.arange(6), [2, 2, 5]]), rng.normal(size=(9, 3)))
             for _ in range(5)]
    lazy = _apply(LazyAdam, steps, clipping)
    # The reference is Adam on the dense gradient: given the IndexedSlices themselves, Keras'
    # Adam squares duplicate rows before summing them (a different second moment).
    dense = _apply(keras.optimizers.Adam, steps, clipping, dense=True)
    for a, b in zip(lazy, dense):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_rows_a_batch_did_not_use_stay_put():
    rng = np.random.default_rng(1)
    first = ([0, 1, 2, 3], rng.normal(size=(4, 3)))
    later = [([0, 1], rng.normal(size=(2, 3))) for _ in range(3)]
    table, _ = _apply(LazyAdam, [first], {})
    lazy, _ = _apply(LazyAdam, [first, *later], {})
    dense, _ = _apply(keras.optimizers.Adam, [first, *later], {})
    # Rows 2 and 3 got a gradient only in the first step: LazyAdam leaves them where that step put
    # them, while Adam keeps moving them with their stale momentum. Rows 4 and 5 never move.
    np.testing.assert_array_equal(lazy[2:], table[2:])
    assert not np.allclose(dense[2:4], table[2:4])
    np.testing.assert_array_equal(lazy[4:], np.arange(12, 18, dtype="float32").reshape(2, 3) / 10)
    assert not np.allclose(lazy[:2], table[:2])


def test_trains_an_embedding_in_fit_and_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((4,), dtype="int64"),
        keras.layers.Embedding(50, 8),
        keras.layers.Flatten(),
        keras.layers.Dense(2),
    ])
    model.compile(make_optimizer("lazy_adam", 0.05, clipnorm=1.0),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).integers(0, 10, size=(64, 4))  # ids 10..49 never used
    y = (x[:, 0] < 5).astype("int64")
    before = model.layers[0].embeddings.numpy().copy()
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    after = model.layers[0].embeddings.numpy()
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    np.testing.assert_array_equal(after[10:], before[10:])  # unused rows: untouched
    assert not np.allclose(after[:10], before[:10])
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is LazyAdam
    assert loaded.optimizer.get_config()["clipnorm"] == 1.0


def test_amsgrad_is_refused():
    with pytest.raises(ValueError, match="Received: amsgrad=True"):
        LazyAdam(amsgrad=True)

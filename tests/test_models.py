"""Model builders, initializers, the optimizer factory and the raw-string model."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from seqclf import _compat
from seqclf.data import make_vectorizer
from seqclf.embeddings import load_word_vectors
from seqclf.errors import SeqclfError
from seqclf.models import (
    MODEL_NAMES,
    ChronoBias,
    MaskedGlobalMaxPooling1D,
    TextClassifier,
    TextPreprocessor,
    build_classifier,
    compile_classifier,
)
from seqclf.models.padded_ids import PaddedIds
from seqclf.optimizers import make_optimizer

X = np.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 2], [2, 0, 0, 0, 0], [5, 5, 0, 0, 0]])
Y = np.array([0, 1, 1, 0])


@pytest.mark.parametrize("cell", MODEL_NAMES)
def test_every_cell_trains_with_plain_fit(cell):
    model = build_classifier(cell, vocab_size=12, num_classes=2, embedding_dim=4, units=4,
                             layers=2, bidirectional=cell == "gru", dropout=0.1, seed=0)
    compile_classifier(model, learning_rate=0.05)
    before = model.evaluate(X, Y, verbose=0, return_dict=True)["loss"]
    model.fit(X, Y, epochs=5, verbose=0)
    assert model.evaluate(X, Y, verbose=0, return_dict=True)["loss"] < before
    probs = model.predict(X, verbose=0)
    assert probs.shape == (4, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_padding_is_masked():
    model = build_classifier("lstm", vocab_size=12, num_classes=2, embedding_dim=4, units=4, seed=0)
    short = model.predict(np.array([[3, 4]]), verbose=0)
    padded = model.predict(np.array([[3, 4, 0, 0, 0, 0]]), verbose=0)
    np.testing.assert_allclose(short, padded, atol=1e-6)


@pytest.mark.parametrize("pooling", ["max", "mean"])
def test_pooling_ignores_padding(pooling):
    model = build_classifier("gru", vocab_size=12, num_classes=2, embedding_dim=4, units=4,
                             pooling=pooling, seed=0)
    short = model.predict(np.array([[3, 4]]), verbose=0)
    padded = model.predict(np.array([[3, 4, 0, 0, 0, 0]]), verbose=0)
    np.testing.assert_allclose(short, padded, atol=1e-6)


def test_masked_max_pooling_skips_masked_steps():
    x = np.array([[[-3.0, 1.0], [-2.0, 5.0], [0.0, 9.0]]], dtype="float32")
    mask = np.array([[True, True, False]])
    out = keras.ops.convert_to_numpy(MaskedGlobalMaxPooling1D()(x, mask=mask))
    # Keras' GlobalMaxPooling1D would give [0, 9]: the padded step's values.
    np.testing.assert_allclose(out, [[-2.0, 5.0]])


def test_seed_makes_weights_reproducible():
    a = build_classifier("gru", vocab_size=12, num_classes=3, embedding_dim=4, units=4, seed=5)
    b = build_classifier("gru", vocab_size=12, num_classes=3, embedding_dim=4, units=4, seed=5)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_chrono_and_forget_bias_initialization():
    units = 16
    m = build_classifier("lstm", vocab_size=12, num_classes=2, embedding_dim=4, units=units,
                         lstm_init="chrono", chrono_max_timescale=50, seed=0)
    bias = m.get_layer("lstm_0").cell.bias.numpy()
    forget, inp = bias[units : 2 * units], bias[:units]
    assert np.all(forget >= 0) and np.all(forget <= np.log(49) + 1e-6)
    np.testing.assert_allclose(inp, -forget)
    np.testing.assert_array_equal(bias[2 * units :], 0)
    m = build_classifier("lstm", vocab_size=12, num_classes=2, embedding_dim=4, units=units,
                         forget_bias=3.0)
    np.testing.assert_array_equal(m.get_layer("lstm_0").cell.bias.numpy()[units : 2 * units], 3.0)


def test_recurrent_gain_scales_orthogonal_kernel():
    m = build_classifier("simple_rnn", vocab_size=12, num_classes=2, embedding_dim=4, units=8,
                         recurrent_gain=0.5, seed=0)
    u = m.get_layer("simple_rnn_0").cell.recurrent_kernel.numpy()
    np.testing.assert_allclose(np.linalg.svd(u, compute_uv=False), 0.5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(cell="lstmm"), r"Unknown model name.*Received: model='lstmm'"),
        (dict(cell="gru", lstm_init="chrono"), "apply to LSTM models only"),
        (dict(cell="lstm", lstm_init="chrono", forget_bias=1.0), "drop `forget_bias`"),
        (dict(cell="lstm", units=0), r"Received: units=0"),
        (dict(cell="lstm", num_classes=1), r"Received: num_classes=1"),
        (dict(cell="lstm", dropout=1.5), r"Received: dropout=1.5"),
        (dict(cell="lstm", pooling="attention"), r"Received: pooling='attention'"),
        (dict(cell="bow", pooling="max"), r"Received: pooling='max'"),
    ],
)
def test_builder_errors(kwargs, match):
    kwargs = {"vocab_size": 10, "num_classes": 2, **kwargs}
    with pytest.raises(SeqclfError, match=match):
        build_classifier(kwargs.pop("cell"), **kwargs)


def test_optimizer_factory_clipping_modes():
    assert make_optimizer(clipnorm=1.0).clipnorm == 1.0
    assert make_optimizer("sgd", 0.1, global_clipnorm=2.0).global_clipnorm == 2.0
    assert make_optimizer("rmsprop", clipvalue=0.5).clipvalue == 0.5
    with pytest.raises(SeqclfError, match=r"at most one.*Received: clipnorm=1.0, clipvalue=0.5"):
        make_optimizer(clipnorm=1.0, clipvalue=0.5)
    with pytest.raises(SeqclfError, match=r"Received: clipnorm=-1"):
        make_optimizer(clipnorm=-1)
    with pytest.raises(SeqclfError, match=r"Received: name='adamax'"):
        make_optimizer("adamax")
    with pytest.raises(SeqclfError, match=r"Received: learning_rate=0"):
        make_optimizer(learning_rate=0)


def test_clipnorm_is_per_tensor_and_global_clipnorm_is_joint():
    # Two gradient tensors of norms 3 and 4 (global norm 5), clip threshold 1.
    grads = [keras.ops.convert_to_tensor([3.0, 0.0]), keras.ops.convert_to_tensor([0.0, 4.0])]
    per_tensor = _compat.clip_gradients(make_optimizer("sgd", 1.0, clipnorm=1.0), grads)
    joint = _compat.clip_gradients(make_optimizer("sgd", 1.0, global_clipnorm=1.0), grads)
    np.testing.assert_allclose([np.linalg.norm(g) for g in per_tensor], [1.0, 1.0], rtol=1e-5)
    np.testing.assert_allclose([np.linalg.norm(g) for g in joint], [0.6, 0.8], rtol=1e-5)


def tiny_text_classifier(cell="lstm"):
    """(texts, vectorizer, backbone, `TextClassifier` on them) with max_length 3."""
    texts = np.array(["good film", "a bad bad film indeed", "film"], dtype=object)
    v = make_vectorizer(texts, max_tokens=20)
    model = build_classifier(cell, vocab_size=len(v.get_vocabulary()), num_classes=2,
                             embedding_dim=4, units=4, seed=0)
    preprocessor = TextPreprocessor.from_vectorizer(v, 3)
    return texts, v, model, TextClassifier(model, preprocessor, ["neg", "pos"])


def test_text_classifier_matches_vectorized_model():
    texts, v, model, clf = tiny_text_classifier()
    ids = v(texts).numpy()[:, :3]
    np.testing.assert_allclose(clf.predict(list(texts)), model.predict(ids, verbose=0),
                               atol=1e-6)
    assert len(clf.weights) == len(model.weights)  # shared, not copied


def test_text_classifier_cuts_each_text_before_padding_and_reads_empty_as_oov():
    _, _, _, clf = tiny_text_classifier()
    # One text of 200,000 tokens among short ones: its answer is that of its first 3 tokens,
    # and the batch is padded to 3 columns, not 200,000 (the old path padded first).
    batch = ["good film"] * 7 + ["bad film indeed " * 66_667]
    ids = clf.preprocessor(keras.ops.convert_to_tensor(np.array(batch, dtype=object)))
    assert tuple(ids.shape) == (8, 3)
    probs = clf.predict(batch)
    cut = clf.predict(["bad film indeed"])
    np.testing.assert_allclose(probs[-1], cut[0], atol=1e-6)
    # A text without tokens is read as one OOV token, as in training and serving.
    empty = clf.predict(["", "?!", "zzzqqq"])
    np.testing.assert_allclose(empty[0], empty[2], atol=1e-6)
    np.testing.assert_allclose(empty[1], empty[2], atol=1e-6)
    assert np.isfinite(empty).all()


def test_padded_ids_rejects_bad_max_length():
    with pytest.raises(SeqclfError, match=r"Received: max_length=0"):
        PaddedIds(0)


def test_keras_files_round_trip_in_fresh_process(tmp_path):
    # A fresh process loads a bare backbone (seqclf's initializers); `TextClassifier` files:
    # tests/test_text_classifier.py and tests/test_fit_blend.py.
    model = build_classifier("lstm", vocab_size=12, num_classes=2, embedding_dim=4, units=4,
                             lstm_init="chrono", bidirectional=True, pooling="max", seed=0)
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "expected.npy", model.predict(X, verbose=0))
    code = textwrap.dedent(f"""
        import numpy as np, keras
        import seqclf.models  # registers seqclf's layers, initializers and standardize function
        m = keras.models.load_model({str(tmp_path / 'm.keras')!r})
        x = np.array({X.tolist()})
        expected = np.load({str(tmp_path / 'expected.npy')!r})
        np.testing.assert_allclose(m.predict(x, verbose=0), expected, atol=1e-6)
        assert isinstance(m.get_layer("bidirectional_lstm_0").forward_layer.cell.bias_initializer,
                          __import__("seqclf.models", fromlist=["ChronoBias"]).ChronoBias)
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
    assert ChronoBias(10).get_config()["max_timescale"] == 10.0


def test_pretrained_embeddings_from_text_file(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("3 2\ngood 1.0 2.0\nbad -1.0 -2.0\nunused 9 9\n", encoding="utf-8")
    vocab = ["", "[UNK]", "good", "film", "bad"]
    matrix, found = load_word_vectors(str(path), vocab)
    assert found == 2 and matrix.shape == (5, 2)
    np.testing.assert_array_equal(matrix[2], [1.0, 2.0])
    np.testing.assert_array_equal(matrix[0], [0.0, 0.0])
    model = build_classifier("lstm", vocab_size=5, num_classes=2, embedding_dim=2, units=2,
                             embeddings=matrix, train_embeddings=False)
    np.testing.assert_array_equal(model.get_layer("embedding").embeddings.numpy(), matrix)
    assert not model.get_layer("embedding").trainable
    path.write_text("good 1.0 2.0\nbad 1.0\n", encoding="utf-8")
    with pytest.raises(SeqclfError, match=r"vectors\.txt:2: expected 2 numbers"):
        load_word_vectors(str(path), vocab)

"""`TextClassifier.fit` blends the recipe's linear n-gram path with the recurrent model, as
`seqclf train` does: fitted on the training texts, blended on the validation texts, saved with
the model, served from raw strings."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from seqclf.linear_path import linear_logits, ngram_matrix, token_id_matrix
from seqclf.models import TextClassifier
from seqclf.models.logit_blend import find_logit_blend, set_blend_weights

GOOD = ["good", "great", "fine", "superb", "lovely"]
BAD = ["bad", "awful", "dull", "poor", "boring"]
FILLER = ["film", "plot", "the", "a", "movie", "actors", "story", "was", "and", "it"]


def _data(n=240, seed=0):
    """Texts whose label is the kind of their one sentiment word, among filler words: a bag of
    words decides them, which the linear path learns at once."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        words = list(rng.choice(FILLER, size=int(rng.integers(3, 9))))
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(GOOD if i % 2 else BAD)))
        texts.append(" ".join(words))
        labels.append("pos" if i % 2 else "neg")
    return texts, labels


def _model(texts, labels):
    model = TextClassifier.from_texts(texts, labels, model="gru", units=4, embedding_dim=4)
    model.compile()
    return model


@pytest.fixture(scope="module")
def blended():
    texts, labels = _data()
    model = _model(texts, labels)
    model.fit(texts, labels, validation_split=0.25, epochs=1, batch_size=16, verbose=0)
    return model


def test_fit_with_validation_blends_in_the_linear_path(blended):
    texts, labels = _data()
    record = blended.settings["blend"]
    assert record["linear_refit_on_validation"]  # validation_split: fitted again on all texts
    assert record["linear_path"]["kind"] in ("tfidf", "nb")
    # One recurrent epoch of 4 units learns little here; the linear path learns the words.
    assert record["linear_val_accuracy"] > 0.9 and record["linear_weight"] > 0
    assert record["val_accuracy"] >= record["recurrent_val_accuracy"]
    # The model computes exactly the blend of its two parts.
    blend = find_logit_blend(blended)
    lw, rw = blend.linear_weight, blend.recurrent_weight
    assert (lw, rw) == (record["linear_weight"], record["recurrent_weight"])
    probe = texts[:40]
    layer = blend.linear
    logits = linear_logits(
        ngram_matrix(token_id_matrix(blended.preprocessor, probe), layer.vocab_size,
                     layer.buckets),
        "tfidf" if layer.normalize else "nb", layer.idf.numpy(), layer.kernel.numpy(),
        layer.bias.numpy())
    together = blended.predict(probe)
    set_blend_weights(blended, 0.0, 1.0)
    try:
        recurrent = blended.predict(probe)
    finally:
        set_blend_weights(blended, lw, rw)
    z = lw * logits + rw * np.log(np.clip(recurrent, 1e-7, 1.0))
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(together, expected / expected.sum(axis=1, keepdims=True),
                               atol=1e-5)
    assert np.mean(np.argmax(together, axis=1) == [blended.label_names.index(v)
                                                   for v in labels[:40]]) > 0.9


def test_the_blend_line_is_printed_unless_quiet(capsys):
    texts, labels = _data(n=80, seed=1)
    model = _model(texts, labels)
    model.fit(texts[:60], labels[:60], validation_data=(texts[60:], labels[60:]), epochs=1,
              batch_size=16, verbose=0)
    assert "blended" not in capsys.readouterr().out
    assert not model.settings["blend"]["linear_refit_on_validation"]
    model.fit(texts[:60], labels[:60], validation_data=(texts[60:], labels[60:]), epochs=1,
              batch_size=16, verbose=2)
    assert "validation accuracy: linear path" in capsys.readouterr().out


def test_without_validation_texts_the_model_is_the_recurrent_model():
    texts, labels = _data(n=80, seed=2)
    model = _model(texts, labels)
    blend = find_logit_blend(model)
    calls = []
    original = blend.linear.call
    blend.linear.call = lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs)
    model.fit(texts, labels, epochs=1, batch_size=16, verbose=0)
    model.predict(texts[:4])
    # The recurrent model alone trains and predicts: the linear path is not even traced.
    assert not calls
    assert "blend" not in model.settings
    assert (blend.linear_weight, blend.recurrent_weight) == (0.0, 1.0)


def test_a_blended_model_loads_in_a_fresh_process_and_exports(blended, tmp_path):
    path = tmp_path / "blended.keras"
    blended.save(path)
    probe = ["good film", "", "the plot was dull", "superb and lovely story", "unseen words"]
    np.save(tmp_path / "expected.npy", blended.predict(probe))
    code = textwrap.dedent(f"""
        import numpy as np, keras
        import seqclf
        m = keras.saving.load_model({str(path)!r})
        expected = np.load({str(tmp_path / 'expected.npy')!r})
        np.testing.assert_allclose(m.predict({probe!r}), expected, atol=1e-6)
        assert m.settings["blend"]["linear_weight"] > 0
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
    # Raw strings in through TensorFlow's C API (what TF Serving loads), checked by `export`.
    version_dir = blended.export(str(tmp_path / "serving"))
    assert (tmp_path / "serving" / "1").is_dir() and str(version_dir).endswith("1")

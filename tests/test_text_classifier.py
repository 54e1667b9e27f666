"""`TextClassifier`: fit / evaluate / predict on raw strings, run directories, `.keras` files."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from seqclf.errors import SeqclfError
from seqclf.models import TextClassifier, TextPreprocessor, build_classifier
from seqclf.run_dir import RunDir

TEXTS = ["good film", "a bad bad film indeed", "film", "great movie", "awful awful",
         "fine good", "bad plot", "good good music"] * 4
LABELS = ["pos", "neg", "pos", "pos", "neg", "pos", "neg", "pos"] * 4
PROBE = ["good film", "", "?!", "a bad bad film indeed and more", "unseen words"]


@pytest.fixture(scope="module")
def clf():
    model = TextClassifier.from_texts(TEXTS, LABELS, model="gru", units=4, embedding_dim=4)
    model.compile()
    model.fit(TEXTS, LABELS, validation_data=(TEXTS, LABELS), epochs=2, batch_size=8, verbose=0)
    return model


def test_from_texts_adapts_and_the_recipe_fills_sizes(clf):
    assert clf.label_names == ["neg", "pos"]
    settings = clf.settings
    assert settings["max_length"] == clf.preprocessor.max_length == 8
    assert clf.preprocessor.vocabulary[:2] == ["", "[UNK]"]
    assert "good" in clf.preprocessor.vocabulary
    assert settings["recipe_record"]["inputs"]["n_train"] == len(TEXTS)
    assert settings["units"] == 4 and settings["model"] == "gru"
    assert json.dumps(clf.run_config())  # what save_run writes is JSON


def test_fit_evaluate_predict_on_strings(clf):
    assert len(clf.history.history["val_accuracy"]) == 2
    result = clf.evaluate(TEXTS, LABELS, verbose=0, return_dict=True)
    # evaluate and predict_labels read the texts alike.
    right = np.mean(np.array(clf.predict_labels(TEXTS)) == np.array(LABELS))
    assert result["accuracy"] == pytest.approx(right)
    probs = clf.predict(PROBE)
    assert probs.shape == (len(PROBE), 2) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # In the order given, whatever the length order used for batching.
    np.testing.assert_allclose(clf.predict(PROBE[::-1])[::-1], probs, atol=1e-6)
    assert clf.predict_labels(PROBE) == [clf.label_names[k] for k in probs.argmax(axis=1)]
    # The ids path the CLI feeds: the backbone on the preprocessor's ids.
    ids = clf.preprocessor(np.array(PROBE, dtype=object))
    np.testing.assert_allclose(clf.backbone.predict(ids, verbose=0), probs, atol=1e-6)
    with pytest.raises(SeqclfError, match="Received: texts='good film'"):
        clf.predict_labels("good film")


def test_inputs_as_numpy_and_tf_data(clf):
    import tensorflow as tf

    ids = np.array([clf.label_names.index(n) for n in LABELS])
    plain = clf.evaluate(np.array(TEXTS, dtype=object), ids, verbose=0)
    ds = tf.data.Dataset.from_tensor_slices((TEXTS, ids))
    np.testing.assert_allclose(clf.evaluate(ds.batch(5), verbose=0), plain, rtol=1e-5)
    np.testing.assert_allclose(clf.predict(ds.map(lambda t, y: t)), clf.predict(TEXTS),
                               atol=1e-6)
    history = clf.fit(ds, epochs=1, verbose=0).history
    assert len(history["loss"]) == 1 and np.isfinite(history["loss"][0])


def test_run_directory_round_trip(clf, tmp_path):
    from seqclf.run import predict

    run_dir = clf.save_run(str(tmp_path / "run"))
    assert sorted(os.listdir(run_dir)) == ["config.json", "model.keras", "vocabulary.txt"]
    again = TextClassifier.from_run(run_dir)
    assert again.label_names == clf.label_names
    np.testing.assert_allclose(again.predict(PROBE), clf.predict(PROBE), atol=1e-6)
    # The CLI's readers take it as they take a trained run.
    assert [p["label"] for p in predict(run_dir, PROBE)] == clf.predict_labels(PROBE)
    # Runs written before model.keras held the text model hold the backbone alone.
    RunDir(run_dir).save_model(clf.backbone)
    old = TextClassifier.from_run(run_dir)
    np.testing.assert_allclose(old.predict(PROBE), clf.predict(PROBE), atol=1e-6)


def test_keras_finds_every_registered_seqclf_object_after_import_seqclf():
    import keras

    from seqclf._registry import PACKAGE, SERIALIZABLE

    # Importing the test module imported seqclf.models: every seqclf object it registers must
    # have a stand-in, or a file holding it would not load after `import seqclf` alone.
    registered = {k.split(">", 1)[1] for k in keras.saving.get_custom_objects()
                  if k.startswith(PACKAGE + ">")}
    assert registered == set(SERIALIZABLE)


def test_from_parts_checks_them():
    pre = TextPreprocessor(["good", "bad"], max_length=4)
    backbone = build_classifier("bow", vocab_size=pre.vocabulary_size, num_classes=3, units=2)
    with pytest.raises(SeqclfError, match=r"Received: backbone.output_shape=\(None, 3\), "
                                          r"len\(label_names\)=2"):
        TextClassifier(backbone, pre, ["a", "b"])
    with pytest.raises(SeqclfError, match="Received: label_names=\\['a', 'a', 'b'\\]"):
        TextClassifier(backbone, pre, ["a", "a", "b"])
    clf = TextClassifier(backbone, pre, ["a", "b", "c"])
    assert clf.predict(["good bad", ""]).shape == (2, 3)
    with pytest.raises(SeqclfError, match=r"Received: \['z'\]"):
        clf.evaluate(["good"], ["z"])


def test_keras_file_round_trip_in_fresh_process(clf, tmp_path):
    path = tmp_path / "clf.keras"
    clf.save(path)
    np.save(tmp_path / "expected.npy", clf.predict(PROBE))
    code = textwrap.dedent(f"""
        import numpy as np, keras
        import seqclf  # all a user imports: Keras then finds TextClassifier and its parts
        m = keras.saving.load_model({str(path)!r})
        assert type(m).__name__ == "TextClassifier" and m.label_names == ["neg", "pos"]
        expected = np.load({str(tmp_path / 'expected.npy')!r})
        np.testing.assert_allclose(m.predict({PROBE!r}), expected, atol=1e-6)
        assert m.optimizer.iterations.numpy() > 0  # compiled, with its optimizer state
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


def test_from_vectorizer_keeps_a_preprocessor_of_that_length_and_recuts_another():
    p = TextPreprocessor(["good", "bad"], max_length=8)
    assert TextPreprocessor.from_vectorizer(p, 8) is p
    q = TextPreprocessor.from_vectorizer(p, 2)
    assert q.max_length == 2 and q.vocabulary == p.vocabulary
    assert q(np.array(["good bad good"])).shape == (1, 2)
    assert p(np.array(["good bad good"])).shape == (1, 3)

"""`TextClassifier.fit` / `evaluate` / `predict` on what Keras users pass: pandas, one string,
`validation_split`, sample and class weights, `(text, label, weight)` datasets, and the recipe's
epochs, schedule and best epoch when nothing else is said."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from seqclf.errors import SeqclfError
from seqclf.models import TextClassifier
from seqclf.models.logit_blend import set_blend_weights
from seqclf.models.text_inputs import class_weights

TEXTS = ["good film", "a bad bad film indeed", "film", "great movie", "awful awful",
         "fine good", "bad plot", "good good music"] * 4
LABELS = ["pos", "neg", "pos", "pos", "neg", "pos", "neg", "pos"] * 4
# Imbalanced and ambiguous: "film" is 24 times "neg" and 16 times "pos".
IMBALANCED = ["good", "bad"] * 10 + ["film"] * 40
IMBALANCED_LABELS = ["pos", "neg"] * 10 + ["neg"] * 24 + ["pos"] * 16


def _model(texts=TEXTS, labels=LABELS, **settings):
    model = TextClassifier.from_texts(texts, labels, **{"model": "gru", "units": 8,
                                                        "embedding_dim": 8, **settings})
    model.compile()
    return model


@pytest.fixture(scope="module")
def clf():
    return _model()


def test_pandas_series_dataframe_and_one_string(clf):
    frame = pd.DataFrame({"text": TEXTS, "label": LABELS, "id": range(len(TEXTS))})
    history = clf.fit(pd.Series(TEXTS), pd.Series(LABELS), epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    plain = clf.evaluate(TEXTS, LABELS, verbose=0)
    np.testing.assert_allclose(clf.evaluate(frame, verbose=0), plain, rtol=1e-5)
    np.testing.assert_allclose(clf.evaluate(frame[["text"]], pd.Series(LABELS), verbose=0),
                               plain, rtol=1e-5)
    np.testing.assert_allclose(clf.predict(frame), clf.predict(TEXTS), atol=1e-6)
    one = clf.predict("a great film")
    assert one.shape == (1, 2)
    np.testing.assert_allclose(one, clf.predict(["a great film"]), atol=1e-6)
    with pytest.raises(SeqclfError, match=r"Labels given twice.*Received: y=list"):
        clf.evaluate(frame, LABELS)
    two_columns = pd.DataFrame({"review": TEXTS, "title": TEXTS})
    with pytest.raises(SeqclfError, match=r"Received: columns=\['review', 'title'\]"):
        clf.fit(two_columns, LABELS, epochs=1, verbose=0)
    with pytest.raises(SeqclfError, match=r"`x` must be a collection of texts"):
        clf.fit("a great film", ["pos"], epochs=1, verbose=0)


def test_validation_split_holds_out_the_last_rows(clf):
    at = 24  # ceil(32 * 0.75): the last quarter, as Keras takes it
    history = clf.fit(TEXTS, LABELS, validation_split=0.25, epochs=1, batch_size=8, verbose=0)
    # What the epoch's validation measured: the recurrent model alone, before the blend.
    set_blend_weights(clf, 0.0, 1.0)
    held_out = clf.evaluate(TEXTS[at:], LABELS[at:], verbose=0, return_dict=True)
    assert history.history["val_loss"][0] == pytest.approx(held_out["loss"], rel=1e-5)
    with pytest.raises(SeqclfError, match="Received: validation_split=1.5"):
        clf.fit(TEXTS, LABELS, validation_split=1.5, verbose=0)


def test_zero_weights_leave_the_weights_unchanged():
    model = _model()
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.fit(TEXTS, LABELS, sample_weight=np.zeros(len(TEXTS)), epochs=2, batch_size=8,
              verbose=0)
    ids = [model.label_names.index(n) for n in LABELS]
    zeros = tf.data.Dataset.from_tensor_slices((TEXTS, ids, np.zeros(len(TEXTS)))).batch(8)
    model.fit(zeros, epochs=1, verbose=0)
    for old, new in zip(before, model.trainable_weights, strict=True):
        np.testing.assert_array_equal(old, new.numpy())
    assert model.optimizer.iterations.numpy() > 0  # it did take steps
    # Weights are read and kept with their texts: evaluate weighs the rows as given.
    half = np.r_[np.ones(16), np.zeros(16)]
    np.testing.assert_allclose(
        model.evaluate(TEXTS, LABELS, sample_weight=half, verbose=0, return_dict=True)["loss"],
        model.evaluate(TEXTS[:16], LABELS[:16], verbose=0, return_dict=True)["loss"] / 2,
        rtol=1e-5)


def _pos_recall(model):
    said = np.array(model.predict_labels(IMBALANCED))
    return (said[np.array(IMBALANCED_LABELS) == "pos"] == "pos").mean()


def test_class_and_sample_weights_move_a_class_recall():
    recall = {}
    pos = np.array(IMBALANCED_LABELS) == "pos"
    for name, options in [("none", {}), ("sample", {"sample_weight": np.where(pos, 2.0, 1.0)}),
                          ("class", {"class_weight": {"pos": 2}})]:
        model = _model(IMBALANCED, IMBALANCED_LABELS, model="bow")
        model.fit(pd.Series(IMBALANCED), IMBALANCED_LABELS, epochs=30, batch_size=16, verbose=0,
                  **options)
        recall[name] = _pos_recall(model)
    # "film" (24 neg, 16 pos) is called "neg" unweighted and "pos" with pos rows counted twice.
    assert recall["none"] < 0.5 and recall["sample"] == recall["class"] == 1.0, recall


def test_class_weight_by_name_id_and_balanced():
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.array([0, 0, 0, 1, 2, 2])
    np.testing.assert_allclose(class_weights("balanced", labels, ["a", "b", "c"]),
                               compute_class_weight("balanced", classes=np.arange(3), y=labels))
    np.testing.assert_allclose(class_weights({"b": 2, 2: 3}, labels, ["a", "b", "c"]), [1, 2, 3])
    with pytest.raises(SeqclfError, match="Received: 'negative'"):
        class_weights({"negative": 1}, labels, ["a", "b", "c"])


def test_fit_follows_the_recipe_when_told_nothing_else():
    model = _model()
    assert model.settings["lr_schedule"] == "cosine" and model.settings["epochs"] > 1
    history = model.fit(TEXTS, LABELS, validation_data=(TEXTS[:16], LABELS[:16]), batch_size=8,
                        verbose=0).history
    ran, planned = len(history["loss"]), model.settings["epochs"]
    best = int(np.argmax(history["val_accuracy"]))
    rate = float(model.optimizer.learning_rate)
    if ran < planned:
        # Stopped by the recipe's patience: that many epochs without a better one.
        assert ran - 1 - best == model.settings["patience"]
        assert rate < (model.settings.get("learning_rate") or 3e-3)  # compile()'s default
    else:
        # Annealed over the planned steps: the rate is spent at the end.
        assert rate < 1e-6
    # The best epoch's weights are kept: the recurrent model's validation accuracy, measured
    # again for the blend with the linear path, is the best epoch's.
    blend = model.settings["blend"]
    assert blend["recurrent_val_accuracy"] == pytest.approx(max(history["val_accuracy"]))
    # The blended model is what evaluates now.
    kept = model.evaluate(TEXTS[:16], LABELS[:16], verbose=0, return_dict=True)["accuracy"]
    assert kept == pytest.approx(blend["val_accuracy"])
    # Explicit arguments win.
    assert len(model.fit(TEXTS, LABELS, epochs=1, verbose=0).history["loss"]) == 1


def test_make_dataset_keeps_each_weight_with_its_text():
    from seqclf.data import make_dataset, make_vectorizer

    texts = [" ".join(["w"] * (1 + i % 7)) + f" t{i}" for i in range(200)]
    vectorizer = make_vectorizer(texts)
    for options in ({"shuffle": True}, {"batch_tokens": 64}, {"bucketing": False}):
        ds = make_dataset(texts, np.arange(200) % 2, vectorizer, batch_size=16, max_length=16,
                          weights=np.arange(200) / 10, **options)
        seen = []
        for ids, labels, weights in ds.as_numpy_iterator():
            rows = np.round(weights.astype("float64") * 10).astype(int)  # each row's index
            np.testing.assert_array_equal(labels, rows % 2)
            # The text's own token (t<index>) sits right after its run of "w".
            lengths = np.count_nonzero(ids, axis=1)
            np.testing.assert_array_equal(lengths, 2 + rows % 7)
            seen.extend(rows)
        assert sorted(seen) == list(range(200)), options

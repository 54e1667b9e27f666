"""The linear n-gram path fitted as a convex problem (`seqclf.linear_path`) and its blend with
the recurrent model (`seqclf.models.LogitBlend`)."""

import json
import os

import numpy as np
import pytest

from seqclf.linear_path import (
    fit_blend,
    fit_ngram_linear,
    idf_weights,
    linear_logits,
    ngram_matrix,
)


def _ids(rng, n, vocab, length):
    """Right-padded ids with repeats (a text may say a word twice) and varying lengths."""
    ids = rng.integers(1, vocab, size=(n, length))
    for row, keep in zip(ids, rng.integers(1, length + 1, size=n)):
        row[keep:] = 0
    return ids


@pytest.mark.parametrize("kind", ["tfidf", "nb"])
def test_the_layer_computes_the_features_the_fit_uses(kind):
    from seqclf.models import NgramLinear

    rng = np.random.default_rng(0)
    vocab, buckets, classes = 40, 64, 3
    ids = _ids(rng, 50, vocab, 12)
    ids[0] = 0
    ids[0, :3] = 5  # a repeated word counts once (presence)
    x = ngram_matrix(ids, vocab, buckets)
    assert x.shape == (50, vocab + buckets) and set(np.unique(x.data)) == {1.0}
    assert x[0].nnz == 2 and x[0, 5] == 1  # the unigram 5 and the bigram (5, 5)
    idf = idf_weights(x) if kind == "tfidf" else np.ones(vocab + buckets, "float32")
    kernel = rng.normal(size=(vocab + buckets, classes)).astype("float32")
    bias = rng.normal(size=classes).astype("float32")
    layer = NgramLinear(vocab, classes, buckets=buckets, idf=idf, features="binary",
                        normalize=kind == "tfidf")
    layer.build((None, None))
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)
    np.testing.assert_allclose(np.asarray(layer(ids)),
                               linear_logits(x, kind, idf, kernel, bias), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_fit_learns_a_separable_rule_and_records_its_choice(num_classes):
    rng = np.random.default_rng(1)
    vocab = 30

    def data(n):
        ids, labels = _ids(rng, n, vocab, 8), rng.integers(0, num_classes, size=n)
        ids[ids < 6] += 6
        ids[:, 0] = 3 + labels  # the class's own word, among others
        return ids, labels

    ids, labels = data(300)
    layer, record = fit_ngram_linear(ids, labels, num_classes=num_classes, vocab_size=vocab,
                                     buckets=128)
    assert record["kind"] in ("tfidf", "nb") and record["C"] > 0
    assert len(record["cv_accuracy"]) == 6 and max(record["cv_accuracy"].values()) > 0.9
    test, truth = data(200)
    assert (np.asarray(layer(test)).argmax(axis=1) == truth).mean() > 0.9
    assert not layer.trainable
    # A given candidate is fitted as it is (a refit), with no cross-validation.
    _, refit = fit_ngram_linear(ids, labels, num_classes=num_classes, vocab_size=vocab,
                                buckets=128, candidate=("nb", 2.0))
    assert (refit["kind"], refit["C"], refit["cv_accuracy"]) == ("nb", 2.0, {})


def test_a_class_with_one_example_still_fits():
    rng = np.random.default_rng(2)
    ids = _ids(rng, 40, 20, 6)
    labels = np.r_[np.zeros(20, "int64"), np.ones(19, "int64"), [2]]
    layer, record = fit_ngram_linear(ids, labels, num_classes=3, vocab_size=20, buckets=32)
    assert record["cv_accuracy"] == {} and np.asarray(layer(ids)).shape == (40, 3)


def test_blend_leaves_out_a_model_that_does_not_help():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=400)
    informative = np.stack([np.zeros(400), (2 * y - 1) + rng.normal(size=400)], axis=1)
    noise = rng.dirichlet([1, 1], size=400)
    linear_weight, recurrent_weight, loss = fit_blend(informative, noise, y)
    assert linear_weight > 1 and recurrent_weight < 0.15
    # The other way round: a good recurrent model and a useless linear one.
    probs = 1 / (1 + np.exp(-informative[:, 1]))
    linear_weight, recurrent_weight, _ = fit_blend(rng.normal(size=(400, 2)),
                                                   np.stack([1 - probs, probs], axis=1), y)
    assert recurrent_weight > 1 and linear_weight < 0.15


def test_blend_keeps_the_linear_path_alone_unless_the_gain_is_clear():
    """On a small validation split a useless model still lowers the fitted loss a little (by
    chance); the blend takes it in only if the validation loss falls by more than its standard
    error, else the linear path serves alone (the better bet on small data)."""
    rng = np.random.default_rng(5)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 2, size=60)
        informative = np.stack([np.zeros(60), (2 * y - 1) + rng.normal(size=60)], axis=1)
        noise = rng.dirichlet([1, 1], size=60)
        _, recurrent_weight, _ = fit_blend(informative, noise, y)
        assert recurrent_weight == 0
    # A recurrent model that knows what the linear path does not is kept.
    y = rng.integers(0, 2, size=60)
    half = np.stack([np.zeros(60), np.where(np.arange(60) % 2, 2 * y - 1, 0)], axis=1)
    other = 1 / (1 + np.exp(-np.where(np.arange(60) % 2, 0, 3 * (2 * y - 1))))
    _, recurrent_weight, _ = fit_blend(half, np.stack([1 - other, other], axis=1), y)
    assert recurrent_weight > 0.5


def test_blended_backbone_serves_the_blend_and_drops_an_unused_model(tmp_path):
    import keras

    from seqclf.models import LogitBlend, build_classifier
    from seqclf.models.logit_blend import blend_backbones

    rng = np.random.default_rng(4)
    ids = _ids(rng, 60, 25, 7)
    linear, _ = fit_ngram_linear(ids, ids[:, 0] % 2, num_classes=2, vocab_size=25, buckets=32)
    recurrent = build_classifier("gru", vocab_size=25, num_classes=2, units=4, embedding_dim=4,
                                 seed=0)
    blend = blend_backbones(linear, recurrent, 0.7, 1.3)
    logits = np.asarray(linear(ids))
    z = 0.7 * logits + 1.3 * np.log(recurrent.predict(ids, verbose=0))
    expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(blend.predict(ids, verbose=0), expected, rtol=1e-4, atol=1e-6)
    path = str(tmp_path / "blend.keras")
    blend.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(ids, verbose=0), expected, rtol=1e-4, atol=1e-6)
    alone = blend_backbones(linear, recurrent, 0.7, 0.0)
    assert not any(isinstance(layer, (LogitBlend, keras.Model)) for layer in alone.layers)
    e = np.exp(0.7 * logits)
    np.testing.assert_allclose(alone.predict(ids, verbose=0), e / e.sum(axis=1, keepdims=True),
                               rtol=1e-5)
    with pytest.raises(Exception, match=r"linear_weight.*Received: linear_weight=-1"):
        LogitBlend(-1, 1)


def test_train_fits_the_linear_path_blends_it_and_records_the_exported_score(tmp_path, capsys):
    from seqclf.models import TextClassifier
    from seqclf.run import TrainConfig, train

    out = str(tmp_path / "run")
    metrics = train(TrainConfig(data="word_order/tiny", out=out, model="gru", units=4,
                                embedding_dim=4, epochs=1, steps_per_execution=4))
    printed = capsys.readouterr().out
    assert "linear path: " in printed and "blended" in printed
    blend = metrics["blend"]
    assert blend["linear_path"]["kind"] in ("tfidf", "nb")
    assert metrics["val_accuracy"] == blend["val_accuracy"]  # the exported model's score
    assert metrics["recurrent_val_accuracy"] == pytest.approx(blend["recurrent_val_accuracy"])
    assert metrics["train_seconds"] >= blend["seconds"] > 0
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as f:
        assert json.load(f)["blend"]["linear_weight"] == blend["linear_weight"]
    layers = {layer.name for layer in TextClassifier.from_run(out).backbone.layers}
    assert "ngram_linear" in layers
    assert ("logit_blend" in layers) == (blend["recurrent_weight"] > 0)


def test_inner_cross_validation_keeps_groups_whole():
    """Counterfactual pairs (one word flipped, the label with it) share every other word: a fold
    that trains on one text of a pair and scores the other rewards memorizing the shared words
    against the label. With the run's groups (`--group-column`), a pair stays on one side."""
    from seqclf.linear_path import choose_candidate

    rng = np.random.default_rng(0)
    pairs, vocab, length = 150, 400, 40
    filler = rng.integers(3, vocab, size=(pairs, length))
    ids = np.repeat(filler, 2, axis=0)
    labels = np.tile([0, 1], pairs)
    ids[:, 0] = 1 + labels  # the one word that decides the label
    # ... except in a third of the pairs, whose two texts are the same: a coin flip for anyone.
    ids[: 2 * (pairs // 3), 0] = 1
    groups = np.repeat(np.arange(pairs), 2).astype(str).astype(object)
    x = ngram_matrix(ids, vocab, 64)
    _, _, grouped = choose_candidate(x, labels, 2, seed=0, groups=groups)
    _, _, leaky = choose_candidate(x, labels, 2, seed=0)
    # Whole pairs held out: the deciding word is all a fold can learn from, and it is learnt.
    assert min(grouped.values()) > 0.75
    # Split pairs score every candidate below what it is worth: a text scored against its
    # twin's opposite label (TF-IDF below chance, as on IMDb's counterfactual pairs).
    assert min(leaky.values()) < 0.5
    assert np.mean(list(leaky.values())) < np.mean(list(grouped.values())) - 0.1


def test_unknown_words_and_unseen_bigrams_weigh_nothing():
    """As in scikit-learn's vectorizers, a word outside the vocabulary (id 1) and a bigram never
    seen in training are not features: a test text with one does not have its other features
    scaled down by the TF-IDF norm (a short text would otherwise fall to the bias)."""
    from seqclf.models import NgramLinear

    rng = np.random.default_rng(3)
    vocab, buckets = 30, 64
    train_ids = _ids(rng, 40, vocab, 6)
    train_ids[train_ids == 1] = 2
    labels = rng.integers(0, 2, size=40)
    layer, record = fit_ngram_linear(train_ids, labels, num_classes=2, vocab_size=vocab,
                                     buckets=buckets, candidate=("tfidf", 10.0))
    idf = layer.idf.numpy()
    seen = np.asarray(ngram_matrix(train_ids, vocab, buckets).sum(axis=0)).ravel() > 0
    assert np.all(idf[~seen] == 0) and np.all(idf[seen] > 0)
    text = np.array([[5, 7, 0, 0]])
    with_unknown = np.array([[5, 7, 1, 0]])  # one more word, not in the vocabulary
    assert ngram_matrix(with_unknown, vocab, buckets).nnz == ngram_matrix(text, vocab, buckets).nnz
    np.testing.assert_allclose(np.asarray(layer(with_unknown)), np.asarray(layer(text)),
                               rtol=1e-6)
    # The graph computes what the fit's features say, unknown words included.
    both = np.array([[5, 1, 7, 1], [1, 1, 0, 0]])
    np.testing.assert_allclose(
        np.asarray(layer(both)),
        linear_logits(ngram_matrix(both, vocab, buckets), "tfidf", idf, layer.kernel.numpy(),
                      layer.bias.numpy()), rtol=1e-5, atol=1e-6)
    assert isinstance(layer, NgramLinear)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_the_layer_answers_what_the_fitted_logistic_regression_answers(num_classes):
    """The TF-IDF candidate's layer gives scikit-learn's decision function on the same TF-IDF
    rows (each n-gram's idf applied once, in the features, not again in the kernel)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import normalize

    rng = np.random.default_rng(7)
    vocab, buckets = 50, 64
    ids = _ids(rng, 120, vocab, 8)
    labels = rng.integers(0, num_classes, size=120)
    ids[:, 0] = 3 + labels
    layer, _ = fit_ngram_linear(ids, labels, num_classes=num_classes, vocab_size=vocab,
                                buckets=buckets, candidate=("tfidf", 3.0))
    x = ngram_matrix(ids, vocab, buckets)
    features = normalize(x.multiply(idf_weights(x)).tocsr())  # presence x idf, unit L2 rows
    solver = "liblinear" if num_classes == 2 else "saga"
    reference = LogisticRegression(C=3.0, solver=solver, max_iter=1000,
                                   random_state=0).fit(features, labels)
    logits = np.asarray(layer(ids))
    if num_classes == 2:
        np.testing.assert_allclose(logits[:, 1] - logits[:, 0],
                                   reference.decision_function(features), rtol=1e-3, atol=1e-3)
    else:
        np.testing.assert_allclose(logits, reference.decision_function(features), rtol=1e-3,
                                   atol=1e-3)


def test_naive_bayes_ratios_do_not_depend_on_empty_hash_buckets():
    """The log-count ratios are those of a vectorizer fitted on the training texts: columns no
    training row has (most hash buckets on small data) weigh 0 and do not enter the smoothed
    totals, so more buckets change no ratio of a seen n-gram."""
    import scipy.sparse as sp

    from seqclf.linear_path import NB_ALPHA, nb_ratios

    rng = np.random.default_rng(5)
    vocab, buckets = 30, 64
    ids = _ids(rng, 50, vocab, 6)
    labels = rng.integers(0, 3, size=50)
    x = ngram_matrix(ids, vocab, buckets)
    seen = np.asarray(x.sum(axis=0)).ravel() > 0
    assert not seen.all()  # the test needs empty columns
    wide = sp.hstack([x, sp.csr_matrix((50, 1000))]).tocsr()
    narrow, widened = nb_ratios(x, labels, 3), nb_ratios(wide, labels, 3)
    np.testing.assert_allclose(widened[:x.shape[1]], narrow, rtol=1e-5, atol=1e-6)
    assert np.all(widened[x.shape[1]:] == 0) and np.all(narrow[~seen] == 0)
    # Class 1 against the rest, by hand on the seen columns only.
    dense = x.toarray()[:, seen]
    p = NB_ALPHA + dense[labels == 1].sum(axis=0)
    q = NB_ALPHA + dense[labels != 1].sum(axis=0)
    np.testing.assert_allclose(narrow[seen, 1], np.log(p / p.sum()) - np.log(q / q.sum()),
                               rtol=1e-5)

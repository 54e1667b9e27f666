"""`TextClassifier.explain` and `seqclf explain`: per-token attributions of the predicted class.

The acceptance test trains a small model on the embedded word-order data, whose labels are
decided by a few words (the sentiment adjectives and the contrast or negation word around
them), and checks that the top-weighted token is one of them more often than chance.
"""

import json
import os

import numpy as np
import pytest

from seqclf.cli import main
from seqclf.data import load_spec, word_order
from seqclf.errors import SeqclfError
from seqclf.explain import explain_texts, tokenize
from seqclf.models import TextClassifier

DECISIVE = (set(word_order.POSITIVE) | set(word_order.NEGATIVE)
            | {"but", "although", "yet", "not", "just", "never", "always", "expected"})


@pytest.fixture(scope="module")
def data(tfds_dir):
    train = load_spec("word_order/tiny:train", data_dir=tfds_dir, quiet=True)
    test = load_spec("word_order/tiny:test", data_dir=tfds_dir, quiet=True)
    return train, test


def _train(train, **settings):
    clf = TextClassifier.from_texts(train.texts, train.labels, label_names=train.label_names,
                                    model="gru", units=16, embedding_dim=16, **settings)
    clf.compile()
    clf.fit(train.texts, train.labels, epochs=6, batch_size=16, verbose=0,
            validation_split=0.2 if clf.settings["ngram_buckets"] else None)
    return clf


@pytest.fixture(scope="module")
def clf(data):
    """The default kind of model: recurrent and linear n-gram paths, blended."""
    clf = _train(data[0])
    # The recipe's n-gram path is in the model, and blended in.
    assert clf.settings["ngram_buckets"] and clf.settings["blend"]["linear_weight"] > 0
    return clf


@pytest.fixture(scope="module")
def recurrent(data):
    return _train(data[0], ngram_buckets=0)


def _top1_rate(explanations):
    tops = [e.tokens[int(np.argmax(e.weights))] for e in explanations if e.tokens]
    return np.mean([t in DECISIVE for t in tops])


def _chance_rate(explanations):
    """The expected top-1 hit rate of a uniformly random attribution."""
    return np.mean([np.mean([t in DECISIVE for t in e.tokens]) for e in explanations if e.tokens])


@pytest.mark.parametrize("method", ["occlusion", "gradient_x_input", "integrated_gradients"])
def test_the_deciding_words_weigh_most_more_often_than_at_random(clf, recurrent, data, method):
    model = clf if method == "occlusion" else recurrent
    test = data[1]
    explanations = model.explain(list(test.texts), method=method)
    top1, chance = _top1_rate(explanations), _chance_rate(explanations)
    # Chance is about 0.35 (a third of the words of a text decide it).
    assert top1 > chance + 0.2, (method, top1, chance)


def test_explanations_match_the_model(clf, data):
    texts = list(data[1].texts[:5]) + ["", "Not GOOD, just... bad!"]
    explanations = clf.explain(texts)
    probs = clf.predict(texts)
    for e, text, p in zip(explanations, texts, probs):
        assert e.text == text and e.method == "occlusion"
        assert e.label == clf.label_names[int(p.argmax())]
        assert e.probability == pytest.approx(float(p.max()), abs=1e-5)
        assert len(e.weights) == len(e.tokens)
    assert explanations[-2].tokens == [] and str(explanations[-2]).endswith("(no words)")
    assert explanations[-1].tokens == ["not", "good", "just", "bad"]
    # An occlusion weight is the probability's fall when the token is deleted.
    e = explanations[-1]
    without = clf.predict(["good just bad"])[0, clf.label_names.index(e.label)]
    assert e.weights[0] == pytest.approx(e.probability - without, abs=1e-5)
    assert str(e).startswith(f"{e.label} ({e.probability:.2f}): not(")


def test_tokens_beyond_max_length_are_not_read(clf):
    n = clf.preprocessor.max_length
    text = " ".join(["good"] * n + ["bad", "awful"])
    e = clf.explain([text])[0]
    assert len(e.tokens) == n + 2 and e.weights[n:] == [0.0, 0.0]


def test_gradient_methods_refuse_a_model_with_the_ngram_path(clf):
    with pytest.raises(SeqclfError, match="only the recurrent path.*Received: a model with an "
                                          "NgramLinear layer"):
        clf.explain(["good"], method="integrated_gradients")
    with pytest.raises(SeqclfError, match="Received: method='lime'"):
        clf.explain(["good"], method="lime")
    with pytest.raises(SeqclfError, match="must be a list of texts"):
        explain_texts(clf, "good")


def test_tokenize_matches_the_model_ids(clf):
    tokens, ids = tokenize(clf.preprocessor, ["The plot, was DULL", ""])
    assert tokens == [["the", "plot", "was", "dull"], []]
    assert [[clf.preprocessor.vocabulary[i] for i in row] for row in ids][0][:2] == ["the", "plot"]


def test_cli_explain_on_a_run_directory(clf, tmp_path, capsys):
    run = clf.save_run(str(tmp_path / "run"))
    text = "the ending was not good , just bad"
    html, png = tmp_path / "e.html", tmp_path / "e.png"
    assert main(["explain", run, text, "--json", "--html", str(html), "--png", str(png)]) == 0
    got = json.loads(capsys.readouterr().out)
    expected = clf.explain([text])[0].as_dict()
    assert [t["token"] for t in got["tokens"]] == [t["token"] for t in expected["tokens"]]
    np.testing.assert_allclose([t["weight"] for t in got["tokens"]],
                               [t["weight"] for t in expected["tokens"]], atol=1e-5)
    assert html.read_text().count("<span") == len(got["tokens"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The readable form, and refusals that leave the user's files alone.
    assert main(["explain", run, text]) == 0
    assert capsys.readouterr().out.startswith(f"{got['label']} (")
    assert main(["explain", run, text, "--png", str(html)]) == 2
    assert "`png` must end in one of: .png" in capsys.readouterr().err
    assert main(["explain", run, text, "--html", str(html)]) == 2
    assert "the file exists; seqclf does not replace it" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["e.html", "e.png", "run"]

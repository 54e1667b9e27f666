"""Ensembles: `average_backbones`, the recipe's `members`, and `seqclf train` training them."""

import json
import os

import numpy as np
import pytest

from seqclf.errors import SeqclfError
from seqclf.models import TextClassifier, build_classifier
from seqclf.models.ensemble import average_backbones
from seqclf.recipe import DataStats, choose, resolve


def stats(**kw):
    base = dict(n_train=5000, num_classes=6, smallest_class=80, largest_class=1200,
                length_mean=10.0, length_median=10.0, length_p95=20.0, length_p99=30.0,
                length_max=37, vocabulary=8000, rare_share=0.5, tokens_seen_twice=3500)
    return DataStats(**{**base, **kw})


def test_average_backbones_averages_probabilities_and_checks_its_members():
    members = [build_classifier("gru", vocab_size=30, num_classes=3, units=4, embedding_dim=4,
                                seed=k) for k in range(3)]
    ids = np.random.default_rng(0).integers(2, 30, size=(5, 7))
    each = [m.predict(ids, verbose=0) for m in members]
    assert not np.allclose(each[0], each[1])  # distinct seeds, distinct members
    ensemble = average_backbones(members)
    np.testing.assert_allclose(ensemble.predict(ids, verbose=0), np.mean(each, axis=0),
                               rtol=1e-6)
    assert [layer.name for layer in ensemble.layers[1:4]] == ["member_0", "member_1",
                                                             "member_2"]
    with pytest.raises(SeqclfError, match=r"at least 2 members. Received: 1 backbone"):
        average_backbones(members[:1])
    other = build_classifier("gru", vocab_size=30, num_classes=2, units=4, embedding_dim=4)
    with pytest.raises(SeqclfError, match="same classes"):
        average_backbones([members[0], other])


def test_recipe_trains_one_recurrent_model_and_explicit_members_win():
    # The fitted linear path is blended in instead of an ensemble, at any size of data.
    for kw in ({}, {"n_train": 67_000, "length_mean": 9.0}, {"n_train": 300}):
        assert choose(stats(**kw))[0]["members"] == 1
    values, _, _ = resolve({"members": None}, "fixed", stats())
    assert values["members"] == 1
    values, choices, why = resolve({"members": 2}, "auto", stats())
    assert values["members"] == 2 and choices["members"] == 1
    assert any("members=2" in w for w in why)


def test_from_texts_builds_one_model():
    with pytest.raises(SeqclfError, match=r"trains ensembles. Received: members=3"):
        TextClassifier.from_texts(["good", "bad"], [1, 0], members=3)
    texts = [f"w{i % 50} w{i * 7 % 50} w{i * 3 % 40}" for i in range(1200)]
    classifier = TextClassifier.from_texts(texts, [i % 2 for i in range(1200)], units=4,
                                           embedding_dim=4)
    assert classifier.settings["members"] == 1
    assert not any("given explicitly" in w for w in classifier.settings["recipe_record"]["why"])


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    from seqclf.run import TrainConfig, train

    out = str(tmp_path_factory.mktemp("ensemble") / "run")
    # word_order/tiny brings its own validation split: the members differ by their seed. No
    # linear path: the ensemble alone is the model (test_linear_path covers the blend).
    metrics = train(TrainConfig(data="word_order/tiny", out=out, model="gru", units=4,
                                embedding_dim=4, epochs=1, steps_per_execution=4, members=2,
                                ngram_buckets=0, quiet=True))
    return out, metrics


def test_train_averages_its_members_and_records_each(ensemble_run):
    import tensorflow as tf


    out, metrics = ensemble_run
    assert [(m["member"], m["seed"]) for m in metrics["members"]] == [(0, 0), (1, 1)]
    assert metrics["val_accuracy"] == metrics["members"][0]["val_accuracy"]
    assert metrics["train_seconds"] >= metrics["members"][1]["train_seconds"] > 0
    assert not os.path.exists(os.path.join(out, "members"))  # model.keras holds them all
    with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
        assert json.load(f)["members"] == 2
    run = TextClassifier.from_run(out)
    ids = run.preprocessor(tf.constant(["good movie", "not a good movie at all"]))
    members = [run.backbone.get_layer(f"member_{k}") for k in range(2)]
    each = [m.predict(ids, verbose=0) for m in members]
    assert not np.allclose(each[0], each[1])
    np.testing.assert_allclose(run.backbone.predict(ids, verbose=0), np.mean(each, axis=0),
                               rtol=1e-6)


def test_a_finished_member_is_reused_not_retrained(tmp_path, ensemble_run):
    from seqclf.run import TrainConfig, train
    from seqclf.run_dir import RunDir

    trained = TextClassifier.from_run(ensemble_run[0]).backbone.get_layer("member_1")
    out = str(tmp_path / "run")
    # A run stopped after member 1 finished: its file and record are in members/.
    RunDir(out).save_member(1, trained, {"member": 1, "seed": 1, "val_accuracy": 0.5,
                                         "best_epoch": 1, "epochs": 1, "train_seconds": 7.0})
    # ... and the lock file every `train` leaves in its run directory, which marks it seqclf's.
    open(RunDir(out).file(RunDir.LOCK), "w").close()
    metrics = train(TrainConfig(data="word_order/tiny", out=out, model="gru", units=4,
                                embedding_dim=4, epochs=1, steps_per_execution=4, members=2,
                                ngram_buckets=0, quiet=True))
    assert metrics["members"][1]["train_seconds"] == 7.0
    reused = TextClassifier.from_run(out).backbone.get_layer("member_1")
    for a, b in zip(reused.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_ensemble_exports_and_serves_from_raw_strings(ensemble_run, tmp_path):
    from seqclf.serving import capi

    out, _ = ensemble_run
    classifier = TextClassifier.from_run(out)
    exported = classifier.export(str(tmp_path / "serving"))  # validated through the C API
    texts = ["good movie", "not a good movie at all"]
    with capi.CApiHarness() as h:
        h.load(exported)
        served = h.predict(texts)["probabilities"]
    np.testing.assert_allclose(served, classifier.predict(texts, verbose=0), rtol=1e-5,
                               atol=1e-6)


def test_tune_ensemble_scores_every_subset_of_seeds():
    from bench.tune_ensemble import subset_accuracies

    labels = np.array(["a", "b", "a"])
    probs = {0: np.array([[0.9, 0.1], [0.6, 0.4], [0.4, 0.6]]),  # 1 of 3 right
             1: np.array([[0.6, 0.4], [0.1, 0.9], [0.8, 0.2]])}  # 3 of 3 right
    assert subset_accuracies(probs, labels, ["a", "b"], 1) == pytest.approx([1 / 3, 1.0])
    # Averaged: [0.75, 0.25], [0.35, 0.65], [0.6, 0.4] -> a, b, a: all right.
    assert subset_accuracies(probs, labels, ["a", "b"], 2) == pytest.approx([1.0])


def test_tune_ensemble_scores_rules_for_each_members_epoch():
    from bench.tune_ensemble import epoch_rules

    labels, names = np.array(["a", "a"]), ["a", "b"]
    right, wrong = [[0.9, 0.1]] * 2, [[0.1, 0.9]] * 2
    every_epoch = {  # seed: (val_accuracy, val_loss, probabilities) per epoch
        0: (np.array([0.4, 0.6]), np.array([0.9, 1.0]), np.array([right, wrong])),
        1: (np.array([0.5, 0.9]), np.array([1.1, 0.8]),
            np.array([[[0.2, 0.8]] * 2, [[0.8, 0.2]] * 2])),
    }
    one = epoch_rules(every_epoch, labels, names, 1)
    assert one["each member: best val_accuracy"] == 0.5  # seed 0 picks its wrong epoch 2
    assert one["each member: lowest val_loss"] == 1.0
    assert one["epoch 1 (bound)"] == one["epoch 2 (bound)"] == 0.5
    both = epoch_rules(every_epoch, labels, names, 2)
    # Best val_accuracy: epoch 2 of each, [0.1, 0.9] + [0.8, 0.2] -> b, wrong.
    assert both["each member: best val_accuracy"] == 0.0
    # Lowest val_loss: seed 0's epoch 1 + seed 1's epoch 2 -> [0.85, 0.15]: right.
    assert both["each member: lowest val_loss"] == 1.0
    # Mean val_accuracy [0.45, 0.75] and mean val_loss [1.0, 0.9] both pick epoch 2 for both.
    assert both["one epoch for all: best mean val_accuracy"] == 0.0
    assert both["one epoch for all: lowest mean val_loss"] == 0.0
    assert both["epoch 1 (bound)"] == 1.0 and both["epoch 2 (bound)"] == 0.0


def test_tune_ensemble_pools_members_of_several_runs(tmp_path):
    from bench.tune_ensemble import pooled

    labels, names = np.array(["a", "b", "a"]), np.array(["a", "b"])
    # Two runs' files, one seed each: the same members as above, split across files.
    np.savez(tmp_path / "x.npz", labels=labels, names=names,
             seed0=np.array([[0.9, 0.1], [0.6, 0.4], [0.4, 0.6]]))
    np.savez(tmp_path / "y.npz", labels=labels, names=names,
             seed0=np.array([[0.6, 0.4], [0.1, 0.9], [0.8, 0.2]]))
    files = [str(tmp_path / "x.npz"), str(tmp_path / "y.npz")]
    results = tmp_path / "rows.jsonl"
    assert pooled(files, str(results)) == 0
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["k"], r["subsets"]) for r in rows] == [(1, 2), (2, 1)]
    assert rows[0]["mean"] == pytest.approx((1 / 3 + 1) / 2, abs=1e-4)
    assert rows[1]["mean"] == 1.0
    # Three classes, one text of class b: the averaged probabilities pick a (0.49 vs 0.26),
    # the averaged log-probabilities b (member 1 all but rules a out: 0.001).
    labels, names = np.array(["b"]), np.array(["a", "b", "c"])
    np.savez(tmp_path / "x.npz", labels=labels, names=names, seed0=np.array([[0.98, 0.01, 0.01]]))
    np.savez(tmp_path / "y.npz", labels=labels, names=names, seed0=np.array([[0.001, 0.5, 0.499]]))
    for average, right in (("arithmetic", 0.0), ("geometric", 1.0)):
        results.unlink()
        assert pooled(files, str(results), average=average) == 0
        rows = [json.loads(line) for line in results.read_text().splitlines()]
        assert rows[-1]["k"] == 2 and rows[-1]["average"] == average
        assert rows[-1]["mean"] == right

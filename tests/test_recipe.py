"""The automatic recipe (`seqclf.recipe`) and the wide n-gram path it adds (`NgramLinear`)."""

import json
import os

import numpy as np
import pytest

from seqclf.errors import SeqclfError
from seqclf.recipe import FIXED, RECIPE_FIELDS, DataStats, choose, data_stats, resolve


def stats(**kw):
    base = dict(n_train=8000, num_classes=2, smallest_class=3000, largest_class=5000,
                length_mean=18.0, length_median=18.0,
                length_p95=35.0, length_p99=45.0, length_max=60, vocabulary=15000,
                rare_share=0.45, tokens_seen_twice=8000)
    return DataStats(**{**base, **kw})


def test_data_stats_reads_lengths_classes_and_rare_tokens():
    s = data_stats([5, 1], lengths=[1, 2, 3, 4, 100], token_counts=[3, 1, 1, 0, 2])
    assert (s.n_train, s.num_classes, s.smallest_class, s.largest_class) == (5, 2, 1, 5)
    assert s.length_median == 3 and s.length_max == 100
    assert s.vocabulary == 4 and s.rare_share == 0.5 and s.tokens_seen_twice == 2
    assert data_stats([5, 1], [1] * 6, [1], n_train=600).n_train == 600  # a sample of a stream


def test_recipe_covers_every_field_and_explains_itself():
    settings, why = choose(stats())
    assert set(settings) == set(RECIPE_FIELDS)
    assert settings["max_length"] == 64  # the longest text (60) rounded up to a multiple of 8
    assert settings["pooling"] == "last"
    assert settings["max_tokens"] == 15002  # every training token, plus padding and OOV
    assert len(why) >= 3 and all(isinstance(w, str) for w in why)


def test_small_data_trains_longer_large_data_keeps_three_epochs():
    small, _ = choose(stats(n_train=20, smallest_class=1))
    large, _ = choose(stats(n_train=67_000))
    assert small["epochs"] > large["epochs"]
    assert large["epochs"] == 3 and large["patience"] == 2  # early stopping that stops
    assert small["epochs"] <= 30
    # Long texts: the token budget (1.5 M tokens read) binds before the step budget.
    long, _ = choose(stats(n_train=3000, length_mean=170, length_median=160))
    assert long["epochs"] == 3


def test_bow_stays_order_blind():
    assert choose(stats(), model="bow")[0]["ngram_buckets"] == 0
    assert choose(stats(), model="gru")[0]["ngram_buckets"] > 0


def test_long_texts_are_pooled_and_cut_at_the_cap():
    long, why = choose(stats(length_mean=300, length_median=160, length_p99=3000,
                             length_max=9000))
    assert long["pooling"] == "max"
    assert long["max_length"] == 512
    assert any("long texts" in w for w in why)


def test_many_classes_and_imbalance_still_get_a_recipe():
    many, _ = choose(stats(num_classes=50, smallest_class=2))
    assert set(many) == set(RECIPE_FIELDS)
    skewed, why = choose(stats(smallest_class=1))
    assert skewed["epochs"] >= 3
    assert any("1 training examples" in w for w in why)
    assert any("imbalanced" in w for w in why)


def test_explicit_values_override_the_recipe_and_are_reported():
    values, choices, why = resolve({"pooling": "mean", "epochs": None, "batch_size": 32},
                                   "auto", stats())
    assert values["pooling"] == "mean"  # the user's
    assert choices["pooling"] == "last"  # what the recipe would have chosen
    assert values["epochs"] == choices["epochs"]
    assert any("pooling='mean'" in w for w in why)


def test_fixed_recipe_is_the_pre_recipe_defaults():
    values, _, _ = resolve(dict.fromkeys(RECIPE_FIELDS), "fixed", stats(n_train=20))
    assert {k: values[k] for k in RECIPE_FIELDS} == FIXED


def test_unknown_recipe_is_an_error():
    with pytest.raises(SeqclfError, match=r"Received: recipe='magic'"):
        resolve({}, "magic", stats())


def test_ngram_indices_hash_bigrams_of_real_tokens_only():
    import tensorflow as tf

    from seqclf.models.ngram_linear import ngram_indices

    ids = tf.constant([[5, 6, 7, 0], [6, 5, 0, 0]], dtype=tf.int64)
    index, mask = ngram_indices(ids, vocab_size=10, buckets=16)
    index, mask = index.numpy(), mask.numpy()
    assert index.shape == (2, 7)
    assert index[0, :3].tolist() == [5, 6, 7] and index[1, :2].tolist() == [6, 5]
    assert mask.tolist() == [[1, 1, 1, 0, 1, 1, 0], [1, 1, 0, 0, 1, 0, 0]]
    bigrams = index[mask.astype(bool)]
    assert (bigrams[[3, 4, 7]] >= 10).all() and (bigrams[[3, 4, 7]] < 26).all()
    # Word order matters: "5 6" and "6 5" are different bigrams.
    assert index[0, 4] != index[1, 4]
    assert (index[~mask.astype(bool)] == 0).all()


def test_idf_is_smoothed_document_frequency():
    from seqclf.models.ngram_linear import ngram_idf

    batches = [np.array([[2, 3, 3], [2, 0, 0]]), np.array([[2, 4, 0]])]
    idf = ngram_idf(batches, vocab_size=5, buckets=8)
    assert idf[0] == 0.0
    assert idf[2] == pytest.approx(1.0)  # in every document
    assert idf[3] == pytest.approx(np.log(4 / 2) + 1)  # once per document, although twice
    assert idf[1] == pytest.approx(np.log(4 / 1) + 1)  # never seen


def test_ngram_linear_is_normalised_tfidf_times_weights():
    import keras

    from seqclf.models.ngram_linear import NgramLinear, ngram_indices

    layer = NgramLinear(vocab_size=6, units=2, buckets=8, idf=np.arange(14, dtype="float32"),
                        scale=4.0)
    ids = np.array([[2, 3, 0], [4, 0, 0]])
    layer.build(ids.shape)
    kernel = np.random.default_rng(0).normal(size=(14, 2)).astype("float32")
    layer.kernel.assign(kernel)
    got = keras.ops.convert_to_numpy(layer(ids))
    index, mask = (t.numpy() for t in ngram_indices(ids, 6, 8))
    for row in range(2):
        rows = index[row][mask[row]]
        w = np.arange(14)[rows].astype("float32")
        want = layer.scale * (w[:, None] * kernel[rows]).sum(0) / np.sqrt((w ** 2).sum())
        np.testing.assert_allclose(got[row], want, rtol=1e-5)


def test_ngram_linear_rejects_bad_arguments():
    from seqclf.models.ngram_linear import NgramLinear

    with pytest.raises(SeqclfError, match="Received: buckets=0"):
        NgramLinear(vocab_size=5, units=2, buckets=0)
    with pytest.raises(SeqclfError, match=r"Received: shape=\(3,\)"):
        NgramLinear(vocab_size=5, units=2, buckets=4, idf=np.ones(3))


def test_wide_model_round_trips_through_keras_file(tmp_path):
    import keras

    from seqclf.models import build_classifier

    model = build_classifier("gru", vocab_size=20, num_classes=3, embedding_dim=4, units=4,
                             ngram_buckets=32, ngram_idf=np.linspace(0, 2, 52), seed=0)
    wide = model.get_layer("ngram_linear")
    wide.kernel.assign(np.random.default_rng(1).normal(size=(52, 3)).astype("float32"))
    ids = np.array([[3, 4, 5, 0], [7, 2, 0, 0]])
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0),
                               rtol=1e-6)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded.get_layer("ngram_linear").idf), np.linspace(0, 2, 52),
        rtol=1e-6)


def _recipe_lines(out):
    """The lines `train` prints under "recipe auto:", one per decision."""
    lines = out.splitlines()
    start = lines.index("recipe auto:") + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("  - ")),
               len(lines))
    return lines[start:end]


def test_train_prints_the_recipe_one_decision_a_line(tmp_path, capsys):
    from seqclf.run import TrainConfig, train

    out = str(tmp_path / "run")
    train(TrainConfig(data="word_order/tiny", out=out, model="gru", units=4, embedding_dim=4,
                      epochs=1, steps_per_execution=4, pooling="mean"))
    printed = _recipe_lines(capsys.readouterr().out)
    assert len(printed) <= 6 and all(len(line) <= 160 for line in printed)
    assert "  - given explicitly: epochs=1, pooling='mean'" in printed
    with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    record = config["recipe_record"]
    assert record["inputs"]["n_train"] == 600 and record["inputs"]["num_classes"] == 2
    assert set(record["choices"]) == set(RECIPE_FIELDS)
    assert config["pooling"] == "mean" and config["epochs"] == 1
    assert config["max_length"] == record["choices"]["max_length"]


def test_bow_with_pooling_names_both_flags(tmp_path):
    from seqclf.run import TrainConfig, train

    with pytest.raises(SeqclfError, match=r"--pooling.*--model bow.*Received: pooling='max'"):
        train(TrainConfig(data="word_order/tiny", out=str(tmp_path / "r"), model="bow",
                          pooling="max", epochs=1))


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, r"`epochs` must be a positive integer or None. Received: epochs=0"),
    ("ngram_buckets", -1, r"`ngram_buckets` must be an integer >= 0 or None\. "
                          r"Received: ngram_buckets=-1"),
    ("ngram_buckets", True, r"Received: ngram_buckets=True"),
])
def test_bad_settings_fail_before_any_data_is_read(tmp_path, field, value, message):
    from seqclf.run import TrainConfig, train

    # The data spec does not exist: the settings are refused before it is looked at.
    with pytest.raises(SeqclfError, match=message):
        train(TrainConfig(data=str(tmp_path / "missing.tsv"), out=str(tmp_path / "r"),
                          **{field: value}))


def _tsv(path, rows):
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows),
                    encoding="utf-8")
    return str(path)


WORDS = "good bad fine dull superb awful plot cast film story".split()


def _text(rng, n):
    return " ".join(rng.choice(WORDS, size=n))


@pytest.mark.parametrize("case", ["20_rows", "one_row_class", "50_classes", "imbalanced",
                                  "very_long"])
def test_recipe_on_awkward_data_trains_and_says_what_it_chose(tmp_path, case, capsys):
    from seqclf.run import TrainConfig, train

    rng = np.random.default_rng(0)
    if case == "20_rows":
        rows = [(_text(rng, 5), i % 2) for i in range(20)]
    elif case == "one_row_class":
        rows = [(_text(rng, 5), i % 2) for i in range(40)] + [("a lone example", "rare")]
    elif case == "50_classes":
        rows = [(_text(rng, 4), f"c{i % 50}") for i in range(150)]
    elif case == "imbalanced":
        rows = [(_text(rng, 6), int(i % 20 == 0)) for i in range(200)]
    else:
        rows = [(_text(rng, 3000 if i < 4 else 60), i % 2) for i in range(30)]
    out = str(tmp_path / "run")
    metrics = train(TrainConfig(data=_tsv(tmp_path / "d.tsv", rows), out=out, model="gru",
                                units=4, embedding_dim=4, epochs=1, steps_per_execution=4))
    said = "\n".join(_recipe_lines(capsys.readouterr().out))
    assert said
    with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    assert 8 <= config["max_length"] <= 512
    assert metrics["n_train"] + metrics["n_val"] == len(rows)
    if case == "one_row_class":
        assert "has 1 training examples" in said
        # 2 + 2 held out of the two big classes, none of the lone one (it is trained on).
        assert config["label_names"][-1] == "rare" and metrics["n_val"] == 4
    if case == "50_classes":
        assert len(config["label_names"]) == 50
    if case == "imbalanced":
        assert "imbalanced" in said
    if case == "very_long":
        assert config["max_length"] == 512 and config["pooling"] == "max"
        assert metrics["truncated_train_texts"] >= 1

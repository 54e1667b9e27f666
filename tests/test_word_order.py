"""The embedded word-order dataset: a real TFDS builder whose pairs defeat bag-of-words."""

import collections

import numpy as np
import pytest
import tensorflow_datasets as tfds

from seqclf.data import SeqclfWordOrder, load_spec
from seqclf.data.word_order import NEGATIVE, POSITIVE, TEMPLATES, generate_pairs


def test_pairs_share_word_multiset_and_have_opposite_labels():
    for _, template, members in generate_pairs("train", 300, 0, seed=7):
        (t1, y1), (t2, y2) = members
        assert template in TEMPLATES
        assert collections.Counter(t1.split()) == collections.Counter(t2.split())
        assert {y1, y2} == {0, 1}
        assert t1 != t2


def test_generation_is_deterministic_and_seeded():
    a = list(generate_pairs("test", 50, 25, seed=1))
    b = list(generate_pairs("test", 50, 25, seed=1))
    c = list(generate_pairs("test", 50, 25, seed=2))
    assert a == b
    assert a != c


def test_adjective_combinations_are_held_out_per_split():
    def combos(split):
        seen = set()
        for _, _, members in generate_pairs(split, 2000, 0, seed=0):
            words = set(members[0][0].split())
            seen.add((frozenset(words & set(POSITIVE)), frozenset(words & set(NEGATIVE))))
        return seen

    train, test = combos("train"), combos("test")
    assert train and test
    assert not train & test  # test combinations never occur in training
    # ... but every sentiment word itself is seen in training.
    train_words = set().union(*(p | n for p, n in train))
    assert set(POSITIVE) | set(NEGATIVE) <= train_words


@pytest.mark.parametrize("distance", [25, 100, 200])
def test_long_range_configs_put_distance_between_cue_and_end(distance):
    for _, _template, members in generate_pairs("train", 30, distance, seed=0):
        text = members[0][0]
        # The filler follows the cue sentence after the first " . ".
        _, _, filler = text.partition(" . ")
        words = [w for w in filler.split() if w != "."]
        assert len(words) >= distance
        assert not set(words) & (set(POSITIVE) | set(NEGATIVE) | {"not", "but", "never"})


def test_tfds_load_works_offline_with_declared_schema(tfds_dir):
    ds, info = tfds.load("seqclf_word_order/tiny", split="test", data_dir=tfds_dir, with_info=True)
    assert info.features["label"].names == ["negative", "positive"]
    assert info.supervised_keys == ("text", "label")
    assert set(info.splits) == {"train", "validation", "test"}
    assert info.splits["train"].num_examples == 600
    example = next(iter(ds))
    assert set(example) == {"text", "label", "pair_id", "template"}
    assert "seqclf_word_order/distance_200" in [
        f"seqclf_word_order/{c.name}" for c in SeqclfWordOrder.BUILDER_CONFIGS
    ]


def test_bag_of_words_cannot_separate_a_split(tfds_dir):
    data = load_spec("word_order/tiny:test", data_dir=tfds_dir)
    by_bag = collections.defaultdict(list)
    for text, label in zip(data.texts, data.labels):
        by_bag[tuple(sorted(text.split()))].append(label)
    # Every bag of words appears once with each label: the best order-blind rule scores 50%.
    best = sum(max(collections.Counter(v).values()) for v in by_bag.values()) / len(data)
    assert best == pytest.approx(0.5)
    assert np.bincount(data.labels).tolist() == [100, 100]


def test_preparing_the_embedded_data_prints_one_line_not_tfds_download_noise(tmp_path, capfd):
    """The first run on a fresh machine prepares the generated dataset. TFDS would announce a
    "Downloading and preparing dataset Unknown size" (nothing is downloaded), warn through absl
    that the new folder has no dataset_info.json, and draw its own bars inside seqclf's."""
    data = load_spec("word_order/tiny:test", data_dir=str(tmp_path))
    out, err = capfd.readouterr()
    assert len(data.texts) > 0
    assert "Downloading" not in out + err and "dataset_info" not in out + err, out + err
    assert "Generating" not in err and "Shuffling" not in err, err
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) == 1 and "word_order/tiny" in lines[0] and str(tmp_path) in lines[0], lines
    # Prepared once: a second load says nothing.
    load_spec("word_order/tiny:test", data_dir=str(tmp_path))
    out, err = capfd.readouterr()
    assert not (out + err).strip(), out + err
    # --quiet: nothing at all, even when preparing.
    load_spec("word_order/tiny:test", data_dir=str(tmp_path / "other"), quiet=True)
    out, err = capfd.readouterr()
    assert not (out + err).strip(), out + err

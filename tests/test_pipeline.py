"""The tf.data pipeline: bucketing, truncation, determinism, and the order-blind control."""

import numpy as np
import pytest
import tensorflow as tf

from seqclf import _compat
from seqclf.data import (
    bucket_boundaries,
    make_dataset,
    make_vectorizer,
    shuffle_words,
    token_lengths,
)
from seqclf.data.pipeline import bucket_batch_sizes, pad_ids, ragged_twin
from seqclf.errors import SeqclfError

TEXTS = np.array(
    [" ".join(f"w{j}" for j in range(n)) for n in [1, 2, 3, 3, 4, 20, 21, 22, 25, 40, 41, 2]]
    + ["!!!", "unseen words only"],
    dtype=object,
)
LABELS = np.arange(len(TEXTS)) % 2


def _batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_vectorizer_is_adapted_on_given_texts_only():
    v = make_vectorizer(TEXTS[:5], max_tokens=100)
    vocab = v.get_vocabulary()
    assert vocab[:2] == ["", "[UNK]"]
    assert "w0" in vocab and "w30" not in vocab
    rebuilt = make_vectorizer(vocabulary=vocab)
    assert rebuilt.get_vocabulary() == vocab


def test_bucketing_pads_far_less_than_random_batches():
    v = make_vectorizer(TEXTS, max_tokens=100)
    bucketed = _batches(make_dataset(TEXTS, LABELS, v, batch_size=4, shuffle=True, seed=0))
    plain = _batches(make_dataset(TEXTS, LABELS, v, batch_size=4, shuffle=True, seed=0,
                                  bucketing=False))
    pad = lambda batches: sum(int((x == 0).sum()) for x, _ in batches)  # noqa: E731
    assert sum(len(y) for _, y in bucketed) == len(TEXTS)  # nothing dropped
    assert pad(bucketed) < pad(plain) / 2
    for x, _ in bucketed:  # right padding: zeros only after the real tokens
        for row in x:
            n = int((row != 0).sum())
            assert (row[:n] != 0).all() and (row[n:] == 0).all()


def test_batch_tokens_grows_batches_of_short_texts_only():
    assert bucket_batch_sizes([3, 5, 21], 4) == [4, 4, 4, 4]
    # Buckets hold lengths < 3, < 5, < 21 and the rest: 16 tokens / longest length, at least 4.
    assert bucket_batch_sizes([3, 5, 21], 4, batch_tokens=16) == [8, 4, 4, 4]
    with pytest.raises(SeqclfError, match="Received: batch_tokens=0"):
        bucket_batch_sizes([3], 4, batch_tokens=0)
    v = make_vectorizer(TEXTS, max_tokens=100)
    ds = make_dataset(TEXTS, LABELS, v, batch_size=2, boundaries=[3, 5, 21], batch_tokens=16)
    batches = _batches(ds)
    assert sum(len(y) for _, y in batches) == len(TEXTS)  # nothing dropped
    # Four texts have 1-2 tokens (an empty one becomes one OOV token): one batch of all four,
    # where batch_size alone would make two.
    assert [len(y) for x, y in batches if x.shape[1] <= 2] == [4]
    assert all(len(y) <= 2 for x, y in batches if x.shape[1] > 4)


def test_truncation_and_empty_texts():
    v = make_vectorizer(TEXTS[:12], max_tokens=100)
    lengths = token_lengths(v, TEXTS)
    assert lengths[9] == 40 and lengths[12] == 0
    ds = make_dataset(TEXTS, LABELS, v, batch_size=64, max_length=8, bucketing=False)
    (x, _), = _batches(ds)
    assert x.shape == (len(TEXTS), 8)
    # "!!!" has no tokens: it becomes one OOV id rather than a fully masked row.
    assert x[12].tolist() == [1] + [0] * 7
    assert x[13][:3].tolist() == [1, 1, 1]


def test_same_seed_same_batches_other_seed_other_order():
    v = make_vectorizer(TEXTS, max_tokens=100)
    run = lambda seed: [y.tolist() for _, y in _batches(  # noqa: E731
        make_dataset(TEXTS, np.arange(len(TEXTS)), v, batch_size=3, shuffle=True, seed=seed))]
    assert run(1) == run(1)
    assert run(1) != run(2)


def test_pipeline_order_is_map_cache_shuffle_bucket_prefetch():
    v = make_vectorizer(TEXTS, max_tokens=100)
    ds = make_dataset(TEXTS, LABELS, v, batch_size=4, shuffle=True)
    graph = _compat.dataset_graph_def(ds)
    ops = [n.op for n in graph.node]  # the dataset graph lists its ops source-first
    order = [o for o in ops if o in ("ParallelMapDatasetV2", "CacheDatasetV2", "ShuffleDatasetV3",
                                     "PaddedBatchDatasetV2", "FlatMapDataset", "PrefetchDataset")]
    # Bucketing = a padded pool, sorted and split into batches (flat map), batches reshuffled.
    assert order == ["ParallelMapDatasetV2", "CacheDatasetV2", "ShuffleDatasetV3",
                     "PaddedBatchDatasetV2", "FlatMapDataset", "ShuffleDatasetV3",
                     "PrefetchDataset"], order


def test_sorted_pools_give_full_batches_of_similar_length(monkeypatch):
    from seqclf.data import pipeline

    monkeypatch.setattr(pipeline, "POOL_BATCHES", 5)  # pools of 5 batches: several pools
    rng = np.random.default_rng(0)
    n = 122
    texts = [" ".join(["w"] * int(k)) for k in rng.integers(1, 30, size=n)]
    v = make_vectorizer(texts, max_tokens=10)
    batches = _batches(make_dataset(texts, np.arange(n), v, batch_size=4, shuffle=True, seed=1))
    ids = sorted(int(i) for _, y in batches for i in y)
    assert ids == list(range(n))  # every example exactly once
    # Full batches except the last pool's last (pools of 20: 6 full pools + one of 2 examples),
    # so `seqclf train`'s ceil(n / batch_size) steps per epoch holds.
    assert len(batches) == -(-n // 4)
    assert sorted(len(y) for _, y in batches)[1:] == [4] * (len(batches) - 1)
    lengths = np.array([len(t.split()) for t in texts])
    for x, y in batches:
        # Padded to the batch's own longest text, which is its longest member.
        assert x.shape[1] == lengths[y.astype(int)].max()
    # A pool's batches are cut from its examples sorted by length: padding is far below random
    # batches of 4.
    padded = sum(x.size for x, _ in batches)
    plain = _batches(make_dataset(texts, np.arange(n), v, batch_size=4, shuffle=True, seed=1,
                                  bucketing=False))
    assert padded < 0.75 * sum(x.size for x, _ in plain)


@pytest.mark.parametrize("kwargs", [{"shuffle": True}, {"bucketing": False}])
def test_dataset_declares_its_number_of_batches(kwargs, monkeypatch):
    from seqclf.data import pipeline

    monkeypatch.setattr(pipeline, "POOL_BATCHES", 3)  # several pools, the last one partial
    n = 47
    texts = [" ".join(["w"] * (1 + i % 9)) for i in range(n)]
    v = make_vectorizer(texts, max_tokens=10)
    ds = make_dataset(texts, np.arange(n), v, batch_size=5, seed=2, **kwargs)
    # Declared, so model.fit knows the epoch's length; and true (iterating would fail if not).
    assert int(ds.cardinality()) == -(-n // 5) == len(_batches(ds))


def test_fit_with_steps_per_epoch_trains_every_epoch_in_full():
    # `fit(steps_per_epoch=ceil(n / batch_size))` (`--steps-per-epoch`, or a user's own fit)
    # with 16 steps per call: with an undeclared number of batches, Keras 3.15 kept the
    # exhausted iterator into the next epoch, which then trained no step at all.
    from seqclf.models import build_classifier, compile_classifier
    from seqclf.optimizers import make_optimizer

    n, batch_size, epochs = 200, 16, 3
    texts = [" ".join([f"w{i % 7}"] * (1 + i % 9)) for i in range(n)]
    v = make_vectorizer(texts, max_tokens=20)
    ds = make_dataset(texts, np.arange(n) % 2, v, batch_size=batch_size, shuffle=True, seed=0)
    model = build_classifier("bow", vocab_size=20, num_classes=2, units=4, embedding_dim=4)
    compile_classifier(model, make_optimizer("adam", 1e-3), steps_per_execution=16)
    steps = -(-n // batch_size)
    model.fit(ds, epochs=epochs, steps_per_epoch=steps, verbose=0)
    assert int(model.optimizer.iterations) == epochs * steps


def test_token_budget_batches_leave_their_number_undeclared():
    texts = [" ".join(["w"] * (1 + i % 9)) for i in range(40)]
    v = make_vectorizer(texts, max_tokens=10)
    ds = make_dataset(texts, np.arange(40), v, batch_size=2, batch_tokens=16)
    assert int(ds.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    assert sum(len(y) for _, y in _batches(ds)) == 40


def test_bucket_boundaries_follow_length_quantiles():
    b = bucket_boundaries(np.r_[np.full(50, 5), np.full(50, 30)], num_buckets=4)
    assert b == sorted(b) and b[0] <= 6 and b[-1] >= 30


def test_shuffle_words_keeps_the_multiset():
    out = shuffle_words(["a b c d e f g", "x"], seed=3)
    assert sorted(out[0].split()) == list("abcdefg") and out[0] != "a b c d e f g"
    assert out[1] == "x"
    assert shuffle_words(["a b c d e f g"], seed=3)[0] == out[0]


def test_ragged_twin_follows_a_new_vocabulary_of_the_same_size():
    # Re-adapting at max_tokens keeps the vocabulary's size; the twin (which serving and the
    # end-to-end model use) must not keep the old one.
    v = make_vectorizer(["good bad"], max_tokens=10)
    first = ragged_twin(v)(tf.constant(["good awful"])).to_list()
    v.set_vocabulary(["awful", "great"])
    assert len(v.get_vocabulary()) == 4
    second = ragged_twin(v)(tf.constant(["good awful"])).to_list()
    assert second == [[1, 2]] != first
    assert ragged_twin(ragged_twin(v)) is ragged_twin(v)


def test_pad_ids_cuts_each_row_then_pads_and_reads_empty_rows_as_oov():
    ragged = tf.ragged.constant([[5, 2], [6, 3, 3, 2, 4], []], dtype=tf.int64)
    expected = [[5, 2, 0], [6, 3, 3], [1, 0, 0]]
    assert pad_ids(ragged, 3).numpy().tolist() == expected
    # A huge max_length must not overflow the ragged row offsets (it turned rows into OOV).
    assert pad_ids(ragged, 2**63 - 1).numpy().tolist() == [[5, 2, 0, 0, 0], [6, 3, 3, 2, 4],
                                                           [1, 0, 0, 0, 0]]
    empty = tf.ragged.constant([[], []], dtype=tf.int64)
    assert pad_ids(empty, 3).numpy().tolist() == [[1], [1]]

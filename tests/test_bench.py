"""The benchmark harness (`python -m bench`): CLI, results writer, pair accuracy. No timing."""

import json
import math
import subprocess
import sys

import pytest

from bench.bench_pairs import pair_accuracy
from bench.harness import REPO
from bench.report import check_targets, render_markdown, stat_row, summarize, write_results


def test_help_lists_options_and_figures():
    proc = subprocess.run([sys.executable, "-m", "bench", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for word in ("--quick", "--only", "--repeats", "throughput", "imdb_pairs", "memory"):
        assert word in proc.stdout


def test_unknown_figure_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "bench", "--only", "nope"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown figure nope" in proc.stderr


def test_summarize_median_and_spread():
    s = summarize([3.0, 1.0, 2.0, float("nan"), None])
    assert (s["median"], s["min"], s["max"], s["n"]) == (2.0, 1.0, 3.0, 3)
    assert summarize([])["median"] is None


def fake_results():
    return {
        "command": "python -m bench --quick",
        "quick": True,
        "repeats": 2,
        "started": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T00:05:00+00:00",
        "machine": {"cpu": "Test CPU", "logical cores": 2, "ram": "1.0 GiB"},
        "versions": {"python": "3.11.0", "torch": "2.13.0+cpu", "seqclf git commit": "abc123"},
        "defaults": {"model": "lstm", "units": 64, "epochs": 3},
        "figures": [
            {
                "name": "throughput",
                "title": "Training throughput",
                "commands": ["python -m bench.bench_torch --repeats 2"],
                "rows": [
                    stat_row("rate:seqclf", "seqclf", "samples/s", [4000.0, 4200.0]),
                    stat_row("rate:torch", "torch", "samples/s", [3000.0, 3100.0]),
                    stat_row("ratio:seqclf/tutorial:2", "ratio seqclf / tutorial", "x", [2.4, 2.8]),
                    stat_row("ratio:seqclf/tutorial:1", "ratio seqclf / tutorial", "x", [2.0, 2.2]),
                    stat_row("ratio:seqclf/torch:2", "ratio seqclf / torch", "x", [1.3, 1.4]),
                    stat_row("ratio:seqclf/torch:1", "ratio seqclf / torch", "x", [1.1, 1.1]),
                ],
                "notes": ["a note"],
                "wall_s": 12.0,
            },
            {"name": "serving", "title": "Serving", "commands": [], "rows": [], "notes": [],
             "error": "exit status 1: boom", "wall_s": 1.0},
        ],
    }


def test_write_results_md_and_json(tmp_path):
    results = fake_results()
    results["targets"] = check_targets(results["figures"])
    md_path, json_path = write_results(results, tmp_path / "out")
    assert json.loads(json_path.read_text()) == results
    md = md_path.read_text()
    assert "NOT benchmark figures" in md
    assert "| cpu | Test CPU |" in md and "| torch | 2.13.0+cpu |" in md
    assert "| seqclf | 4,100 | 4,000-4,200 | samples/s | 2 |" in md
    assert "python -m bench.bench_torch --repeats 2" in md
    assert "* a note" in md
    assert "**FAILED**" in md and "boom" in md
    # Targets: ratio medians 2.6 (>= 2.5) and 1.35 (>= 1.0).
    assert ("| seqclf LSTM throughput >= 2.5x tutorial recipe (warm epoch) | 2.60x (cold first "
            "epoch: 2.10x) | yes |") in md
    assert "| seqclf LSTM throughput >= 1.0x PyTorch reference (warm epoch) | 1.35x" in md


def test_single_value_rows_have_no_spread():
    results = fake_results()
    results["quick"] = False
    results["figures"] = [{"name": "m", "title": "M", "commands": [], "notes": [],
                           "rows": [stat_row("k", "peak RSS", "MiB", [512.0])]}]
    md = render_markdown(results)
    assert "| peak RSS | 512 |  | MiB | 1 |" in md
    assert "NOT benchmark figures" not in md


def test_pair_accuracy_needs_both_members_right():
    pairs = ["a", "a", "b", "b", "c", "c", "d", "d"]
    correct = [True, True, True, False, False, True, False, False]
    assert pair_accuracy(pairs, correct) == (0.25, 4)
    # Pair ids need not be adjacent.
    assert pair_accuracy([1, 2, 1, 2], [True, True, True, False]) == (0.5, 2)


def test_pair_accuracy_empty():
    share, n = pair_accuracy([], [])
    assert n == 0 and math.isnan(share)


@pytest.mark.parametrize("drop,met", [(0.05, True), (0.01, False)])
def test_targets_order_drop(drop, met):
    rows = [stat_row("acc:lstm:accuracy", "", "", [0.87]),
            stat_row("acc:lstm:order_drop", "", "", [drop])]
    targets = {t["target"]: t for t in check_targets([{"rows": rows}])}
    assert targets["best recurrent default SST-2 dev accuracy >= 0.86"]["met"]
    assert targets["its shuffled_accuracy >= 4 points below its accuracy"]["met"] is met


@pytest.mark.parametrize("bidirectional,layers,pooling", [
    (False, 1, "last"), (True, 2, "last"), (False, 1, "max"), (True, 1, "mean"),
])
def test_torch_reference_computes_what_the_keras_model_computes(bidirectional, layers, pooling):
    """Same weights, same ids (seqclf's vectorizer), same probabilities: the models are alike."""
    torch = pytest.importorskip("torch", reason="the PyTorch reference needs the `bench` extra")
    import dataclasses

    import numpy as np

    from bench.bench_pipeline import build_lstm, default_config
    from bench.bench_torch import torch_model_like, vectorize_ids
    from seqclf.data import make_vectorizer

    if pooling != "last" and not hasattr(default_config(), "pooling"):
        pytest.skip("this seqclf has no `pooling` setting")
    texts = ["not good , just bad", "a fine film", "", "the plot was dull but the cast superb"]
    vectorizer = make_vectorizer(texts, max_tokens=100)
    config = dataclasses.replace(default_config(), units=8, embedding_dim=6,
                                 bidirectional=bidirectional, layers=layers,
                                 **({"pooling": pooling} if pooling != "last" else {}))
    keras_model = build_lstm(config, vectorizer, seed=1)
    torch_model = torch_model_like(keras_model, config, num_classes=2).eval()
    ids, lengths = vectorize_ids(vectorizer, texts, config.max_length)
    assert lengths.tolist() == [4, 3, 1, 8]  # the empty text is one OOV token, as in seqclf
    with torch.no_grad():
        logits = torch_model(torch.from_numpy(ids), torch.from_numpy(lengths))
    expected = keras_model.predict(ids, verbose=0)
    np.testing.assert_allclose(torch.softmax(logits, 1).numpy(), expected, atol=1e-5)


def test_torch_reference_mirrors_lazy_adam_with_sparse_adam():
    """seqclf's default `lazy_adam` → SparseAdam on the embedding: rows no batch used stay put."""
    pytest.importorskip("torch", reason="the PyTorch reference needs the `bench` extra")
    import dataclasses

    import numpy as np

    from bench.bench_pipeline import build_lstm, default_config
    from bench.bench_torch import make_training, torch_model_like, train_epoch, vectorize_ids
    from seqclf.data import make_vectorizer

    texts = ["not good , just bad", "a fine film", "the plot was dull but the cast superb"]
    vectorizer = make_vectorizer(texts, max_tokens=100)
    config = dataclasses.replace(default_config(), units=8, embedding_dim=6,
                                 optimizer="lazy_adam", clipnorm=0.01, dropout=0.0,
                                 embedding_dropout=0.0)
    model = torch_model_like(build_lstm(config, vectorizer, seed=1), config, num_classes=2)
    assert model.embedding.sparse
    ids, lengths = vectorize_ids(vectorizer, texts[:2], config.max_length)
    before = model.embedding.weight.detach().numpy().copy()
    training = make_training(model, config, total_steps=4)
    train_epoch(model, training, ids, lengths, np.array([0, 1]), 2, np.random.default_rng(0))
    after = model.embedding.weight.detach().numpy()
    used = np.unique(ids[ids > 0])
    unused = np.setdiff1d(np.arange(len(before)), used)
    np.testing.assert_array_equal(after[unused], before[unused])
    # Adam's first step moves each used element by about the learning rate, clipped or not.
    moved = np.abs(after[used] - before[used])
    assert np.all(moved > 0.5 * config.learning_rate) and np.all(moved < 2 * config.learning_rate)

"""Acceptance figures with the CLI's defaults (slow tier: `python -m pytest -m slow`)."""

import json

import pytest

from seqclf.cli import main

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("model, low, high", [("lstm", 0.98, 1.0), ("bow", 0.0, 0.60)])
def test_word_order_needs_order(model, low, high, tmp_path, capsys):
    data_dir = str(tmp_path / "tfds")
    out = str(tmp_path / model)
    assert main(["train", "--data", "word_order", "--model", model, "--out", out,
                 "--data-dir", data_dir, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", out, "--data", "word_order:test", "--data-dir", data_dir]) == 0
    result = json.loads(capsys.readouterr().out)
    assert low <= result["accuracy"] <= high, result
    # Shuffling words destroys the cue for everyone: chance on balanced pairs.
    assert result["shuffled_accuracy"] <= 0.6


def _sst2_defaults(shared_data, tmp_path, capsys, val_args, seed=None):
    out = str(tmp_path / f"sst2_seed{seed}")
    dev = str(shared_data / "sst2" / "dev.tsv")
    seed_args = [] if seed is None else ["--seed", str(seed)]
    assert main(["train", "--data", str(shared_data / "sst2" / "train.tsv"), *val_args,
                 *seed_args, "--out", out, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", out, "--data", dev]) == 0
    result = json.loads(capsys.readouterr().out)
    assert json.load(open(f"{out}/metrics.json"))["epochs"] <= 5
    return result


def test_sst2_lstm_defaults_validated_on_dev(shared_data, tmp_path, capsys):
    # The core issue's protocol: validated (early stopping) on dev.tsv, defaults otherwise.
    # Dev holds 872 sentences (one standard error: 1.3 points), so one seed's figure is a noisy
    # draw around the bar: the median of seeds 0, 1, 2 is held to it. Measured with the
    # recipe's 2-member ensemble (2026-12-02): dev 0.851 / 0.845 / 0.847, shuffled 0.80-0.81.
    # A single model (before the ensemble) gave 0.839 / 0.831 / 0.851: the bar sat inside seed
    # noise then.
    dev = str(shared_data / "sst2" / "dev.tsv")
    results = [_sst2_defaults(shared_data, tmp_path, capsys, ["--val", dev], seed=seed)
               for seed in (0, 1, 2)]
    accuracies = sorted(r["accuracy"] for r in results)
    assert accuracies[1] >= 0.84, results
    assert accuracies[0] >= 0.82, results
    for r in results:
        assert r["accuracy"] - r["shuffled_accuracy"] >= 0.03, r


def test_sst2_lstm_defaults_nothing_chosen_on_dev(shared_data, tmp_path, capsys):
    # Early stopping on 10% of train (the default), dev scored once. Measured with the same two
    # commands, seed 0: dev 0.845 (2-member ensemble; a single model gave 0.839). The bound
    # leaves room for seed noise (dev has 872 sentences: one standard error is 1.3 points).
    result = _sst2_defaults(shared_data, tmp_path, capsys, [])
    assert result["accuracy"] >= 0.82, result
    assert result["accuracy"] - result["shuffled_accuracy"] >= 0.02, result

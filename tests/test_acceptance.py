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


def _sst2_defaults(shared_data, tmp_path, capsys, val_args):
    out = str(tmp_path / "sst2")
    dev = str(shared_data / "sst2" / "dev.tsv")
    assert main(["train", "--data", str(shared_data / "sst2" / "train.tsv"), *val_args,
                 "--out", out, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", out, "--data", dev]) == 0
    result = json.loads(capsys.readouterr().out)
    assert json.load(open(f"{out}/metrics.json"))["epochs"] <= 5
    return result


def test_sst2_lstm_defaults_validated_on_dev(shared_data, tmp_path, capsys):
    # The core issue's protocol: validated (early stopping) on dev.tsv. Measured: dev 0.850,
    # shuffled 0.802.
    dev = str(shared_data / "sst2" / "dev.tsv")
    result = _sst2_defaults(shared_data, tmp_path, capsys, ["--val", dev])
    assert result["accuracy"] >= 0.84, result
    assert result["accuracy"] - result["shuffled_accuracy"] >= 0.03, result


def test_sst2_lstm_defaults_nothing_chosen_on_dev(shared_data, tmp_path, capsys):
    # Early stopping on 10% of train (the default), dev scored once. Measured by
    # `python -m bench` (the same two commands), seeds 0 / 1: dev 0.833 / 0.836, shuffled
    # 0.804 / 0.801. The bounds leave room for seed noise (dev has 872 sentences: one standard
    # error is 1.3 points).
    result = _sst2_defaults(shared_data, tmp_path, capsys, [])
    assert result["accuracy"] >= 0.82, result
    assert result["accuracy"] - result["shuffled_accuracy"] >= 0.02, result

"""`seqclf.demo.run_demo`: the vanishing/exploding-gradient demonstration."""

import json
import math
import os

import numpy as np
import pytest

from seqclf import demo
from seqclf.errors import SeqclfError

MODEL_KEYS = {
    "cell": str,
    "init": str,
    "task": str,
    "distance": int,
    "test_accuracy": float,
    "grad_first_over_last_init": float,
    "grad_first_over_last_final": float,
    "diverged": bool,
    "clip_fraction": float,
}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    # Through the CLI (`seqclf demo --smoke`), the way the README's main job runs it.
    from seqclf.cli import main

    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--smoke", "--quiet", "--seed", "0"]) == 0
    with open(out / "summary.json") as f:
        summary = json.load(f)
    return out, summary


def test_smoke_writes_every_file(smoke_run):
    out, summary = smoke_run
    for name in summary["files"]:
        path = out / name
        assert path.is_file() and path.stat().st_size > 0, name
    for name in ("summary.json", "report.md", "gradient_stats.csv", "decay_curves.csv",
                 "decay_gradient_vs_distance.png", "accuracy_vs_distance.png",
                 "exploding_clipping.png"):
        assert name in summary["files"]
    pngs = [f for f in summary["files"] if f.endswith(".png")]
    for name in pngs:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    for heading in ("product law", "Consequence for learning", "Exploding", "Keras' defaults"):
        assert heading in report


def test_smoke_summary_keys_and_types(smoke_run):
    out, summary = smoke_run
    on_disk = json.loads((out / "summary.json").read_text())
    assert set(on_disk) >= {"models", "decay", "decay_lstm", "checks", "wall_seconds"}
    models = on_disk["models"]
    assert {m["cell"] for m in models} == {"simple_rnn", "lstm"}
    assert {m["init"] for m in models if m["cell"] == "lstm"} == {"default", "chrono"}
    clips = {m["clipnorm"] for m in models}
    assert None in clips and any(isinstance(c, float) for c in clips)
    for m in models:
        for key, typ in MODEL_KEYS.items():
            assert key in m, key
            if m[key] is not None:  # NaN is written as null
                assert isinstance(m[key], typ) or (typ is float and isinstance(m[key], int)), key
        assert 0.0 <= m["clip_fraction"] <= 1.0
        if m["clipnorm"] is None:
            assert m["clip_fraction"] == 0.0
    gains = [d["gain"] for d in on_disk["decay"]]
    assert {0.5, 0.9, 1.0, 1.5} <= set(gains)
    for d in on_disk["decay"]:
        assert isinstance(d["measured_log_slope"], float)
        assert isinstance(d["predicted_log_slope"], float)
    assert {d["init"] for d in on_disk["decay_lstm"]} == {"default", "chrono"}


def test_smoke_product_law_holds_even_at_tiny_size(smoke_run):
    # The decay sweep needs no training, so its numbers are meaningful at smoke size too.
    _, summary = smoke_run
    by_gain = {d["gain"]: d for d in summary["decay"]}
    for g in (0.5, 0.9):
        assert by_gain[g]["relative_error"] < 0.15
        assert by_gain[g]["measured_log_slope"] == pytest.approx(math.log(g), rel=0.2)
    # The NumPy recursion reproduces TensorFlow's input gradients.
    assert by_gain[0.9]["numpy_recursion_max_rel_error"] < 1e-3
    # Spectral norms bound the path factors from above.
    for d in summary["decay"]:
        assert d["spectral_bound_log_slope"] >= d["predicted_log_slope"] - 1e-9


def test_fit_log_slope_recovers_geometric_decay_and_skips_underflow():
    curve = 3.0 * 0.5 ** np.arange(200)
    curve[150:] = 0.0  # float32 underflow
    assert demo.fit_log_slope(curve) == pytest.approx(math.log(0.5), rel=1e-6)
    assert math.isnan(demo.fit_log_slope([1.0, 0.0]))


def test_bad_arguments(tmp_path):
    with pytest.raises(SeqclfError):
        demo.run_demo(str(tmp_path), seed="x")
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(SeqclfError):
        demo.run_demo(str(target), smoke=True)


@pytest.mark.slow
def test_full_demo_meets_acceptance(tmp_path):
    summary = demo.run_demo(str(tmp_path), quiet=True)
    checks = summary["checks"]
    failed = {k: v["detail"] for k, v in checks.items() if not v["passed"]}
    assert not failed, failed
    assert summary["wall_seconds"] < 600
    assert os.path.isfile(tmp_path / "report.md")


def test_word_order_arrays_are_right_padded_ids(tfds_dir):
    cfg = demo.DemoConfig.smoke()
    x_train, y_train, x_test, y_test, vocab, distance = demo.word_order_arrays(
        "tiny", cfg, 0, tfds_dir, True
    )
    assert distance == 0
    assert x_train.shape[0] == len(y_train) == cfg.word_order_train
    assert x_test.shape[1] == x_train.shape[1]
    assert set(np.unique(y_train)) == {0, 1}
    assert 2 < vocab and x_train.max() < vocab
    lengths = (x_train != 0).sum(axis=1)
    assert (lengths > 0).all()
    # Right padding: no real token after the first 0.
    for row, n in zip(x_train[:20], lengths[:20]):
        assert (row[:n] != 0).all() and (row[n:] == 0).all()

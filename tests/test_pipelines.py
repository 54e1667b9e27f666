"""The one-file pipelines run end to end in `--smoke` mode: through `main()` in the fast tier,
as a user would run them (a fresh `python pipelines/...`) in the slow tier."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _run(script, out, *extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, str(REPO / "pipelines" / script), "--smoke", "--quiet", "--out", str(out),
         *extra],
        capture_output=True, text=True, timeout=300, env=env, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _load(script):
    import importlib.util

    spec = importlib.util.spec_from_file_location(script.removesuffix(".py"),
                                                  REPO / "pipelines" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines constants and functions; main() is not run
    return module


def test_vanishing_gradients_imports_and_fits_slopes():
    module = _load("vanishing_gradients.py")
    curve = 2.0 * np.exp(-0.3 * np.arange(100))
    curve[80:] = 0.0
    assert module.log_slope(curve, 99) == pytest.approx(-0.3)
    assert set(module.SMOKE) <= {k for k in vars(module) if k.isupper()}


# ~30 s: it repeats, as a plain script, what the demo's smoke test already covers.
@pytest.mark.slow
def test_vanishing_gradients_smoke(tmp_path):
    _run("vanishing_gradients.py", tmp_path)
    results = json.loads((tmp_path / "results.json").read_text())
    slopes = results["init_log_slopes"]
    assert slopes["SimpleRNN gain=0.5"] < slopes["SimpleRNN gain=0.9"] < 0
    assert set(results["explode"]) == {"clipnorm=None", "clipnorm=0.1"}
    assert (tmp_path / "gradient_vs_distance_init.png").is_file()
    assert (tmp_path / "gradient_stats.csv").is_file()


# The fast-tier smokes call `main()` in this process (the script's own code, without paying a
# fresh TensorFlow start per script); the slow ones above and below run them as a user would.
def test_temporal_order_smoke(tmp_path):
    _load("temporal_order.py").main(["--smoke", "--quiet", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [(m["cell"], m["init"]) for m in summary["models"]] == [
        ("simple_rnn", "default"), ("lstm", "default"), ("lstm", "chrono")
    ]
    for m in summary["models"]:
        assert 0.0 <= m["test_accuracy"] <= 1.0
    assert (tmp_path / "gradient_vs_distance.png").is_file()


@pytest.mark.shared_data
def test_sst2_lstm_smoke(tmp_path, shared_data):
    _load("sst2_lstm.py").main(["--smoke", "--quiet", "--out", str(tmp_path),
                                "--data-dir", str(shared_data / "sst2")])
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["train_rows"] == 400 and results["dev_rows"] == 100
    assert 0.0 <= results["dev_accuracy"] <= 1.0
    for name in ("gradient_stats.csv", "layer_norms.png", "gradient_vs_distance.png"):
        assert (tmp_path / name).is_file()


def test_long_text_gradients_cuts_either_end():
    from seqclf.data import make_vectorizer

    module = _load("long_text_gradients.py")
    vectorizer = make_vectorizer(["a b c d e", "f g"], max_tokens=50)
    vocab = vectorizer.get_vocabulary()
    first = module.cut_ids(vectorizer, ["a b c d e", "f g", ""], 3, "first")
    last = module.cut_ids(vectorizer, ["a b c d e", "f g", ""], 3, "last")
    words = [[vocab[i] for i in row if i] for row in first.tolist()]
    assert words == [["a", "b", "c"], ["f", "g"], ["[UNK]"]]
    words = [[vocab[i] for i in row if i] for row in last.tolist()]
    assert words == [["c", "d", "e"], ["f", "g"], ["[UNK]"]]
    assert module.window_mean(np.array([1.0, np.nan, 3.0, 5.0]), (0, 3)) == 2.0


@pytest.mark.slow
@pytest.mark.shared_data
def test_long_text_gradients_smoke(tmp_path, shared_data):
    _run("long_text_gradients.py", tmp_path, "--data-dir", str(shared_data / "imdb_cad"))
    results = json.loads((tmp_path / "long_text_gradients.json").read_text())
    assert [(r["pooling"], r["keep"]) for r in results] == [
        ("last", "first"), ("last", "last"), ("max", "first"), ("max", "last")]
    for r in results:
        assert r["init"]["near"] > 0 and 0.0 <= r["dev_accuracy"] <= 1.0
    assert (tmp_path / "long_text_gradients.png").stat().st_size > 10_000
    assert "| pooling | keep |" in (tmp_path / "long_text_gradients.md").read_text()


def test_library_does_not_import_pipelines():
    for path in (REPO / "seqclf").rglob("*.py"):
        text = path.read_text()
        assert "import pipelines" not in text and "from pipelines" not in text, path

"""A clean terminal: `--help` without TensorFlow, and no TensorFlow start-up log lines on stderr.

Every process here is fresh, with neither `TF_CPP_MIN_LOG_LEVEL` nor `SEQCLF_VERBOSE` set by the
caller, as a user's shell would have it.
"""

import os
import re
import subprocess
import sys
import textwrap
import time

TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} ")
BANNER = "All log messages before absl::InitializeLog() is called"


def _env():
    return {k: v for k, v in os.environ.items()
            if k not in ("TF_CPP_MIN_LOG_LEVEL", "SEQCLF_VERBOSE", "TF_ENABLED_DEVICE_TYPES")}


def _seqclf(*args, timeout=300):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "seqclf", *args], capture_output=True,
                          text=True, timeout=timeout, env=_env())
    return proc, time.perf_counter() - start


def _python(code):
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _noise(stderr):
    return [line for line in stderr.splitlines() if TF_LOG_LINE.match(line) or BANNER in line]


def test_help_imports_no_tensorflow():
    code = (
        "import sys\n"
        "from seqclf.cli import build_parser\n"
        "for argv in (['--help'], ['train', '--help'], ['evaluate', '--help'], ['plot', '-h']):\n"
        "    try:\n"
        "        build_parser().parse_args(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'numpy') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    assert _python(code).strip().splitlines()[-1] == "[]"
    proc, seconds = _seqclf("train", "--help")
    assert proc.returncode == 0 and "--tensorboard DIR" in proc.stdout
    assert seconds < 5, f"`seqclf train --help` took {seconds:.1f} s"


def test_commands_print_no_tensorflow_start_up_lines(tmp_path, tfds_dir):
    run = str(tmp_path / "run")
    # `--help` imports no TensorFlow (test above), and `evaluate` starts TensorFlow as `train`
    # and `predict` do: each fresh process costs seconds of import, so they are not repeated.
    commands = [
        ["train", "--data", "word_order/tiny", "--model", "gru", "--units", "4",
         "--embedding-dim", "4", "--epochs", "1", "--data-dir", tfds_dir, "--out", run, "--quiet"],
        ["predict", run, "not good , just bad"],
        ["export", run, "--model-base-path", str(tmp_path / "serving")],
    ]
    for args in commands:
        proc, _ = _seqclf(*args)
        assert proc.returncode == 0, (args, proc.stderr[-2000:])
        assert _noise(proc.stderr) == [], (args[0], proc.stderr[-2000:])
    # The lines exist and come back on request: the check above can see them.
    proc, _ = _seqclf("--verbose", "predict", run, "good")
    assert proc.returncode == 0 and _noise(proc.stderr)


def test_profiler_plugin_loads_only_when_used():
    code = (
        "from seqclf._startup import quiet_tensorflow\n"
        "quiet_tensorflow()\n"
        "import tensorflow as tf\n"
        "maps = lambda: open('/proc/self/maps').read()\n"
        "before = '_pywrap_profiler_plugin' in maps()\n"
        "import importlib\n"
        "from seqclf._compat import PROFILER_PLUGIN_MODULE\n"
        "assert callable(importlib.import_module(PROFILER_PLUGIN_MODULE).trace)\n"
        "print(before, '_pywrap_profiler_plugin' in maps())\n"
    )
    assert _python(code).split() == ["False", "True"]


def test_a_script_prints_no_tensorflow_lines_and_its_files_load_after_import_seqclf(tmp_path):
    # What a user's `model.fit` script does, then what a second script of theirs does with the
    # files: `import seqclf` is all either imports of seqclf.
    train = textwrap.dedent(f"""
        import numpy as np, seqclf
        texts = ["good film", "bad film", "great acting", "awful plot"] * 8
        labels = ["pos", "neg", "pos", "neg"] * 8
        model = seqclf.TextClassifier.from_texts(texts, labels, model="gru", units=8,
                                                 embedding_dim=8)
        model.compile()
        model.fit(texts, labels, validation_data=(texts, labels), epochs=2, verbose=0)
        model.evaluate(texts, labels, verbose=0)
        model.save({str(tmp_path / "clf.keras")!r})
        model.save_run({str(tmp_path / "run")!r})
        np.save({str(tmp_path / "expected.npy")!r}, model.predict(["good film", "?!"]))
        run = seqclf.TextClassifier.from_run({str(tmp_path / "run")!r})
        for batch in (["good film"], ["bad"] * 3, ["a", "b"], ["great"] * 5, ["x"] * 7, ["y"]):
            run.predict_labels(batch)
    """)
    proc = subprocess.run([sys.executable, "-c", train], capture_output=True, text=True,
                          timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _noise(proc.stderr) == [], proc.stderr[-3000:]
    assert "retracing" not in proc.stderr, proc.stderr[-3000:]
    load = textwrap.dedent(f"""
        import keras, numpy as np, seqclf
        expected = np.load({str(tmp_path / "expected.npy")!r})
        for path in ({str(tmp_path / "clf.keras")!r}, {str(tmp_path / "run" / "model.keras")!r}):
            model = keras.saving.load_model(path)
            assert type(model).__name__ == "TextClassifier", type(model)
            np.testing.assert_allclose(model.predict(["good film", "?!"]), expected, atol=1e-6)
            assert model.predict_labels(["good film"])[0] in ("pos", "neg")
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True,
                          timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


def test_a_trained_run_loads_compiled_with_keras_after_import_seqclf(tmp_path):
    """What `seqclf train` writes is the text model (linear path and recurrent model blended),
    which a script reopens as any Keras model: evaluate and fit at once, without a warning."""
    rows = ["text,label"] + [f"{w} film {k},{lab}" for k in range(40)
                             for w, lab in (("good", "pos"), ("bad", "neg"))]
    (tmp_path / "reviews.csv").write_text("\n".join(rows) + "\n")
    proc, _ = _seqclf("train", "--data", str(tmp_path / "reviews.csv"), "--out",
                      str(tmp_path / "run"), "--model", "gru", "--units", "8",
                      "--embedding-dim", "8", "--epochs", "2", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    load = textwrap.dedent(f"""
        import warnings
        import keras, pandas as pd, seqclf
        df = pd.read_csv({str(tmp_path / "reviews.csv")!r})
        with warnings.catch_warnings(record=True) as caught:  # e.g. skipped optimizer variables
            warnings.simplefilter("always")
            model = keras.saving.load_model({str(tmp_path / "run" / "model.keras")!r})
        assert not caught, [str(w.message) for w in caught]
        assert type(model).__name__ == "TextClassifier", type(model)
        result = model.evaluate(df["text"], df["label"], verbose=0, return_dict=True)
        assert result["accuracy"] > 0.9, result
        model.fit(df, epochs=1, verbose=0)
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True,
                          timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")

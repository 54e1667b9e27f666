"""SavedModel export for TF Serving, checked through TensorFlow's C++ loader (C API) in a fresh
process: the outputs match in-process Keras, edge inputs answer, bad inputs fail, warmup replays,
ops are servable, and versions are published atomically."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from seqclf.data.pipeline import token_ids
from seqclf.errors import SeqclfError
from seqclf.serving import capi, export, inspection
from tests.serving_double import LABELS, MAX_LENGTH, tiny_run

FIXED_TEXTS = [
    "the movie was great and fun",
    "a dull boring plot",
    "great music",
    "it was fine i guess but far too long for me",
    "the end",
]
EDGE_TEXTS = {
    "empty": "",
    "whitespace": " \t\n  ",
    "all_oov": "zzzqqq xxyyzz wwvvuu",
    "too_long": "great " * 200,
    "non_ascii": "naïve café — 日本語 😀🎬",
    "punctuation": "?!... ,;:",
}


@pytest.fixture(scope="module")
def run():
    return tiny_run()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return str(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="module")
def exported(run, base):
    # validate=True: the export itself went through the C API load + warmup replay once.
    return export.export_saved_model(
        run.model, run.vectorizer, run.label_names, run.max_length, base, name="tiny"
    )


@pytest.fixture(scope="module")
def harness(exported):
    with capi.CApiHarness() as h:
        h.load(exported)
        yield h


def reference(run, texts):
    """In-process Keras probabilities for `texts`, preprocessing as the export does."""
    import tensorflow as tf

    ids = token_ids(run.vectorizer, tf.constant(texts, dtype=tf.string), run.max_length)
    return run.model.predict(ids, verbose=0)


def many_texts(n):
    words = ["great", "dull", "movie", "plot", "fine", "boring", "music", "the", "zzz", "end"]
    rng = np.random.default_rng(n)
    return [" ".join(rng.choice(words, size=rng.integers(1, 12))) for _ in range(n)]


# --- layout and signatures ---------------------------------------------------------------------


def test_layout_and_signatures(exported, base):
    assert exported == os.path.join(base, "1")
    assert sorted(os.listdir(base)) == ["1"], "no temp directory may remain next to the version"
    for rel in ("saved_model.pb", "variables/variables.index", inspection.WARMUP_FILE):
        assert os.path.exists(os.path.join(exported, rel)), rel
    sigs = inspection.read_signatures(exported)
    predict = sigs["serving_default"]
    assert predict["method_name"] == "tensorflow/serving/predict"
    assert {k: (v["dtype"], v["shape"]) for k, v in predict["inputs"].items()} == {
        "text": ("DT_STRING", [-1])
    }
    assert {k: (v["dtype"], v["shape"]) for k, v in predict["outputs"].items()} == {
        "probabilities": ("DT_FLOAT", [-1, 3]),
        "class_id": ("DT_INT64", [-1]),
        "label": ("DT_STRING", [-1]),
    }
    classify = sigs["classify"]
    assert classify["method_name"] == "tensorflow/serving/classify"
    assert {k: (v["dtype"], v["shape"]) for k, v in classify["inputs"].items()} == {
        "inputs": ("DT_STRING", [-1])
    }
    assert {k: (v["dtype"], v["shape"]) for k, v in classify["outputs"].items()} == {
        "classes": ("DT_STRING", [-1, 3]),
        "scores": ("DT_FLOAT", [-1, 3]),
    }


def test_loader_sees_the_same_signatures(harness, exported):
    ours = inspection.read_signatures(exported)["serving_default"]
    assert harness.signatures["serving_default"] == ours
    assert harness.tf_version.startswith("2.")


def test_worker_runs_without_site_packages(harness):
    # `-S` keeps site-packages (seqclf, tensorflow's Python package) out of the serving process.
    assert {"-I", "-S"} <= set(harness.worker_args)


# --- numerical conformance ----------------------------------------------------------------------


def test_outputs_match_keras(harness, run):
    out = harness.predict(FIXED_TEXTS)
    expected = reference(run, FIXED_TEXTS)
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out["class_id"], expected.argmax(axis=1))
    assert [s.decode() for s in out["label"]] == [LABELS[i] for i in expected.argmax(axis=1)]


def test_batch_order_is_kept(harness):
    texts = many_texts(8)
    forward = harness.predict(texts)["probabilities"]
    backward = harness.predict(texts[::-1])["probabilities"]
    np.testing.assert_allclose(forward, backward[::-1], atol=1e-6)
    singles = np.concatenate([harness.predict([t])["probabilities"] for t in texts[:3]])
    np.testing.assert_allclose(forward[:3], singles, atol=1e-5)


@pytest.mark.parametrize("n", [1, 64, 0])
def test_batch_sizes(harness, run, n):
    texts = many_texts(n)
    out = harness.predict(texts)
    assert out["probabilities"].shape == (n, 3)
    assert out["class_id"].shape == (n,) and out["label"].shape == (n,)
    if n:
        np.testing.assert_allclose(out["probabilities"], reference(run, texts), atol=1e-5)


def test_edge_texts_answer(harness):
    out = harness.predict(list(EDGE_TEXTS.values()))
    probs = out["probabilities"]
    assert probs.shape == (len(EDGE_TEXTS), 3)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out["class_id"], probs.argmax(axis=1))


def test_only_empty_texts_in_batch(harness):
    # The vectorizer gives shape [batch, 0] here; the export must still answer per row.
    out = harness.predict(["", "  ", "!!"])
    assert out["probabilities"].shape == (3, 3) and np.isfinite(out["probabilities"]).all()


def test_empty_text_is_one_oov_token(harness):
    # A text without tokens is served as a single out-of-vocabulary token: defined, not NaN.
    out = harness.predict(["", "qqqzzz"])["probabilities"]
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)


def test_truncates_to_max_length(harness):
    words = "great dull movie plot fine boring music the".split()
    assert len(words) > MAX_LENGTH
    out = harness.predict([" ".join(words), " ".join(words[:MAX_LENGTH])])["probabilities"]
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)
    shorter = harness.predict([" ".join(words[: MAX_LENGTH - 1])])["probabilities"]
    assert not np.allclose(out[1], shorter[0], atol=1e-7), "the last kept token must matter"


def _peak_rss_mib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_one_huge_text_does_not_pad_the_batch(exported):
    # 255 short texts and one of 400,000 tokens: padding the batch to its longest text before
    # cutting to max_length took 256 x 400,000 int64 ids (780 MiB) in the serving process;
    # cutting each text first leaves 256 x MAX_LENGTH ids. A fresh worker, so that its peak
    # memory is this request's.
    huge = "dull " * 400_000
    with capi.CApiHarness() as h:
        h.load(exported)
        h.predict(["great movie"] * 256)
        before = _peak_rss_mib(h.pid)
        out = h.predict(["great movie"] * 255 + [huge])["probabilities"]
        grew = _peak_rss_mib(h.pid) - before
        cut = h.predict(["dull " * MAX_LENGTH])["probabilities"]
    np.testing.assert_allclose(out[-1], cut[0], atol=1e-6)
    assert grew < 300, f"peak RSS grew by {grew:.0f} MiB for one request"


@pytest.mark.parametrize(
    "value, dtype",
    [
        (np.array("a scalar", dtype=object), "string"),
        (np.array([["rank", "two"]], dtype=object), "string"),
        (np.array([1.0, 2.0], dtype=np.float32), None),
        (np.array([1, 2], dtype=np.int64), None),
    ],
    ids=["scalar", "rank2", "float", "int64"],
)
def test_bad_inputs_fail_with_message(harness, value, dtype):
    with pytest.raises(capi.CApiError) as info:
        harness.run("serving_default", {"text": value}, dtypes={"text": dtype} if dtype else None)
    assert info.value.code == 3, info.value  # INVALID_ARGUMENT
    assert info.value.message
    # The worker survives a failed request.
    assert harness.predict(["still alive"])["probabilities"].shape == (1, 3)


def test_unknown_signature_and_input(harness):
    with pytest.raises(capi.CApiError, match="No signature was found"):
        harness.run("nope", {"text": np.array(["x"], dtype=object)})
    with pytest.raises(capi.CApiError, match="Unknown input"):
        harness.run("serving_default", {"txt": np.array(["x"], dtype=object)})


def test_classify_signature(harness):
    texts = FIXED_TEXTS[:3] + [""]
    out = harness.classify(texts)
    assert out["classes"].shape == (4, 3)
    assert [[c.decode() for c in row] for row in out["classes"]] == [LABELS] * 4
    np.testing.assert_allclose(out["scores"], harness.predict(texts)["probabilities"], atol=1e-6)
    empty = harness.classify([])
    assert empty["scores"].shape == (0, 3) and empty["classes"].shape == (0, 3)


def test_classify_example_without_text_feature(harness):
    from tensorflow.core.example import example_pb2

    blank = np.array([example_pb2.Example().SerializeToString()], dtype=object)
    out = harness.run("classify", {"inputs": blank}, dtypes={"inputs": "string"})
    np.testing.assert_allclose(out["scores"], harness.predict([""])["probabilities"], atol=1e-6)
    with pytest.raises(capi.CApiError):
        harness.run("classify", {"inputs": np.array([b"not a proto"], dtype=object)})


# --- warmup, damaged exports, ops --------------------------------------------------------------


def test_warmup_records_replay(harness, exported):
    logs = inspection.read_warmup_requests(exported)
    assert len(logs) == len(export.WARMUP_TEXTS)
    for log in logs:
        assert log.WhichOneof("log_type") == "predict_log"
        assert log.predict_log.request.model_spec.name == "tiny"
        assert log.predict_log.request.model_spec.signature_name == "serving_default"
    assert harness.replay_warmup(exported) == len(logs)


def test_missing_variables_caught_by_warmup(exported, tmp_path):
    broken = tmp_path / "1"
    shutil.copytree(exported, broken)
    shutil.rmtree(broken / "variables")
    with capi.CApiHarness() as h:
        # The loader accepts a SavedModel without variables (it then restores nothing) ...
        try:
            h.load(str(broken))
        except capi.CApiError:
            return  # ... or refuses it outright; either way it never gets served.
        # ... so only running a request shows the damage: this is what warmup is for.
        with pytest.raises(capi.CApiError) as info:
            h.replay_warmup(str(broken))
    assert info.value.code in (5, 9), info.value  # NOT_FOUND / FAILED_PRECONDITION


def test_validate_export_rejects_missing_variables(exported, tmp_path):
    broken = tmp_path / "2"
    shutil.copytree(exported, broken)
    shutil.rmtree(broken / "variables")
    with pytest.raises(SeqclfError, match="C\\+\\+ loader rejected"):
        export.validate_export(str(broken), num_classes=3)


def test_ops_audit(exported):
    audit = inspection.audit_ops(exported)
    assert audit["problems"] == []
    ops = set(audit["ops"])
    assert {"LookupTableFindV2", "Softmax", "StringSplitV2"} <= ops  # vocabulary is in-graph
    assert not any(op.startswith("CudnnRNN") for op in ops)
    assert not ops & {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


def test_ops_audit_flags_forbidden_and_unknown_ops(monkeypatch, exported):
    monkeypatch.setattr(
        inspection, "list_ops", lambda d: ["CudnnRNNV3", "EagerPyFunc", "MatMul", "MyCustomOp"]
    )
    problems = inspection.audit_ops(exported)["problems"]
    assert [p.split(":")[0] for p in problems] == ["CudnnRNNV3", "EagerPyFunc", "MyCustomOp"]
    with pytest.raises(SeqclfError, match="cannot run"):
        export.validate_export(exported, num_classes=3, capi=False)


# --- versions and atomic publication ------------------------------------------------------------


def tree_snapshot(path):
    snap = {}
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            snap[os.path.relpath(p, path)] = (os.path.getsize(p), os.path.getmtime(p))
    return snap


def test_next_version(tmp_path):
    assert export.next_version(tmp_path / "missing") == 1
    for name in ("3", "10", "not-a-version", ".tmp-11-123", "7x"):
        (tmp_path / name).mkdir()
    assert export.next_version(tmp_path) == 11


def test_second_export_is_next_version_and_leaves_first_alone(run, exported, base):
    before = tree_snapshot(exported)
    os.makedirs(os.path.join(base, ".tmp-5-999999"))  # debris of a killed export: ignored
    try:
        second = export.export_saved_model(
            run.model, run.vectorizer, run.label_names, run.max_length, base, validate=False
        )
        assert second == os.path.join(base, "2")
        assert tree_snapshot(exported) == before
        with pytest.raises(SeqclfError, match="existing model version.*Received: version=2"):
            export.export_saved_model(
                run.model, run.vectorizer, run.label_names, run.max_length, base, version=2
            )
        assert tree_snapshot(exported) == before
    finally:
        shutil.rmtree(os.path.join(base, ".tmp-5-999999"), ignore_errors=True)
        shutil.rmtree(os.path.join(base, "2"), ignore_errors=True)


def test_failure_after_partial_write_publishes_nothing(run, tmp_path, monkeypatch):
    base = tmp_path / "m"

    def crash(export_dir, model_name):
        assert os.path.exists(os.path.join(export_dir, "saved_model.pb"))  # partially written
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(export, "write_warmup", crash)
    with pytest.raises(OSError, match="simulated"):
        export.export_saved_model(
            run.model, run.vectorizer, run.label_names, run.max_length, base, version=4
        )
    assert os.listdir(base) == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"label_names": ["a", "b"]}, "output size"),
        ({"label_names": ["a", "a", "b"]}, "distinct"),
        ({"max_length": 0}, "max_length=0"),
        ({"version": 0}, "version=0"),
        ({"name": "bad/name"}, "name='bad/name'"),
    ],
)
def test_bad_arguments(run, tmp_path, kwargs, match):
    args = dict(
        model=run.model,
        vectorizer=run.vectorizer,
        label_names=run.label_names,
        max_length=run.max_length,
        model_base_path=tmp_path,
    )
    args.update(kwargs)
    with pytest.raises(SeqclfError, match=match):
        export.export_saved_model(**args)
    assert not os.path.exists(os.path.join(tmp_path, "1"))


def test_write_models_config(tmp_path):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = tmp_path / "models.config"
    export.write_models_config(str(path), {"tiny": "/models/tiny", "other": "/models/other"})
    config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    entries = {c.name: (c.base_path, c.model_platform) for c in config.model_config_list.config}
    assert entries == {
        "tiny": ("/models/tiny", "tensorflow"),
        "other": ("/models/other", "tensorflow"),
    }


KILL_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from seqclf.serving import export
    from tests.serving_double import tiny_run

    def hang(export_dir, model_name):
        print("WRITTEN", flush=True)  # the SavedModel is on disk, the warmup not yet
        time.sleep(600)

    export.write_warmup = hang
    r = tiny_run()
    export.export_saved_model(r.model, r.vectorizer, r.label_names, r.max_length, sys.argv[1])
    """
)


@pytest.mark.slow
def test_killed_export_leaves_no_version(tmp_path, run):
    base = tmp_path / "m"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(base)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        deadline = time.monotonic() + 120
        line = ""
        while "WRITTEN" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert "WRITTEN" in line
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    names = os.listdir(base)
    assert names and all(n.startswith(".tmp-") for n in names), names
    assert export.next_version(base) == 1
    published = export.export_saved_model(
        run.model, run.vectorizer, run.label_names, run.max_length, base, validate=False
    )
    assert os.path.basename(published) == "1"

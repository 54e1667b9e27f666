"""`--strategy`: strategy construction, chief detection, input shares, and real distributed runs.

The end-to-end tests train the same tiny run four ways at once, in separate processes: two
`MultiWorkerMirroredStrategy` workers on 127.0.0.1 (ports picked at run time), one
`MirroredStrategy` process with two logical CPUs, and a single-device reference; then compare.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import types

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from seqclf.cli import build_parser, config_from_args
from seqclf.distribute import is_chief, make_strategy, replica_shares
from seqclf.errors import SeqclfError

# Dropout off: each replica draws its own dropout masks, so runs with it legitimately differ.
# No clipping: Keras clips each replica's share of the gradient, not the sum (see GradientStats).
# steps_per_execution 1 everywhere (distributed runs force it) so GradientStats samples the same
# steps in every run.
TRAIN_ARGS = [
    "train", "--data", "word_order/tiny", "--model", "lstm", "--units", "8",
    "--embedding-dim", "8", "--epochs", "1", "--batch-size", "128", "--dropout", "0",
    "--embedding-dropout", "0", "--no-clip", "--steps-per-execution", "1", "--gradient-stats", "2",
    "--seed", "0", "--quiet",
]
# Every process together; generous because the test machine's 2 cores may be shared.
DEADLINE_S = 480
RUN_FILES = {"config.json", "vocabulary.txt", "model.keras", "history.csv", "metrics.json",
             "gradient_stats.csv", "gradients_by_position.csv", "curves.png", "gradients.png",
             "gradients_by_position.png", "confusion.png", ".seqclf.lock"}

_MIRRORED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from seqclf.cli import main
sys.exit(main(sys.argv[1:]))
"""


# ---------------------------------------------------------------- in-process units


def test_unknown_strategy():
    with pytest.raises(SeqclfError, match="Received: strategy='horovod'"):
        make_strategy("horovod")


@pytest.mark.parametrize(
    "tf_config, problem",
    [
        (None, "it is not set"),
        ("{cluster: 1}", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"cluster": {}, "task": {"type": "worker", "index": 0}}', '"cluster" must map'),
        ('{"cluster": {"worker": ["nohost"]}, "task": {"type": "worker"}}', "host:port"),
        ('{"cluster": {"ps": ["h:1"]}, "task": {"type": "ps", "index": 0}}', "neither"),
        ('{"cluster": {"worker": ["h:1"]}}', '"task" must be'),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "chief"}}', "not a job"),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 1}}', "index 1"),
    ],
)
def test_multi_worker_needs_a_valid_tf_config(monkeypatch, tf_config, problem):
    # Checked before the strategy (and TensorFlow's collectives) is touched.
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(SeqclfError, match="TF_CONFIG") as info:
        make_strategy("multi_worker")
    assert problem in str(info.value)
    assert str(info.value).endswith(f"Received: TF_CONFIG={tf_config!r}")


def _fake_strategy(task_type, task_id, jobs):
    spec = types.SimpleNamespace(as_dict=lambda: dict.fromkeys(jobs, ["h:1"]))
    resolver = types.SimpleNamespace(
        task_type=task_type, task_id=task_id, cluster_spec=lambda: spec
    )
    return types.SimpleNamespace(cluster_resolver=resolver)


@pytest.mark.parametrize(
    "task_type, task_id, jobs, chief",
    [
        ("worker", 0, ["worker"], True),
        ("worker", 1, ["worker"], False),
        ("chief", 0, ["chief", "worker"], True),
        ("worker", 0, ["chief", "worker"], False),
        (None, None, [], True),
    ],
)
def test_is_chief(task_type, task_id, jobs, chief):
    assert is_chief(_fake_strategy(task_type, task_id, jobs)) is chief


def test_single_process_strategies_are_chief():
    assert is_chief(tf.distribute.get_strategy())


def test_strategy_flag():
    parse = build_parser().parse_args
    base = ["train", "--data", "d", "--out", "o"]
    assert config_from_args(parse(base)).strategy == "default"
    assert config_from_args(parse([*base, "--strategy", "multi_worker"])).strategy == "multi_worker"
    with pytest.raises(SystemExit):
        parse([*base, "--strategy", "horovod"])


def test_replica_shares_add_up_to_the_global_batch_mean():
    # Batches of 5, 1 and 4 examples over 4 replicas on 2 workers: uneven and empty shares.
    sizes = [5, 1, 4]
    values = np.arange(1.0, 11.0)
    ids = np.arange(10)[:, None]
    examples = tf.data.Dataset.from_tensor_slices((ids, values))
    starts = np.cumsum([0, *sizes[:-1]])
    parts = [examples.skip(int(s)).take(n).batch(n) for s, n in zip(starts, sizes)]
    batches = parts[0].concatenate(parts[1]).concatenate(parts[2])
    replicas, workers = 4, 2
    per_replica = [[] for _ in range(replicas)]
    for w in range(workers):
        ctx = tf.distribute.InputContext(workers, w, replicas)
        elements = list(replica_shares(batches, ctx).as_numpy_iterator())
        assert len(elements) == len(sizes) * (replicas // workers)  # same step count per worker
        for k, element in enumerate(elements):
            per_replica[w * 2 + k % 2].append(element)
    start = 0
    for b, n in enumerate(sizes):
        shares = [per_replica[r][b] for r in range(replicas)]
        # The shares, in replica order, are the global batch.
        np.testing.assert_array_equal(np.concatenate([s[0][:, 0] for s in shares]),
                                      np.arange(start, start + n))
        # Keras: each replica's weighted mean loss, scaled by 1/replicas, then summed.
        summed = sum(
            (s[2] * s[1]).sum() / max(len(s[1]), 1) / replicas for s in shares
        )
        np.testing.assert_allclose(summed, values[start:start + n].mean(), rtol=1e-6)
        start += n


# ---------------------------------------------------------------- real processes


def _free_ports(n):
    # Bound together so they differ; released just before the workers bind them.
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tfds_dir):
    """Starts the four runs at once; returns {name: (returncode, log, run directory)}."""
    root = tmp_path_factory.mktemp("distributed")
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    env.pop("SEQCLF_WORKER_DIR", None)
    args = [*TRAIN_ARGS, "--data-dir", tfds_dir]
    cli = [sys.executable, "-m", "seqclf", *args]

    def tf_config(index):
        return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})

    # The same command on both workers, --out included: only the chief may write there.
    chief_out = root / "chief"
    specs = {
        "chief": ([*cli, "--strategy", "multi_worker", "--out", chief_out],
                  {"TF_CONFIG": tf_config(0)}, chief_out),
        "worker": ([*cli, "--strategy", "multi_worker", "--out", chief_out],
                   {"TF_CONFIG": tf_config(1), "SEQCLF_WORKER_DIR": str(root / "worker")},
                   root / "worker"),
        "mirrored": ([sys.executable, "-c", _MIRRORED, *args, "--strategy", "mirrored",
                      "--out", root / "mirrored"], {}, root / "mirrored"),
        "single": ([*cli, "--out", root / "single"], {}, root / "single"),
    }
    procs, logs = {}, {}
    start = time.monotonic()
    try:
        for name, (cmd, extra, _) in specs.items():
            logs[name] = open(root / f"{name}.log", "w+")
            procs[name] = subprocess.Popen(
                [str(c) for c in cmd], env={**env, **extra}, stdout=logs[name],
                stderr=subprocess.STDOUT, start_new_session=True,  # its own process group
            )
        for proc in procs.values():
            try:
                proc.wait(timeout=max(DEADLINE_S - (time.monotonic() - start), 1))
            except subprocess.TimeoutExpired:
                break  # The others are killed below.
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    print(f"\nfour distributed-test runs: {time.monotonic() - start:.1f} s wall")
    results = {}
    for name, f in logs.items():
        f.seek(0)
        results[name] = (procs[name].returncode, f.read()[-3000:], specs[name][2])
        f.close()
    return results


def _finished(runs, name):
    code, log, out = runs[name]
    assert code == 0, f"{name} exited with {code}:\n{log}"
    return out


def _weights(out):
    return keras.models.load_model(out / "model.keras", compile=False).get_weights()


def _max_abs_diff(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))


def test_two_workers_finish_with_identical_weights(runs):
    chief, worker = _finished(runs, "chief"), _finished(runs, "worker")
    # Only the chief wrote the run directory; the worker wrote its scratch copy elsewhere.
    assert {p.name for p in chief.iterdir()} == RUN_FILES
    assert json.loads((chief / "metrics.json").read_text())["replicas"] == 2
    # Both apply the same all-reduced gradient (a ring all-reduce hands every worker the same
    # bits) to the same variables: identical, not merely close.
    w_chief, w_worker = _weights(chief), _weights(worker)
    print(f"\nmax |chief - worker| = {_max_abs_diff(w_chief, w_worker):.3g}")
    for a, b in zip(w_chief, w_worker, strict=True):
        np.testing.assert_array_equal(a, b)


# The distributed runs compute each global batch's gradient as a sum of per-replica shares
# instead of one sum over the batch: the same math in another float32 summation order. Measured:
# max |difference| of the trained weights (|w| up to ~1) about 3e-8 after the 5 steps. 1e-5
# allows for that rounding growing through Adam's updates, yet is ~300x smaller than one Adam
# step (learning rate 3e-3): a dropped or repeated batch, unweighted uneven shares or a
# different initialization (a dropped first batch measured 3e-2) all fail it.
WEIGHT_ATOL = 1e-5


@pytest.mark.parametrize("name", ["chief", "mirrored"])
def test_distributed_training_matches_single_device(runs, name):
    out, single = _finished(runs, name), _finished(runs, "single")
    assert json.loads((out / "metrics.json").read_text())["replicas"] == 2
    diff = _max_abs_diff(_weights(out), _weights(single))
    print(f"\nmax |{name} - single| = {diff:.3g}")
    assert diff <= WEIGHT_ATOL
    ours, theirs = (json.loads((d / "metrics.json").read_text()) for d in (out, single))
    np.testing.assert_allclose(ours["val_loss"], theirs["val_loss"], rtol=1e-5)


def test_gradient_stats_of_the_all_reduced_gradient(runs):
    # GradientStats records the summed shares: the gradient of the whole global batch, so the
    # same numbers as on a single device (to float32 rounding), sampled at the same steps.
    chief, single = _finished(runs, "chief"), _finished(runs, "single")
    ours, theirs = (pd.read_csv(d / "gradient_stats.csv") for d in (chief, single))
    key = ["step", "layer", "variable", "stage", "statistic"]
    norms = [f[f.statistic.isin(["norm", "global_norm"])].sort_values(key).reset_index(drop=True)
             for f in (ours, theirs)]
    assert len(norms[0]) > 0
    pd.testing.assert_frame_equal(norms[0][key], norms[1][key])
    np.testing.assert_allclose(norms[0].value, norms[1].value, rtol=1e-4, atol=1e-7)


def test_unfinished_multi_worker_run_is_not_resumed(tmp_path, tfds_dir):
    # Only the chief holds the backup; resuming on it alone would split the workers' weights.
    out = tmp_path / "run"
    (out / "backup").mkdir(parents=True)
    (out / "backup" / "state.json").write_text("{}")
    args = [*TRAIN_ARGS, "--data-dir", tfds_dir, "--strategy", "multi_worker", "--out", str(out)]
    # As a run's config.json: its settings and the format marker that makes it seqclf's.
    saved = {**vars(config_from_args(build_parser().parse_args(args))), "seqclf_format": 1}
    (out / "config.json").write_text(json.dumps(saved))
    (port,) = _free_ports(1)
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{port}"]},
                 "task": {"type": "worker", "index": 0}}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
           "TF_CONFIG": json.dumps(tf_config)}
    proc = subprocess.run([sys.executable, "-m", "seqclf", *args], capture_output=True,
                          text=True, env=env, timeout=240)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "resuming one is not supported" in proc.stderr
    assert "strategy='multi_worker'" in proc.stderr


# The chief's process as `python -m seqclf`, but with an exit that takes 15 s after its work is
# done, as a busy machine's can: TensorFlow's teardown took 1.6 s here and over 5 s in CI.
SLOW_EXIT = ("import atexit, runpy, time; atexit.register(time.sleep, 15); "
             "runpy.run_module('seqclf', run_name='__main__', alter_sys=True)")


def test_two_workers_with_several_members_both_finish(tmp_path):
    # The non-chief worker used to die ("Failed to send RPC to coordination service ...
    # Connection refused") once the chief, which hosts that service, had trained every member
    # and exited while the worker was still finishing. Members > 1 (the default recipe trained 5
    # when this was found) and the linear path and blend, as the default recipe runs them.
    # Then the other way round: a chief still exiting seconds after the worker had gone logged
    # "E0000 ... StartAbort ... tasks are unhealthy (stopped sending heartbeats)" (CI, loaded).
    data = tmp_path / "small.tsv"
    words = ["good", "bad", "film", "plot", "great", "awful", "fine", "dull"]
    data.write_text("sentence\tlabel\n" + "".join(
        f"{words[i % 8]} {words[(i * 3) % 8]} {words[(i * 5) % 8]}\t{i % 2}\n" for i in range(200)))
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    # The user's environment: no TF_CPP_MIN_LOG_LEVEL, which would hide the very TensorFlow
    # lines this test asserts are absent.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env.pop("SEQCLF_WORKER_DIR", None)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "seqclf", "train", "--data", str(data), "--out", str(out),
           "--strategy", "multi_worker", "--model", "bow", "--units", "8", "--embedding-dim",
           "8", "--epochs", "1", "--members", "3", "--quiet"]
    procs, logs = [], []
    try:
        for index in range(2):
            logs.append(open(tmp_path / f"worker{index}.log", "w+"))
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                                 "index": index}})
            argv = [sys.executable, "-c", SLOW_EXIT, *cmd[3:]] if index == 0 else cmd
            procs.append(subprocess.Popen(argv, env={**env, "TF_CONFIG": tf_config},
                                          stdout=logs[-1], stderr=subprocess.STDOUT,
                                          start_new_session=True))
        ended = {}
        start = time.monotonic()
        while len(ended) < 2 and time.monotonic() - start < DEADLINE_S:
            for index, proc in enumerate(procs):
                if index not in ended and proc.poll() is not None:
                    ended[index] = time.monotonic()
            time.sleep(0.1)
        codes = [proc.poll() for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    texts = []
    for f in logs:
        f.seek(0)
        texts.append(f.read()[-3000:])
        f.close()
    assert codes == [0, 0], "\n----\n".join(texts)
    # Nothing of TensorFlow's own logging on either worker: no absl log lines (start-up
    # notices, E0000 ...), no AutoGraph complaints about seqclf's code.
    for text in texts:
        assert not re.search(r"(?m)^[IWEF]\d{4} \d\d:\d\d:\d\d", text), text
        assert "AutoGraph could not transform" not in text, text
        # Every member is a new model with new train and test functions: tracing them is not
        # the "excessive retracing" TensorFlow's warning is about.
        assert "triggered tf.function retracing" not in text, text
    # The worker left behind used to hang at exit, calling the chief's coordination service,
    # until its heartbeat failed (measured: 100 s with --model lstm, 15 s here). The chief
    # (worker 0) may end later: it alone writes the model, the metrics and the plots.
    assert ended[1] - ended[0] < 8, (ended, "\n----\n".join(texts))
    # Nor is the chief left behind once the worker has gone: it exits at once, before its
    # coordination service can miss the worker's heartbeats.
    assert ended[0] - ended[1] < 8, (ended, "\n----\n".join(texts))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and len(metrics["members"]) == 3
    # TensorFlow's start-up lines stay hidden under multi_worker too.
    assert "oneDNN" not in texts[0] and "E0000" not in texts[0], texts[0]

"""Crash and resume: SIGKILL a `seqclf train` process mid-epoch and rerun it; atomic writes."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pandas as pd
import pytest

from seqclf._io import atomic_path, atomic_write_text
from seqclf.callbacks import GradientStats, RunBackup
from seqclf.cli import main
from seqclf.gradients.frames import load_frame

KEY = ["step", "epoch", "layer", "variable", "stage", "statistic"]


# ---------------------------------------------------------------------- atomic writes


def test_atomic_write_keeps_the_old_file_when_the_rename_never_happens(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    atomic_write_text(path, '{"old": true}\n')

    def crash(src, dst):  # the process "dies" between the temporary write and the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(path, '{"new": tr')
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"old": True}
    assert os.listdir(tmp_path) == ["metrics.json"]  # the temporary file was removed

    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                f.write('{"half')
            raise RuntimeError("writer failed mid-way")
    assert json.loads(path.read_text()) == {"old": True}
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_a_killed_writer_never_leaves_a_truncated_file(tmp_path):
    # A child rewrites a 4 MB file in a loop, each version self-checking (one letter repeated,
    # then an end marker); SIGKILL lands wherever it lands, the file is always a whole version.
    path = tmp_path / "big.txt"
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from seqclf._io import atomic_write_text
        i = 0
        while True:
            atomic_write_text({str(path)!r}, "ABCD"[i % 4] * 4_000_000 + "END")
            i += 1
            if i == 3:
                print("ready", flush=True)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    text = path.read_text()
    assert len(text) == 4_000_003 and text.endswith("END") and len(set(text[:-3])) == 1


# ---------------------------------------------------------------------- RunBackup in process


class _Score(keras.callbacks.Callback):
    """Puts a scripted `score` into the epoch logs, for EarlyStopping to monitor."""

    def __init__(self, scores):
        super().__init__()
        self.scores = scores

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = self.scores[epoch]


class _Crash(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("simulated crash")


class _Snapshot(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch] = self.model.get_weights()


def _model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.1, clipnorm=1.0), "sparse_categorical_crossentropy")
    return model


def _fit(model, tmp_path, es, epochs, extra=()):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)).astype("float32"), rng.integers(0, 2, 32)
    stats = GradientStats(frequency=1)
    backup = RunBackup(tmp_path / "backup", history_path=tmp_path / "history.csv",
                       early_stopping=es, gradient_stats=stats,
                       gradient_stats_path=tmp_path / "stats.csv")
    # Scores for epochs 0..4: best at epoch 0, then two epochs without improvement.
    callbacks = [_Score([0.7, 0.5, 0.6, 0.9, 0.9]), es, stats, backup, *extra]
    model.fit(x, y, batch_size=8, epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False)
    return backup


def _early_stopping():
    return keras.callbacks.EarlyStopping(monitor="score", mode="max", patience=2,
                                         restore_best_weights=True)


def test_run_backup_resumes_history_stats_and_early_stopping(tmp_path):
    snapshot = _Snapshot()
    first = _model()
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(first, tmp_path, _early_stopping(), epochs=5, extra=[snapshot, _Crash(epoch=2)])
    state = json.loads((tmp_path / "backup" / "state.json").read_text())
    assert state["epoch"] == 2 and state["early_stopping"]["wait"] == 1
    # A kill after the outputs of epoch 2 were written but before its state.json: rows the
    # backup does not cover yet must not survive the resume.
    with open(tmp_path / "history.csv", "a") as f:
        f.write("2,0.1,0.6\n")
    stats = pd.read_csv(tmp_path / "stats.csv")
    stale = stats[stats["epoch"] == 1].assign(epoch=2, step=99)
    pd.concat([stats, stale]).to_csv(tmp_path / "stats.csv", index=False)

    es = _early_stopping()
    second = _model()  # a fresh process builds a fresh model: everything comes from the backup
    backup = _fit(second, tmp_path, es, epochs=5)
    assert backup.resumed and backup.initial_epoch == 2
    # The restored `wait` (1) plus epoch 2 without improvement reaches the patience of 2: the run
    # stops there, and the best weights (epoch 0's, restored from the backup) are kept.
    assert es.stopped_epoch == 2 and es.best == 0.7 and es.best_epoch == 0
    for a, b in zip(second.get_weights(), snapshot.weights[0]):
        np.testing.assert_array_equal(a, b)
    assert int(second.optimizer.iterations.numpy()) == 3 * 4  # 3 epochs of 4 steps
    history = pd.read_csv(tmp_path / "history.csv")
    assert history["epoch"].tolist() == [0, 1, 2]
    assert [r["epoch"] for r in backup.history] == [0, 1, 2]
    stats = load_frame(tmp_path / "stats.csv")
    assert sorted(set(stats["epoch"])) == [0, 1, 2] and not stats.duplicated(KEY).any()
    assert sorted(set(stats["step"])) == list(range(12))  # steps continue after the resume
    assert (stats["variable"] == "").any()  # global rows keep "" (not NaN) through the CSV

    # The backup says early stopping ended the run: a rerun trains no further epoch.
    third = _model()
    backup = _fit(third, tmp_path, _early_stopping(), epochs=5)
    assert backup.initial_epoch == 5 and [r["epoch"] for r in backup.history] == [0, 1, 2]
    for a, b in zip(third.get_weights(), snapshot.weights[0]):
        np.testing.assert_array_equal(a, b)
    backup.delete()
    assert not (tmp_path / "backup").exists()


@pytest.mark.parametrize("state, epochs, expected", [
    ({"epoch": 2}, 5, 2),  # killed after epoch 2's backup: epoch 3 (index 2) runs next
    ({"epoch": 5}, 5, 5),  # every epoch done: none runs
    ({"epoch": 3, "stopped": True}, 5, 5),  # early stopping ended it: none runs
    ({"epoch": 3, "stopped": False}, 5, 3),
])
def test_resume_epoch_is_the_next_epoch_or_the_end_once_early_stopping_ended_training(
        state, epochs, expected):
    # fit_stage reads it to say a member had finished; on_train_begin starts fit there.
    assert RunBackup.resume_epoch(state, epochs) == expected


# ---------------------------------------------------------------------- the CLI, killed


def _wait_for(predicate, proc, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"training exited ({proc.returncode}) before {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@contextlib.contextmanager
def _cli_processes(tmp_path, cli):
    """`start(log)` runs `python -m seqclf *cli` with its output in `tmp_path / log`; whatever
    still runs at the end is killed."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = []

    def start(log):
        proc = subprocess.Popen([sys.executable, "-m", "seqclf", *cli],
                                stdout=open(tmp_path / log, "w"), stderr=subprocess.STDOUT,
                                env=env)
        procs.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _backup_epoch(run):
    try:
        with open(os.path.join(run, "backup", "state.json")) as f:
            return json.load(f)["epoch"]
    except (OSError, ValueError):
        return 0


def test_sigkill_mid_epoch_then_rerun_resumes(tmp_path, tfds_dir, capsys):
    run = str(tmp_path / "run")
    # A bag-of-words model traces fast; batches of 2 with one step per execution make an epoch
    # of 300 steps, so the kill below lands inside one. On a fast host an epoch takes about
    # 0.6 s, close to the 0.5 s wait: 6 epochs leave the kill several epochs of margin before
    # the run ends. Patience above the epoch count: early stopping never ends it.
    epochs = 6
    cli = ["train", "--data", "word_order/tiny", "--model", "bow", "--units", "8",
           "--embedding-dim", "8", "--batch-size", "2", "--steps-per-execution", "1",
           "--epochs", str(epochs), "--patience", str(epochs + 1), "--gradient-stats", "10",
           "--data-dir", tfds_dir, "--out", run]
    with _cli_processes(tmp_path, cli) as start:
        first = start("first.log")
        _wait_for(lambda: _backup_epoch(run) >= 1, first, 240, "the first epoch's backup")
        time.sleep(0.5)  # into the second epoch
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        killed_at = _backup_epoch(run)
        assert 1 <= killed_at < epochs, f"the kill came after epoch {killed_at}"
        assert not os.path.exists(os.path.join(run, "metrics.json"))
        # The outputs are written before state.json: a kill between the two writes leaves the
        # rows of one epoch the state does not cover yet, which the resumed run drops and
        # writes again (seen: 2 runs in 8 on a fast host).
        covered, uncovered = list(range(killed_at)), list(range(killed_at + 1))
        before = pd.read_csv(os.path.join(run, "history.csv"))
        assert before["epoch"].tolist() in (covered, uncovered)
        before = before[before["epoch"] < killed_at]
        stats_before = load_frame(os.path.join(run, "gradient_stats.csv"))
        assert sorted(set(stats_before["epoch"])) in (covered, uncovered)
        stats_before = stats_before[stats_before["epoch"] < killed_at].reset_index(drop=True)

        # Other settings on the unfinished run: refused, naming the field.
        other = list(cli)
        other[other.index("--units") + 1] = "16"
        assert main([*other, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "unfinished run with other settings (units=8)" in err
        assert err.strip().endswith("Received: units=16")

        second = start("second.log")
        assert second.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()[-3000:]

    log = (tmp_path / "second.log").read_text()
    assert f"resuming {run} at epoch {killed_at + 1} of {epochs}" in log
    assert f"Epoch {killed_at + 1}/{epochs}" in log and "Epoch 1/" not in log  # not from zero
    history = pd.read_csv(os.path.join(run, "history.csv"))
    assert history["epoch"].tolist() == list(range(epochs))  # each epoch exactly once
    # The completed epochs' rows were kept as written, not recomputed.
    pd.testing.assert_frame_equal(history.iloc[:killed_at], before)
    stats = load_frame(os.path.join(run, "gradient_stats.csv"))
    assert sorted(set(stats["epoch"])) == list(range(epochs))
    assert not stats.duplicated(KEY).any()
    kept = stats[stats["epoch"] < killed_at].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, stats_before)
    # The optimizer's iteration count was restored: the resumed steps continue the old ones.
    assert stats[stats["epoch"] >= killed_at]["step"].min() > stats_before["step"].max()
    metrics = json.loads(open(os.path.join(run, "metrics.json")).read())
    assert metrics["epochs"] == epochs and metrics["train_seconds"] > 0
    assert not os.path.exists(os.path.join(run, "backup"))
    assert not [n for n in os.listdir(run) if n.startswith(".tmp-")]


def test_sigkill_between_ensemble_members_then_rerun_reuses_the_finished_ones(tmp_path):
    from seqclf.run_dir import RunDir

    run = str(tmp_path / "run")
    # Three members of a tiny bag-of-words model, about a second of training each: the kill
    # lands once member 1 is saved, while member 2 is built and traced (seconds on any host).
    cli = ["train", "--data", "word_order/tiny", "--model", "bow", "--units", "8",
           "--embedding-dim", "8", "--batch-size", "8", "--steps-per-execution", "1",
           "--epochs", "3", "--members", "3", "--out", run]
    member_1 = os.path.join(run, "members", "member_1.json")
    with _cli_processes(tmp_path, cli) as start:
        first = start("first.log")
        _wait_for(lambda: os.path.exists(member_1), first, 240, "member 1's record")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        assert not os.path.exists(os.path.join(run, "members", "member_2.json")), \
            "the kill came after member 2 finished"
        assert not os.path.exists(os.path.join(run, "metrics.json"))
        # What the first run left: member 1 as saved, and member 0's best epoch in its backup.
        saved = tmp_path / "saved"
        shutil.copytree(os.path.join(run, "members"), saved / "members")
        saved_member, saved_record = RunDir(str(saved)).load_member(1)
        with open(os.path.join(run, "backup", "state.json")) as f:
            state = json.load(f)
        assert state["epoch"] == 3  # member 0 had finished
        best_file = os.path.join(run, "backup", state["early_stopping"]["best_weights"])
        with np.load(best_file) as arrays:
            best_weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]

        second = start("second.log")
        assert second.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()[-3000:]

    log = (tmp_path / "second.log").read_text()
    assert "member 1 had finished training (epoch 3 of 3)" in log
    assert "member 2 of 3 (seed 1): finished before the run stopped, reused" in log
    assert "member 3 of 3 (seed 2)\n" in log
    assert log.count("Epoch 1/3") == 1  # member 3 alone trained
    metrics = json.loads(open(os.path.join(run, "metrics.json")).read())
    assert [m["member"] for m in metrics["members"]] == [0, 1, 2]
    assert metrics["members"][1] == saved_record
    model = RunDir(run).load_model()
    for a, b in zip(model.get_layer("member_1").get_weights(), saved_member.get_weights(),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    member_0 = model.get_layer("member_0").get_weights()
    assert len(member_0) == len(best_weights)
    for a, b in zip(member_0, best_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not os.path.exists(os.path.join(run, "members"))
    assert not os.path.exists(os.path.join(run, "backup"))

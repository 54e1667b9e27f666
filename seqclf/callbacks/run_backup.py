"""`RunBackup`: crash-safe backup and resume of `model.fit`, with per-epoch history files.

`keras.callbacks.BackupAndRestore` does most of this but is not enough for a run directory:

* it writes `latest.weights.h5` in place and `training_metadata.json` after it, so a process
  killed while saving leaves a truncated weights file, or weights one epoch ahead of the epoch
  number it resumes from;
* `EarlyStopping` resets its state (`best`, `wait`, best weights) in `on_train_begin`, so after a
  resume it would forget the best epoch and its patience count;
* `CSVLogger(append=True)` appends the rows of a rerun epoch a second time (or misses those
  written after the last backup), and `GradientStats` keeps its records in memory.

`RunBackup` saves, at every epoch end and in this order: the history CSV, the gradient
statistics, the weights (model and optimizer, so the optimizer's iteration count and with it a
learning-rate schedule continue) under a new name, the `EarlyStopping` state and, last,
`state.json`, which names the weights file. Every file is written atomically (`seqclf._io`), and
`state.json` only ever names a complete weights file, so a kill at any moment leaves a
consistent backup of the last completed epoch. On train begin it restores that backup, tells
`fit` to start at the next epoch, and keeps from the history and statistics files exactly the
rows of the epochs before it: a rerun epoch is neither duplicated nor missing.
"""

import contextlib
import csv
import io
import json
import os
import shutil
import time

import keras
import numpy as np
import pandas as pd

from seqclf import _compat
from seqclf._io import atomic_path, atomic_write_text, ensure_room
from seqclf.errors import SeqclfError
from seqclf.gradients.frames import load_frame, save_frame

__all__ = ["RunBackup"]

STATE_FILE = "state.json"


def _read_history(path):
    """Rows of a history CSV as dicts: `epoch` an int, numbers as floats."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            parsed = {}
            for key, value in row.items():
                with contextlib.suppress(TypeError, ValueError):
                    value = float(value)
                parsed[key] = value
            parsed["epoch"] = int(parsed["epoch"])
            rows.append(parsed)
    return rows


def _history_csv(rows):
    # The layout of keras.callbacks.CSVLogger: `epoch` (0-based), then the log keys sorted.
    keys = sorted({k for row in rows for k in row if k != "epoch"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["epoch", *keys], restval="NA", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


class RunBackup(keras.callbacks.Callback):
    """Backs up the training state every epoch, atomically, and resumes from it on train begin.

    Put it *after* `EarlyStopping` and `GradientStats` in the callback list: its `on_epoch_end`
    must see their state of the epoch just finished, and its `on_train_begin` must come after
    `EarlyStopping` resets itself. The backup is kept after training; call `delete()` once the
    final outputs (model, metrics) are saved, so a crash before that still resumes.

    Args:
        backup_dir: Directory for the backup (`state.json` and weights files); used by nothing
            else.
        history_path: Optional CSV rewritten at every epoch end with one row per epoch (the
            layout of `keras.callbacks.CSVLogger`), the epochs before a resume included.
        early_stopping: Optional `keras.callbacks.EarlyStopping` in the same `fit` whose state
            (`best`, `wait`, `best_epoch`, best weights) is backed up and restored.
        gradient_stats: Optional `GradientStats` in the same `fit` whose records are written to
            `gradient_stats_path` at every epoch end, the epochs before a resume included.
        gradient_stats_path: `.csv`, `.parquet` or `.pq` file for `gradient_stats`.

    Attributes:
        initial_epoch: The epoch `fit` started (or resumed) at; set on train begin.
        resumed: Whether a backup was restored.
        history: One dict per completed epoch (`epoch` and the logs), resumed epochs included.
        previous_seconds: Training seconds of the earlier segments of a resumed run.
    """

    def __init__(self, backup_dir, history_path=None, early_stopping=None, gradient_stats=None,
                 gradient_stats_path=None):
        super().__init__()
        if (gradient_stats is None) != (gradient_stats_path is None):
            raise SeqclfError(
                "`gradient_stats` and `gradient_stats_path` must be given together. Received: "
                f"gradient_stats={gradient_stats!r}, gradient_stats_path={gradient_stats_path!r}"
            )
        self.backup_dir = os.fspath(backup_dir)
        self.history_path = None if history_path is None else os.fspath(history_path)
        self.early_stopping = early_stopping
        self.gradient_stats = gradient_stats
        self.gradient_stats_path = (
            None if gradient_stats_path is None else os.fspath(gradient_stats_path)
        )
        self.initial_epoch = 0
        self.resumed = False
        self.history = []
        self.previous_seconds = 0.0
        self._previous_stats = None
        self._best_file = None
        self._best_epoch_saved = None

    # ------------------------------------------------------------------ reading the backup

    def read_state(self):
        """The saved state (a dict), or None when there is no complete backup."""
        path = os.path.join(self.backup_dir, STATE_FILE)
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    @staticmethod
    def resume_epoch(state, epochs):
        """The epoch a `fit` of `epochs` epochs resumes at from the saved `state`: the one after
        the last saved, or `epochs` (none left to run) where early stopping had ended training."""
        epoch = int(state["epoch"])
        return max(epoch, int(epochs)) if state.get("stopped") else epoch

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()
        state = self.read_state()
        self.resumed = state is not None
        self.initial_epoch = 0
        self.previous_seconds = 0.0
        self._best_file = None
        self._best_epoch_saved = None
        if state is not None:
            self._restore(state)
        # Keras' own BackupAndRestore mechanism: `fit` starts at the epoch set here.
        _compat.set_initial_epoch(self.model, self.initial_epoch)

        # Rows of epochs at or after the resume point belong to an epoch that is run again.
        self.history = [r for r in _read_history(self.history_path or "")
                        if r["epoch"] < self.initial_epoch]
        self._previous_stats = None
        if self.gradient_stats is not None and self.initial_epoch > 0:
            if os.path.exists(self.gradient_stats_path):
                frame = load_frame(self.gradient_stats_path)
                self._previous_stats = frame[frame["epoch"] < self.initial_epoch]
        self._write_outputs()

    def _restore(self, state):
        model = self.model
        if model.optimizer is not None and not model.optimizer.built:
            # The weights file holds the optimizer's variables too; they must exist to be loaded.
            model.optimizer.build(model.trainable_variables)
        model.load_weights(os.path.join(self.backup_dir, state["weights"]))
        self.initial_epoch = self.resume_epoch(state, self.params.get("epochs", 0))
        self.previous_seconds = float(state.get("train_seconds", 0.0))
        es = self.early_stopping
        saved = state.get("early_stopping")
        if es is not None and saved:
            es.wait = saved["wait"]
            es.best = saved["best"]
            es.best_epoch = saved["best_epoch"]
            es.stopped_epoch = saved["stopped_epoch"]
            if saved["best_weights"]:
                self._best_file = saved["best_weights"]
                self._best_epoch_saved = es.best_epoch
                with np.load(os.path.join(self.backup_dir, self._best_file)) as arrays:
                    es.best_weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]

    # ------------------------------------------------------------------ writing the backup

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch}
        for key, value in (logs or {}).items():
            with contextlib.suppress(TypeError, ValueError):
                value = float(value)
            row[key] = value
        self.history.append(row)
        # Outputs first, state.json last: rows of an epoch the state does not cover yet are
        # dropped on resume, so a kill between the two writes duplicates nothing.
        self._write_outputs()

        os.makedirs(self.backup_dir, exist_ok=True)
        # A new name per epoch: state.json keeps naming the previous, complete file until the
        # new one is in place.
        weights = f"epoch-{epoch + 1}.weights.h5"
        path = os.path.join(self.backup_dir, weights)
        ensure_room(path, _weights_file_bytes(self.model))
        with atomic_path(path) as tmp:
            self.model.save_weights(tmp)
        state = {
            "epoch": epoch + 1,
            "weights": weights,
            "stopped": bool(self.model.stop_training),
            "train_seconds": self.previous_seconds + time.perf_counter() - self._start,
            "early_stopping": self._early_stopping_state(),
        }
        atomic_write_text(os.path.join(self.backup_dir, STATE_FILE), json.dumps(state) + "\n")
        keep = {STATE_FILE, weights, self._best_file}
        for name in os.listdir(self.backup_dir):
            if name not in keep:
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(self.backup_dir, name))

    def _early_stopping_state(self):
        es = self.early_stopping
        if es is None:
            return None
        if es.best_weights is not None and es.best_epoch != self._best_epoch_saved:
            self._best_file = f"best-{es.best_epoch + 1}.npz"
            with atomic_path(os.path.join(self.backup_dir, self._best_file)) as tmp:
                np.savez(tmp, *es.best_weights)
            self._best_epoch_saved = es.best_epoch
        return {
            "wait": int(es.wait),
            "best": None if es.best is None else float(es.best),
            "best_epoch": int(es.best_epoch),
            "stopped_epoch": int(es.stopped_epoch),
            "best_weights": self._best_file if es.best_weights is not None else None,
        }

    def _write_outputs(self):
        if self.history_path is not None:
            atomic_write_text(self.history_path, _history_csv(self.history))
        if self.gradient_stats is not None:
            frame = self.gradient_stats.to_dataframe()
            if self._previous_stats is not None:
                # This segment's rows before the resume point are probe rows measured at its
                # train begin (epoch -1): the first segment's are kept instead.
                frame = frame[frame["epoch"] >= self.initial_epoch]
                frame = pd.concat(
                    [f for f in (self._previous_stats, frame) if not f.empty] or [frame],
                    ignore_index=True,
                )
            save_frame(frame, self.gradient_stats_path)

    def on_train_end(self, logs=None):
        _compat.set_initial_epoch(self.model, None)

    def delete(self):
        """Removes the backup; call it once the run's final outputs are saved."""
        shutil.rmtree(self.backup_dir, ignore_errors=True)


def _weights_file_bytes(model):
    """A generous size of `model.save_weights`' file: the model's and optimizer's variables,
    plus HDF5's few kilobytes of metadata for each and its file header."""
    variables = list(model.weights)
    if model.optimizer is not None:
        variables += list(model.optimizer.variables)
    data = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)
    return int(data * 1.1) + 4096 * len(variables) + 65536

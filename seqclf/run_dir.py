"""`RunDir`: the on-disk format of a run directory (file names, how each is read and written).

The files are listed in `seqclf.run`'s docstring. Every write is atomic (`seqclf._io`): a
reader sees the previous version of a file or the new one, never a truncated one.
"""

import json
import os
import re

from seqclf._io import atomic_path, atomic_write_text
from seqclf.errors import SeqclfError


def write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _load_backbone(path):
    """A saved backbone (token ids in, probabilities out), uncompiled."""
    import keras

    # Registers the custom layers and initializers a backbone may hold (the classifier module
    # imports them all; not the `seqclf.models` package, whose task object imports this one).
    import seqclf.models.classifier  # noqa: F401

    return keras.models.load_model(path, compile=False)


def _slug(spec):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", spec).strip("_")[-100:] or "data"


class RunDir:
    """A run directory at `path`; its methods name, read and write the files in it."""

    CONFIG = "config.json"
    VOCABULARY = "vocabulary.txt"
    MODEL = "model.keras"
    HISTORY = "history.csv"
    GRADIENT_STATS = "gradient_stats.csv"
    GRADIENTS_BY_POSITION = "gradients_by_position.csv"
    METRICS = "metrics.json"
    CURVES_PLOT = "curves.png"
    GRADIENTS_PLOT = "gradients.png"
    GRADIENTS_BY_POSITION_PLOT = "gradients_by_position.png"
    EVALUATIONS = "evaluations"
    BACKUP = "backup"
    # An ensemble's members 1.. (member 0 trains as the run's own model), each saved as it
    # finishes, so that a resumed run retrains only the unfinished ones.
    MEMBERS = "members"
    # What `load_run` and `TextClassifier.from_run` need.
    MODEL_FILES = (CONFIG, VOCABULARY, MODEL)

    def __init__(self, path):
        self.path = os.fspath(path)

    def file(self, name):
        return os.path.join(self.path, name)

    @property
    def backup_dir(self):
        return self.file(self.BACKUP)

    def is_finished(self):
        """`metrics.json` marks a finished run."""
        return os.path.exists(self.file(self.METRICS))

    def unfinished_config(self):
        """The saved config of an unfinished run that has a backup to resume, or None."""
        if not (os.path.exists(os.path.join(self.backup_dir, "state.json"))
                and os.path.exists(self.file(self.CONFIG))):
            return None  # Nothing to resume: the run (re)starts from epoch 0.
        return self.read_config()

    def read_config(self, finished_model=False):
        """`config.json`; with `finished_model`, first checks that a trained model is there."""
        if finished_model:
            for name in self.MODEL_FILES:
                if not os.path.exists(self.file(name)):
                    raise SeqclfError(
                        f"{self.path} is not a finished seqclf run: {name} is missing. "
                        f"Received: {self.path!r}"
                    )
        with open(self.file(self.CONFIG), encoding="utf-8") as f:
            return json.load(f)

    def write_config(self, config):
        os.makedirs(self.path, exist_ok=True)
        write_json(self.file(self.CONFIG), config)

    def read_vocabulary(self):
        """The tokens by id (id = line number - 1)."""
        with open(self.file(self.VOCABULARY), encoding="utf-8") as f:
            return f.read().split("\n")[:-1]

    def write_vocabulary(self, vocabulary):
        atomic_write_text(self.file(self.VOCABULARY), "\n".join(vocabulary) + "\n")

    def save_model(self, model):
        """`model.keras`: the `TextClassifier`, so that the file alone loads as the text model
        (a backbone is still accepted, and read back by `load_model`)."""
        with atomic_path(self.file(self.MODEL)) as tmp:
            model.save(tmp)

    def member_file(self, k, ext="keras"):
        return os.path.join(self.file(self.MEMBERS), f"member_{k}.{ext}")

    def save_member(self, k, backbone, record):
        """Member `k`'s trained backbone and its record (seed, validation accuracy, epochs)."""
        os.makedirs(self.file(self.MEMBERS), exist_ok=True)
        with atomic_path(self.member_file(k)) as tmp:
            backbone.save(tmp)
        # The record last: its presence marks the member finished.
        write_json(self.member_file(k, "json"), record)

    def load_member(self, k):
        """`(backbone, record)` of a finished member `k`, or None if it has not finished."""
        if not os.path.exists(self.member_file(k, "json")):
            return None
        with open(self.member_file(k, "json"), encoding="utf-8") as f:
            record = json.load(f)
        return _load_backbone(self.member_file(k)), record

    def load_model(self):
        """The trained backbone (token ids in, probabilities out), uncompiled. `model.keras`
        holds the whole `TextClassifier` (texts in, as `keras.saving.load_model` gives it) or,
        in runs written before it did, the backbone alone."""
        model = _load_backbone(self.file(self.MODEL))
        return getattr(model, "backbone", model)

    def read_metrics(self):
        """`metrics.json` of a finished run."""
        with open(self.file(self.METRICS), encoding="utf-8") as f:
            return json.load(f)

    def write_metrics(self, metrics):
        write_json(self.file(self.METRICS), metrics)

    def write_evaluation(self, data_spec, result):
        """`evaluations/<data spec as a file name>.json`; returns its path."""
        os.makedirs(self.file(self.EVALUATIONS), exist_ok=True)
        path = os.path.join(self.file(self.EVALUATIONS), _slug(data_spec) + ".json")
        write_json(path, result)
        return path

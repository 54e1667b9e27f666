"""`RunDir`: the on-disk format of a run directory (file names, how each is read and written).

The files are listed in `seqclf.run`'s docstring. Every write is atomic (`seqclf._io`): a
reader sees the previous version of a file or the new one, never a truncated one.
"""

import contextlib
import errno
import fcntl
import json
import os
import re
import weakref
import zipfile

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

    if not zipfile.is_zipfile(path):
        # Keras says "File not found" of a truncated archive.
        raise SeqclfError(
            f"{path}: not a readable .keras model (truncated or corrupt). Received: {path!r}"
        )
    try:
        return keras.models.load_model(path, compile=False)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        if isinstance(e, SeqclfError):
            raise
        raise SeqclfError(
            f"{path}: not a readable .keras model ({type(e).__name__}: {str(e)[:200]}). "
            f"Received: {path!r}"
        ) from None


class _RunLock:
    """An `flock` on a run directory's lock file, held while the object lives: released by
    `release()`, when the object is collected (the `train` that held it has returned or raised)
    or when the process ends, however it ends (the kernel drops a dead process's locks)."""

    def __init__(self, fd):
        self.fd = fd

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    __del__ = release


# Real path -> the lock this process holds there. Trains in one process run one after another,
# so a lock still alive here belongs to an earlier run that has ended.
_LOCKS = weakref.WeakValueDictionary()


def _slug(spec):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", spec).strip("_")[-100:] or "data"


def _evaluated_spec(path):
    """The data spec an evaluation file holds (None if it cannot be read)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("data")
    except (OSError, ValueError, AttributeError):
        return None


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
    CONFUSION_PLOT = "confusion.png"
    GRADIENTS_PLOT = "gradients.png"
    GRADIENTS_BY_POSITION_PLOT = "gradients_by_position.png"
    EVALUATIONS = "evaluations"
    BACKUP = "backup"
    # An ensemble's members 1.. (member 0 trains as the run's own model), each saved as it
    # finishes, so that a resumed run retrains only the unfinished ones.
    MEMBERS = "members"
    # What `TextClassifier.from_run` needs.
    MODEL_FILES = (CONFIG, VOCABULARY, MODEL)
    # Locked by the `train` writing the directory; its presence marks the directory seqclf's
    # from the set-up on (before config.json exists).
    LOCK = ".seqclf.lock"
    # The folders seqclf writes into and removes: never through a symbolic link.
    FOLDERS = (BACKUP, MEMBERS, EVALUATIONS)

    def __init__(self, path):
        self.path = os.fspath(path)

    def file(self, name):
        return os.path.join(self.path, name)

    @property
    def backup_dir(self):
        return self.file(self.BACKUP)

    def is_seqclf_run(self):
        """Whether the directory is one `train` or `save_run` made: its lock file, or a
        config.json that seqclf wrote (a user's own config.json does not count)."""
        if os.path.isfile(self.file(self.LOCK)) and not os.path.islink(self.file(self.LOCK)):
            return True
        try:
            with open(self.file(self.CONFIG), encoding="utf-8") as f:
                config = json.load(f)
        except (OSError, ValueError):
            return False
        return isinstance(config, dict) and "seqclf_format" in config

    def check_no_links(self, *names):
        """Raises if one of the folders `names` (default: all) is a symbolic link, which would
        lead seqclf's writes and deletes outside the run directory."""
        for name in names or self.FOLDERS:
            if os.path.islink(self.file(name)):
                raise SeqclfError(
                    f"{self.file(name)} is a symbolic link; seqclf writes and deletes only inside "
                    f"the run directory, never through a link. Received: "
                    f"{name}={os.readlink(self.file(name))!r}"
                )

    def claim(self):
        """Makes the directory `train` writes: creates it or checks that it is empty or seqclf's,
        checks for links out of it and locks it against another `train`. Returns the lock:
        keep it while training (see `_RunLock`)."""
        out = self.path
        if os.path.lexists(out) and not os.path.isdir(out):
            raise SeqclfError(f"--out exists and is not a directory. Received: out={out!r}")
        created = not os.path.exists(out)
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as e:
            raise SeqclfError(
                f"cannot create the run directory: {e.strerror}. Received: out={out!r}"
            ) from None
        if not created and os.listdir(out) and not self.is_seqclf_run():
            raise SeqclfError(
                f"{out} is not a seqclf run directory and is not empty; train writes only into "
                f"a new or empty folder or a seqclf run. Choose another --out. "
                f"Received: {sorted(os.listdir(out))[:5]}"
            )
        self.check_no_links()
        key = os.path.realpath(out)
        old = _LOCKS.pop(key, None)
        if old is not None:
            old.release()
        try:
            fd = os.open(self.file(self.LOCK), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            raise SeqclfError(
                f"cannot write in the run directory: {e.strerror}. Received: out={out!r}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise SeqclfError(
                f"{out} is being written by another seqclf train; wait for it to end or choose "
                f"another --out. Received: out={out!r}"
            ) from None
        lock = _LOCKS[key] = _RunLock(fd)
        return lock

    def remove_if_unused(self):
        """Removes the directory if it holds nothing but its lock file (a run refused before
        writing anything); releases the lock."""
        lock = _LOCKS.pop(os.path.realpath(self.path), None)
        with contextlib.suppress(OSError):
            if os.listdir(self.path) == [self.LOCK]:
                os.remove(self.file(self.LOCK))
                os.rmdir(self.path)
        if lock is not None:
            lock.release()

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
        try:
            with open(self.file(self.CONFIG), encoding="utf-8") as f:
                config = json.load(f)
        except FileNotFoundError:
            raise SeqclfError(
                f"{self.path} is not a seqclf run: {self.CONFIG} is missing. "
                f"Received: {self.path!r}"
            ) from None
        except (OSError, ValueError) as e:
            raise SeqclfError(
                f"{self.file(self.CONFIG)}: cannot read the run's settings "
                f"({type(e).__name__}: {e}). Received: {self.file(self.CONFIG)!r}"
            ) from None
        if not isinstance(config, dict):
            raise SeqclfError(
                f"{self.file(self.CONFIG)}: must hold a JSON object. "
                f"Received: {type(config).__name__}"
            )
        return config

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
        """`evaluations/<data spec as a file name>.json`; returns its path.

        Two specs with one file name (`dev set.tsv`, `dev_set.tsv`) get `-2`, `-3`, ...: a file
        is replaced only by an evaluation of the same spec."""
        self.check_no_links(self.EVALUATIONS)
        os.makedirs(self.file(self.EVALUATIONS), exist_ok=True)
        base = os.path.join(self.file(self.EVALUATIONS), _slug(data_spec))
        path, k = base + ".json", 1
        while os.path.lexists(path) and _evaluated_spec(path) != data_spec:
            k += 1
            path = f"{base}-{k}.json"
        write_json(path, result)
        return path

"""Atomic file writes: every file seqclf writes goes through `atomic_path` or `atomic_write_text`.

A file is written under a temporary name in the directory of its target, flushed to disk, then
renamed over the target with `os.replace` (atomic within a file system). A process killed at any
point therefore leaves either the previous complete file or the new complete file, never a
truncated one; at worst a stray `.tmp-*` file remains beside it, which no reader looks at.
"""

import contextlib
import errno
import os
import re
import secrets
import shutil

TMP_PREFIX = ".tmp-"
# The names `atomic_path` gives: prefix, writer's pid, random part, target's name.
_TMP_NAME = re.compile(re.escape(TMP_PREFIX) + r"\d+-[0-9a-f]{8}-.")


def _fsync(path):
    # Without it, a power loss after the rename could leave the new name pointing at blocks that
    # never reached the disk.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; when the block succeeds it replaces `path`.

    Use it with writers that take a path (`DataFrame.to_csv`, `model.save`, `fig.savefig`):

    ```python
    with atomic_path("run/model.keras") as tmp:
        model.save(tmp)
    ```

    If the block raises, the temporary file is removed and `path` is left as it was.
    """
    path = os.fspath(path)
    directory, name = os.path.split(path)
    # The temporary name ends with the target's name: savers check the extension of the path
    # they are given (`model.save` wants `.keras`, `save_weights` `.weights.h5`). The writer
    # creates the file, so it gets the usual permissions (mkstemp would make it 0600).
    tmp = os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{name}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def ensure_room(path, nbytes):
    """Raises `OSError(ENOSPC)` naming `path` unless its file system has room for `nbytes`.

    For writers that must not meet a full disk halfway: h5py (Keras' `save_weights`) leaves
    HDF5 in a broken state when a write fails, prints errors as its objects are freed and can
    crash the process; checking first turns that into the ordinary error every other writer
    raises.
    """
    free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
    if free < nbytes:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))


def atomic_write_text(path, text):
    """Writes `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def remove_stale_temporaries(directory):
    """Removes the temporary files killed writers left in `directory` (not recursive).

    Only call it where no other process is writing into `directory`.
    """
    if not os.path.isdir(directory):
        return
    for name in os.listdir(directory):
        full = os.path.join(directory, name)
        if _TMP_NAME.match(name) and os.path.isfile(full):
            with contextlib.suppress(OSError):
                os.remove(full)

"""The gradient-statistics frame: its columns and dtypes, and reading and writing it.

Shared by `GradientStats` (which builds it), `PositionProbe`, `RunBackup` (which writes it at every
epoch end and reads it back on resume) and `seqclf.plotting`. Needs pandas only, not TensorFlow.
"""

from __future__ import annotations

import os

import pandas as pd

from seqclf._io import atomic_path
from seqclf.errors import SeqclfError

__all__ = ["COLUMNS", "GLOBAL_LAYER", "frame_from_rows", "load_frame", "probe_rows", "save_frame"]

COLUMNS = ["step", "epoch", "layer", "variable", "stage", "statistic", "timestep", "value"]
#: The `layer` of rows about the whole model (global norm, clip_fired of any variable).
GLOBAL_LAYER = "(global)"


def _typed(frame):
    frame["step"] = frame["step"].astype("int64")
    frame["epoch"] = frame["epoch"].astype("int64")
    frame["timestep"] = frame["timestep"].astype("Int64")
    frame["value"] = frame["value"].astype("float64")
    return frame


def frame_from_rows(rows):
    """The typed frame of `(step, epoch, layer, variable, stage, statistic, timestep, value)` rows.

    `timestep` (nullable int) is missing where a row's is None.
    """
    return _typed(pd.DataFrame(rows, columns=COLUMNS))


def probe_rows(curves, step, epoch):
    """Frame rows of a probe: `{layer: curve}` from `timestep_gradient_norms`, one row per
    layer and distance from the end (`stage="probe"`, `statistic="input_grad_norm"`)."""
    return [(step, epoch, layer, "", "probe", "input_grad_norm", d, float(v))
            for layer, curve in curves.items() for d, v in enumerate(curve)]


def _frame_format(path):
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".csv", ".parquet", ".pq"):
        raise SeqclfError(
            "Unsupported file extension; expected .csv, .parquet or .pq. "
            f"Received: path={path!r}"
        )
    return path, ext


def save_frame(frame, path):
    """Write a `GradientStats.to_dataframe()` frame to `.csv` or `.parquet`/`.pq`, atomically.

    The file is written beside `path` and renamed over it, so a crash never leaves a truncated
    file (see `seqclf._io`). Returns `path`.
    """
    path, ext = _frame_format(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with atomic_path(path) as tmp:
        if ext == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return path


def load_frame(path):
    """Read a file written by `GradientStats.save` with the dtypes of `to_dataframe()`."""
    path, ext = _frame_format(path)
    if ext != ".csv":
        return _typed(pd.read_parquet(path))
    # `variable` is "" for global and probe rows; pandas would read those as NaN.
    text = {c: str for c in ("layer", "variable", "stage", "statistic")}
    frame = pd.read_csv(path, dtype=text, keep_default_na=False,
                        na_values={"timestep": [""], "value": [""]})
    return _typed(frame)

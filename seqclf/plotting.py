"""Plots of gradient diagnostics recorded by `seqclf.callbacks.GradientStats`.

Kept out of the callback so training never imports matplotlib. Figures are built with the
object-oriented API on an Agg canvas (no pyplot, no global backend switch), so plotting works
headless and does not interfere with a user's interactive matplotlib session. Each function
saves a PNG when `path` is given and returns the `matplotlib.figure.Figure`.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from seqclf._io import atomic_path
from seqclf.errors import SeqclfError

__all__ = ["plot_layer_norms", "plot_timestep_gradients", "plot_timestep_heatmap"]


def _figure(figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    if path is not None:
        path = os.fspath(path)
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    return fig


def _check_frame(frame, name="frame"):
    if not isinstance(frame, pd.DataFrame):
        raise SeqclfError(
            f"`{name}` must be a DataFrame from GradientStats.to_dataframe(). "
            f"Received: {name} of type {type(frame).__name__}"
        )
    missing = {"step", "layer", "variable", "stage", "statistic", "value"} - set(frame.columns)
    if missing:
        raise SeqclfError(
            f"`{name}` lacks columns {sorted(missing)}. Received: {list(frame.columns)}"
        )


def plot_layer_norms(frame, path=None, statistic="norm", stage="pre_clip", log_scale=True):
    """Per-variable gradient `statistic` over training steps, one line per layer/variable.

    The global norm (layer "(global)") is drawn as a thick black line when the statistic is
    "norm".
    """
    _check_frame(frame)
    rows = frame[(frame["stage"] == stage) & (frame["statistic"] == statistic)]
    if rows.empty:
        raise SeqclfError(
            "No rows to plot for this statistic and stage. "
            f"Received: statistic={statistic!r}, stage={stage!r}"
        )
    fig = _figure((8, 4.5))
    ax = fig.add_subplot()
    for (layer, variable), group in rows.groupby(["layer", "variable"], sort=False):
        group = group.sort_values("step")
        ax.plot(group["step"], group["value"], label=f"{layer}/{variable}", lw=1.2)
    if statistic == "norm":
        glob = frame[(frame["stage"] == stage) & (frame["statistic"] == "global_norm")]
        if not glob.empty:
            glob = glob.sort_values("step")
            ax.plot(glob["step"], glob["value"], color="black", lw=2.2, label="global")
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"gradient {statistic} ({stage})")
    ax.set_title(f"Gradient {statistic} per variable")
    ax.legend(fontsize="small", ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def _curves(source, label, layer, epochs):
    """`[(label, np.ndarray)]` from a frame's probe rows or a `{name: curve}` dict."""
    if isinstance(source, pd.DataFrame):
        _check_frame(source, "curves")
        rows = source[source["statistic"] == "input_grad_norm"]
        if layer is not None:
            rows = rows[rows["layer"] == layer]
        if epochs is not None:
            rows = rows[rows["epoch"].isin(list(epochs))]
        out = []
        for (lay, epoch), group in rows.groupby(["layer", "epoch"], sort=True):
            group = group.sort_values("timestep")
            name = f"{lay}, " + ("init" if epoch < 0 else f"epoch {epoch}")
            out.append((f"{label}: {name}" if label else name, group["value"].to_numpy(float)))
        return out
    if isinstance(source, dict):
        items = source.items()
        if layer is not None:
            items = [(k, v) for k, v in items if k == layer]
        return [
            (f"{label}: {k}" if label else str(k), np.asarray(v, dtype=float)) for k, v in items
        ]
    arr = np.asarray(source, dtype=float)
    if arr.ndim != 1:
        raise SeqclfError(
            "A curve must be a DataFrame, a dict of 1-D arrays or a 1-D array. "
            f"Received: an array of shape {arr.shape}"
        )
    return [(label or "curve", arr)]


def plot_timestep_gradients(
    curves, path=None, labels=None, layer=None, epochs=None, title=None, max_distance=None
):
    """Gradient norm vs distance from the sequence end, log y, one line per model/layer/epoch.

    Args:
        curves: One source or a list of sources to compare. A source is a frame from
            `GradientStats.to_dataframe()` (its probe rows: one line per layer and epoch), a
            `{layer_name: curve}` dict as returned by `timestep_gradient_norms`, or a 1-D array.
        path: PNG path to save to (optional).
        labels: One label per source (e.g. model names), prefixed to the line labels.
        layer: Only plot this layer.
        epochs: Only plot these epochs (frames only; -1 is the measurement at train begin).
        title: Figure title.
        max_distance: Cut the x axis at this distance.
    """
    sources = curves if isinstance(curves, list) else [curves]
    if labels is not None and len(labels) != len(sources):
        raise SeqclfError(
            "`labels` must have one entry per curve source. "
            f"Received: {len(labels)} labels for {len(sources)} sources"
        )
    lines = []
    for i, source in enumerate(sources):
        lines += _curves(source, labels[i] if labels else None, layer, epochs)
    if not lines:
        raise SeqclfError(f"Nothing to plot. Received: layer={layer!r}, epochs={epochs!r}")
    fig = _figure((7, 4.5))
    ax = fig.add_subplot()
    for name, curve in lines:
        if max_distance is not None:
            curve = curve[: max_distance + 1]
        d = np.arange(len(curve))
        ok = np.isfinite(curve) & (curve > 0)
        ax.plot(d[ok], curve[ok], marker=".", ms=3, lw=1.2, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("distance from sequence end (tokens)")
    ax.set_ylabel("mean ||dL/d input_t||")
    ax.set_title(title or "Gradient norm vs distance from the end")
    ax.legend(fontsize="small")
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def plot_timestep_heatmap(source, path=None, epoch=None, title=None, max_distance=None):
    """Layer x distance-from-end heatmap of log10 input-gradient norms.

    `source` is a `GradientStats` frame (uses `epoch`, default the last probed one) or a
    `{layer_name: curve}` dict.
    """
    if isinstance(source, pd.DataFrame):
        _check_frame(source, "source")
        rows = source[source["statistic"] == "input_grad_norm"]
        if rows.empty:
            raise SeqclfError(
                "The frame has no probe rows (was `probe_data` given?). Received: 0 rows"
            )
        if epoch is None:
            epoch = int(rows["epoch"].max())
        rows = rows[rows["epoch"] == epoch]
        if rows.empty:
            raise SeqclfError(f"No probe rows for this epoch. Received: epoch={epoch!r}")
        table = rows.pivot_table(index="layer", columns="timestep", values="value", sort=False)
        names, matrix = list(table.index), table.to_numpy(float)
    elif isinstance(source, dict) and source:
        names = list(source)
        width = max(len(v) for v in source.values())
        matrix = np.full((len(names), width), np.nan)
        for i, name in enumerate(names):
            values = np.asarray(source[name], dtype=float)
            matrix[i, : len(values)] = values
    else:
        raise SeqclfError(
            "`source` must be a GradientStats frame or a non-empty dict of curves. "
            f"Received: source of type {type(source).__name__}"
        )
    if max_distance is not None:
        matrix = matrix[:, : max_distance + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(matrix > 0, np.log10(matrix), np.nan)
    fig = _figure((8, 1.2 + 0.5 * len(names)))
    ax = fig.add_subplot()
    image = ax.imshow(
        np.ma.masked_invalid(logs), aspect="auto", cmap="viridis", interpolation="nearest"
    )
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("distance from sequence end (tokens)")
    fig.colorbar(image, ax=ax, label="log10 ||dL/d input_t||")
    suffix = "" if epoch is None else (" (init)" if epoch < 0 else f" (epoch {epoch})")
    ax.set_title(title or f"Input-gradient norm by layer and distance{suffix}")
    return _save(fig, path)

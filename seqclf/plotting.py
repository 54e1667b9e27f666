"""Plots of training runs and of gradient diagnostics recorded by `seqclf.callbacks.GradientStats`.

Every figure seqclf draws comes from here: `plot_run` draws a run directory's `curves.png`,
`gradients.png`, `gradients_by_position.png` and `confusion.png` (at the end of `seqclf train`
and with `seqclf plot RUN_DIR`), and the demo's figures use the same functions.

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
from seqclf.gradients.frames import GLOBAL_LAYER, load_frame

__all__ = [
    "plot_accuracy_vs_distance",
    "plot_clipping_comparison",
    "plot_confusion_matrix",
    "plot_gradient_overview",
    "plot_gradients_by_position",
    "plot_layer_norms",
    "plot_run",
    "plot_timestep_gradients",
    "plot_timestep_heatmap",
    "plot_training_curves",
]

_FRAME_COLUMNS = ("step", "layer", "variable", "stage", "statistic", "value")


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


def _require_columns(frame, columns, name, source):
    if not isinstance(frame, pd.DataFrame):
        raise SeqclfError(
            f"`{name}` must be a DataFrame from {source}. "
            f"Received: {name} of type {type(frame).__name__}"
        )
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SeqclfError(
            f"`{name}` lacks columns {missing}. Received: {name} with columns "
            f"{list(frame.columns)}"
        )


def _check_frame(frame, name="frame", extra=()):
    _require_columns(frame, (*_FRAME_COLUMNS, *extra), name, "GradientStats.to_dataframe()")


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
            # Labels count epochs from 1, as Keras' progress does; the frame's are 0-based.
            name = f"{lay}, " + ("init" if epoch < 0 else f"epoch {epoch + 1}")
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
        epochs: Only plot these epochs (frames only; the frame's 0-based `epoch` values, -1
            the measurement at train begin). Line labels count epochs from 1.
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


# --------------------------------------------------------------------------- training runs

HISTORY_COLUMNS = ("epoch", "loss", "val_loss", "accuracy", "val_accuracy")


def plot_training_curves(history, path=None, best_epoch=None, title=None, majority=None):
    """Loss and accuracy per epoch, training vs validation, with the best epoch marked.

    Args:
        history: A frame with the columns of a run's `history.csv` (`epoch`, 0-based as Keras
            counts, `loss`, `val_loss`, `accuracy`, `val_accuracy`).
        best_epoch: The 1-based epoch to mark (default: the highest `val_accuracy`, the epoch
            whose weights early stopping keeps).
        majority: `(label, accuracy)` of always answering the most frequent validation class,
            drawn as a line under the accuracies: a curve near it has learned little.
    """
    _require_columns(history, HISTORY_COLUMNS, "history", "a run's history.csv")
    if history.empty:
        raise SeqclfError("`history` has no rows (no epoch finished). Received: 0 rows")
    history = history.sort_values("epoch")
    epochs = history["epoch"].to_numpy(int) + 1
    if best_epoch is None:
        best_epoch = int(epochs[int(np.argmax(history["val_accuracy"].to_numpy(float)))])
    fig = _figure((10, 4))
    for k, metric in enumerate(("loss", "accuracy")):
        ax = fig.add_subplot(1, 2, k + 1)
        ax.plot(epochs, history[metric], "o-", lw=1.5, label=f"train {metric}")
        ax.plot(epochs, history[f"val_{metric}"], "s-", lw=1.5, label=f"validation {metric}")
        ax.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"best epoch ({best_epoch})")
        if metric == "accuracy" and majority is not None:
            ax.axhline(majority[1], color="tab:red", ls=":", lw=1.5,
                       label=f"always {majority[0]!r} ({majority[1]:.3f})")
        best = history[history["epoch"] == best_epoch - 1]
        if not best.empty:
            ax.plot([best_epoch], best[f"val_{metric}"], "*", color="black", ms=12)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_xticks(epochs if len(epochs) <= 20 else np.linspace(1, epochs[-1], 10).round())
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title or "Training curves")
    return _save(fig, path)


def plot_confusion_matrix(report, path=None, title=None):
    """The confusion matrix of a `seqclf.class_report.class_report` (rows: true class,
    columns: predicted), each cell's count and share of its true class, with each class's
    recall and precision beside the matrix."""
    matrix = np.asarray(report["confusion_matrix"]["counts"], dtype=float)
    names = report["confusion_matrix"]["labels"]
    k = len(names)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    side = min(2.5 + 0.7 * k, 14)
    fig = _figure((side + 1.5, side))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="share of the true class", shrink=0.8)
    if k <= 20:  # beyond, the numbers would not fit their cells
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{int(matrix[i, j])}\n{share[i, j]:.0%}", ha="center",
                        va="center", fontsize="small",
                        color="white" if share[i, j] > 0.5 else "black")
    per_class = report["per_class"]
    ax.set_xticks(range(k), [f"{n}\nprecision {per_class[n]['precision']:.2f}" for n in names],
                  rotation=0 if k <= 4 else 45, fontsize="small")
    ax.set_yticks(range(k), [f"{n}\nrecall {per_class[n]['recall']:.2f}" for n in names],
                  fontsize="small")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    majority = report["majority_baseline"]
    ax.set_title(title or (f"accuracy {report['accuracy']:.3f}, macro-F1 "
                           f"{report['macro_f1']:.3f} ({report['n']} rows); always "
                           f"{majority['label']!r}: {majority['accuracy']:.3f}"),
                 fontsize="medium")
    return _save(fig, path)


def _log_axes(ax, xlabel, ylabel, title):
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(True, which="both", alpha=0.3)


def _layer_norms(frame, stage):
    """`{layer: (steps, norms)}`: each layer's gradient norm, from its variables' norms."""
    rows = frame[(frame["stage"] == stage) & (frame["statistic"] == "norm")
                 & (frame["layer"] != GLOBAL_LAYER)]
    squares = rows.assign(sq=rows["value"] ** 2).groupby(["layer", "step"], sort=False)["sq"].sum()
    out = {}
    for layer in rows["layer"].unique():
        series = squares.loc[layer].sort_index()
        out[layer] = (series.index.to_numpy(), np.sqrt(series.to_numpy(float)))
    return out


def plot_gradient_overview(frame, path=None, title=None):
    """Global gradient norm before/after clipping over steps, the share of sampled steps in
    which clipping fired per epoch, and each layer's gradient norm (pre-clip).

    `frame` is a `GradientStats.to_dataframe()` frame (or `load_frame` of a saved one).
    """
    _check_frame(frame, extra=("epoch",))
    glob = frame[(frame["layer"] == GLOBAL_LAYER) & (frame["statistic"] == "global_norm")]
    if glob.empty:
        raise SeqclfError("The frame has no global-norm rows (no sampled step). Received: "
                          f"{len(frame)} rows")
    fig = _figure((14, 4))
    ax = fig.add_subplot(1, 3, 1)
    for stage, style in (("pre_clip", "-"), ("post_clip", "--")):
        rows = glob[glob["stage"] == stage].sort_values("step")
        if not rows.empty:
            ax.plot(rows["step"], rows["value"], ls=style, lw=1.2, label=stage.replace("_", "-"))
    _log_axes(ax, "training step", "global gradient norm", "Global norm before / after clipping")

    ax = fig.add_subplot(1, 3, 2)
    fired = frame[(frame["layer"] == GLOBAL_LAYER) & (frame["statistic"] == "clip_fired")]
    if fired.empty:
        ax.text(0.5, 0.5, "no clipping configured", ha="center", va="center",
                transform=ax.transAxes)
    else:
        share = fired.groupby("epoch")["value"].mean()
        bars = ax.bar(share.index.to_numpy(int) + 1, share.to_numpy(float), color="tab:red",
                      alpha=0.7)
        ax.bar_label(bars, labels=[f"{v:.0%}" for v in share], fontsize="small")
        ax.set_ylim(0, 1.05)
        ax.set_xticks(share.index.to_numpy(int) + 1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("share of sampled steps")
    ax.set_title("Clipping fired")
    ax.grid(alpha=0.3, axis="y")

    ax = fig.add_subplot(1, 3, 3)
    for layer, (steps, norms) in _layer_norms(frame, "pre_clip").items():
        ax.plot(steps, norms, lw=1.2, label=layer)
    _log_axes(ax, "training step", "layer gradient norm (pre-clip)", "Per-layer gradient norm")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_gradients_by_position(frame, path=None, title=None):
    """Per-timestep input-gradient norm of a probe batch at the first and the last probed
    epoch, by distance from the end, log scale: how far back the training signal reaches.

    `frame` holds probe rows in `GradientStats`' format (`stage="probe"`,
    `statistic="input_grad_norm"`, `timestep` = distance from the end), e.g. a run's
    `gradients_by_position.csv` read with `load_frame`.
    """
    _check_frame(frame, extra=("epoch", "timestep"))
    rows = frame[(frame["statistic"] == "input_grad_norm") & (frame["epoch"] >= 0)]
    if rows.empty:
        raise SeqclfError(f"The frame has no probe rows. Received: {len(frame)} rows")
    return plot_timestep_gradients(
        rows, path=path, epochs=sorted({int(rows["epoch"].min()), int(rows["epoch"].max())}),
        title=title or "Gradient norm by distance from the end (validation probe batch)",
    )


def plot_run(run_dir):
    """Draws a run directory's plots into it; returns the paths written.

    `curves.png` from `history.csv` (best epoch from `metrics.json` when there is one);
    `gradients.png` from `gradient_stats.csv` (runs with `--gradient-stats`);
    `gradients_by_position.png` from `gradients_by_position.csv` (recurrent models);
    `confusion.png` from `metrics.json`'s validation report (finished runs), whose majority
    baseline `curves.png` draws too.
    """
    from seqclf.run_dir import RunDir

    run = RunDir(run_dir)
    history_path = run.file(RunDir.HISTORY)
    if not os.path.exists(history_path):
        raise SeqclfError(
            f"{run.path} has no {RunDir.HISTORY}: not a seqclf run directory, or no epoch has "
            f"finished yet. Received: {run.path!r}"
        )
    best_epoch, report = None, None
    if run.is_finished():
        metrics = run.read_metrics()
        best_epoch = metrics.get("best_epoch")
        report = metrics.get("validation_report")  # absent from runs older than it
    majority = None
    # With class weights the history's accuracies are weighted by class: the plain accuracy of
    # the all-majority answer would not compare with them (confusion.png has it).
    weighted = run.read_config().get("class_weight") if os.path.exists(
        run.file(RunDir.CONFIG)) else None
    if report is not None and not weighted:
        majority = (report["majority_baseline"]["label"], report["majority_baseline"]["accuracy"])
    name = os.path.basename(os.path.abspath(run.path))
    written = [run.file(RunDir.CURVES_PLOT)]
    plot_training_curves(pd.read_csv(history_path), path=written[0], best_epoch=best_epoch,
                         title=f"Training curves: {name}"
                         + (" (loss and accuracy weighted by class)" if weighted else ""),
                         majority=majority)
    if report is not None:
        written.append(run.file(RunDir.CONFUSION_PLOT))
        plot_confusion_matrix(report, path=written[-1])
    for csv, png, plot in (
        (RunDir.GRADIENT_STATS, RunDir.GRADIENTS_PLOT, plot_gradient_overview),
        (RunDir.GRADIENTS_BY_POSITION, RunDir.GRADIENTS_BY_POSITION_PLOT,
         plot_gradients_by_position),
    ):
        if os.path.exists(run.file(csv)):
            path = run.file(png)
            plot(load_frame(run.file(csv)), path=path)
            written.append(path)
    return written


# --------------------------------------------------------------------------- the demo's figures


def plot_accuracy_vs_distance(records, path=None):
    """Test accuracy against sequence length / cue distance, one panel per task, one line per
    cell and initialization, chance level dashed. `records` is a frame (or list of dicts) with
    columns `task`, `cell`, `init`, `distance`, `test_accuracy`, `chance`."""
    records = pd.DataFrame(records) if isinstance(records, list) else records
    _require_columns(records, ("task", "cell", "init", "distance", "test_accuracy", "chance"),
                     "records", "the demo's learning records")
    records = records.assign(family=records["task"].str.split("/").str[0])
    tasks = sorted(records["family"].unique())
    fig = _figure((5.5 * max(len(tasks), 1), 4.2))
    for k, task in enumerate(tasks):
        ax = fig.add_subplot(1, len(tasks), k + 1)
        rows = records[records["family"] == task]
        for cell, init, style in (("simple_rnn", "default", "o-"), ("lstm", "default", "s-"),
                                  ("lstm", "chrono", "^-")):
            pts = rows[(rows["cell"] == cell) & (rows["init"] == init)].sort_values("distance")
            if not pts.empty:
                ax.plot(pts["distance"], pts["test_accuracy"], style, label=f"{cell} ({init})")
        ax.axhline(rows["chance"].iloc[0], color="grey", ls="--", lw=1, label="chance")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel(
            "sequence length" if task == "temporal_order" else "cue distance (filler tokens)"
        )
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{task}: equal budgets")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, path)


def plot_clipping_comparison(stats, losses, labels, path=None, title=None):
    """Global gradient norm (pre- and post-clip) and per-step training loss of several runs.

    Args:
        stats: A `GradientStats` frame of all runs with a `run` column naming each.
        losses: `{run: per-step losses}`.
        labels: `{run: label}`; the runs to draw, in order.
    """
    _check_frame(stats, "stats", extra=("run",))
    fig = _figure((11, 4.2))
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for run, label in labels.items():
        frame = stats[stats["run"] == run]
        g = frame[(frame["layer"] == GLOBAL_LAYER) & (frame["statistic"] == "global_norm")]
        pre = g[g["stage"] == "pre_clip"].sort_values("step")
        ax1.plot(pre["step"], pre["value"], lw=1.2, label=f"{label}: pre-clip")
        post = g[g["stage"] == "post_clip"].sort_values("step")
        if len(post):
            ax1.plot(post["step"], post["value"], lw=1, ls="--", label=f"{label}: post-clip")
        loss = np.asarray(losses[run], dtype=float)
        ax2.plot(np.arange(len(loss)), loss, lw=1.2, label=label)
    _log_axes(ax1, "training step", "global gradient norm (GradientStats)",
              title or "Global gradient norm")
    _log_axes(ax2, "training step", "training loss of the step",
              "Loss with and without clipping (same seed)")
    return _save(fig, path)

"""The demonstration's PNG figures, drawn with `seqclf.plotting` (no plotting code of its own)."""

from __future__ import annotations

import os


def write_plots(out, decay_curves, learning, explode_records, explode_losses, stats, probes, cfg):
    """Draws every figure into `out`; returns the file names written."""
    from seqclf.plotting import (
        plot_accuracy_vs_distance,
        plot_clipping_comparison,
        plot_layer_norms,
        plot_timestep_gradients,
        plot_timestep_heatmap,
    )

    files = []
    path = os.path.join(out, "decay_gradient_vs_distance.png")
    plot_timestep_gradients(
        [{k: v} for k, v in decay_curves.items()],
        path=path,
        labels=None,
        title="Gradient norm vs distance at initialisation (temporal-order probe batch)",
    )
    files.append(path)
    path = os.path.join(out, "decay_heatmap.png")
    plot_timestep_heatmap(decay_curves, path=path, title="log10 ||dL/dx_t|| at initialisation")
    files.append(path)

    path = os.path.join(out, "accuracy_vs_distance.png")
    plot_accuracy_vs_distance(learning, path=path)
    files.append(path)

    # Per-timestep gradients before/after training at the longest temporal-order length.
    longest = max(cfg.temporal_lengths)
    chosen = {k: v for k, v in probes.items() if f"/L={longest}/" in k}
    if chosen:
        curves, labels = [], []
        for run, (init_curve, final_curve) in chosen.items():
            name = run.split("/", 2)[2]
            curves += [{"init": init_curve}, {"trained": final_curve}]
            labels += [name, name]
        path = os.path.join(out, f"temporal_order_L{longest}_gradients_before_after.png")
        plot_timestep_gradients(curves, path=path, labels=labels,
                                title=f"Temporal order L={longest}: gradient vs distance")
        files.append(path)

    # Exploding: gradient-norm traces and per-step losses, with and without clipping.
    path = os.path.join(out, "exploding_clipping.png")
    plot_clipping_comparison(
        stats, explode_losses, {r["run"]: f"clipnorm={r['clipnorm']}" for r in explode_records},
        path=path, title=f"SimpleRNN gain={cfg.explode_gain:g}, {cfg.explode_optimizer} "
                         f"lr={cfg.explode_learning_rate:g}",
    )
    files.append(path)

    clipped = [r for r in explode_records if r["clipnorm"]]
    if clipped:
        path = os.path.join(out, "exploding_layer_norms_clipped.png")
        plot_layer_norms(stats[stats["run"] == clipped[0]["run"]], path=path)
        files.append(path)
    return [os.path.basename(f) for f in files]

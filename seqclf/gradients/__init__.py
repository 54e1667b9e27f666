"""Gradient diagnostics, by concern (the `GradientStats` callback itself is in `seqclf.callbacks`).

* `timestep_probe`: `timestep_gradient_norms`, a probe: per-timestep input-gradient norms of each
  recurrent layer on a fixed batch, measured outside training.
* `optimizer_hook`: how `GradientStats` sees the gradients of the real train step (a wrapper on
  the optimizer instance).
* `graph_stats`: the statistics computed inside the train step and the variables holding them.
* `frames`: the tidy statistics frame: columns, dtypes, CSV/Parquet reading and writing.
* `tensorboard`: writing the statistics as TensorBoard scalars and histograms.
* `growth`: `GrowthMonitor`, the running-median test for a gradient norm that explodes.

Nothing is imported here, so that `seqclf.gradients.frames` (pandas only) loads without
TensorFlow.
"""

"""The vanishing/exploding-gradient demonstration behind `seqclf demo --out DIR`.

Three measurements, each small enough that the default run takes a few minutes on 2 CPU cores:

1. **Decay sweep (no training).** SimpleRNN classifiers whose recurrent kernel is
   `Orthogonal(gain=g)` for g in 0.5, 0.9, 1.0 (Keras' default) and 1.5, plus a default LSTM
   (Keras' `unit_forget_bias=True`) and a chrono-initialised LSTM, are probed at initialisation
   on one batch of temporal-order sequences: `timestep_gradient_norms` gives the mean
   `||dL/dx_t||` by distance d from each sequence's end, and a least-squares fit of
   `log ||dL/dx_t||` against d gives the *measured* per-step log-slope. For SimpleRNN the
   *predicted* slope comes from the per-step Jacobians on the same batch (see
   `simple_rnn_jacobian_factors`): the product law says the gradient d steps back is the
   last-step gradient multiplied by d Jacobian factors, so its log-slope is the mean log factor.
2. **Consequence for learning.** SimpleRNN, default LSTM and chrono LSTM with equal budgets
   (same data, epochs, batch size, optimizer, width) on the temporal-order task at several
   lengths (the paper's length 100 among them) and on the embedded word-order dataset at
   increasing cue distances; test accuracy and the first/last-timestep gradient ratio before
   and after training are recorded per model.
3. **Exploding and clipping.** A SimpleRNN with a large recurrent gain, trained with plain SGD,
   without and with `clipnorm` under the same seed; `GradientStats` records every step's
   pre/post-clip gradient norms and whether clipping fired.

Outputs in `out_dir`: `summary.json`, `gradient_stats.csv` (all GradientStats rows with a `run`
column), `decay_curves.csv`, `step_losses.csv`, PNG plots and `report.md`.

The modules, by concern:

* `config`: `DemoConfig`, the sizes, with the `default()` and `smoke()` presets.
* `jacobian`: the Jacobian analysis: `fit_log_slope` (measured slope) and
  `simple_rnn_jacobian_factors` (the per-step factors behind the predicted slope).
* `experiments`: the three measurements above (`decay_sweep`, `learning_comparison`,
  `explode_and_clip`), the training run they share, and `word_order_arrays` (the word-order
  dataset as id arrays).
* `plots`: the PNG figures, drawn with `seqclf.plotting`.
* `report`: `report.md`, the acceptance checks and the notes on Keras' defaults.
* `runner`: `run_demo`, which runs the experiments and writes every output file.

Library code only: nothing here imports `pipelines/`.
"""

from seqclf.demo.config import DemoConfig
from seqclf.demo.experiments import word_order_arrays
from seqclf.demo.jacobian import fit_log_slope, simple_rnn_jacobian_factors
from seqclf.demo.runner import run_demo

__all__ = [
    "DemoConfig",
    "run_demo",
    "simple_rnn_jacobian_factors",
    "fit_log_slope",
    "word_order_arrays",
]

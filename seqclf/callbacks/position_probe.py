"""`PositionProbe`: per-timestep gradient norms of a fixed probe batch at every epoch end.

What `seqclf train` draws as `gradients_by_position.png` (first and last epoch): the
vanishing-gradient picture of the demo on the user's own validation texts. One probe costs one
forward and backward pass over the probe batch (`timestep_gradient_norms`, traced once per run);
the rows are those of `GradientStats`' probe (`stage="probe"`, `statistic="input_grad_norm"`,
`timestep` = distance from the end), so `load_frame` and the plotting functions read them.
"""

import os

import keras
import numpy as np
import pandas as pd

from seqclf.gradients.frames import frame_from_rows, load_frame, probe_rows, save_frame
from seqclf.gradients.timestep_probe import recurrent_layers, timestep_gradient_norms

__all__ = ["PositionProbe"]

class PositionProbe(keras.callbacks.Callback):
    """Measures `timestep_gradient_norms(model, x, y)` at every epoch end into a CSV.

    The file is rewritten atomically each time with the rows of every probed epoch; an epoch
    probed again (a resumed run repeats the interrupted epoch) replaces its earlier rows, and
    rows of later epochs (left by a run that crashed after writing them) are dropped. Models
    without a recurrent layer are not probed.
    """

    def __init__(self, x, y, path):
        super().__init__()
        self.x, self.y = x, y
        self.path = os.fspath(path)

    def on_train_begin(self, logs=None):
        self._probed = recurrent_layers(self.model) != []
        # A resumed run's file holds the epochs probed before the crash; read it once.
        self._frame = load_frame(self.path) if os.path.exists(self.path) else None

    def on_epoch_end(self, epoch, logs=None):
        if not self._probed:
            return
        curves = timestep_gradient_norms(self.model, self.x, self.y)
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        # Non-finite norms (a diverged step) are left out: the plot is on a log scale.
        frame = frame_from_rows([r for r in probe_rows(curves, step, epoch) if np.isfinite(r[-1])])
        if self._frame is not None:
            frame = pd.concat([self._frame[self._frame["epoch"] < epoch], frame],
                              ignore_index=True)
        self._frame = frame
        save_frame(frame, self.path)

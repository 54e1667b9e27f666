"""Training callbacks (and, for the names used so far, the timestep-gradient probe).

`timestep_gradient_norms` and `recurrent_layers` live in `seqclf.gradients.timestep_probe`: they
are a probe called outside training, not callbacks; they stay importable from here.
"""

from seqclf.callbacks.gradient_stats import GradientStats
from seqclf.callbacks.position_probe import PositionProbe
from seqclf.callbacks.progress import StepProgbarLogger, StepProgress
from seqclf.callbacks.run_backup import RunBackup
from seqclf.gradients.timestep_probe import recurrent_layers, timestep_gradient_norms

__all__ = [
    "GradientStats",
    "PositionProbe",
    "RunBackup",
    "StepProgbarLogger",
    "StepProgress",
    "recurrent_layers",
    "timestep_gradient_norms",
]

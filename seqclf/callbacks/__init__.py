"""Training callbacks and gradient diagnostics."""

from seqclf.callbacks.gradient_stats import GradientStats
from seqclf.callbacks.position_probe import PositionProbe
from seqclf.callbacks.progress import StepProgress
from seqclf.callbacks.run_backup import RunBackup
from seqclf.callbacks.timestep_gradients import recurrent_layers, timestep_gradient_norms

__all__ = [
    "GradientStats",
    "PositionProbe",
    "RunBackup",
    "StepProgress",
    "recurrent_layers",
    "timestep_gradient_norms",
]

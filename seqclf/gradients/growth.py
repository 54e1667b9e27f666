"""`GrowthMonitor`: flags a gradient norm that jumps far above its recent median (explosion)."""

import math
from collections import deque

import numpy as np


class GrowthMonitor:
    """Running median of the last `window` global gradient norms; a norm above `factor` times
    that median is a growth event. Needs 3 norms before it judges (a median of one or two is
    too noisy to call anything an explosion); non-finite norms are left to the non-finite check.

    Args:
        factor: how many times the median counts as growth (`None`: never).
        window: how many previous norms the median covers.
    """

    def __init__(self, factor, window):
        self.factor = factor
        self.window = window
        self.history = deque(maxlen=window)

    def check(self, global_norm):
        """Records `global_norm`; returns the median it exceeded `factor` times, or None."""
        if self.factor is None or not math.isfinite(global_norm):
            return None
        exceeded = None
        if len(self.history) >= 3:
            median = float(np.median(self.history))
            if median > 0 and global_norm > self.factor * median:
                exceeded = median
        self.history.append(global_norm)
        return exceeded

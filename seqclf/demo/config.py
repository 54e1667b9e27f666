"""`DemoConfig`: the sizes of the demonstration, with the `default()` and `smoke()` presets."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class DemoConfig:
    """Sizes of the demonstration; `DemoConfig.default()` and `DemoConfig.smoke()` are presets."""

    # 1. decay sweep
    decay_gains: tuple = (0.5, 0.9, 1.0, 1.5)
    decay_length: int = 100
    decay_batch: int = 64
    decay_units: int = 64
    decay_fit_max_distance: int = 60
    # 2. learning comparison (equal budgets for every cell)
    units: int = 32
    embedding_dim: int = 16
    learning_rate: float = 3e-3
    clipnorm: float = 1.0
    batch_size: int = 32
    temporal_lengths: tuple = (50, 100, 200)
    temporal_train: int = 4000
    temporal_test: int = 1000
    temporal_epochs: int = 2
    word_order_configs: tuple = ("default", "distance_25")
    word_order_train: int = 6000
    word_order_test: int = 2000
    word_order_epochs: int = 2
    probe_batch: int = 64
    stats_frequency: int = 10
    # 3. exploding gradients
    explode_gain: float = 2.0
    explode_length: int = 30
    explode_train: int = 2000
    explode_units: int = 64
    explode_optimizer: str = "sgd"
    explode_learning_rate: float = 1.0
    explode_clipnorm: float = 0.1
    explode_epochs: int = 1

    @classmethod
    def default(cls):
        return cls()

    @classmethod
    def smoke(cls):
        # Word-order runs are off: they would need the dataset prepared.
        return cls(
            # 1. decay sweep
            decay_length=30, decay_batch=16, decay_units=16, decay_fit_max_distance=25,
            # 2. learning comparison
            units=8, embedding_dim=8, temporal_lengths=(12,), temporal_train=128,
            temporal_test=64, temporal_epochs=1, word_order_configs=(), word_order_train=128,
            word_order_test=64, word_order_epochs=1, probe_batch=16, stats_frequency=2,
            # 3. exploding gradients
            explode_length=20, explode_train=128, explode_units=16,
        )

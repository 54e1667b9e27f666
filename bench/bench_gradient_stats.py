"""Epoch-time overhead of `GradientStats` on a small LSTM classifier.

Three configurations trained in one process, in alternating rounds so background load hits
them alike: no callback, `GradientStats()` at its defaults (per-layer statistics), and
`GradientStats(probe_data=...)` (plus per-timestep probes at train begin and every epoch end).
Each round fits every configuration for `--epochs` epochs; the first epoch of each fit (which
traces the train function) is dropped. Prints the median epoch time per configuration and its
ratio to the baseline.

    python bench/bench_gradient_stats.py [--rounds 3] [--epochs 4] [--json OUT.json]

`--json` also writes the summary plus every measured epoch time per configuration.
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from seqclf.callbacks import GradientStats  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def make_data(n, length, vocab, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, size=(n, length))
    lengths = rng.integers(length // 4, length + 1, size=n)
    x[np.arange(length)[None, :] >= lengths[:, None]] = 0
    y = (x[np.arange(n), lengths - 1] % 2).astype("int32")
    return x.astype("int32"), y


def make_model(length, vocab):
    model = keras.Sequential(
        [
            keras.Input((length,), dtype="int32"),
            keras.layers.Embedding(vocab, 32, mask_zero=True),
            keras.layers.LSTM(64),
            keras.layers.Dense(2),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--verbose", action="store_true", help="print every epoch time")
    parser.add_argument("--json", metavar="PATH", help="also write the results and raw times here")
    args = parser.parse_args(argv)

    vocab = 1000
    x, y = make_data(args.samples, args.length, vocab)
    probe = (x[:64], y[:64])
    configs = {
        "baseline": lambda: [],
        "per_layer": lambda: [GradientStats()],
        "per_layer+timestep": lambda: [GradientStats(probe_data=probe)],
    }
    models = {name: make_model(args.length, vocab) for name in configs}
    times = {name: [] for name in configs}
    names = list(configs)
    for r in range(args.rounds):
        # Rotate the order each round so no configuration always runs first (or last).
        for name in names[r % len(names):] + names[: r % len(names)]:
            callbacks = configs[name]
            timer = EpochTimer()
            models[name].fit(
                x,
                y,
                batch_size=args.batch_size,
                epochs=args.epochs,
                verbose=0,
                callbacks=callbacks() + [timer],
            )
            times[name] += timer.times[1:]
            if args.verbose:
                print(name, [round(t, 2) for t in timer.times], flush=True)
    base = statistics.median(times["baseline"])
    result = {
        "steps_per_epoch": -(-args.samples // args.batch_size),
        "epochs_measured": len(times["baseline"]),
    }
    for name in configs:
        med = statistics.median(times[name])
        result[name] = {"median_epoch_s": round(med, 4), "ratio": round(med / base, 4)}
        print(f"{name:>20}: median epoch {med:.3f} s  ratio {med / base:.3f}")
    print(json.dumps(result))
    if args.json:
        result["epoch_seconds"] = times
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()

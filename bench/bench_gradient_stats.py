"""Epoch-time overhead of `GradientStats` on a small LSTM classifier.

Three configurations, one model each, trained in one process: no callback, `GradientStats()` at
its defaults (per-layer statistics), and `GradientStats(probe_data=...)` (plus per-timestep
probes at train begin and every epoch end). Each round starts one `fit` of `--epochs` epochs per
configuration, each in its own thread, and the fits **take turns** (a baton: only one
configuration runs at any moment), by default **step by step** (`--interleave step`: A's step 1,
B's step 1, C's step 1, A's step 2, ...; `--interleave epoch` passes the baton at epoch
boundaries only). An epoch's time is the time its configuration held the baton during that
epoch (its own steps, callbacks and probes; waiting for the others is not counted). So the epochs
compared run over the same stretch of wall-clock time and a change in background load (the
machine is shared) hits the configurations alike; the order of the turns rotates from round to
round. The first epoch of each fit (which traces the train function) is dropped.

Printed per configuration: the median epoch time and, as the overhead, the median of the
*paired* ratios (each epoch over the baseline epoch run alongside it) with their interquartile
range and min-max spread, and the ratio of medians; then the same paired ratios of process CPU
time per epoch (counted over the same turns). On a loaded host, read the CPU ratios: background
load stalls the process for seconds, which wall time counts and CPU time does not.

    python bench/bench_gradient_stats.py [--rounds 3] [--epochs 4] [--interleave step|epoch]
                                         [--json OUT.json]

`--json` also writes the summary plus every measured epoch time per configuration
(`epoch_seconds`, round by round, as `bench/harness.py` reads them) and the CPU times.
"""

import argparse
import json
import os
import statistics
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from seqclf.callbacks import GradientStats  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    """Epoch wall-clock (and process CPU) time; with `turns`, only the time holding the baton."""

    def __init__(self, turns=None):
        super().__init__()
        self.turns = turns
        self.times = []
        self.cpu_times = []

    def _clock(self):
        if self.turns is not None:
            return self.turns.own_clock()
        return time.perf_counter(), time.process_time()

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._cpu_start = self._clock()

    def on_epoch_end(self, epoch, logs=None):
        wall, cpu = self._clock()
        self.times.append(wall - self._start)
        self.cpu_times.append(cpu - self._cpu_start)


class Baton:
    """Round-robin turns between threads; a thread that is done leaves the rotation."""

    def __init__(self, names):
        self.active = list(names)
        self.current = 0
        self.failed = False
        self._cond = threading.Condition()

    def _holder(self):
        return self.active[self.current % len(self.active)] if self.active else None

    def wait(self, name):
        with self._cond:
            self._cond.wait_for(lambda: self.failed or self._holder() == name)
            if self.failed:
                raise RuntimeError("another configuration failed")

    def done(self):
        with self._cond:
            self.current = (self.current + 1) % len(self.active)
            self._cond.notify_all()

    def leave(self, name):
        with self._cond:
            i = self.active.index(name)
            del self.active[i]
            if self.active:
                if i < self.current:
                    self.current -= 1
                self.current %= len(self.active)
            self._cond.notify_all()

    def fail(self):
        with self._cond:
            self.failed = True
            self._cond.notify_all()


class Turns(keras.callbacks.Callback):
    """First in the callback list: yields the baton before each step (or epoch) but the first,
    and keeps the time (wall, process CPU) this configuration held it."""

    def __init__(self, baton, name, per_step):
        super().__init__()
        self.baton, self.name, self.per_step = baton, name, per_step
        self._wall = self._cpu = 0.0
        self._t0 = self._c0 = None

    def acquire(self):
        self.baton.wait(self.name)
        self._t0, self._c0 = time.perf_counter(), time.process_time()

    def release(self):
        self._wall += time.perf_counter() - self._t0
        self._cpu += time.process_time() - self._c0
        self._t0 = None

    def own_clock(self):
        """(wall, CPU) seconds spent holding the baton so far."""
        return (self._wall + time.perf_counter() - self._t0,
                self._cpu + time.process_time() - self._c0)

    def _yield(self):
        self.release()
        self.baton.done()
        self.acquire()

    def on_epoch_begin(self, epoch, logs=None):
        if epoch > 0:
            self._yield()

    # Only a *begin* hook: overriding `on_train_batch_end` would switch off Keras' asynchronous
    # batch-end dispatch for every configuration, the baseline included.
    def on_train_batch_begin(self, batch, logs=None):
        if self.per_step and batch > 0:
            self._yield()


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


def run_round(models, configs, order, fit_kwargs, per_step):
    """One fit per configuration, in threads that take turns."""
    baton = Baton(order)
    timers = {}
    errors = []

    def work(name):
        turns = Turns(baton, name, per_step)
        timers[name] = EpochTimer(turns)
        try:
            turns.acquire()
            models[name].fit(callbacks=[turns, *configs[name](), timers[name]], **fit_kwargs)
            turns.release()
            baton.leave(name)
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            errors.append(e)
            baton.fail()

    threads = [threading.Thread(target=work, args=(name,)) for name in order]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return timers


def _quantiles(values):
    q = np.percentile(values, [0, 25, 50, 75, 100])
    return {"median": round(float(q[2]), 4), "iqr": [round(float(q[1]), 4), round(float(q[3]), 4)],
            "range": [round(float(q[0]), 4), round(float(q[4]), 4)]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--interleave", choices=("step", "epoch"), default="step",
                        help="how often the configurations take turns (default: every step)")
    parser.add_argument("--verbose", action="store_true", help="print every epoch time")
    parser.add_argument("--json", metavar="PATH", help="also write the results and raw times here")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch of each fit is dropped)")

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
    cpu = {name: [] for name in configs}
    names = list(configs)
    fit_kwargs = dict(x=x, y=y, batch_size=args.batch_size, epochs=args.epochs, verbose=0)
    for r in range(args.rounds):
        # Rotate the order each round so no configuration always runs first (or last).
        order = names[r % len(names):] + names[: r % len(names)]
        timers = run_round(models, configs, order, fit_kwargs, args.interleave == "step")
        for name in names:
            times[name] += timers[name].times[1:]
            cpu[name] += timers[name].cpu_times[1:]
            if args.verbose:
                print(name, [round(t, 2) for t in timers[name].times], flush=True)
    base = statistics.median(times["baseline"])
    base_cpu = statistics.median(cpu["baseline"])
    result = {
        "steps_per_epoch": -(-args.samples // args.batch_size),
        "epochs_measured": len(times["baseline"]),
        "interleave": args.interleave,
    }
    for name in names:
        med = statistics.median(times[name])
        med_cpu = statistics.median(cpu[name])
        paired = [t / b for t, b in zip(times[name], times["baseline"], strict=True)]
        entry = {
            "median_epoch_s": round(med, 4),
            "epoch_s": _quantiles(times[name]),
            "ratio": round(med / base, 4),
            "cpu_ratio": round(med_cpu / base_cpu, 4),
        }
        line = f"{name:>20}: median epoch {med:.3f} s"
        if name != "baseline":
            entry["paired_ratio"] = p = _quantiles(paired)
            entry["paired_cpu_ratio"] = c = _quantiles(
                [t / b for t, b in zip(cpu[name], cpu["baseline"], strict=True)]
            )
            line += (
                f"  paired ratio {p['median']:.3f} (IQR {p['iqr'][0]:.3f}-{p['iqr'][1]:.3f},"
                f" range {p['range'][0]:.3f}-{p['range'][1]:.3f}, n={len(paired)})"
                f"  ratio of medians {med / base:.3f}"
                f"  paired CPU-time ratio {c['median']:.3f}"
                f" (IQR {c['iqr'][0]:.3f}-{c['iqr'][1]:.3f},"
                f" range {c['range'][0]:.3f}-{c['range'][1]:.3f})"
            )
        result[name] = entry
        print(line, flush=True)
    print(json.dumps(result))
    if args.json:
        result["epoch_seconds"] = times
        result["epoch_cpu_seconds"] = cpu
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()

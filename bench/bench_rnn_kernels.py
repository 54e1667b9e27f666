"""Stock Keras recurrent layers vs seqclf's fast CPU path (`FastLSTM`, `FastGRU`, `FastSimpleRNN`).

Two measurements, each side by side in one process, stock and fast alternating:

* `epoch`: `seqclf train --recipe fixed` (`seqclf.run.train(fixed_config(...))`) on `--data` /
  `--val`, stock (`SEQCLF_STOCK_RNN=1`) then fast, `--repeats` times in turn. Each run trains
  `--epochs` epochs of at most `--steps-per-epoch` steps; an epoch is timed by a callback
  (validation included), the first (tracing) apart from the warm ones.
* `kernel`: one recurrent layer alone, forward and backward (`GradientTape`, gradient of the sum
  of its outputs) on random `[batch, time, units]` inputs with a right-padded mask, per cell,
  per width (`--units`), per length (`--lengths`): tokens/s, stock and fast interleaved, the
  median of `--repeats` timings. The FLOP count of a step (forward + backward = 3x forward's
  matmuls) gives GFLOP/s and the share of the matmul peak, measured with a large `tf.matmul`.

    python bench/bench_rnn_kernels.py epoch --data /work/shared/data/sst2/train.tsv \
        --val /work/shared/data/sst2/dev.tsv --steps-per-epoch 200 --repeats 3
    python bench/bench_rnn_kernels.py kernel --units 16,64,256 --lengths 20,256

Each line printed is a JSON record; the last one of a mode holds the medians and fast/stock
ratios. Results: bench/rnn_kernels.md.
"""

import argparse
import contextlib
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `bench` and `seqclf` importable
    sys.path.insert(0, str(REPO))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.bench_gradient_stats import EpochTimer  # noqa: E402
from bench.bench_task import timed_fit  # noqa: E402

PATHS = ("stock", "fast")


@contextlib.contextmanager
def rnn_path(path):
    """Makes seqclf build (and run) the stock layers or the fast ones."""
    saved = os.environ.get("SEQCLF_STOCK_RNN")
    os.environ["SEQCLF_STOCK_RNN"] = "1" if path == "stock" else "0"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("SEQCLF_STOCK_RNN")
        else:
            os.environ["SEQCLF_STOCK_RNN"] = saved


def epoch_run(args, path, seed):
    from seqclf.run import fixed_config, train

    timer = EpochTimer()
    units = {} if args.units_epoch is None else {"units": args.units_epoch}
    with tempfile.TemporaryDirectory() as tmp, rnn_path(path), timed_fit(timer):
        keras.backend.clear_session()
        metrics = train(fixed_config(
            data=args.data, val=args.val, model=args.model, **units,
            epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, seed=seed,
            out=f"{tmp}/run", quiet=True, patience=args.epochs,
        ))
    warm = timer.times[1:] or timer.times
    return {"mode": "epoch", "path": path, "model": args.model, "seed": seed,
            "first_epoch_s": round(timer.times[0], 3),
            "warm_epoch_s": round(statistics.median(warm), 3),
            "warm_epoch_cpu_s": round(statistics.median(timer.cpu_times[1:] or timer.cpu_times), 3),
            "val_accuracy": metrics["val_accuracy"]}


def epoch_mode(args):
    runs = []
    for i in range(args.repeats):
        for path in PATHS if i % 2 == 0 else PATHS[::-1]:
            runs.append(epoch_run(args, path, args.seed))
            print(json.dumps(runs[-1]), flush=True)
    summary = {"mode": "epoch", "summary": True, "model": args.model,
               "steps_per_epoch": args.steps_per_epoch}
    for key in ("first_epoch_s", "warm_epoch_s", "warm_epoch_cpu_s"):
        med = {p: statistics.median(r[key] for r in runs if r["path"] == p) for p in PATHS}
        summary.update({f"{p} {key} median": med[p] for p in PATHS})
        summary[f"fast/stock {key}"] = round(med["fast"] / med["stock"], 3)
    print(json.dumps(summary), flush=True)


def lstm_like_flops(cell, units, batch, steps):
    """Forward + backward FLOPs of the recurrent layer (matmuls only; input width = units)."""
    gates = {"lstm": 4, "gru": 3, "simple_rnn": 1}[cell]
    forward = 2 * batch * steps * (units * gates * units) * 2  # input and recurrent matmul
    return 3 * forward  # backward: two matmuls of the forward's size per forward matmul


def matmul_peak(size=2048, repeats=5):
    """GFLOP/s of a large float32 `tf.matmul` (the CPU's practical matmul peak)."""
    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    fn = tf.function(lambda: tf.matmul(a, b))
    fn().numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn().numpy()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def kernel_step(cell, path, units, batch, steps):
    from seqclf.models.classifier import CELLS, FAST_CELLS

    with rnn_path(path):
        layer = (CELLS if path == "stock" else FAST_CELLS)[cell](units, return_sequences=True)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(batch, steps, units)).astype("float32"))
    lengths = rng.integers(max(1, steps // 2), steps + 1, size=batch)
    mask = tf.constant(np.arange(steps)[None, :] < lengths[:, None])
    layer(x, mask=mask)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, mask=mask, training=True)
            loss = tf.reduce_sum(y)
        return tape.gradient(loss, [x, *layer.trainable_variables])

    def run():
        with rnn_path(path):
            start = time.perf_counter()
            [g.numpy() for g in step()]
            return time.perf_counter() - start

    run()  # trace
    return run


def kernel_mode(args):
    peak = matmul_peak()
    print(json.dumps({"mode": "kernel", "matmul_peak_gflops": round(peak, 1)}), flush=True)
    for cell in args.cells.split(","):
        for units in (int(u) for u in args.units.split(",")):
            for steps in (int(t) for t in args.lengths.split(",")):
                batch = args.batch
                runs = {p: kernel_step(cell, p, units, batch, steps) for p in PATHS}
                times = {p: [] for p in PATHS}
                for i in range(args.repeats):
                    for p in PATHS if i % 2 == 0 else PATHS[::-1]:
                        times[p].append(runs[p]())
                record = {"mode": "kernel", "cell": cell, "units": units, "steps": steps,
                          "batch": batch}
                flops = lstm_like_flops(cell, units, batch, steps)
                for p in PATHS:
                    med = statistics.median(times[p])
                    record[f"{p}_ms"] = round(med * 1e3, 2)
                    record[f"{p}_tokens_per_s"] = round(batch * steps / med)
                    record[f"{p}_peak_share"] = round(flops / med / 1e9 / peak, 3)
                record["fast/stock time"] = round(record["fast_ms"] / record["stock_ms"], 3)
                print(json.dumps(record), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    e = sub.add_parser("epoch", help="seqclf train --recipe fixed, stock vs fast")
    e.add_argument("--data", default="/work/shared/data/sst2/train.tsv")
    e.add_argument("--val", default="/work/shared/data/sst2/dev.tsv")
    e.add_argument("--model", default="lstm")
    e.add_argument("--units-epoch", type=int, default=None, help="recurrent units (recipe's)")
    e.add_argument("--epochs", type=int, default=2)
    e.add_argument("--steps-per-epoch", type=int, default=None)
    e.add_argument("--repeats", type=int, default=3)
    e.add_argument("--seed", type=int, default=0)
    k = sub.add_parser("kernel", help="one layer, forward + backward, stock vs fast")
    k.add_argument("--cells", default="lstm,gru,simple_rnn")
    k.add_argument("--units", default="16,64,256")
    k.add_argument("--lengths", default="20,256")
    k.add_argument("--batch", type=int, default=64)
    k.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    epoch_mode(args) if args.mode == "epoch" else kernel_mode(args)


if __name__ == "__main__":
    main()

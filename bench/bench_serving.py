"""Serving latency of a seqclf export through TensorFlow's C API vs in-process `model.predict`.

Usage: python bench/bench_serving.py [--runs 200] [--units 64] [--vocab 5000] [--json OUT.json]

Exports a randomly initialised Embedding+LSTM classifier (weights do not change the cost),
loads it with `TF_LoadSessionFromSavedModel` in a fresh worker process (`CApiHarness`) and
measures, in the same run:

* single-text latency (p50, p99): C API round trip from this process (JSON over a pipe included),
  `TF_SessionRun` alone inside the worker, and `model.predict` on one text;
* batch-64 throughput (texts/s) for the same three paths.

`model.predict` is timed with the same preprocessing the export runs (vectorizer, truncation).
`--json` also writes, per path, the single-text p50/p99 (ms) and batch-64 texts/s.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WORDS = (
    "the a movie film plot actor great good bad boring dull fun music scene story long short "
    "slow fast love hate best worst end start character dialogue camera ending twist"
).split()


def make_texts(n, rng):
    return [" ".join(rng.choice(WORDS, size=rng.integers(5, 40))) for _ in range(n)]


def build(vocab, units, labels):
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    vectorizer = keras.layers.TextVectorization(max_tokens=vocab, output_mode="int")
    vectorizer.adapt(make_texts(200, rng))
    inputs = keras.Input((None,), dtype="int64")
    x = keras.layers.Embedding(vocab, units, mask_zero=True)(inputs)
    x = keras.layers.LSTM(units)(x)
    outputs = keras.layers.Dense(len(labels), activation="softmax")(x)
    return keras.Model(inputs, outputs), vectorizer


def percentiles(seconds):
    ms = np.asarray(seconds) * 1e3
    return np.percentile(ms, 50), np.percentile(ms, 99)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed single-text requests")
    parser.add_argument("--batch-runs", type=int, default=30, help="timed batch-64 requests")
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=5000)
    parser.add_argument("--max-length", type=int, default=100)
    parser.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from seqclf.data.pipeline import token_ids
    from seqclf.serving.capi import CApiHarness
    from seqclf.serving.export import export_saved_model

    labels = ["negative", "neutral", "positive"]
    model, vectorizer = build(args.vocab, args.units, labels)
    rng = np.random.default_rng(1)
    single = make_texts(args.runs, rng)
    batch = make_texts(64, rng)

    with tempfile.TemporaryDirectory() as tmp:
        path = export_saved_model(
            model, vectorizer, labels, args.max_length, os.path.join(tmp, "bench"), validate=False
        )
        with CApiHarness() as harness:
            harness.load(path)
            for text in single[:10]:  # warm up (first runs trace/allocate)
                harness.predict([text])
            harness.predict(batch)

            rt_single = []
            for text in single:
                start = time.perf_counter()
                harness.predict([text])
                rt_single.append(time.perf_counter() - start)
            _, run_single = harness.run(
                "serving_default",
                {"text": np.array([single[0]], dtype=object)},
                repeat=args.runs,
                timings=True,
            )
            rt_batch = []
            for _ in range(args.batch_runs):
                start = time.perf_counter()
                harness.predict(batch)
                rt_batch.append(time.perf_counter() - start)
            _, run_batch = harness.run(
                "serving_default",
                {"text": np.array(batch, dtype=object)},
                repeat=args.batch_runs,
                timings=True,
            )

    def keras_predict(texts):
        ids = token_ids(vectorizer, tf.constant(texts), args.max_length)
        return model.predict(ids, verbose=0)

    for text in single[:5]:
        keras_predict([text])
    keras_predict(batch)
    kp_single = []
    for text in single[: max(20, args.runs // 4)]:  # model.predict is slow: fewer runs suffice
        start = time.perf_counter()
        keras_predict([text])
        kp_single.append(time.perf_counter() - start)
    kp_batch = []
    for _ in range(max(5, args.batch_runs // 3)):
        start = time.perf_counter()
        keras_predict(batch)
        kp_batch.append(time.perf_counter() - start)

    rows = [
        ("C API round trip (harness)", rt_single, rt_batch),
        ("C API TF_SessionRun only", run_single, run_batch),
        ("keras model.predict", kp_single, kp_batch),
    ]
    print(
        f"model: Embedding({args.vocab}, {args.units}) + LSTM({args.units}), max_length "
        f"{args.max_length}, TF {tf.__version__}, {os.cpu_count()} CPUs"
    )
    print(f"{'path':30s} {'1 text p50 ms':>14s} {'p99 ms':>9s} {'batch64 texts/s':>16s}")
    for name, s, b in rows:
        p50, p99 = percentiles(s)
        print(f"{name:30s} {p50:14.2f} {p99:9.2f} {64 / np.median(b):16.0f}")
    kp50 = percentiles(kp_single)[0]
    for name, s, b in rows[:2]:
        print(
            f"ratio model.predict / {name}: single-text p50 {kp50 / percentiles(s)[0]:.1f}x, "
            f"batch-64 throughput {np.median(kp_batch) / np.median(b):.1f}x"
        )
    if args.json:
        figures = {
            name: {"p50_ms": percentiles(s)[0], "p99_ms": percentiles(s)[1],
                   "batch64_texts_per_s": 64 / np.median(b)}
            for name, s, b in rows
        }
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    target = kp50 / percentiles(rt_single)[0]
    print(
        f"target single-text p50 >= 20x lower than model.predict (round trip): "
        f"{'met' if target >= 20 else 'NOT met'} ({target:.1f}x)"
    )


if __name__ == "__main__":
    main()

"""Serving latency of a suite run's default export beside a one-model export, side by side.

For the first split of each dataset (`python -m bench --only suite --serving`), the run's
exported model (the linear path blended with the recurrent model) and an export of its
recurrent model alone are loaded into two TensorFlow C-API workers (the loader TF Serving uses)
and fed the same single test text of median length, in alternating rounds so that both see the
same background load; the row records the p50 of `TF_SessionRun` over all rounds.
"""

import os
import statistics

import numpy as np

ROUNDS, REPEAT = 8, 50


def serving_latency(run_dir, texts, workdir):
    """`{serving_p50_ms, serving_one_model_p50_ms, serving_ratio}` (the second and third only
    when the default export holds a recurrent model: without one it is the linear path alone)."""
    from seqclf.models import TextClassifier
    from seqclf.serving.capi import CApiHarness

    classifier = TextClassifier.from_run(run_dir)
    exports = {"default": classifier.export(os.path.join(workdir, "default"), validate=False)}
    layers = {layer.name for layer in classifier.backbone.layers}
    if "recurrent" in layers:
        alone = TextClassifier(classifier.backbone.get_layer("recurrent"),
                               classifier.preprocessor, classifier.label_names)
        exports["one_model"] = alone.export(os.path.join(workdir, "one_model"), validate=False)
    text = sorted(texts, key=len)[len(texts) // 2]
    feed = {"text": np.array([text], dtype=object)}
    harnesses = {key: CApiHarness() for key in exports}
    times = {key: [] for key in exports}
    try:
        for key, harness in harnesses.items():
            harness.load(exports[key])
            harness.run("serving_default", feed, repeat=10, dtypes={"text": "string"})  # warm-up
        for _ in range(ROUNDS):
            for key, harness in harnesses.items():
                _, seconds = harness.run("serving_default", feed, repeat=REPEAT, timings=True,
                                         dtypes={"text": "string"})
                times[key].extend(seconds)
    finally:
        for harness in harnesses.values():
            harness.close()
    out = {"serving_p50_ms": 1000 * statistics.median(times["default"])}
    if "one_model" in times:
        out["serving_one_model_p50_ms"] = 1000 * statistics.median(times["one_model"])
        out["serving_ratio"] = out["serving_p50_ms"] / out["serving_one_model_p50_ms"]
    return out

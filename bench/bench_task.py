"""`TextClassifier.fit` vs `seqclf train`: the same data, settings and seed, two ways in.

Issue 14 asks that a `model.fit` script on the task object reach the accuracy of `seqclf train`
(within seed noise) at an epoch time within 5% of the CLI's. Both paths here train the fixed
recipe (`seqclf.run.fixed_config`, the settings every benchmark of the model itself uses) on the
training and validation split `seqclf train` makes of `--data` (`seqclf.training.data_stage`),
from the same seed:

* cli: `seqclf.run.train` (early stopping, position probe, backup: what a user's run does);
* task: `TextClassifier.from_texts(..., recipe="fixed")`, `compile` with the CLI's cosine
  schedule, `fit(texts, labels, validation_data=...)` with the same early stopping.

It prints one JSON line per run: the best epoch's `val_accuracy`, the epochs run, and each
epoch's wall and process-CPU seconds, timed by the same callback in both paths (validation
included; the CLI's `fit` gets it through a wrapper of `keras.Model.fit`, since `seqclf train`
takes no callbacks). The first epoch (tracing, cache fill) is reported apart from the warm
ones. With several seeds the two paths alternate (cli first on even seeds, task first on odd
ones) and a last line gives the medians and the task/cli ratios of warm-epoch seconds.

    python bench/bench_task.py --data ../shared/data/sst2/train.tsv \
        --val ../shared/data/sst2/dev.tsv --seeds 0,1,2
"""

import argparse
import contextlib
import dataclasses
import json
import pathlib
import statistics
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `bench` and `seqclf` importable
    sys.path.insert(0, str(REPO))

import keras  # noqa: E402

# The same wall + process-CPU epoch timer as the other benchmarks.
from bench.bench_gradient_stats import EpochTimer  # noqa: E402


def epoch_figures(timer):
    """First-epoch seconds and the medians of the warm epochs' wall and CPU seconds."""
    warm = slice(1, None) if len(timer.times) > 1 else slice(None)
    return {"first_epoch_seconds": timer.times[0],
            "warm_epoch_seconds": statistics.median(timer.times[warm]),
            "warm_epoch_cpu_seconds": statistics.median(timer.cpu_times[warm])}


@contextlib.contextmanager
def timed_fit(timer):
    """Every `keras.Model.fit` in the block also gets `timer` (instrumentation for `train`)."""
    original = keras.Model.fit

    def fit(self, *args, callbacks=None, **kwargs):
        return original(self, *args, callbacks=[*(callbacks or []), timer], **kwargs)

    keras.Model.fit = fit
    try:
        yield
    finally:
        keras.Model.fit = original


def run_cli(config):
    from seqclf.run import train

    timer = EpochTimer()
    with timed_fit(timer):
        metrics = train(config)
    return {"path": "cli", "val_accuracy": metrics["val_accuracy"], "epochs": metrics["epochs"],
            **epoch_figures(timer)}


def run_task(config):
    from seqclf.models import TextClassifier
    from seqclf.optimizers import make_optimizer
    from seqclf.training import data_stage

    keras.utils.set_random_seed(config.seed)
    train, val, _, _ = data_stage(dataclasses.replace(config, quiet=True))
    fields = ("units", "embedding_dim", "layers", "bidirectional", "seed", "lstm_init")
    model = TextClassifier.from_texts(
        train.texts, train.labels, label_names=train.label_names, model=config.model,
        recipe="fixed", batch_size=config.batch_size,
        **{k: getattr(config, k) for k in fields},
    )
    epochs = model.settings["epochs"] if config.epochs is None else config.epochs
    steps = -(-len(train) // config.batch_size)
    model.compile(make_optimizer(
        config.optimizer,
        keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps * epochs),
        clipnorm=config.clipnorm,
    ), steps_per_execution=config.steps_per_execution)
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", restore_best_weights=True,
                                         patience=model.settings["patience"])
    timer = EpochTimer()
    history = model.fit(train.texts, train.labels, validation_data=(val.texts, val.labels),
                        epochs=epochs, batch_size=config.batch_size, seed=config.seed,
                        callbacks=[stop, timer], verbose=0).history
    return {"path": "task", "val_accuracy": max(history["val_accuracy"]),
            "epochs": len(history["val_accuracy"]), **epoch_figures(timer)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="word_order", help="a seqclf data spec")
    p.add_argument("--val", help="validation data spec (default: as `seqclf train`)")
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seeds", default="0", help="comma-separated training seeds")
    args = p.parse_args(argv)

    from seqclf.run import fixed_config

    runs = []
    for i, seed in enumerate(int(s) for s in args.seeds.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            config = fixed_config(data=args.data, val=args.val, data_dir=args.data_dir,
                                  epochs=args.epochs, seed=seed, out=f"{tmp}/run", quiet=True)
            order = (run_cli, run_task) if i % 2 == 0 else (run_task, run_cli)
            for run in order:
                keras.backend.clear_session()
                result = {"seed": seed, **run(dataclasses.replace(config))}
                runs.append(result)
                print(json.dumps(result, sort_keys=True), flush=True)
    summary = {}
    for key in ("val_accuracy", "first_epoch_seconds", "warm_epoch_seconds",
                "warm_epoch_cpu_seconds"):
        for path in ("cli", "task"):
            summary[f"{path} {key} median"] = statistics.median(
                r[key] for r in runs if r["path"] == path)
        if key != "val_accuracy":
            summary[f"task/cli {key} (median of per-seed ratios)"] = statistics.median(
                t[key] / c[key] for t, c in zip(
                    (r for r in runs if r["path"] == "task"),
                    (r for r in runs if r["path"] == "cli"), strict=True))
    print(json.dumps({"summary": summary}, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()

"""`TextClassifier.fit` vs `seqclf train`: the same data, settings and seed, two ways in.

Issue 14 asks that a `model.fit` script on the task object reach the accuracy of `seqclf train`
(within seed noise) at an epoch time within 5% of the CLI's. Both paths here train the fixed
recipe (`seqclf.run.fixed_config`, the settings every benchmark of the model itself uses) on the
training and validation split `seqclf train` makes of `--data` (`seqclf.training.data_stage`),
from the same seed:

* cli: `seqclf.run.train` (early stopping, position probe, backup: what a user's run does);
* task: `TextClassifier.from_texts(..., recipe="fixed")`, `compile` with the CLI's cosine
  schedule, `fit(texts, labels, validation_data=...)` with the same early stopping.

It prints one JSON line per path: the best epoch's `val_accuracy`, the epochs run and seconds per
epoch (total training time over epochs: the first epoch's tracing and cache fill included alike).

    python bench/bench_task.py [--data ../shared/data/sst2/train.tsv] [--epochs 3] [--seed 0]
"""

import argparse
import json
import tempfile
import time


def run_cli(config):
    from seqclf.run import train

    metrics = train(config)
    return {"path": "cli", "val_accuracy": metrics["val_accuracy"], "epochs": metrics["epochs"],
            "seconds_per_epoch": metrics["train_seconds"] / metrics["epochs"]}


def run_task(config):
    import dataclasses

    import keras

    from seqclf.models import TextClassifier
    from seqclf.optimizers import make_optimizer
    from seqclf.training import data_stage

    keras.utils.set_random_seed(config.seed)
    train, val, _ = data_stage(dataclasses.replace(config, quiet=True))
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
    start = time.perf_counter()
    history = model.fit(train.texts, train.labels, validation_data=(val.texts, val.labels),
                        epochs=epochs, batch_size=config.batch_size, seed=config.seed,
                        callbacks=[stop], verbose=0).history
    seconds = time.perf_counter() - start
    return {"path": "task", "val_accuracy": max(history["val_accuracy"]),
            "epochs": len(history["val_accuracy"]),
            "seconds_per_epoch": seconds / len(history["val_accuracy"])}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="word_order", help="a seqclf data spec")
    p.add_argument("--val", help="validation data spec (default: as `seqclf train`)")
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from seqclf.run import fixed_config

    with tempfile.TemporaryDirectory() as tmp:
        config = fixed_config(data=args.data, val=args.val, data_dir=args.data_dir,
                              epochs=args.epochs, seed=args.seed, out=f"{tmp}/run", quiet=True)
        for result in (run_cli(config), run_task(config)):
            print(json.dumps(result, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()

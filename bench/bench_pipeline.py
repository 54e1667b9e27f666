"""Training throughput: seqclf's tf.data pipeline vs the TensorFlow RNN tutorial's recipe.

Both train the same LSTM classifier (seqclf's default sizes, dropout and optimizer, read from
`seqclf.run.fixed_config()` at run time) on SST-2 train for two epochs from a fresh model, in this
one process, alternating so machine noise hits both alike:

* seqclf: texts vectorized once in a deterministic batched map, cached, shuffled, **bucketed by
  length** (each batch padded to its own longest text among similar lengths), prefetched, and
  trained with `steps_per_execution` at the CLI default; a second row trains seqclf's pipeline
  with 1 step per call, as the tutorial does, to show what the pipeline alone gives;
* tutorial: raw strings shuffled and batched, the `TextVectorization` layer inside the model
  (the batch is padded to its longest text), as in
  tensorflow.org/text/tutorials/text_classification_rnn.

Each epoch is timed on its own: the first includes the first pass over the data (vectorization,
cache fill) and tracing, the second is the steady state. `bench/bench_torch.py` adds a PyTorch
reference to the same alternation; `python -m bench` runs both.

Measurements behind the pipeline's design (`seqclf/data/pipeline.py`), SST-2 train, 2 cores:

* bucketing: random batches of 64 pad SST-2 to 34,000 time steps per epoch, sorted pools to
  9,600; the padding was most of a recurrent layer's work;
* keeping each example's padding after `unbatch()` instead of slicing every text to its length
  (a per-text map): the first pass over the 67k texts (before the first batch can leave the full
  shuffle buffer) went from 3.8 s to 0.4 s;
* sorting a whole pool in a few vectorized ops instead of per-example grouping
  (`group_by_window`): about 0.1 s per epoch instead of about 2 s.

`--tutorial-accuracy` instead trains the tutorial recipe for seqclf's default number of epochs on
the training split `seqclf train` uses (the same held-out fraction and seed) and scores SST-2 dev,
with `shuffled_accuracy` as `seqclf evaluate` computes it. Usage:

    python bench/bench_pipeline.py [--repeats 3] [--rows 67349] [--data SST2_TRAIN.tsv]
    python bench/bench_pipeline.py --tutorial-accuracy [--seed 0] [--epochs N] [--json OUT.json]
"""

import argparse
import inspect
import json
import os
import pathlib
import statistics
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `bench` and `seqclf` importable
    sys.path.insert(0, str(REPO))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.bench_gradient_stats import EpochTimer  # noqa: E402
from seqclf.data import make_dataset, make_vectorizer, read_table, shuffle_words  # noqa: E402
from seqclf.models import build_classifier, compile_classifier  # noqa: E402
from seqclf.optimizers import make_optimizer  # noqa: E402
from seqclf.run import fixed_config  # noqa: E402

SST2 = REPO.parent / "shared" / "data" / "sst2"
DATA = SST2 / "train.tsv"
DEV = SST2 / "dev.tsv"
TUTORIAL_SHUFFLE_BUFFER = 10_000  # the tutorial's BUFFER_SIZE
# Epochs timed per run: the first includes the first pass over the data and tracing.
TIMED_EPOCHS = 2


def default_config():
    """seqclf's model at the fixed recipe's settings (`--recipe fixed`; the automatic recipe's
    settings depend on the data, and this benchmark times the model and pipeline)."""
    return fixed_config()


def config_kwargs(fn, config, skip=()):
    """The arguments of `fn` that `config` has a field for (so new defaults are picked up)."""
    return {k: getattr(config, k) for k in inspect.signature(fn).parameters
            if hasattr(config, k) and k not in skip}


def lstm_kwargs(config, vocab_size, num_classes=2):
    """`build_classifier` arguments for the default LSTM (whatever the default model name is)."""
    return {**config_kwargs(build_classifier, config, skip=("embeddings", "seed", "name")),
            "vocab_size": vocab_size, "num_classes": num_classes,
            "chrono_max_timescale": config.max_length}


def dataset_kwargs(config):
    """`make_dataset` arguments from the defaults: max_length, batch_size, and any new ones."""
    return config_kwargs(make_dataset, config, skip=("shuffle", "seed", "boundaries", "bucketing"))


def build_lstm(config, vectorizer, seed, num_classes=2):
    return build_classifier("lstm", seed=seed, **lstm_kwargs(
        config, len(vectorizer.get_vocabulary()), num_classes))


def default_optimizer(config):
    """The default optimizer and clipping rule at a constant learning rate (for timing)."""
    return make_optimizer(config.optimizer, config.learning_rate, clipnorm=config.clipnorm,
                          global_clipnorm=config.global_clipnorm, clipvalue=config.clipvalue)


def load_rows(path, rows=None):
    data = read_table(str(path))
    if rows:
        data = data.subset(np.arange(min(rows, len(data))))
    return data


def fit_rates(model, ds, n, epochs=TIMED_EPOCHS):
    """Samples/s of each epoch of `model.fit(ds)`."""
    timer = EpochTimer()
    model.fit(ds, epochs=epochs, verbose=0, callbacks=[timer])
    return [n / t for t in timer.times]


def epoch_seqclf(data, vectorizer, seed, steps_per_execution=None, config=None):
    """Samples/s of each timed epoch of seqclf's pipeline and training loop, fresh model."""
    config = config or default_config()
    keras.utils.set_random_seed(seed)
    model = build_lstm(config, vectorizer, seed)
    compile_classifier(model, default_optimizer(config),
                       steps_per_execution=steps_per_execution or config.steps_per_execution)
    ds = make_dataset(data.texts, data.labels, vectorizer, shuffle=True, seed=seed,
                      **dataset_kwargs(config))
    # Only a candidate with `batch_tokens` (undeclared batch count) ends by "running out of data".
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        return fit_rates(model, ds, len(data))


def tutorial_model_and_data(data, vectorizer, seed, config=None):
    """The tutorial's recipe: encoder inside the model, raw strings shuffled and batched."""
    config = config or default_config()
    keras.utils.set_random_seed(seed)
    core = build_lstm(config, vectorizer, seed, num_classes=data.num_classes)
    texts = keras.Input(shape=(), dtype="string")
    model = keras.Model(texts, core(vectorizer(texts)))
    compile_classifier(model, default_optimizer(config))
    ds = (tf.data.Dataset.from_tensor_slices((data.texts.astype(str), data.labels))
          .shuffle(TUTORIAL_SHUFFLE_BUFFER, seed=seed).batch(config.batch_size)
          .prefetch(tf.data.AUTOTUNE))
    return model, ds


def epoch_tutorial(data, vectorizer, seed, config=None):
    """Samples/s of each timed epoch of the tutorial's recipe, fresh model."""
    model, ds = tutorial_model_and_data(data, vectorizer, seed, config)
    return fit_rates(model, ds, len(data))


def throughput_runs():
    """The alternated runs: name -> fn(data, vectorizer, seed) returning samples/s per epoch."""
    return {
        "seqclf": epoch_seqclf,
        # Isolates the pipeline: the same training loop (1 step per call) as the tutorial's.
        "seqclf, 1 step/call": lambda d, v, seed: epoch_seqclf(d, v, seed, steps_per_execution=1),
        "tutorial": epoch_tutorial,
    }


def rate_key(name, epoch):
    """`seqclf, epoch 1`: the results key of a run's `epoch`-th (1-based) timed epoch."""
    return f"{name}, epoch {epoch}"


def alternate(runs, data, vectorizer, repeats, log=print):
    """Runs every entry of `runs` once per repeat, in rotating order.

    Returns `rate_key(name, epoch)` -> samples/s, one per repeat.
    """
    results = {rate_key(k, e + 1): [] for k in runs for e in range(TIMED_EPOCHS)}
    names = list(runs)
    for r in range(repeats):
        # Rotate the order each repeat so no configuration always runs first (or last).
        for name in names[r % len(names):] + names[: r % len(names)]:
            rates = runs[name](data, vectorizer, seed=r)
            for e, rate in enumerate(rates):
                results[rate_key(name, e + 1)].append(rate)
            log(f"repeat {r}: {name:20s} " + " ".join(f"{x:8.0f}" for x in rates)
                + " samples/s (by epoch)")
    return results


def print_summary(results, n, repeats, config):
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\nLSTM {config.units} units, embedding {config.embedding_dim}, batch "
          f"{config.batch_size}, {n} texts, {repeats} repeats, {os.cpu_count()} CPU cores; "
          "epoch 1 includes the first pass over the data and tracing")
    for k, v in med.items():
        spread = f"{min(results[k]):.0f}-{max(results[k]):.0f}"
        print(f"median {k:30s} {v:8.0f} samples/s  (spread {spread})")
    for e in range(1, TIMED_EPOCHS + 1):
        ours = rate_key("seqclf", e)
        for k in med:
            if k != ours and k.endswith(f", epoch {e}"):
                print(f"ratio {ours} / {k}: {med[ours] / med[k]:.2f}x")


def tutorial_accuracy(train_path=DATA, dev_path=DEV, seed=0, epochs=None, rows=None):
    """Trains the tutorial recipe as `seqclf train` splits the data; scores dev once."""
    config = default_config()
    train, _ = load_rows(train_path, rows).split(config.val_fraction, seed=seed)
    vectorizer = make_vectorizer(train.texts, max_tokens=config.max_tokens)
    model, ds = tutorial_model_and_data(train, vectorizer, seed, config)
    epochs = epochs or config.epochs
    start = time.perf_counter()
    model.fit(ds, epochs=epochs, verbose=0)
    train_seconds = time.perf_counter() - start
    dev = read_table(str(dev_path), label_names=train.label_names)

    def accuracy(texts):
        ds = tf.data.Dataset.from_tensor_slices((np.asarray(texts).astype(str), dev.labels))
        scores = model.evaluate(ds.batch(config.batch_size), verbose=0, return_dict=True)
        return float(scores["accuracy"])

    acc, shuffled = accuracy(dev.texts), accuracy(shuffle_words(dev.texts, seed=0))
    return {"accuracy": acc, "shuffled_accuracy": shuffled, "order_drop": acc - shuffled,
            "n": len(dev), "n_train": len(train), "epochs": epochs,
            "train_seconds": round(train_seconds, 2)}


def cli(argv, doc, accuracy_flag, accuracy_fn, runs, footer=None):
    """The command line this script and bench_torch.py share: time `runs`, or `accuracy_fn`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--dev", default=str(DEV))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=None, help="use the first N rows only")
    parser.add_argument(accuracy_flag, dest="accuracy", action="store_true",
                        help="train and score dev once instead of timing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="default: seqclf's default")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results here")
    args = parser.parse_args(argv)
    if args.accuracy:
        result = accuracy_fn(args.data, args.dev, args.seed, args.epochs, args.rows)
        print(json.dumps(result))
    else:
        config = default_config()
        data = load_rows(args.data, args.rows)
        vectorizer = make_vectorizer(data.texts, max_tokens=config.max_tokens)
        result = alternate(runs, data, vectorizer, args.repeats, log=lambda m: print(m, flush=True))
        print_summary(result, len(data), args.repeats, config)
        if footer:
            print(footer)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


def main(argv=None):
    cli(argv, __doc__, "--tutorial-accuracy", tutorial_accuracy, throughput_runs())


if __name__ == "__main__":
    main()

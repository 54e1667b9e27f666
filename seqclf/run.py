"""Training runs: `train` writes a run directory; `load_run`, `evaluate` and `predict` read it.

A run directory holds:

* `config.json` — the resolved configuration (every default filled in) and the label names;
* `vocabulary.txt` — the vectorizer's vocabulary, one token per line, id = line number - 1;
* `model.keras` — the trained classifier (token ids in, probabilities out);
* `history.csv` — one row per epoch (loss, accuracy, val_loss, val_accuracy);
* `gradient_stats.csv` — with `gradient_stats=N`: `GradientStats` records every N steps;
* `gradients_by_position.csv` — `PositionProbe`: per-timestep gradient norms of a validation probe
  batch at every epoch end (recurrent models);
* `curves.png`, `gradients.png` (with `gradient_stats`), `gradients_by_position.png` —
  `seqclf.plotting.plot_run`, once training ends;
* `metrics.json` — `val_accuracy` (best epoch), `epochs`, `train_seconds` and data counts;
* `evaluations/*.json` — one file per `evaluate` call;
* `backup/` — only while training: the state of the last completed epoch (`RunBackup`).

Every file is written atomically (`seqclf._io`: a temporary file beside it, then `os.replace`),
so a crash never leaves a truncated file: a reader sees the previous version or the new one.

Crash and resume: `metrics.json` marks a finished run, which `train` refuses to overwrite. A
directory without it but with `backup/state.json` is an unfinished run: `train` with the same
configuration (`out` and `quiet` may differ; anything else is a `SeqclfError` naming the fields)
restores the weights and optimizer state (iteration count, hence the learning-rate schedule),
the `EarlyStopping` state (Keras resets it in `on_train_begin`; `RunBackup` saves and restores
`best`, `wait` and the best weights) and continues with the epoch after the last completed one.
`history.csv` and `gradient_stats.csv` keep the rows of the completed epochs and get those of
the rerun epochs once; `train_seconds` sums the segments. The backup is deleted once
`metrics.json` is written. A resumed run is not bit-identical to an uninterrupted one: the data
order and dropout masks of the resumed epochs restart from the seed.
"""

import atexit
import contextlib
import dataclasses
import json
import os
import re
import shutil
import tempfile
import time
import warnings

import keras
import numpy as np

from seqclf._io import atomic_path, atomic_write_text, remove_stale_temporaries
from seqclf.callbacks.run_backup import RunBackup
from seqclf.data import load_spec, make_dataset, make_vectorizer, parse_spec, shuffle_words
from seqclf.data.pipeline import (
    bucket_batch_sizes,
    bucket_boundaries,
    string_values,
    token_counts,
)
from seqclf.distribute import (
    build_before_fit,
    distribute_dataset,
    is_chief,
    make_strategy,
    shard_by_data,
)
from seqclf.errors import SeqclfError
from seqclf.models import build_classifier, build_end_to_end, compile_classifier
from seqclf.names import LR_SCHEDULES
from seqclf.optimizers import make_optimizer
from seqclf.recipe import FIXED, RECIPE_FIELDS, RECIPES, data_stats, resolve

# "plateau": constant until val_loss stops improving for an epoch, then x0.3 each time (Keras'
# ReduceLROnPlateau): the decay follows the epochs actually run, which early stopping decides.
PLATEAU_FACTOR, PLATEAU_PATIENCE, PLATEAU_MIN_LR = 0.3, 1, 1e-5


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run; the CLI's flags map one to one onto fields."""

    data: str = "word_order"
    out: str = "runs/default"
    val: str | None = None
    model: str = "lstm"
    layers: int = 1
    bidirectional: bool = False
    # "auto": the fields below left at None are chosen from statistics of the training data
    # (seqclf.recipe); "fixed": they take seqclf.recipe.FIXED. A value given here always wins.
    recipe: str = "auto"
    # Defaults chosen on a held-out split of SST-2 *train* (bench/tune_sst2.py), never on dev:
    # dropout 0.25 on the embedded sequence beat none by 0.3-0.9 points (seeds 0, 1); 128 units,
    # 5 epochs, bidirectional, GRU, max/mean pooling and batch_tokens did not beat it (figures
    # there; that split leaked, see the script, and its successor confirmed LazyAdam below).
    units: int = 64
    embedding_dim: int = 64
    dropout: float | None = None
    embedding_dropout: float | None = None
    pooling: str | None = None
    lstm_init: str = "default"
    forget_bias: float | None = None
    max_tokens: int | None = None
    max_length: int | None = None
    # Bigram hash buckets of the linear tf-idf path beside the recurrent one (0: no such path).
    ngram_buckets: int | None = None
    # Batch 32: held out 0.810 / 0.811 vs batch 64's 0.809 / 0.795 (and 0.815 / 0.810 vs
    # 0.804 / 0.810 in an earlier run of the same split): the only candidate ahead on average in
    # both runs. It costs about a fifth of the samples/s (bench/bench_pipeline.py: 7,233 vs 9,358
    # cold).
    batch_size: int = 32
    batch_tokens: int | None = None
    steps_per_execution: int = 16
    epochs: int | None = None
    learning_rate: float = 3e-3
    lr_schedule: str | None = None
    # LazyAdam (sparse embedding updates): 0.807 vs Adam 0.797 held out (seeds 0, 1), and a
    # step no longer pays for updating all 20,000 embedding rows (bench/tune_sst2.py).
    optimizer: str = "lazy_adam"
    clipnorm: float | None = 1.0
    global_clipnorm: float | None = None
    clipvalue: float | None = None
    patience: int | None = None
    seed: int = 0
    val_fraction: float = 0.1
    text_column: str | None = None
    label_column: str | None = None
    data_dir: str | None = None
    embeddings: str | None = None
    gradient_stats: int | None = None
    quiet: bool = False
    # "default", "mirrored" or "multi_worker" (see seqclf.distribute); batch_size is global.
    strategy: str = "default"
    # Read file data as a stream (seqclf.data.streaming): memory bounded whatever the file size.
    stream: bool = False
    # Cap on training steps per epoch (None: the whole training data each epoch).
    steps_per_epoch: int | None = None
    # TensorBoard log directory (epoch metrics, learning rate, gradient statistics); None: none.
    tensorboard: str | None = None


def fixed_config(**kwargs):
    """A `TrainConfig` with the fixed recipe's settings filled in: what `recipe="fixed"` trains.

    For benchmarks of the model itself (throughput, PyTorch reference), whose settings must be
    known before any data is read.
    """
    return TrainConfig(**{**FIXED, "recipe": "fixed", **kwargs})


def _write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


# Settings that do not change what is trained: a resume may give other values.
_RESUME_FREE_FIELDS = ("out", "quiet", "tensorboard")


def _unfinished_run_config(out, backup_dir):
    """The saved config of an unfinished run in `out` that has a backup to resume, or None."""
    config_path = os.path.join(out, "config.json")
    if not (os.path.exists(os.path.join(backup_dir, "state.json"))
            and os.path.exists(config_path)):
        return None  # Nothing to resume: the run (re)starts from epoch 0.
    with open(config_path, encoding="utf-8") as f:
        return json.load(f)


def _check_same_config(out, saved, given):
    missing = object()
    differing = sorted(
        k for k in given
        if k not in _RESUME_FREE_FIELDS and saved.get(k, missing) != given[k]
    )
    if differing:
        def listed(values):
            return ", ".join(f"{k}={values.get(k)!r}" for k in differing)

        raise SeqclfError(
            f"{out} holds an unfinished run with other settings ({listed(saved)}); to resume it "
            f"give the same settings, or choose another --out. Received: {listed(given)}"
        )


def _default_val_spec(data_spec):
    """The validation split of a word_order/tfds spec, or None for files (hold out instead)."""
    parsed = parse_spec(data_spec)
    if parsed.kind == "file":
        return None
    base = data_spec.rsplit(":", 1)[0] if parsed.split else data_spec
    return f"{base}:validation"


def _say(config, message):
    if not config.quiet:
        print(message, flush=True)


@contextlib.contextmanager
def _quiet_end_of_data():
    # Token-budget batches (`batch_tokens`) leave their number undeclared, so Keras warns at every
    # epoch end that the input "ran out of data"; that is how such an epoch ends, not a problem.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        yield


@contextlib.contextmanager
def _data_errors():
    # A SeqclfError raised while tf.data reads a stream (its file changed since it was opened)
    # reaches Keras as a TensorFlow error carrying the message: raise it as itself, so that the
    # CLI prints that one line rather than a stack trace. Only `fit` reads streams: `evaluate`
    # and `predict` build in-memory datasets.
    import tensorflow as tf

    try:
        yield
    except tf.errors.OpError as e:
        found = re.search(r"SeqclfError: (.+)", str(e))
        if found is None:
            raise
        raise SeqclfError(found.group(1).strip()) from e


def _ngram_idf(vectorizer, train_data, config):
    """Idf weights of the wide path's n-grams, from the training texts (a sample if streamed)."""
    from seqclf.models.ngram_linear import ngram_idf

    def batches():
        ds = make_dataset(train_data.texts, np.zeros(len(train_data.texts), "int64"), vectorizer,
                          max_length=config.max_length, batch_size=1024, bucketing=False)
        for ids, _ in ds.as_numpy_iterator():
            yield ids

    return ngram_idf(batches(), len(vectorizer.get_vocabulary()), config.ngram_buckets)


def _worker_dir():
    """Where a non-chief worker writes its copy of a run: a temporary directory removed at the
    end (at exit at the latest), or `$SEQCLF_WORKER_DIR`, kept, to inspect a worker's result."""
    keep = os.environ.get("SEQCLF_WORKER_DIR")
    if keep:
        return keep
    path = tempfile.mkdtemp(prefix="seqclf-worker-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _probe_batch(data, vectorizer, config, size=64):
    """A seeded sample of `size` validation texts, as ids and labels, for `PositionProbe`."""
    rng = np.random.default_rng(config.seed)
    texts, labels = data.texts, data.labels  # a streamed file's: its bounded sample
    pick = np.sort(rng.choice(len(texts), min(size, len(texts)), replace=False))
    ds = make_dataset(texts[pick], labels[pick], vectorizer, max_length=config.max_length,
                      batch_size=len(pick), bucketing=False)
    x, y = next(iter(ds))
    return x.numpy(), y.numpy()


def _tensorboard_callback(log_dir):
    try:
        import tensorboard  # noqa: F401  (tf.summary's writers for Keras' callback live there)
    except ImportError:
        raise SeqclfError(
            "--tensorboard needs the tensorboard package: pip install 'seqclf[tensorboard]'. "
            f"Received: tensorboard={log_dir!r}"
        ) from None
    # Epoch metrics (train/ and validation/) and the learning rate (`epoch_learning_rate`); no
    # graph: writing it traces the train function once more.
    return keras.callbacks.TensorBoard(log_dir=log_dir, write_graph=False)


def train(config):
    """Trains a classifier as `config` says and writes the run directory; returns its metrics."""
    config = dataclasses.replace(config)
    if config.lr_schedule is not None and config.lr_schedule not in LR_SCHEDULES:
        raise SeqclfError(
            f"Unknown learning-rate schedule. Expected one of: {', '.join(LR_SCHEDULES)}. "
            f"Received: lr_schedule={config.lr_schedule!r}"
        )
    if config.epochs is not None and config.epochs < 1:
        raise SeqclfError(f"`epochs` must be at least 1. Received: epochs={config.epochs}")
    if config.recipe not in RECIPES:
        raise SeqclfError(
            f"Unknown recipe. Expected one of: {', '.join(RECIPES)}. "
            f"Received: recipe={config.recipe!r}"
        )
    if config.model == "bow" and config.pooling not in (None, "last"):
        raise SeqclfError(
            "--pooling applies to recurrent models; --model bow always averages its embeddings. "
            f"Received: pooling={config.pooling!r}, model='bow'"
        )
    if config.ngram_buckets is not None and (
        isinstance(config.ngram_buckets, bool) or not isinstance(config.ngram_buckets, int)
        or config.ngram_buckets < 0
    ):
        raise SeqclfError(
            "--ngram-buckets must be a non-negative integer (0: no n-gram path). "
            f"Received: ngram_buckets={config.ngram_buckets!r}"
        )
    # Before any other TensorFlow work: MultiWorkerMirroredStrategy configures collective ops,
    # which TensorFlow allows only before the process runs its first op.
    strategy = make_strategy(config.strategy)
    chief = is_chief(strategy)
    if not chief:
        # Every worker runs the whole program (collectives, saving included, need them all),
        # but only the chief writes the run directory; the others write a scratch copy.
        config.out = _worker_dir()
        config.quiet = True
    if strategy.num_replicas_in_sync > 1 and config.steps_per_execution > 1:
        # Keras 3's multi-step train loop fails under multi-replica strategies ("You must feed a
        # value for placeholder tensor", keras-team/keras#19246): one step per execution.
        config.steps_per_execution = 1
    # Built first so bad optimizer arguments fail before any time is spent on data; in the
    # strategy's scope because its variables (iterations, learning rate) are replicated.
    with strategy.scope():
        optimizer = make_optimizer(
            config.optimizer, config.learning_rate, clipnorm=config.clipnorm,
            global_clipnorm=config.global_clipnorm, clipvalue=config.clipvalue,
        )
    out = config.out
    if os.path.exists(os.path.join(out, "metrics.json")):
        raise SeqclfError(
            f"{out} already holds a finished run; choose another --out. Received: out={out!r}"
        )
    os.makedirs(out, exist_ok=True)
    backup_dir = os.path.join(out, "backup")
    saved_config = _unfinished_run_config(out, backup_dir)
    if saved_config is not None:
        # Checked before any time is spent on data; the resolved fields (validation spec,
        # labels, vocabulary size) are checked again once known.
        # Recipe fields left to the recipe are compared once resolved (below).
        given = {k: v for k, v in dataclasses.asdict(config).items()
                 if k != "val" and not (k in RECIPE_FIELDS and v is None)}
        _check_same_config(out, saved_config, given)
        if config.strategy == "multi_worker":
            # Only the chief has the backup: restoring it on the chief alone would leave the
            # workers training different weights.
            raise SeqclfError(
                f"{out} holds an unfinished multi-worker run; resuming one is not supported "
                "(the other workers cannot restore its backup). Choose another --out. "
                f"Received: out={out!r}, strategy='multi_worker'"
            )
    # Left by a writer killed between its temporary file and the rename (backup/ cleans itself).
    remove_stale_temporaries(out)
    keras.utils.set_random_seed(config.seed)

    train_data = load_spec(
        config.data, data_dir=config.data_dir, text_column=config.text_column,
        label_column=config.label_column, quiet=config.quiet, stream=config.stream,
    )
    if train_data.num_classes < 2:
        raise SeqclfError(
            f"{train_data.source}: training needs at least 2 classes. "
            f"Received: labels {train_data.label_names}"
        )
    val_spec = config.val or _default_val_spec(config.data)
    if val_spec is not None:
        try:
            val_data = load_spec(
                val_spec, data_dir=config.data_dir, text_column=config.text_column,
                label_column=config.label_column, label_names=train_data.label_names,
                quiet=config.quiet, stream=config.stream,
            )
        except SeqclfError:
            if config.val:
                raise
            val_data = None  # the dataset has no validation split: hold one out below
    else:
        val_data = None
    if val_data is None:
        train_data, val_data = train_data.split(config.val_fraction, seed=config.seed)
        val_spec = f"{config.val_fraction:.0%} of {config.data} held out (seed {config.seed})"
    for what, d in (("training", train_data), ("validation", val_data)):
        if d.skipped:
            _say(config, f"{what} data {d.source}: skipped {d.skipped}")

    # The whole vocabulary first: the recipe reads its counts, then it is cut to `max_tokens`
    # (the most frequent tokens, as adapting with `max_tokens` would keep).
    vectorizer = make_vectorizer(train_data.texts, max_tokens=None)
    train_lengths, counts = token_counts(vectorizer, train_data.texts)
    class_counts = getattr(train_data, "class_counts", None)
    if class_counts is None:
        class_counts = np.bincount(train_data.labels, minlength=train_data.num_classes)
    stats = data_stats(class_counts, train_lengths, counts[2:], n_train=len(train_data))
    values, recipe_choices, recipe_why = resolve(
        dataclasses.asdict(config), config.recipe, stats
    )
    config = TrainConfig(**values)
    _say(config, f"recipe {config.recipe}: " + "; ".join(recipe_why))
    if len(vectorizer.get_vocabulary()) > config.max_tokens:
        vectorizer = make_vectorizer(vocabulary=vectorizer.get_vocabulary()[: config.max_tokens])
    vocabulary = vectorizer.get_vocabulary()
    # Streamed data: lengths of its bounded sample, scaled to the whole (exact in memory).
    truncated = round((train_lengths > config.max_length).sum() * len(train_data)
                      / max(len(train_lengths), 1))
    if truncated:
        _say(config, f"{truncated} of {len(train_data)} training texts are longer than "
                     f"max_length={config.max_length} tokens and were truncated")

    embeddings = None
    if config.embeddings:
        from seqclf.embeddings import load_word_vectors

        embeddings, found = load_word_vectors(config.embeddings, vocabulary, config.embedding_dim)
        _say(config, f"pretrained vectors for {found} of {len(vocabulary)} vocabulary tokens")

    # Model, optimizer and compiled metrics in the strategy's scope: their variables are
    # replicated (across workers, initial values are broadcast from the first worker).
    with strategy.scope():
        model = build_classifier(
            config.model, vocab_size=len(vocabulary), num_classes=train_data.num_classes,
            embedding_dim=config.embedding_dim, units=config.units, layers=config.layers,
            bidirectional=config.bidirectional, dropout=config.dropout,
            embedding_dropout=config.embedding_dropout,
            pooling=config.pooling if config.model != "bow" else "last",
            lstm_init=config.lstm_init if config.model == "lstm" else "default",
            forget_bias=config.forget_bias, chrono_max_timescale=config.max_length,
            embeddings=embeddings, seed=config.seed,
            ngram_buckets=config.ngram_buckets or None,
            ngram_idf=_ngram_idf(vectorizer, train_data, config) if config.ngram_buckets else None,
        )
        # One length pass serves the truncation count above and, with batch_tokens, the bucket
        # boundaries and the number of steps per epoch (which a cosine schedule needs).
        boundaries = None
        steps_per_epoch = -(-len(train_data) // config.batch_size)  # sorted pools: full batches
        if config.batch_tokens is not None:
            effective = np.clip(train_lengths, 1, config.max_length)
            boundaries = bucket_boundaries(effective)
            per_bucket = np.bincount(np.digitize(effective, boundaries))
            per_bucket = per_bucket * (len(train_data) / len(effective))  # sample -> whole
            sizes = bucket_batch_sizes(boundaries, config.batch_size, config.batch_tokens)
            steps_per_epoch = int(np.ceil(per_bucket / np.array(sizes[: len(per_bucket)])).sum())
        if config.lr_schedule == "cosine":
            steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch or steps_per_epoch)
            optimizer = make_optimizer(
                config.optimizer,
                keras.optimizers.schedules.CosineDecay(
                    config.learning_rate, decay_steps=steps_per_epoch * config.epochs
                ),
                clipnorm=config.clipnorm, global_clipnorm=config.global_clipnorm,
                clipvalue=config.clipvalue,
            )
        compile_classifier(model, optimizer, steps_per_execution=config.steps_per_execution)
    # TextData.dataset is make_dataset; StreamedTextData.dataset reads the file each epoch.
    train_ds = train_data.dataset(
        vectorizer, max_length=config.max_length, batch_size=config.batch_size, shuffle=True,
        seed=config.seed, boundaries=boundaries, batch_tokens=config.batch_tokens,
    )
    val_ds = val_data.dataset(
        vectorizer, max_length=config.max_length, batch_size=config.batch_size,
        boundaries=boundaries,
    )
    # Every worker runs the same seeded pipeline (in memory or streamed, same batches in the same
    # order) and keeps its replicas' share of each global batch (see seqclf.distribute); no-ops
    # under the default strategy.
    build_before_fit(model, strategy, train_ds.element_spec)
    train_ds = distribute_dataset(strategy, train_ds)
    val_ds = shard_by_data(val_ds)

    resolved = dataclasses.asdict(config)
    resolved.update(
        val=val_spec, label_names=train_data.label_names, vocab_size=len(vocabulary),
        seqclf_format=1,
    )
    # What the recipe read and what it chose (fields given explicitly keep the given value).
    recipe_record = {"inputs": stats.as_dict(), "choices": recipe_choices, "why": recipe_why}
    if saved_config is not None:
        _check_same_config(out, saved_config, resolved)
    _write_json(os.path.join(out, "config.json"), {**resolved, "recipe_record": recipe_record})
    atomic_write_text(os.path.join(out, "vocabulary.txt"), "\n".join(vocabulary) + "\n")

    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", patience=config.patience, restore_best_weights=True
    )
    callbacks = [early_stopping]
    if config.lr_schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE,
            min_lr=PLATEAU_MIN_LR, verbose=0,
        ))
    if not config.quiet:
        from seqclf.callbacks.progress import StepProgress

        # Instead of Keras' bar, which counts whole executions of steps_per_execution steps
        # (see seqclf.callbacks.progress); the estimate serves epochs of undeclared length.
        callbacks.append(StepProgress(
            expected_steps=min(steps_per_epoch, config.steps_per_epoch or steps_per_epoch)))
    # Only the chief writes TensorBoard logs; the other workers would repeat its figures.
    tensorboard = config.tensorboard if chief else None
    if tensorboard:
        callbacks.append(_tensorboard_callback(tensorboard))
    grad_stats = None
    if config.gradient_stats:
        from seqclf.callbacks import GradientStats

        # Every worker runs it (its all-reduce needs them all); only the chief logs it. Beside
        # Keras' train/ and validation/ runs: one writer per folder, as TensorBoard expects.
        grad_stats = GradientStats(
            frequency=config.gradient_stats,
            log_dir=os.path.join(tensorboard, "gradients") if tensorboard else None,
        )
        callbacks.append(grad_stats)
    if chief:
        from seqclf.callbacks.position_probe import PositionProbe

        # For gradients_by_position.png: how far back the gradient reaches, epoch by epoch.
        callbacks.append(PositionProbe(*_probe_batch(val_data, vectorizer, config),
                                       os.path.join(out, "gradients_by_position.csv")))
    # Last: it saves the state the callbacks above reached at each epoch end (see its docstring).
    backup = RunBackup(
        backup_dir, history_path=os.path.join(out, "history.csv"), early_stopping=early_stopping,
        gradient_stats=grad_stats,
        gradient_stats_path=os.path.join(out, "gradient_stats.csv") if grad_stats else None,
    )
    callbacks.append(backup)
    state = backup.read_state()
    if state is not None:
        _say(config, f"resuming {out} at epoch {state['epoch'] + 1} of {config.epochs} "
                     f"(restoring the backup of epoch {state['epoch']})")
    start = time.perf_counter()
    with _quiet_end_of_data(), _data_errors():
        model.fit(
            train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks,
            verbose=0, shuffle=False,  # the dataset reshuffles itself; StepProgress shows it
            steps_per_epoch=config.steps_per_epoch,
        )
    train_seconds = backup.previous_seconds + time.perf_counter() - start
    with atomic_path(os.path.join(out, "model.keras")) as tmp:
        model.save(tmp)

    # The backup's history covers the epochs of earlier segments of a resumed run too.
    val_acc = [row["val_accuracy"] for row in backup.history]
    best = int(np.argmax(val_acc))
    metrics = {
        "val_accuracy": float(val_acc[best]),
        "val_loss": float(backup.history[best]["val_loss"]),
        "best_epoch": best + 1,
        "epochs": len(val_acc),
        "train_seconds": round(train_seconds, 2),
        "n_train": len(train_data),
        "n_val": len(val_data),
        "truncated_train_texts": truncated,
        "skipped": {"train": train_data.skipped, "val": val_data.skipped},
        "replicas": strategy.num_replicas_in_sync,
    }
    _write_json(os.path.join(out, "metrics.json"), metrics)
    # Only now: a crash before metrics.json is written still finds the backup and resumes.
    backup.delete()
    if chief:
        from seqclf.plotting import plot_run

        plots = plot_run(out)
        _say(config, "plots: " + ", ".join(os.path.basename(p) for p in plots))
    _say(config, f"val_accuracy {metrics['val_accuracy']:.4f} (epoch {best + 1}); run in {out}")
    if not chief and not os.environ.get("SEQCLF_WORKER_DIR"):
        shutil.rmtree(out, ignore_errors=True)
    return metrics


@dataclasses.dataclass
class LoadedRun:
    """A trained run: the classifier, its vectorizer and what it was trained with."""

    run_dir: str
    config: dict
    model: keras.Model
    vectorizer: keras.layers.TextVectorization
    label_names: list
    max_length: int

    def end_to_end(self):
        """A raw-strings-in `keras.Model` sharing this run's weights."""
        return build_end_to_end(self.model, self.vectorizer, self.max_length)


def load_run(run_dir):
    """Loads a run directory written by `train`."""
    for name in ("config.json", "vocabulary.txt", "model.keras"):
        if not os.path.exists(os.path.join(run_dir, name)):
            raise SeqclfError(
                f"{run_dir} is not a finished seqclf run: {name} is missing. Received: {run_dir!r}"
            )
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    with open(os.path.join(run_dir, "vocabulary.txt"), encoding="utf-8") as f:
        vocabulary = f.read().split("\n")[:-1]
    # Importing seqclf.models registered the custom initializers `load_model` may meet.
    model = keras.models.load_model(os.path.join(run_dir, "model.keras"), compile=False)
    compile_classifier(model)
    vectorizer = make_vectorizer(vocabulary=vocabulary)
    return LoadedRun(run_dir, config, model, vectorizer, config["label_names"],
                     config["max_length"])


def _slug(spec):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", spec).strip("_")[-100:] or "data"


def evaluate(run_dir, data, *, data_dir=None, text_column=None, label_column=None, seed=0,
             batch_size=None, quiet=True):
    """Scores a run on a data spec; returns (and writes under RUN_DIR/evaluations) the metrics.

    Besides `accuracy` it reports `shuffled_accuracy`: the accuracy when the words of every text
    are randomly permuted (seeded). The drop from `accuracy` tells how much the model relies on
    word order; an order-blind model loses nothing.
    """
    run = load_run(run_dir)
    cfg = run.config
    data_dir = data_dir or cfg.get("data_dir")
    dataset = load_spec(
        data, data_dir=data_dir, split="test",
        text_column=text_column or cfg.get("text_column"),
        label_column=label_column or cfg.get("label_column"),
        label_names=run.label_names, quiet=quiet,
    )
    batch_size = batch_size or cfg["batch_size"]

    def score(texts):
        ds = make_dataset(texts, dataset.labels, run.vectorizer, max_length=run.max_length,
                          batch_size=batch_size)
        return run.model.evaluate(ds, verbose=0, return_dict=True)

    plain = score(dataset.texts)
    shuffled = score(shuffle_words(dataset.texts, seed=seed))
    result = {
        "data": data,
        "n": len(dataset),
        "accuracy": float(plain["accuracy"]),
        "loss": float(plain["loss"]),
        "shuffled_accuracy": float(shuffled["accuracy"]),
        "order_drop": float(plain["accuracy"] - shuffled["accuracy"]),
        "shuffle_seed": seed,
        "skipped": dataset.skipped,
    }
    os.makedirs(os.path.join(run_dir, "evaluations"), exist_ok=True)
    _write_json(os.path.join(run_dir, "evaluations", _slug(data) + ".json"), result)
    return result


def predict(run_dir_or_run, texts, *, batch_size=64):
    """Classifies raw texts; returns one dict per text: label, class_id, probabilities."""
    run = run_dir_or_run if isinstance(run_dir_or_run, LoadedRun) else load_run(run_dir_or_run)
    if isinstance(texts, (str, bytes)):
        # Iterating one string would classify each of its characters.
        raise SeqclfError(f"`texts` must be a list of texts. Received: texts={texts!r:.80}")
    texts = list(texts)
    if not texts:
        return []
    # str or UTF-8 bytes (as the exported signature takes); invalid UTF-8 is tokenized, not fatal.
    values = string_values(texts)
    # Batches of texts of similar length are padded less (masking makes the padding irrelevant
    # to the result): classify in order of byte length, then put the answers back in order.
    order = np.argsort([len(v) for v in values], kind="stable")
    ds = make_dataset(values[order], np.zeros(len(values), dtype="int64"),
                      run.vectorizer, max_length=run.max_length, batch_size=batch_size,
                      bucketing=False)
    sorted_probs = run.model.predict(ds.map(lambda ids, y: ids), verbose=0)
    probs = np.empty_like(sorted_probs)
    probs[order] = sorted_probs
    out = []
    for text, p in zip(texts, probs):
        k = int(np.argmax(p))
        out.append({
            "text": text,
            "label": run.label_names[k],
            "class_id": k,
            "probabilities": {n: float(v) for n, v in zip(run.label_names, p)},
        })
    return out

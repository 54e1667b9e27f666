"""The stages of `seqclf.run.train`: set-up, data, model and optimizer, datasets, callbacks,
fit, and writing the run directory (`seqclf.run_dir.RunDir`).

Each stage is a function of what the earlier ones decided; `seqclf.run.train` calls them in
order. The on-disk format and the resume rules are described in `seqclf.run`.
"""

import atexit
import contextlib
import dataclasses
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import warnings

import keras
import numpy as np

from seqclf._checks import check_int, check_positive_int, check_train_settings
from seqclf._io import remove_stale_temporaries
from seqclf.callbacks.run_backup import RunBackup
from seqclf.class_report import class_report, collapse_warning, format_report
from seqclf.data import load_spec, make_dataset, parse_spec
from seqclf.data.pipeline import bucket_batch_sizes, bucket_boundaries
from seqclf.distribute import (
    build_before_fit,
    distribute_dataset,
    is_chief,
    make_strategy,
    shard_by_data,
)
from seqclf.errors import SeqclfError
from seqclf.models import TextClassifier, compile_classifier
from seqclf.models.text_classifier import adapt_with_recipe, backbone_from_settings
from seqclf.models.text_inputs import class_weights
from seqclf.names import LR_SCHEDULES
from seqclf.optimizers import make_optimizer
from seqclf.recipe import RECIPE_FIELDS, RECIPES
from seqclf.run_dir import RunDir

# "plateau": constant until val_loss stops improving for an epoch, then x0.3 each time (Keras'
# ReduceLROnPlateau): the decay follows the epochs actually run, which early stopping decides.
PLATEAU_FACTOR, PLATEAU_PATIENCE, PLATEAU_MIN_LR = 0.3, 1, 1e-5


# Settings that do not change what is trained: a resume may give other values.
_RESUME_FREE_FIELDS = ("out", "quiet", "tensorboard")


def check_same_config(out, saved, given, defaults=None):
    """Raises unless the settings `given` match the unfinished run's `saved` config.json.

    `defaults` (field: default, as `dataclasses.fields` of a `TrainConfig` give them): a field
    the saved run does not name is newer than that run, which had its default (e.g.
    group_column=None).
    """
    missing = object()
    defaults = defaults or {}
    differing = sorted(
        k for k in given
        if k not in _RESUME_FREE_FIELDS and saved.get(k, defaults.get(k, missing)) != given[k]
    )
    if differing:
        def listed(values):
            return ", ".join(f"{k}={values.get(k)!r}" for k in differing)

        raise SeqclfError(
            f"{out} holds an unfinished run with other settings ({listed(saved)}); to resume it "
            f"give the same settings, or choose another --out. Received: {listed(given)}"
        )


def _defaults(config):
    return {f.name: f.default for f in dataclasses.fields(config)}


def _default_val_spec(data_spec):
    """The validation split of a word_order/tfds spec, or None for files (hold out instead)."""
    parsed = parse_spec(data_spec)
    if parsed.kind == "file":
        return None
    base = data_spec.rsplit(":", 1)[0] if parsed.split else data_spec
    return f"{base}:validation"


def member_header(config, k):
    """How the output names ensemble member `k` (0-based): as the user counts, from 1."""
    return f"member {k + 1} of {config.members} (seed {config.seed + k})"


def say(config, message):
    """Prints `message` unless the run is quiet."""
    if not config.quiet:
        print(message, flush=True)


@contextlib.contextmanager
def quiet_end_of_data():
    """Silences Keras' "ran out of data" warning at the end of token-budget epochs."""
    # Token-budget batches (`batch_tokens`) leave their number undeclared, so Keras warns at every
    # epoch end that the input "ran out of data"; that is how such an epoch ends, not a problem.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        yield


class _NotRetracing(logging.Filter):
    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def quiet_retracing():
    """Silences TensorFlow's "N out of the last M calls ... triggered tf.function retracing"
    warning while an ensemble trains its members."""
    # TensorFlow counts traces per Python function, and Keras makes every model's train and test
    # functions from the same one: a new model's first trace is counted against the models
    # before it, though nothing could reuse their traces.
    logger = logging.getLogger("tensorflow")
    quiet = _NotRetracing()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


@contextlib.contextmanager
def data_errors():
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
            "--tensorboard needs the tensorboard package, a dependency of seqclf missing from "
            "this environment: pip install 'tensorboard>=2.21'. "
            f"Received: tensorboard={log_dir!r}"
        ) from None
    # Epoch metrics (train/ and validation/) and the learning rate (`epoch_learning_rate`); no
    # graph: writing it traces the train function once more.
    return keras.callbacks.TensorBoard(log_dir=log_dir, write_graph=False)


def parse_class_weight(text):
    """`--class-weight` as `class_weights` takes it: `"balanced"`, or a dict of label names to
    weights from `LABEL=WEIGHT,...` (labels not named keep weight 1). None stays None."""
    if text is None or text == "balanced":
        return text

    def refuse(why):
        return SeqclfError(f"--class-weight takes 'balanced' or LABEL=WEIGHT,...; {why}. "
                           f"Received: class_weight={text!r}")

    if not isinstance(text, str):
        raise refuse("it must be a string")
    weights = {}
    for part in text.split(","):
        label, equals, number = part.rpartition("=")
        label = label.strip()
        if not equals or not label:
            raise refuse(f"{part.strip()!r} is not LABEL=WEIGHT")
        if label in weights:
            raise refuse(f"label {label!r} is given twice")
        try:
            weight = float(number)
        except ValueError:
            raise refuse(f"the weight of {label!r} is not a number") from None
        if not (np.isfinite(weight) and weight > 0):
            # A weight of 0 would drop the label's rows from training without a word.
            raise refuse(f"weights must be finite and positive, {label!r} has {number.strip()}")
        weights[label] = weight
    return weights


def per_class_weights(config, train_data):
    """The weight of each class id that `config.class_weight` asks for, or None."""
    weights = parse_class_weight(config.class_weight)
    if weights is None:
        return None
    names = [str(n) for n in train_data.label_names]
    if isinstance(weights, dict):
        unknown = [label for label in weights if label not in names]
        if unknown:
            raise SeqclfError(
                f"--class-weight names labels the training data does not have: "
                f"{', '.join(map(repr, unknown))}; its labels are {', '.join(names)}. "
                f"Received: class_weight={config.class_weight!r}"
            )
    # Streamed data keep their rows per class (`class_counts`), not every label.
    counts = getattr(train_data, "class_counts", None)
    if counts is None:
        counts = np.bincount(train_data.labels, minlength=train_data.num_classes)
    return class_weights(weights, None, names, counts=counts)


def _check_config(config):
    """Settings that are wrong whatever the data: refused before any work."""
    parse_class_weight(config.class_weight)
    if config.lr_schedule is not None and config.lr_schedule not in LR_SCHEDULES:
        raise SeqclfError(
            f"Unknown learning-rate schedule. Expected one of: {', '.join(LR_SCHEDULES)}. "
            f"Received: lr_schedule={config.lr_schedule!r}"
        )
    check_positive_int("epochs", config.epochs, allow_none=True)
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
    check_int("ngram_buckets", config.ngram_buckets, 0, allow_none=True)  # 0: no n-gram path
    check_positive_int("members", config.members, allow_none=True)


def _make_optimizer(config, learning_rate=None):
    return make_optimizer(
        config.optimizer, learning_rate or config.learning_rate, clipnorm=config.clipnorm,
        global_clipnorm=config.global_clipnorm, clipvalue=config.clipvalue,
    )


@dataclasses.dataclass
class _Setup:
    """What the set-up stage decides: the strategy, the run directory and its resume state."""

    config: object  # seqclf.run.TrainConfig
    strategy: object
    chief: bool
    run: RunDir
    optimizer: object
    saved_config: dict | None
    lock: object = None  # held while the run trains (`RunDir.claim`)


def _tidy_finished(run):
    """Ends the clean-up of a finished run killed right after its metrics.json: removes the
    backup and members (model.keras holds them) and draws the plots it did not get to."""
    leftovers = [p for p in (run.backup_dir, run.file(RunDir.MEMBERS)) if os.path.isdir(p)]
    if not leftovers and os.path.exists(run.file(RunDir.CURVES_PLOT)):
        return
    for path in leftovers:
        shutil.rmtree(path)
    from seqclf.plotting import plot_run

    plot_run(run.path)


def setup_stage(config):
    """Checks the settings, makes the strategy and the optimizer, and prepares the run directory
    (refusing a finished run, checking a resumed one's settings)."""
    config = dataclasses.replace(config)
    _check_config(config)
    check_train_settings(config)
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
        optimizer = _make_optimizer(config)
    out = config.out
    run = RunDir(out)
    # Before anything in it is read, replaced or removed: a new or empty folder or a seqclf run,
    # no link leading out of it, and no other `train` writing it.
    lock = run.claim()
    if run.is_finished():
        _tidy_finished(run)
        raise SeqclfError(
            f"{out} already holds a finished run; choose another --out. Received: out={out!r}"
        )
    saved_config = run.unfinished_config()
    if saved_config is not None:
        # Checked before any time is spent on data; the resolved fields (validation spec,
        # labels, vocabulary size) are checked again once known.
        # Recipe fields left to the recipe are compared once resolved (below).
        given = {k: v for k, v in dataclasses.asdict(config).items()
                 if k != "val" and not (k in RECIPE_FIELDS and v is None)}
        check_same_config(out, saved_config, given, _defaults(config))
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
    return _Setup(config, strategy, chief, run, optimizer, saved_config, lock)


def data_stage(config):
    """`(train_data, val_data, val_spec, pool)`: the validation data is `--val`, the dataset's
    own validation split, or a held-out fraction of the training data; `pool` is then the
    whole training data (the members of an ensemble hold out their own splits), else None."""
    train_data = load_spec(
        config.data, data_dir=config.data_dir, text_column=config.text_column,
        label_column=config.label_column, quiet=config.quiet, stream=config.stream,
        group_column=config.group_column,
    )
    if train_data.num_classes < 2:
        raise SeqclfError(
            f"{train_data.source}: training needs at least 2 classes. "
            f"Received: labels {train_data.label_names}"
        )
    val_spec = config.val or _default_val_spec(config.data)
    val_data = None
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
            # Otherwise the dataset has no validation split: one is held out below.
    if val_data is not None and config.group_column is not None:
        say(config, f"--group-column {config.group_column!r} is unused: validation data is "
                    f"{val_spec}, not held out of the training data")
    pool = None
    if val_data is None:
        pool = train_data
        train_data, val_data = train_data.split(config.val_fraction, seed=config.seed)
        val_spec = (f"{config.val_fraction:.0%} of {config.data}"
                    + (f" (whole groups of {config.group_column!r})" if config.group_column else "")
                    + f" held out (seed {config.seed})")
    for what, d in (("training", train_data), ("validation", val_data)):
        if d.skipped:
            say(config, f"{what} data {d.source}: skipped {d.skipped}")
    return train_data, val_data, val_spec, pool


@dataclasses.dataclass
class _Model:
    """What the model stage builds: the resolved config, the classifier and batching figures."""

    config: object  # resolved: the recipe's fields filled in
    classifier: TextClassifier
    record: dict  # the recipe's inputs, choices and reasons
    lengths: np.ndarray  # tokens per training text (of a streamed file's sample)
    truncated: int
    boundaries: list | None
    steps_per_epoch: int
    embeddings: np.ndarray | None = None  # pretrained vectors, for the ensemble's other members
    class_weights: np.ndarray | None = None  # by class id (`--class-weight`); None: all 1


def model_stage(setup, train_data, val_spec):
    """The recipe, the preprocessor adapted on the training texts, the compiled backbone."""
    config, strategy = setup.config, setup.strategy
    # Before the preprocessor adapts: a label the data lacks is refused at once.
    weights = per_class_weights(config, train_data)
    class_counts = getattr(train_data, "class_counts", None)
    if class_counts is None:
        class_counts = np.bincount(train_data.labels, minlength=train_data.num_classes)
    values, preprocessor, record, lengths = adapt_with_recipe(
        train_data.texts, class_counts, dataclasses.asdict(config), config.recipe,
        n_train=len(train_data),
    )
    config = dataclasses.replace(config, **values)
    say(config, f"recipe {config.recipe}:" + "".join(f"\n  - {line}" for line in record["why"]))
    vocabulary = preprocessor.vocabulary
    # Streamed data: lengths of its bounded sample, scaled to the whole (exact in memory).
    truncated = round((lengths > config.max_length).sum() * len(train_data)
                      / max(len(lengths), 1))
    if truncated:
        say(config, f"{truncated} of {len(train_data)} training texts are longer than "
                     f"max_length={config.max_length} tokens and were truncated")
    embeddings = None
    if config.embeddings:
        from seqclf.embeddings import load_word_vectors

        embeddings, found = load_word_vectors(config.embeddings, vocabulary, config.embedding_dim)
        say(config, f"pretrained vectors for {found} of {len(vocabulary)} vocabulary tokens")

    # Model, optimizer and compiled metrics in the strategy's scope: their variables are
    # replicated (across workers, initial values are broadcast from the first worker).
    with strategy.scope():
        # The n-gram path is not trained with the recurrent model: it is fitted on its own and
        # blended in after (seqclf.linear_path).
        backbone = backbone_from_settings(
            {**values, "ngram_buckets": 0}, vocab_size=len(vocabulary),
            num_classes=train_data.num_classes, embeddings=embeddings,
        )
        # One length pass serves the truncation count above and, with batch_tokens, the bucket
        # boundaries and the number of steps per epoch (which a cosine schedule needs).
        boundaries = None
        steps_per_epoch = -(-len(train_data) // config.batch_size)  # sorted pools: full batches
        if config.batch_tokens is not None:
            effective = np.clip(lengths, 1, config.max_length)
            boundaries = bucket_boundaries(effective)
            per_bucket = np.bincount(np.digitize(effective, boundaries))
            per_bucket = per_bucket * (len(train_data) / len(effective))  # sample -> whole
            sizes = bucket_batch_sizes(boundaries, config.batch_size, config.batch_tokens)
            steps_per_epoch = int(np.ceil(per_bucket / np.array(sizes[: len(per_bucket)])).sum())
        if config.lr_schedule == "cosine":
            steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch or steps_per_epoch)
        # The backbone is what trains (the callbacks read its layers); the classifier holds it
        # with the preprocessor and the label names.
        compile_backbone(config, backbone, steps_per_epoch, setup.optimizer)
    settings = {**dataclasses.asdict(config), "val": val_spec}
    classifier = TextClassifier(backbone, preprocessor, train_data.label_names, settings=settings)
    if weights is not None:
        say(config, "class weights: " + ", ".join(
            f"{name} {w:.3g}" for name, w in zip(train_data.label_names, weights)))
    return _Model(config, classifier, record, lengths, truncated, boundaries, steps_per_epoch,
                  embeddings, weights)


def compile_backbone(config, backbone, steps_per_epoch, optimizer=None):
    """Compiles `backbone` with the optimizer `config` asks for (a cosine schedule annealed over
    the planned steps); `optimizer` is used as it is where no schedule needs building."""
    if config.lr_schedule == "cosine":
        optimizer = _make_optimizer(config, keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=steps_per_epoch * config.epochs
        ))
    compile_classifier(backbone, optimizer or _make_optimizer(config),
                       steps_per_execution=config.steps_per_execution,
                       weighted_accuracy=config.class_weight is not None)


def datasets_stage(setup, built, train_data, val_data, *, model=None, seed=None):
    """The training and validation datasets of ids, placed for the strategy (for `model`,
    shuffled by `seed`: default, the run's backbone and seed)."""
    config, strategy = built.config, setup.strategy
    model = model or built.classifier.backbone
    tokenizer = built.classifier.preprocessor.tokenizer
    # TextData.dataset is make_dataset; StreamedTextData.dataset reads the file each epoch.
    train_ds = train_data.dataset(
        tokenizer, max_length=config.max_length, batch_size=config.batch_size, shuffle=True,
        seed=config.seed if seed is None else seed, boundaries=built.boundaries,
        batch_tokens=config.batch_tokens,
    )
    val_ds = val_data.dataset(
        tokenizer, max_length=config.max_length, batch_size=config.batch_size,
        boundaries=built.boundaries,
    )
    if built.class_weights is not None:
        # Validation weighted too: early stopping and the plateau schedule then follow the
        # objective trained for (with "balanced", val_accuracy is about the mean recall), where
        # plain accuracy would keep the epoch that answers the large class everywhere.
        train_ds, val_ds = (_with_class_weights(ds, built.class_weights)
                            for ds in (train_ds, val_ds))
    # Every worker runs the same seeded pipeline (in memory or streamed, same batches in the same
    # order) and keeps its replicas' share of each global batch (see seqclf.distribute); no-ops
    # under the default strategy.
    build_before_fit(model, strategy, train_ds.element_spec)
    return distribute_dataset(strategy, train_ds), shard_by_data(val_ds)


def _with_class_weights(dataset, weights):
    """`(ids, labels)` batches → `(ids, labels, weights of the labels)`: sample weights, the
    third part Keras reads. In the pipeline rather than `fit`'s `class_weight`, so that
    streamed and distributed datasets take them alike."""
    import tensorflow as tf

    weights = tf.constant(weights, tf.float32)
    return dataset.map(lambda ids, labels: (ids, labels, tf.gather(weights, labels)))


def write_start_stage(setup, built):
    """`config.json` (with the recipe's record) and `vocabulary.txt`, before training."""
    resolved = built.classifier.run_config()
    if setup.saved_config is not None:
        check_same_config(setup.run.path, setup.saved_config, resolved, _defaults(setup.config))
    setup.run.write_config({**resolved, "recipe_record": built.record})
    setup.run.write_vocabulary(built.classifier.preprocessor.vocabulary)


def training_callbacks(built):
    """Early stopping (first), the plateau schedule and progress: what every member trains with."""
    config = built.config
    callbacks = [keras.callbacks.EarlyStopping(
        monitor="val_accuracy", patience=config.patience, restore_best_weights=True
    )]
    if config.lr_schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE,
            min_lr=PLATEAU_MIN_LR, verbose=0,
        ))
    if not config.quiet:
        from seqclf.callbacks.progress import StepProgress

        # Instead of Keras' bar, which counts whole executions of steps_per_execution steps
        # (see seqclf.callbacks.progress); the estimate serves epochs of undeclared length.
        steps = built.steps_per_epoch
        callbacks.append(StepProgress(expected_steps=min(steps, config.steps_per_epoch or steps)))
    return callbacks


def callbacks_stage(setup, built, val_data):
    """`(callbacks, backup)`: early stopping, the schedule, progress, TensorBoard, gradient
    statistics, the position probe and, last, the backup that makes the run resumable."""
    config, run = built.config, setup.run
    callbacks = training_callbacks(built)
    early_stopping = callbacks[0]
    # Only the chief writes TensorBoard logs; the other workers would repeat its figures.
    tensorboard = config.tensorboard if setup.chief else None
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
    if setup.chief:
        from seqclf.callbacks.position_probe import PositionProbe

        # For gradients_by_position.png: how far back the gradient reaches, epoch by epoch.
        probe = _probe_batch(val_data, built.classifier.preprocessor.tokenizer, config)
        callbacks.append(PositionProbe(*probe, run.file(RunDir.GRADIENTS_BY_POSITION)))
    # Last: it saves the state the callbacks above reached at each epoch end (see its docstring).
    backup = RunBackup(
        run.backup_dir, history_path=run.file(RunDir.HISTORY), early_stopping=early_stopping,
        gradient_stats=grad_stats,
        gradient_stats_path=run.file(RunDir.GRADIENT_STATS) if grad_stats else None,
    )
    callbacks.append(backup)
    return callbacks, backup


def fit_stage(built, train_ds, val_ds, callbacks, backup):
    """Trains (resuming from the backup if there is one); returns the training seconds. A loss
    that became NaN or infinite is a one-line error here."""
    config = built.config
    state = backup.read_state()
    if state is not None and RunBackup.resume_epoch(state, config.epochs) >= config.epochs:
        # Killed after training ended (in an ensemble's later members, or before metrics.json):
        # fit runs no epoch, and early stopping puts the best epoch's weights back.
        say(config, f"resuming {config.out}: "
                     + ("member 1" if config.members > 1 else "the model")
                     + f" had finished training (epoch {state['epoch']} of {config.epochs}); "
                     "restoring its best epoch from the backup")
    elif state is not None:
        say(config, f"resuming {config.out} at epoch {state['epoch'] + 1} of {config.epochs} "
                     f"(restoring the backup of epoch {state['epoch']})")
    if config.members > 1:
        say(config, member_header(config, 0))
    start = time.perf_counter()
    with quiet_end_of_data(), data_errors():
        built.classifier.backbone.fit(
            train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks,
            verbose=0, shuffle=False,  # the dataset reshuffles itself; StepProgress shows it
            steps_per_epoch=config.steps_per_epoch,
        )
    seconds = backup.previous_seconds + time.perf_counter() - start
    diverged = [row for row in backup.history
                if not all(np.isfinite(row.get(k, 0.0)) for k in ("loss", "val_loss"))]
    if diverged:
        # A NaN model would answer NaN probabilities; it is not saved as a finished run (and
        # neither blended nor joined by ensemble members).
        raise SeqclfError(
            f"training diverged: the loss became {diverged[0].get('loss')} at epoch "
            f"{int(diverged[0]['epoch']) + 1}; lower the learning rate or clip the gradients. "
            f"Received: learning_rate={config.learning_rate!r}, clipnorm={config.clipnorm!r}"
        )
    return seconds


def predicted_classes(built, val_data):
    """The class ids the run's classifier predicts for the validation texts (a streamed file's:
    its sample)."""
    probabilities = built.classifier.predict(val_data.texts, batch_size=built.config.batch_size)
    return np.argmax(probabilities, axis=1)


def _validation_report(built, val_data, member_records, blend, first_member):
    """`(report, model)`: the per-class report of the validation data and which model it scores:
    the saved one, or, where its own predictions of the split are not held out (an ensemble
    whose other members trained on parts of it), the first member."""
    if blend is not None:
        predicted, model = blend.pop("val_predicted"), "the saved model"
    elif first_member is not None:
        predicted, model = first_member, (f"member 1 of {len(member_records)} (the others "
                                          "trained on parts of this validation split)")
    else:
        predicted, model = predicted_classes(built, val_data), "the saved model"
    report = class_report(val_data.labels, predicted, built.classifier.label_names)
    return {**report, "model": model}


def _write_tensorboard_report(log_dir, report, step):
    """The validation report in TensorBoard (`per_class/`, beside Keras' `validation/`):
    precision, recall and F1 of each class, macro-F1, accuracy, the majority baseline, and the
    confusion matrix as a table."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(os.path.join(log_dir, "per_class"))
    with writer.as_default():
        for name, figures in report["per_class"].items():
            for key in ("precision", "recall", "f1"):
                tf.summary.scalar(f"{key}/{name}", figures[key], step=step)
        tf.summary.scalar("macro_f1", report["macro_f1"], step=step)
        tf.summary.scalar("accuracy", report["accuracy"], step=step)
        tf.summary.scalar("majority_baseline_accuracy", report["majority_baseline"]["accuracy"],
                          step=step)
        names = report["confusion_matrix"]["labels"]
        rows = ["| true \\ predicted | " + " | ".join(names) + " |",
                "|---" * (len(names) + 1) + "|"]
        rows += [f"| {name} | " + " | ".join(map(str, row)) + " |"
                 for name, row in zip(names, report["confusion_matrix"]["counts"])]
        tf.summary.text("confusion_matrix", "\n".join(rows), step=step)
    writer.close()


def write_results_stage(setup, built, backup, train_seconds, train_data, val_data,
                        member_records=(), blend=None, first_member=None):
    """`model.keras` and `metrics.json` (which marks the run finished), then the plots.

    For an ensemble, `best_epoch` and `epochs` are member 0's (the other members trained on
    parts of its validation split) and `members` lists every member's; `train_seconds` adds up
    all members'. With a linear path (`blend`, `seqclf.linear_stages.blend_stage`),
    `val_accuracy` and `val_loss` are the blended model's, the one saved and exported, and
    `train_seconds` includes the linear fit. `validation_report` holds the per-class results
    (`seqclf.class_report`) of the model `val_accuracy` describes; `first_member`: the first
    member's validation predictions, for an ensemble that has no held-out ones of its own."""
    config, run, chief = built.config, setup.run, setup.chief
    # The text model, compiled as `TextClassifier.compile()` compiles it: loaded with
    # `keras.saving.load_model`, it evaluates, and trains on, at once.
    with setup.strategy.scope():
        built.classifier.compile()
    if config.strategy == "default":
        # Optimizers never stepped (the classifier's, a blend's or an ensemble's) saved unbuilt
        # would make `load_model` warn that it skipped their variables. (Under a distribution
        # strategy the optimizers belong to different scopes; the warning stays.)
        for model in (built.classifier, built.classifier.backbone):
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
    run.save_model(built.classifier)
    # The backup's history covers the epochs of earlier segments of a resumed run too.
    val_acc = [row["val_accuracy"] for row in backup.history]
    best = int(np.argmax(val_acc))
    if member_records:
        member_records = [{"member": 0, "seed": config.seed, "val_accuracy": float(val_acc[best]),
                           "best_epoch": best + 1, "epochs": len(val_acc),
                           "train_seconds": round(train_seconds, 2)}, *member_records]
        train_seconds = sum(r["train_seconds"] for r in member_records)
    if blend is not None:
        train_seconds += blend["seconds"]
    metrics = {
        "val_accuracy": float(blend["val_accuracy"] if blend else val_acc[best]),
        "val_loss": float(blend["val_loss"] if blend else backup.history[best]["val_loss"]),
        "recurrent_val_accuracy": float(val_acc[best]),
        "blend": blend,
        "best_epoch": best + 1,
        "epochs": len(val_acc),
        "members": list(member_records) or None,
        "train_seconds": round(train_seconds, 2),
        "n_train": len(train_data),
        "n_val": len(val_data),
        "truncated_train_texts": built.truncated,
        "skipped": {"train": train_data.skipped, "val": val_data.skipped},
        "replicas": setup.strategy.num_replicas_in_sync,
        "validation_report": _validation_report(built, val_data, member_records, blend,
                                                first_member),
    }
    if built.class_weights is not None:
        # The history's accuracies are weighted by class (the early stopping criterion); the
        # run's own figure stays the plain accuracy, as everywhere else.
        metrics["val_accuracy"] = metrics["validation_report"]["accuracy"]
    run.write_metrics(metrics)
    # Only now: a crash before metrics.json is written still finds the backup and resumes.
    backup.delete()
    shutil.rmtree(run.file(RunDir.MEMBERS), ignore_errors=True)  # model.keras holds them all
    report = metrics["validation_report"]
    if chief:
        from seqclf.plotting import plot_run

        plots = plot_run(run.path)
        say(config, "plots: " + ", ".join(os.path.basename(p) for p in plots))
        if config.tensorboard:
            _write_tensorboard_report(config.tensorboard, report, step=len(val_acc))
    if member_records:
        say(config, f"{len(member_records)} members averaged; each one's validation accuracy: "
                     + ", ".join(f"{r['val_accuracy']:.4f}" for r in member_records))
    say(config, f"validation data, {report['model']}:\n{format_report(report)}")
    warning = collapse_warning(report, class_weighted=built.class_weights is not None)
    if warning and chief:
        print(warning, file=sys.stderr, flush=True)  # even when quiet: the run is not usable
    say(config, _final_line(metrics, report, blend, member_records, first_member, run.path))
    if not chief and not os.environ.get("SEQCLF_WORKER_DIR"):
        shutil.rmtree(run.path, ignore_errors=True)
    return metrics


def _final_line(metrics, report, blend, member_records, first_member, path):
    """The last line of a run's output: the validation score of the model it saved."""
    if first_member is not None:
        what = (f"validation accuracy {metrics['val_accuracy']:.4f} of member 1 (best epoch "
                f"{metrics['best_epoch']}); the {len(member_records)} members averaged, as "
                "saved, have no held-out score: the others trained on parts of this split")
    else:
        how = ("linear path and recurrent model blended" if blend
               else f"{len(member_records)} members averaged" if member_records
               else f"best epoch {metrics['best_epoch']} of {metrics['epochs']}")
        what = f"validation accuracy of the saved model: {report['accuracy']:.4f} ({how})"
    majority = report["majority_baseline"]
    return (f"{what}; macro-F1 {report['macro_f1']:.4f}, always answering "
            f"{majority['label']!r} would score {majority['accuracy']:.4f}; run in {path}")

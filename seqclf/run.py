"""Training runs: `train` writes a run directory; `evaluate` and `predict` read it
(`TextClassifier.from_run` loads its classifier).

`train` runs the stages of `seqclf.training` and trains a `seqclf.models.TextClassifier`'s
backbone; `TextClassifier.save_run` and `TextClassifier.from_run` write and read the same format.
A run directory (`seqclf.run_dir.RunDir` names, reads and writes its files) holds:

* `config.json` — the resolved configuration (every default filled in) and the label names;
* `vocabulary.txt` — the vectorizer's vocabulary, one token per line, id = line number - 1;
* `model.keras` — the trained `TextClassifier` (`keras.saving.load_model` reads it back);
* `history.csv` — one row per epoch (loss, accuracy, val_loss, val_accuracy);
* `gradient_stats.csv` — with `gradient_stats=N`: `GradientStats` records every N steps;
* `gradients_by_position.csv` — `PositionProbe`: per-timestep gradient norms of a validation probe
  batch at every epoch end (recurrent models);
* `curves.png`, `gradients.png` (with `gradient_stats`), `gradients_by_position.png` —
  `seqclf.plotting.plot_run`, once training ends;
* `metrics.json` — `val_accuracy` (best epoch), `epochs`, `train_seconds` and data counts;
* `evaluations/*.json` — one file per data spec `evaluate` scored (`-2`, `-3`, ... where two
  specs make one file name);
* `.seqclf.lock` — locked by the `train` writing the directory (one at a time); it marks the
  directory seqclf's, which `train` requires before it replaces or removes anything there;
* `backup/` — only while training: the state of the last completed epoch (`RunBackup`).
* `members/` — only while an ensemble trains: each finished member beyond the first
  (`model.keras` then holds them all, averaged; see `seqclf.members.members_stage`).

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

import dataclasses

import numpy as np

from seqclf import linear_stages, training
from seqclf import members as ensemble_members
from seqclf.class_report import REPORT_FIELDS, class_report
from seqclf.data import load_spec, shuffle_words
from seqclf.data.pipeline import string_values
from seqclf.errors import SeqclfError
from seqclf.models import TextClassifier
from seqclf.recipe import FIXED
from seqclf.run_dir import RunDir


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
    # Sizes, batch and optimizer: chosen on a held-out split of SST-2 train (bench/tune_sst2.py).
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
    batch_size: int = 32
    batch_tokens: int | None = None
    steps_per_execution: int = 16
    epochs: int | None = None
    learning_rate: float = 3e-3
    lr_schedule: str | None = None
    optimizer: str = "lazy_adam"  # sparse embedding updates (bench/tune_sst2.py)
    clipnorm: float | None = 1.0
    global_clipnorm: float | None = None
    clipvalue: float | None = None
    patience: int | None = None
    # Models trained and averaged (an ensemble; see seqclf.members.members_stage).
    members: int | None = None
    seed: int = 0
    val_fraction: float = 0.1
    text_column: str | None = None
    label_column: str | None = None
    # A column naming each row's group: the held-out validation split keeps groups whole.
    group_column: str | None = None
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
    # "balanced" (each class weighs n / (classes * its rows)) or "LABEL=WEIGHT,..." (others 1);
    # None: every example weighs 1.
    class_weight: str | None = None


def fixed_config(**kwargs):
    """A `TrainConfig` with the fixed recipe's settings filled in: what `recipe="fixed"` trains.

    For benchmarks of the model itself (throughput, PyTorch reference), whose settings must be
    known before any data is read.
    """
    return TrainConfig(**{**FIXED, "recipe": "fixed", **kwargs})


def train(config):
    """Trains a classifier as `config` says and writes the run directory; returns its metrics.

    The stages are in `seqclf.training`.
    """
    setup = training.setup_stage(config)
    try:
        return _train_stages(setup)
    finally:
        # Released now, not when the garbage collector gets to it: a script that trains again
        # (or unmounts the disk) would otherwise find the lock file still open.
        setup.lock.release()


def _train_stages(setup):
    train_data, val_data, val_spec, pool = training.data_stage(setup.config)
    built = training.model_stage(setup, train_data, val_spec)
    linear = linear_stages.linear_stage(built, train_data)
    train_ds, val_ds = training.datasets_stage(setup, built, train_data, val_data)
    training.write_start_stage(setup, built)
    callbacks, backup = training.callbacks_stage(setup, built, val_data)
    train_seconds = training.fit_stage(built, train_ds, val_ds, callbacks, backup)
    members, first_member = (), None
    if built.config.members > 1:
        if pool is not None and linear is None:
            # The other members train on parts of this validation split: only the first
            # member's predictions of it are held out.
            first_member = training.predicted_classes(built, val_data)
        members = ensemble_members.members_stage(setup, built, train_data, val_data, pool)
    blend = None
    if linear is not None:
        blend = linear_stages.blend_stage(built, linear, val_data, pool)
    return training.write_results_stage(setup, built, backup, train_seconds, train_data,
                                        val_data, members, blend, first_member=first_member)


def evaluate(run_dir, data, *, data_dir=None, text_column=None, label_column=None, seed=0,
             batch_size=None, quiet=True):
    """Scores a run on a data spec; returns (and writes under RUN_DIR/evaluations) the metrics.

    Besides `accuracy` it reports `shuffled_accuracy`: the accuracy when the words of every text
    are randomly permuted (seeded). The drop from `accuracy` tells how much the model relies on
    word order; an order-blind model loses nothing. With them, the per-class results of
    `seqclf.class_report.class_report`: `macro_f1`, `per_class`, `confusion_matrix` and
    `majority_baseline` (what always answering the most frequent class scores).
    """
    classifier = TextClassifier.from_run(run_dir)
    cfg = classifier.settings
    data_dir = data_dir or cfg.get("data_dir")
    dataset = load_spec(
        data, data_dir=data_dir, split="test",
        text_column=text_column or cfg.get("text_column"),
        label_column=label_column or cfg.get("label_column"),
        label_names=classifier.label_names, quiet=quiet,
    )
    batch_size = batch_size or cfg.get("batch_size") or 32
    labels = np.asarray(dataset.labels, dtype="int64")

    def probabilities(texts):
        return classifier.predict(texts, batch_size=batch_size, verbose=0)

    plain = probabilities(dataset.texts)
    predicted = np.argmax(plain, axis=1)
    report = class_report(labels, predicted, classifier.label_names)
    shuffled = float(np.mean(
        np.argmax(probabilities(shuffle_words(dataset.texts, seed=seed)), axis=1) == labels))
    # Keras' sparse categorical cross-entropy of probabilities: clipped to [1e-7, 1 - 1e-7].
    picked = np.clip(plain[np.arange(len(labels)), labels], 1e-7, 1 - 1e-7)
    result = {
        "data": data,
        "n": len(dataset),
        "accuracy": report["accuracy"],
        "loss": float(-np.mean(np.log(picked))),
        "shuffled_accuracy": shuffled,
        "order_drop": report["accuracy"] - shuffled,
        "shuffle_seed": seed,
        "skipped": dataset.skipped,
        **{k: report[k] for k in REPORT_FIELDS},
    }
    RunDir(run_dir).write_evaluation(data, result)
    return result


def predict(run_dir_or_classifier, texts, *, batch_size=64):
    """Classifies raw texts with a run directory's classifier (or a `TextClassifier`); returns
    one dict per text: label, class_id, probabilities."""
    classifier = (run_dir_or_classifier if isinstance(run_dir_or_classifier, TextClassifier)
                  else TextClassifier.from_run(run_dir_or_classifier))
    if isinstance(texts, (str, bytes)):
        # Iterating one string would classify each of its characters.
        raise SeqclfError(f"`texts` must be a list of texts. Received: texts={texts!r:.80}")
    texts = list(texts)
    if not texts:
        return []
    # str or UTF-8 bytes (as the exported signature takes); invalid UTF-8 is tokenized, not fatal.
    probs = classifier.predict(string_values(texts), batch_size=batch_size)
    out = []
    for text, p in zip(texts, probs):
        k = int(np.argmax(p))
        out.append({
            "text": text,
            "label": classifier.label_names[k],
            "class_id": k,
            "probabilities": {n: float(v) for n, v in zip(classifier.label_names, p)},
        })
    return out

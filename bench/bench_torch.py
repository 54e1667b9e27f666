"""A PyTorch reference for seqclf's LSTM: training throughput and SST-2 dev accuracy.

The PyTorch model is the equivalent of seqclf's default LSTM classifier (sizes, layers, dropout
and optimizer read from `seqclf.run.fixed_config()` at run time):

    nn.Embedding(padding_idx=0) -> [dropout] -> nn.LSTM over `pack_padded_sequence` -> final
    state (or max/mean over the real steps, as seqclf's `pooling`) -> dropout -> nn.Linear,
    cross-entropy on logits, Adam (same learning rate, epsilon 1e-7 as Keras; for seqclf's
    default `lazy_adam`, `SparseAdam` on the sparse embedding gradient) with the same clipping
    rule (`clipnorm`: each tensor separately, as Keras does; `global_clipnorm`: all together;
    `clipvalue`: element-wise), and seqclf's cosine decay when that is the default.

Settings it does not mirror are listed in its output (`not_mirrored`). It starts from the very
weights of the Keras model that `build_classifier` makes with the same seed (LSTM gates are in
the same order, i f c o, in both), and it is fed the token ids of seqclf's own vectorizer
(`seqclf.data.pipeline.vectorize_fn`: same tokenisation, truncation and empty-text rule).
Batches are the usual PyTorch recipe: `batch_size` texts reshuffled every epoch, padded to the
batch's longest text, packed; `torch.set_num_threads(os.cpu_count())`, and a second row with 1
thread (OpenMP threads that wait on each other make PyTorch many times slower on a busy machine,
and a model this small may gain little from a second thread on a quiet one). Vectorization
happens before the clock starts (the Keras rows time their first pass over the data and tracing),
so the comparison leans towards PyTorch.

Modes:

    python bench/bench_torch.py [--repeats 3] [--rows N] [--json OUT]
        one epoch from a fresh model, alternating seqclf / seqclf 1 step/call / tutorial / torch
        (the first three from bench/bench_pipeline.py), samples/s and ratios;
    python bench/bench_torch.py --accuracy [--seed 0] [--epochs N] [--rows N] [--json OUT]
        trains as `seqclf train` does (the same held-out split of train for early stopping on
        validation accuracy, best weights kept, seqclf's default epochs) and scores SST-2 dev
        once: accuracy and shuffled_accuracy (words permuted with seed 0, as `seqclf evaluate`).
"""

import copy
import inspect
import math
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `bench` and `seqclf` importable
    sys.path.insert(0, str(REPO))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

from bench.bench_pipeline import (  # noqa: E402
    DATA,
    DEV,
    TIMED_EPOCHS,
    build_lstm,
    cli,
    default_config,
    load_rows,
    lstm_kwargs,
    throughput_runs,
)
from seqclf.data import make_vectorizer, read_table, shuffle_words  # noqa: E402
from seqclf.data.pipeline import vectorize_fn  # noqa: E402
from seqclf.models import build_classifier  # noqa: E402

VECTORIZE_BATCH = 1024
EVAL_BATCH = 256
ADAM_EPSILON = 1e-7  # Keras' default (PyTorch's is 1e-8)
# `build_classifier` arguments the PyTorch model reproduces (initializers through the weights).
MIRRORED = {"vocab_size", "num_classes", "embedding_dim", "units", "layers", "bidirectional",
            "dropout", "embedding_dropout", "pooling", "lstm_init", "forget_bias",
            "chrono_max_timescale"}


def vectorize_ids(vectorizer, texts, max_length):
    """seqclf's ids for `texts`: (ids [n, T] int64 right-padded with 0, lengths [n] int64)."""
    fn = vectorize_fn(vectorizer, max_length)
    texts = np.asarray(texts, dtype=object).astype(str)
    chunks, lengths = [], []
    for start in range(0, len(texts), VECTORIZE_BATCH):
        part = texts[start : start + VECTORIZE_BATCH]
        ids, length, _ = fn(part, np.zeros(len(part), dtype="int64"))
        chunks.append(ids.numpy())
        lengths.append(length.numpy())
    lengths = np.concatenate(lengths).astype("int64")
    out = np.zeros((len(texts), max(int(lengths.max(initial=1)), 1)), dtype="int64")
    row = 0
    for ids in chunks:
        width = min(ids.shape[1], out.shape[1])
        out[row : row + len(ids), :width] = ids[:, :width]
        row += len(ids)
    return out, lengths


def not_mirrored(config):
    """Default settings of seqclf's LSTM that the PyTorch model does not reproduce."""
    defaults = inspect.signature(build_classifier).parameters
    return sorted(f"{k}={v!r}" for k, v in lstm_kwargs(config, 2).items()
                  if k not in MIRRORED and k in defaults and v != defaults[k].default)


class TorchLSTMClassifier(nn.Module):
    def __init__(self, vocab_size, num_classes, embedding_dim, units, layers=1,
                 bidirectional=False, dropout=0.0, embedding_dropout=0.0, pooling="last",
                 sparse=False):
        super().__init__()
        self.pooling = pooling
        # sparse: the embedding's gradient holds only the rows used (for SparseAdam).
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0, sparse=sparse)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.lstm = nn.LSTM(embedding_dim, units, num_layers=layers, batch_first=True,
                            bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(units * (2 if bidirectional else 1), num_classes)

    def forward(self, ids, lengths):
        x = self.embedding_dropout(self.embedding(ids))
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        outputs, (h, _) = self.lstm(packed)
        if self.pooling == "last":
            # h: [layers * directions, batch, units]; the last layer's final state(s).
            pooled = torch.cat([h[-2], h[-1]], dim=1) if self.lstm.bidirectional else h[-1]
        else:  # over the real steps only, like seqclf's masked pooling layers
            seq, _ = pad_packed_sequence(outputs, batch_first=True)
            real = (torch.arange(seq.shape[1])[None, :] < lengths[:, None])[:, :, None]
            if self.pooling == "max":
                pooled = seq.masked_fill(~real, float("-inf")).amax(dim=1)
            else:
                pooled = seq.sum(dim=1) / lengths[:, None].to(seq.dtype)
        return self.head(self.dropout(pooled))


def torch_model_like(keras_model, config, num_classes):
    """A `TorchLSTMClassifier` holding `keras_model`'s (seqclf's LSTM) current weights."""
    emb = keras_model.get_layer("embedding").get_weights()[0]
    model = TorchLSTMClassifier(
        emb.shape[0], num_classes, config.embedding_dim, config.units, config.layers,
        config.bidirectional, config.dropout, config.embedding_dropout,
        getattr(config, "pooling", "last"), sparse=config.optimizer == "lazy_adam",
    )
    params = dict(model.named_parameters())

    def put(name, value):
        with torch.no_grad():
            params[name].copy_(torch.from_numpy(np.ascontiguousarray(value)))

    put("embedding.weight", emb)
    for i in range(config.layers):
        if config.bidirectional:
            weights = keras_model.get_layer(f"bidirectional_lstm_{i}").get_weights()
            directions = [("", weights[:3]), ("_reverse", weights[3:])]
        else:
            directions = [("", keras_model.get_layer(f"lstm_{i}").get_weights())]
        for suffix, (kernel, recurrent, bias) in directions:
            put(f"lstm.weight_ih_l{i}{suffix}", kernel.T)
            put(f"lstm.weight_hh_l{i}{suffix}", recurrent.T)
            put(f"lstm.bias_ih_l{i}{suffix}", bias)
            # Keras has one bias per gate, PyTorch two that add up: freeze the second at zero,
            # or Adam would move the bias twice as fast.
            put(f"lstm.bias_hh_l{i}{suffix}", np.zeros_like(bias))
            params[f"lstm.bias_hh_l{i}{suffix}"].requires_grad_(False)
    kernel, bias = keras_model.get_layer("classifier").get_weights()
    put("head.weight", kernel.T)
    put("head.bias", bias)
    return model


class _Together:
    """Several optimizers (or schedulers) stepped as one."""

    def __init__(self, *parts):
        self.parts = parts

    def zero_grad(self, set_to_none=True):
        for p in self.parts:
            p.zero_grad(set_to_none=set_to_none)

    def step(self):
        for p in self.parts:
            p.step()


def _clip_sparse_aware(params, clipnorm=None, global_clipnorm=None, clipvalue=None):
    """Keras' clipping rules on PyTorch gradients; sparse ones are coalesced first (as LazyAdam
    sums repeated rows) and clipped on their values."""
    grads = []
    for p in params:
        if p.grad is not None and p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            grads.append(p.grad._values())
        elif p.grad is not None:
            grads.append(p.grad)
    with torch.no_grad():
        if clipnorm is not None:  # Keras clipnorm: each tensor on its own
            for g in grads:
                norm = g.norm()
                if norm > clipnorm:
                    g.mul_(clipnorm / norm)
        elif global_clipnorm is not None:
            total = torch.sqrt(sum((g * g).sum() for g in grads))
            if total > global_clipnorm:
                for g in grads:
                    g.mul_(global_clipnorm / total)
        elif clipvalue is not None:
            for g in grads:
                g.clamp_(-clipvalue, clipvalue)


def make_training(model, config, total_steps=None):
    """(optimizer, scheduler or None, clip function) matching seqclf's default optimizer.

    `lazy_adam` (seqclf's `LazyAdam`) is mirrored by `torch.optim.SparseAdam` on the sparse
    embedding gradient and Adam on the rest: both update only the embedding rows a batch used.
    """
    if config.optimizer not in ("adam", "lazy_adam"):
        raise NotImplementedError(
            f"the torch reference mirrors Adam and LazyAdam only, not {config.optimizer!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "lazy_adam":
        embedding = model.embedding.weight
        rest = [p for p in params if p is not embedding]
        optimizers = [torch.optim.SparseAdam([embedding], lr=config.learning_rate,
                                             eps=ADAM_EPSILON),
                      torch.optim.Adam(rest, lr=config.learning_rate, eps=ADAM_EPSILON)]
    else:
        optimizers = [torch.optim.Adam(params, lr=config.learning_rate, eps=ADAM_EPSILON)]
    scheduler = None
    if total_steps and config.lr_schedule == "cosine":  # keras CosineDecay, alpha 0
        def cosine(step):
            return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))

        scheduler = _Together(*[torch.optim.lr_scheduler.LambdaLR(o, cosine)
                                for o in optimizers])

    def clip():
        _clip_sparse_aware(params, config.clipnorm, config.global_clipnorm, config.clipvalue)

    return _Together(*optimizers), scheduler, clip


def train_epoch(model, training, ids, lengths, labels, batch_size, rng):
    optimizer, scheduler, clip = training
    model.train()
    order = rng.permutation(len(labels))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch_lengths = lengths[idx]
        x = torch.from_numpy(ids[idx, : batch_lengths.max()])
        loss = nn.functional.cross_entropy(model(x, torch.from_numpy(batch_lengths)),
                                           torch.from_numpy(labels[idx]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()


def predict_classes(model, ids, lengths):
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(lengths), EVAL_BATCH):
            batch_lengths = lengths[start : start + EVAL_BATCH]
            x = torch.from_numpy(ids[start : start + EVAL_BATCH, : batch_lengths.max()])
            out.append(model(x, torch.from_numpy(batch_lengths)).argmax(dim=1).numpy())
    return np.concatenate(out)


_IDS_CACHE = {}


def epoch_torch(data, vectorizer, seed, config=None, threads=None):
    """Samples/s of each timed epoch of the PyTorch reference, fresh model (ids vectorized
    untimed)."""
    config = config or default_config()
    torch.set_num_threads(threads or os.cpu_count())
    key = (id(data), id(vectorizer))
    if key not in _IDS_CACHE:
        _IDS_CACHE[key] = vectorize_ids(vectorizer, data.texts, config.max_length)
    ids, lengths = _IDS_CACHE[key]
    keras.utils.set_random_seed(seed)
    torch.manual_seed(seed)
    model = torch_model_like(build_lstm(config, vectorizer, seed, data.num_classes), config,
                             data.num_classes)
    training = make_training(model, config)
    rng = np.random.default_rng(seed)
    rates = []
    for _ in range(TIMED_EPOCHS):
        start = time.perf_counter()
        train_epoch(model, training, ids, lengths, data.labels, config.batch_size, rng)
        rates.append(len(data) / (time.perf_counter() - start))
    return rates


def torch_accuracy(train_path=DATA, dev_path=DEV, seed=0, epochs=None, rows=None):
    """Trains as `seqclf train` does (held-out split, early stopping, best weights); scores dev."""
    config = default_config()
    torch.set_num_threads(os.cpu_count())
    train, val = load_rows(train_path, rows).split(config.val_fraction, seed=seed)
    vectorizer = make_vectorizer(train.texts, max_tokens=config.max_tokens)
    epochs = epochs or config.epochs
    keras.utils.set_random_seed(seed)
    torch.manual_seed(seed)
    model = torch_model_like(build_lstm(config, vectorizer, seed, train.num_classes), config,
                             train.num_classes)
    steps = math.ceil(len(train) / config.batch_size) * epochs
    training = make_training(model, config, total_steps=steps)
    train_ids, train_lengths = vectorize_ids(vectorizer, train.texts, config.max_length)
    val_ids, val_lengths = vectorize_ids(vectorizer, val.texts, config.max_length)
    rng = np.random.default_rng(seed)
    best, best_state, best_epoch, wait = -1.0, None, 0, 0
    start = time.perf_counter()
    for epoch in range(epochs):
        train_epoch(model, training, train_ids, train_lengths, train.labels, config.batch_size, rng)
        val_acc = float((predict_classes(model, val_ids, val_lengths) == val.labels).mean())
        if val_acc > best:
            best, best_epoch, wait = val_acc, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            wait += 1
            if wait >= config.patience:
                break
    train_seconds = time.perf_counter() - start
    model.load_state_dict(best_state)
    dev = read_table(str(dev_path), label_names=train.label_names)

    def accuracy(texts):
        ids, lengths = vectorize_ids(vectorizer, texts, config.max_length)
        return float((predict_classes(model, ids, lengths) == dev.labels).mean())

    acc, shuffled = accuracy(dev.texts), accuracy(shuffle_words(dev.texts, seed=0))
    return {"accuracy": acc, "shuffled_accuracy": shuffled, "order_drop": acc - shuffled,
            "val_accuracy": best, "best_epoch": best_epoch + 1, "epochs": epoch + 1,
            "n": len(dev), "n_train": len(train), "train_seconds": round(train_seconds, 2),
            "torch_threads": torch.get_num_threads(), "not_mirrored": not_mirrored(config)}


def main(argv=None):
    runs = {
        **throughput_runs(),
        "torch": epoch_torch,
        # One thread is often faster for a model this small, and far faster on a busy machine.
        "torch, 1 thread": lambda d, v, seed: epoch_torch(d, v, seed, threads=1),
    }
    cli(argv, __doc__, "--accuracy", torch_accuracy, runs,
        footer=f"torch {torch.__version__}; the 'torch' row uses {os.cpu_count()} threads")


if __name__ == "__main__":
    main()

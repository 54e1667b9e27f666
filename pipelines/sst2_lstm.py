"""
Title: LSTM sentiment classifier on SST-2, with gradient statistics
Author: seqclf
Description: Train an LSTM on GLUE SST-2 and watch its gradients per layer and per timestep.
Accelerator: None (CPU)

## Introduction

SST-2 (Stanford Sentiment Treebank, binary) from `../shared/data/sst2/{train,dev}.tsv`: the
training file mixes sentences with sub-sentence phrases (mean 9.4 tokens), dev holds full
sentences (mean 19.5 tokens). The pipeline builds a `seqclf.TextClassifier`: a
`TextPreprocessor` adapted on the training texts and a one-layer LSTM backbone. Its `fit` on the
raw texts batches them by length (`seqclf.data.make_dataset`, as `seqclf train` does), and it
records with `GradientStats` per-layer gradient norms (before/after clipping) and the
per-timestep input-gradient norms on a dev probe batch before and after each epoch.

Published points of reference (test split): bag-of-words Naive Bayes 81.8 (Socher et al. 2013);
LSTM 84.9 with pretrained GloVe vectors (Tai et al. 2015). This pipeline trains its embeddings
from scratch.

Run `python pipelines/sst2_lstm.py --out runs/sst2_lstm`; `--smoke` uses a few hundred rows.
"""

import argparse
import json
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from seqclf.callbacks import GradientStats
from seqclf.data import read_table
from seqclf.models import TextClassifier, TextPreprocessor, build_classifier
from seqclf.optimizers import make_optimizer
from seqclf.plotting import plot_layer_norms, plot_timestep_gradients, plot_timestep_heatmap

"""
## Configuration
"""

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA_DIR = pathlib.Path(os.environ.get("SEQCLF_SHARED_DATA", REPO.parent / "shared" / "data"))
SEED = 0
MAX_TOKENS = 20_000
MAX_LENGTH = 64
EMBEDDING_DIM = 64
UNITS = 64
DROPOUT = 0.3
BATCH_SIZE = 64
EPOCHS = 2
LEARNING_RATE = 2e-3
CLIPNORM = 1.0
TRAIN_ROWS = None  # all 67,349
DEV_ROWS = None  # all 872
PROBE_SIZE = 64
STATS_FREQUENCY = 50

SMOKE = dict(TRAIN_ROWS=400, DEV_ROWS=100, EPOCHS=1, UNITS=16, EMBEDDING_DIM=16,
             MAX_TOKENS=2000, STATS_FREQUENCY=2, PROBE_SIZE=16)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/sst2_lstm")
    parser.add_argument("--data-dir", default=str(DATA_DIR / "sst2"),
                        help="directory holding train.tsv and dev.tsv")
    parser.add_argument("--smoke", action="store_true", help="a few hundred rows, for tests")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    cfg = {k: v for k, v in globals().items() if k.isupper()}
    if args.smoke:
        cfg.update(SMOKE)
    verbose = 0 if args.quiet else 2
    train_path = os.path.join(args.data_dir, "train.tsv")
    dev_path = os.path.join(args.data_dir, "dev.tsv")
    if not (os.path.isfile(train_path) and os.path.isfile(dev_path)):
        parser.exit(2, f"SST-2 not found: expected {train_path} and {dev_path}\n")
    os.makedirs(args.out, exist_ok=True)
    keras.utils.set_random_seed(args.seed)

    """
    ## Data
    """
    train = read_table(train_path)
    dev = read_table(dev_path, label_names=train.label_names)
    rng = np.random.default_rng(args.seed)
    if cfg["TRAIN_ROWS"]:
        train = train.subset(rng.permutation(len(train))[: cfg["TRAIN_ROWS"]])
    if cfg["DEV_ROWS"]:
        dev = dev.subset(rng.permutation(len(dev))[: cfg["DEV_ROWS"]])
    preprocessor = TextPreprocessor.from_texts(train.texts, max_tokens=cfg["MAX_TOKENS"],
                                               max_length=cfg["MAX_LENGTH"])
    # Probe batch: dev sentences, right-padded ids (0 = padding, masked by the embedding).
    probe_ids = np.asarray(preprocessor(np.asarray(dev.texts[: cfg["PROBE_SIZE"]], dtype=object)))
    probe = (probe_ids, dev.labels[: cfg["PROBE_SIZE"]])

    """
    ## Model and training
    """
    backbone = build_classifier(
        "lstm", vocab_size=preprocessor.vocabulary_size, num_classes=train.num_classes,
        embedding_dim=cfg["EMBEDDING_DIM"], units=cfg["UNITS"], dropout=cfg["DROPOUT"],
        seed=args.seed,
    )
    model = TextClassifier(backbone, preprocessor, train.label_names)
    model.compile(make_optimizer("lazy_adam", cfg["LEARNING_RATE"], clipnorm=cfg["CLIPNORM"]),
                  steps_per_execution=1)
    stats = GradientStats(frequency=cfg["STATS_FREQUENCY"], probe_data=probe, probe_frequency=1)
    start = time.time()
    history = model.fit(train.texts, train.labels, validation_data=(dev.texts, dev.labels),
                        epochs=cfg["EPOCHS"], batch_size=cfg["BATCH_SIZE"], seed=args.seed,
                        callbacks=[stats], verbose=verbose)
    seconds = time.time() - start
    _, dev_accuracy = model.evaluate(dev.texts, dev.labels, batch_size=256, verbose=0)

    """
    ## Gradient statistics
    """
    frame = stats.to_dataframe()
    stats.save(os.path.join(args.out, "gradient_stats.csv"))
    plot_layer_norms(frame, path=os.path.join(args.out, "layer_norms.png"))
    plot_timestep_gradients(frame, path=os.path.join(args.out, "gradient_vs_distance.png"),
                            max_distance=30, title="SST-2 dev probe: gradient vs distance")
    plot_timestep_heatmap(frame, path=os.path.join(args.out, "timestep_heatmap.png"),
                          max_distance=30)
    glob = frame[frame["layer"] == "(global)"]
    fired = glob[glob["statistic"] == "clip_fired"]["value"]
    results = {
        "train_rows": len(train),
        "dev_rows": len(dev),
        "epochs": cfg["EPOCHS"],
        "train_seconds": round(seconds, 1),
        "dev_accuracy": float(dev_accuracy),
        "val_accuracy_per_epoch": [float(a) for a in history.history["val_accuracy"]],
        "clip_fraction": float(fired.mean()) if len(fired) else 0.0,
        "events": [e["message"] for e in stats.events],
    }
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    if not args.quiet:
        print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()

"""Pair accuracy on the counterfactually-augmented IMDb pairs (Kaushik et al., ICLR 2020).

Trains a seqclf model with the CLI defaults on `imdb_cad/train_paired.tsv` (columns `Sentiment`,
`Text`, `batch_id`; early stopping on the default held-out 10% of it), predicts every row of
`imdb_cad/dev_paired.tsv` and reports:

* `accuracy`: rows right;
* `pair_accuracy`: pairs (rows sharing a `batch_id`: a review and its minimally edited copy with
  the opposite sentiment) whose members are **both** right. A model that reads only which words
  occur gets one member of most pairs wrong, since the edits are small.

    python bench/bench_pairs.py --model lstm [--seed 0] [--epochs N] [--train-rows N] [--json OUT]
"""

import argparse
import csv
import json
import os
import pathlib
import sys
import tempfile
from collections import defaultdict

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parents[1]
CAD = REPO.parent / "shared" / "data" / "imdb_cad"
TRAIN = CAD / "train_paired.tsv"
DEV = CAD / "dev_paired.tsv"
TEXT, LABEL, PAIR = "Text", "Sentiment", "batch_id"


def pair_accuracy(pair_ids, correct):
    """Share of pairs (rows with the same id) whose members are all right; returns (share, n)."""
    pairs = defaultdict(list)
    for pair, ok in zip(pair_ids, correct):
        pairs[pair].append(bool(ok))
    if not pairs:
        return float("nan"), 0
    return sum(all(v) for v in pairs.values()) / len(pairs), len(pairs)


def read_rows(path):
    """The dev rows as seqclf reads a TSV (no quoting), with the pair ids kept."""
    import pandas as pd

    frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    return frame[TEXT].tolist(), frame[LABEL].tolist(), frame[PAIR].tolist()


def run(model, seed=0, epochs=None, train=TRAIN, dev=DEV, out=None):
    from seqclf.run import TrainConfig, predict
    from seqclf.run import train as train_run

    config = TrainConfig(data=str(train), model=model, seed=seed, text_column=TEXT,
                         label_column=LABEL, quiet=True, out=out)
    if epochs:
        config.epochs = epochs
    metrics = train_run(config)
    texts, labels, pairs = read_rows(dev)
    predicted = [p["label"] for p in predict(out, texts)]
    correct = [p == y for p, y in zip(predicted, labels)]
    share, n_pairs = pair_accuracy(pairs, correct)
    return {"model": model, "seed": seed, "accuracy": sum(correct) / len(correct),
            "pair_accuracy": share, "n": len(correct), "n_pairs": n_pairs,
            "val_accuracy": metrics["val_accuracy"], "epochs": metrics["epochs"],
            "n_train": metrics["n_train"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lstm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="default: seqclf's default")
    parser.add_argument("--train", default=str(TRAIN))
    parser.add_argument("--dev", default=str(DEV))
    parser.add_argument("--json", metavar="PATH", help="also write the result here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="seqclf-pairs-") as tmp:
        result = run(args.model, args.seed, args.epochs, args.train, args.dev,
                     out=os.path.join(tmp, "run"))
    print(json.dumps(result))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())

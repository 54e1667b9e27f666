"""Does averaging independently trained models help? Round 7 of bench/tune_recipe.md.

Trains `seqclf train` (auto recipe, one model each) with seeds 0..N-1 on a tuning split of the
suite (`bench/suite.py --mode tune`: inner splits of training data only), each seed holding out
its own 10% for validation, keeps every model's probabilities on the inner test part, then
scores the average of every subset of K models. Raw rows go to `--results` (JSON lines).

    python bench/tune_ensemble.py --dataset trec --seeds 0,1,2,3,4

`--probs DIR` also keeps each seed's probabilities; `--pool A.npz,B.npz` then scores members
drawn from several such runs together (more seeds of one variant, or a mix of variants).
`--every-epoch` also keeps every epoch's validation figures and inner-test probabilities, and
scores rules for choosing each member's epoch (round 11 of bench/tune_recipe.md).
"""

import argparse
import itertools
import json
import os
import pathlib
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bench import suite  # noqa: E402


def _epoch_recorder(texts, epochs_out):
    """A `training_callbacks` replacement adding a callback that appends, at each epoch's end,
    (val_accuracy, val_loss, probabilities on `texts`) to `epochs_out`."""
    import keras

    import seqclf.training

    shipped = seqclf.training.training_callbacks

    class Record(keras.callbacks.Callback):
        def __init__(self, preprocessor):
            super().__init__()
            self.ids = preprocessor(np.asarray(texts, dtype=object))

        def on_epoch_end(self, epoch, logs=None):
            epochs_out.append((float(logs["val_accuracy"]), float(logs["val_loss"]),
                               self.model.predict(self.ids, batch_size=512, verbose=0)))

    def callbacks(built):
        return [*shipped(built), Record(built.classifier.preprocessor)]

    return callbacks


def train_seeds(dataset, seeds, overrides, every_epoch=None):
    """{seed: probabilities on the inner test part}, the test labels and per-seed records.

    `every_epoch`: a dict that gets, per seed, `(val_accuracy [E], val_loss [E], probabilities
    [E, texts, classes])` of every epoch (the run itself still keeps its best epoch).
    """
    import keras

    import seqclf.training
    from seqclf.models import TextClassifier
    from seqclf.run import TrainConfig, train

    _, train_df, test_df, _ = suite.splits(dataset, "tune")[0]
    probs, records = {}, []
    shipped = seqclf.training.training_callbacks
    with tempfile.TemporaryDirectory(prefix="seqclf-ensemble-") as workdir:
        path = os.path.join(workdir, "train.tsv")
        suite._write(train_df, path)
        for seed in seeds:
            keras.backend.clear_session()
            out = os.path.join(workdir, f"run{seed}")
            epochs = []
            if every_epoch is not None:
                seqclf.training.training_callbacks = _epoch_recorder(
                    test_df["sentence"].tolist(), epochs)
            try:
                metrics = train(TrainConfig(data=path, out=out, seed=seed, quiet=True,
                                            **{"members": 1, **overrides}))
            finally:
                seqclf.training.training_callbacks = shipped
            if every_epoch is not None:
                every_epoch[seed] = tuple(np.asarray(x) for x in zip(*epochs, strict=True))
            run = TextClassifier.from_run(out)
            p = run.predict(test_df["sentence"].tolist(), batch_size=256)
            # Columns in label order: the runs agree (labels are sorted names).
            probs[seed] = p
            records.append({"seed": seed, "best_epoch": metrics["best_epoch"],
                            "epochs": metrics["epochs"], "train_seconds":
                            metrics["train_seconds"], "label_names": run.label_names})
    return probs, test_df["label"].astype(str).to_numpy(), records


def ensemble_accuracy(members, labels, names):
    """Accuracy of the class with the largest mean over `members` (probabilities or logs)."""
    return float((np.asarray(names)[np.mean(members, axis=0).argmax(1)] == labels).mean())


def epoch_rules(every_epoch, labels, names, k, limit=300):
    """{rule: mean accuracy of k-member ensembles, each member at the epoch the rule picks}.

    `every_epoch[seed] = (val_accuracy [E], val_loss [E], probabilities [E, n, classes])`.
    Rules: each member's best validation accuracy (what `seqclf train` keeps) or lowest
    validation loss; one epoch for all k members, by their mean validation accuracy or loss;
    and every fixed epoch (on the test part itself: a bound, not a rule). Over the first
    `limit` k-subsets of the seeds.
    """
    subsets = list(itertools.combinations(sorted(every_epoch), k))[:limit]
    n_epochs = min(len(v[0]) for v in every_epoch.values())

    def score(pick):  # pick(subset) -> {seed: epoch index}
        return float(np.mean([
            ensemble_accuracy([every_epoch[s][2][e] for s, e in pick(c).items()], labels, names)
            for c in subsets]))

    def joint(which, best):
        return lambda c: dict.fromkeys(c, int(best(np.mean(
            [every_epoch[s][which][:n_epochs] for s in c], axis=0))))

    rules = {
        "each member: best val_accuracy": score(
            lambda c: {s: int(np.argmax(every_epoch[s][0])) for s in c}),
        "each member: lowest val_loss": score(
            lambda c: {s: int(np.argmin(every_epoch[s][1])) for s in c}),
        "one epoch for all: best mean val_accuracy": score(joint(0, np.argmax)),
        "one epoch for all: lowest mean val_loss": score(joint(1, np.argmin)),
    }
    for e in range(n_epochs):
        rules[f"epoch {e + 1} (bound)"] = score(lambda c, e=e: dict.fromkeys(c, e))
    return rules


def subset_accuracies(probs, labels, names, k):
    """Accuracy of the averaged probabilities of every k-subset of the seeds."""
    return [ensemble_accuracy([probs[s] for s in c], labels, names)
            for c in itertools.combinations(sorted(probs), k)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--model", default="lstm")
    p.add_argument("--variant", default="{}",
                   help='JSON TrainConfig overrides, e.g. \'{"max_tokens": 50000}\'')
    p.add_argument("--results", default=str(REPO / "bench" / "tune_ensemble.jsonl"))
    p.add_argument("--probs", default=None,
                   help="a folder to keep each seed's test probabilities in (.npz), for --pool")
    p.add_argument("--pool", default=None,
                   help="score K members drawn from these .npz files (comma-separated) pooled")
    p.add_argument("--average", default="arithmetic", choices=("arithmetic", "geometric"))
    p.add_argument("--every-epoch", action="store_true",
                   help="also score rules for choosing each member's epoch (epoch_rules)")
    args = p.parse_args(argv)
    if args.pool:
        return pooled(args.pool.split(","), args.results, args.average)
    if not args.dataset:
        p.error("--dataset is required unless --pool is given")
    seeds = [int(s) for s in args.seeds.split(",")]
    variant = json.loads(args.variant)
    every_epoch = {} if args.every_epoch else None
    probs, labels, records = train_seeds(args.dataset, seeds, {"model": args.model, **variant},
                                         every_epoch)
    names = records[0]["label_names"]
    if args.probs:
        os.makedirs(args.probs, exist_ok=True)
        stem = args.dataset + "_" + (json.dumps(variant, sort_keys=True) if variant else "shipped")
        stem = "".join(c if c.isalnum() else "_" for c in stem)
        np.savez(os.path.join(args.probs, stem + ".npz"), labels=labels.astype(str),
                 names=np.asarray(names, dtype=str),
                 **{f"seed{s}": probs[s] for s in seeds})
    rows = []
    tag = {"dataset": args.dataset, "model": args.model,
           **({"variant": variant} if variant else {})}
    for k in range(1, len(seeds) + 1):
        accs = subset_accuracies(probs, labels, names, k)
        rows.append({**tag, "k": k, "subsets": len(accs),
                     "mean": round(float(np.mean(accs)), 4), "min": round(min(accs), 4),
                     "max": round(max(accs), 4)})
        print(json.dumps(rows[-1]), flush=True)
    if every_epoch:
        for k in sorted({1, min(5, len(seeds)), len(seeds)}):
            rows.append({**tag, "k": k, "epoch_rules": {
                rule: round(acc, 4)
                for rule, acc in epoch_rules(every_epoch, labels, names, k).items()}})
            print(json.dumps(rows[-1]), flush=True)
        for r, s in zip(records, seeds, strict=True):
            r["val_accuracy_by_epoch"] = [round(float(v), 4) for v in every_epoch[s][0]]
    with open(args.results, "a", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps({**tag, **r}) + "\n")
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return 0


def pooled(files, results, average="arithmetic", samples=200):
    """Every seed of every file in one pool: the mean accuracy of K members drawn from it (all
    K-subsets, or `samples` random ones), K = 1..pool size. One file with seeds 0-4 and one
    with seeds 5-9 of the same variant give its curve up to 10 members; files of different
    variants, an ensemble mixing them. `average`: of the probabilities ("arithmetic") or of
    their logarithms ("geometric")."""
    import random

    loaded = [np.load(f) for f in files]
    labels, names = loaded[0]["labels"], loaded[0]["names"]
    members = [d[k] for d in loaded for k in sorted(d.files) if k.startswith("seed")]
    if average == "geometric":
        members = [np.log(np.maximum(m, 1e-9)) for m in members]
    rng = random.Random(0)
    rows = []
    for k in range(1, len(members) + 1):
        subsets = list(itertools.combinations(range(len(members)), k))
        if len(subsets) > samples:
            subsets = rng.sample(subsets, samples)
        accs = [ensemble_accuracy([members[i] for i in c], labels, names) for c in subsets]
        rows.append({"pool": [os.path.basename(f) for f in files], "average": average,
                     "k": k, "subsets": len(subsets), "mean": round(float(np.mean(accs)), 4)})
        print(json.dumps(rows[-1]), flush=True)
    with open(results, "a", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does averaging independently trained models help? Round 7 of bench/tune_recipe.md.

Trains `seqclf train` (auto recipe, one model each) with seeds 0..N-1 on a tuning split of the
suite (`bench/suite.py --mode tune`: inner splits of training data only), each seed holding out
its own 10% for validation, keeps every model's probabilities on the inner test part, then
scores the average of every subset of K models. Raw rows go to `--results` (JSON lines).

    python bench/tune_ensemble.py --dataset trec --seeds 0,1,2,3,4

`--probs DIR` also keeps each seed's probabilities; `--pool A.npz,B.npz` then scores members
drawn from several such runs together (more seeds of one variant, or a mix of variants).
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


def train_seeds(dataset, seeds, overrides):
    """{seed: probabilities on the inner test part}, the test labels and per-seed records."""
    import keras

    from seqclf.run import TrainConfig, load_run, train

    _, train_df, test_df, _ = suite.splits(dataset, "tune")[0]
    probs, records = {}, []
    with tempfile.TemporaryDirectory(prefix="seqclf-ensemble-") as workdir:
        path = os.path.join(workdir, "train.tsv")
        suite._write(train_df, path)
        for seed in seeds:
            keras.backend.clear_session()
            out = os.path.join(workdir, f"run{seed}")
            metrics = train(TrainConfig(data=path, out=out, seed=seed, quiet=True,
                                        **{"members": 1, **overrides}))
            run = load_run(out)
            p = run.classifier.predict(test_df["sentence"].tolist(), batch_size=256)
            # Columns in label order: the runs agree (labels are sorted names).
            probs[seed] = p
            records.append({"seed": seed, "best_epoch": metrics["best_epoch"],
                            "epochs": metrics["epochs"], "train_seconds":
                            metrics["train_seconds"], "label_names": run.label_names})
    return probs, test_df["label"].astype(str).to_numpy(), records


def ensemble_accuracy(members, labels, names):
    """Accuracy of the class with the largest mean over `members` (probabilities or logs)."""
    return float((np.asarray(names)[np.mean(members, axis=0).argmax(1)] == labels).mean())


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
    args = p.parse_args(argv)
    if args.pool:
        return pooled(args.pool.split(","), args.results, args.average)
    if not args.dataset:
        p.error("--dataset is required unless --pool is given")
    seeds = [int(s) for s in args.seeds.split(",")]
    variant = json.loads(args.variant)
    probs, labels, records = train_seeds(args.dataset, seeds, {"model": args.model, **variant})
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

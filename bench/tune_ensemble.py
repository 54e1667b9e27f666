"""Does averaging independently trained models help? Round 7 of bench/tune_recipe.md.

Trains `seqclf train` (auto recipe, one model each) with seeds 0..N-1 on a tuning split of the
suite (`bench/suite.py --mode tune`: inner splits of training data only), each seed holding out
its own 10% for validation, keeps every model's probabilities on the inner test part, then
scores the average of every subset of K models. Raw rows go to `--results` (JSON lines).

    python bench/tune_ensemble.py --dataset trec --seeds 0,1,2,3,4
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


def subset_accuracies(probs, labels, names, k):
    """Accuracy of the averaged probabilities of every k-subset of the seeds."""
    names = np.asarray(names)
    return [float((names[np.mean([probs[s] for s in c], axis=0).argmax(1)] == labels).mean())
            for c in itertools.combinations(sorted(probs), k)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--model", default="lstm")
    p.add_argument("--variant", default="{}",
                   help='JSON TrainConfig overrides, e.g. \'{"max_tokens": 50000}\'')
    p.add_argument("--results", default=str(REPO / "bench" / "tune_ensemble.jsonl"))
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    variant = json.loads(args.variant)
    probs, labels, records = train_seeds(args.dataset, seeds, {"model": args.model, **variant})
    names = records[0]["label_names"]
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


if __name__ == "__main__":
    sys.exit(main())

"""`model.fit` from a script against `seqclf train`: test accuracy, epochs and seconds per epoch,
side by side on the same data and seeds, one run at a time.

    python bench/fit_vs_train.py [--datasets mr,trec] [--seeds 0,1,2]

For each dataset's first report split (`bench/suite.py`) and each seed, in fresh processes:

* **train**: `seqclf train --data train.tsv --seed S` with no other flags, then
  `seqclf evaluate RUN --data test.tsv`;
* **fit**: the README's `model.fit` quick start on the same rows: shuffled,
  `TextClassifier.from_texts`, `compile()`, `fit(data, validation_split=0.1)`, `evaluate(test)`.

Both fit the linear path on the training rows and blend it with the recurrent model on the
validation rows (the blend columns: linear / recurrent weight), then fit the linear path again on
all the rows (`fit` does so with `validation_split`, not with `validation_data`). `seqclf train`
holds out a stratified 10%, `fit` the last 10% of the shuffled rows. Seconds per epoch: the
recurrent model's epochs only, the linear path and the blend apart (`train`: `train_seconds`
less their seconds, over the epochs run; `fit`: `fit`'s wall time less theirs, over its epochs).
Medians over seeds, nothing else running.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.suite import splits  # noqa: E402

FIT_SCRIPT = """
import json, sys, time
import pandas as pd
import seqclf
seed = int(sys.argv[3])
import keras
keras.utils.set_random_seed(seed)
data = pd.read_csv(sys.argv[1], sep="\\t").sample(frac=1, random_state=seed)
model = seqclf.TextClassifier.from_texts(data.text, data.label)
model.compile()
start = time.perf_counter()
history = model.fit(data, validation_split=0.1, verbose=0)
seconds = time.perf_counter() - start
test = pd.read_csv(sys.argv[2], sep="\\t")
result = model.evaluate(test, return_dict=True, verbose=0)
blend = model.settings.get("blend") or {}
print(json.dumps({"accuracy": result["accuracy"], "epochs": len(history.history["loss"]),
                  "seconds": seconds, "blend_seconds": blend.get("seconds", 0.0),
                  "weights": [blend.get("linear_weight"), blend.get("recurrent_weight")]}))
"""


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _run(args, cwd):
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=_env(),
                          cwd=cwd)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[:3]}: {proc.stderr[-2000:]}")
    return proc.stdout


def with_train(train_path, test_path, seed, workdir):
    out = os.path.join(workdir, f"run-{seed}")
    _run(["-m", "seqclf", "train", "--data", train_path, "--out", out, "--seed", str(seed),
          "--quiet"], workdir)
    evaluation = json.loads(_run(["-m", "seqclf", "evaluate", out, "--data", test_path,
                                  "--quiet"], workdir))
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)
    blend = metrics.get("blend") or {}
    side = float(blend.get("seconds", 0))  # the linear path and the blend
    epochs = int(metrics["epochs"])
    return {"accuracy": evaluation["accuracy"], "epochs": epochs,
            "epoch_seconds": (metrics["train_seconds"] - side) / max(epochs, 1),
            "weights": [blend.get("linear_weight"), blend.get("recurrent_weight")]}


def with_fit(train_path, test_path, seed, workdir):
    script = os.path.join(workdir, "fit_script.py")
    pathlib.Path(script).write_text(FIT_SCRIPT, encoding="utf-8")
    r = json.loads(_run([script, train_path, test_path, str(seed)], workdir).splitlines()[-1])
    # The recurrent model's epochs only, as for `train`: the linear path and the blend apart.
    return {"accuracy": r["accuracy"], "epochs": r["epochs"],
            "epoch_seconds": (r["seconds"] - r["blend_seconds"]) / max(r["epochs"], 1),
            "weights": r["weights"]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="mr,trec")
    p.add_argument("--seeds", default="0,1,2")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    print("| dataset | seed | train acc | fit acc | train epochs | fit epochs "
          "| train s/epoch | fit s/epoch | train blend | fit blend |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for name in args.datasets.split(","):
        _, train_df, test_df, _ = next(iter(splits(name, "report")))
        rows = []
        with tempfile.TemporaryDirectory() as workdir:
            train_path = os.path.join(workdir, "train.tsv")
            test_path = os.path.join(workdir, "test.tsv")
            for df, path in ((train_df, train_path), (test_df, test_path)):
                df.rename(columns={"sentence": "text"})[["text", "label"]].to_csv(
                    path, sep="\t", index=False)
            for seed in seeds:
                t, f = (with_train(train_path, test_path, seed, workdir),
                        with_fit(train_path, test_path, seed, workdir))
                rows.append((t, f))
                print(f"| {name} | {seed} | {t['accuracy']:.4f} | {f['accuracy']:.4f} | "
                      f"{t['epochs']} | {f['epochs']} | {t['epoch_seconds']:.2f} | "
                      f"{f['epoch_seconds']:.2f} | {_weights(t)} | {_weights(f)} |",
                      flush=True)
        med = {k: {side: statistics.median(r[i][k] for r in rows) for i, side in
                   enumerate(("train", "fit"))} for k in ("accuracy", "epoch_seconds")}
        ratio = med["epoch_seconds"]["fit"] / med["epoch_seconds"]["train"]
        print(f"| {name} | median | {med['accuracy']['train']:.4f} | "
              f"{med['accuracy']['fit']:.4f} | | | {med['epoch_seconds']['train']:.2f} | "
              f"{med['epoch_seconds']['fit']:.2f} (x{ratio:.2f}) | | |", flush=True)


def _weights(result):
    """The blend's linear and recurrent weights, "-" where nothing was blended."""
    linear, recurrent = result["weights"]
    return "-" if linear is None else f"{linear:g} / {recurrent:g}"


if __name__ == "__main__":
    main()

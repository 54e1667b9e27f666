"""Training seconds of the default `seqclf train`, today's code beside another checkout, side by
side in one run, one run at a time (nothing else training beside it).

    python bench/suite_timing.py --before /path/to/old/checkout [--repeats 1]

For each suite dataset (`bench/suite.py`), on its first report split, runs `seqclf train` with
no flags but `--data`, `--out` and `--seed` (plus `--group-column batch_id` on IMDb CAD, as the
suite does) from each checkout in turn (`PYTHONPATH` set to it, a fresh process each), and
prints `train_seconds` from each run's `metrics.json`, their ratio, and the medians over
repeats. The suite itself runs two jobs at once, so its own seconds include the other job's
contention; this measures each run alone.
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

from bench.suite import DATASETS, _write, splits  # noqa: E402


def train_seconds(checkout, train_df, seed, workdir, name):
    """`train_seconds` of a default `seqclf train` run of `checkout` on `train_df`."""
    data = os.path.join(workdir, f"{name}.tsv")
    extra = []
    if "batch_id" in train_df:
        train_df[["sentence", "label", "batch_id"]].to_csv(data, sep="\t", index=False)
        extra = ["--group-column", "batch_id"]
    else:
        _write(train_df, data)
    out = os.path.join(workdir, f"{name}-run")
    env = {**os.environ, "PYTHONPATH": str(checkout), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "seqclf", "train", "--data", data, "--out", out,
                           "--seed", str(seed), "--quiet", *extra],
                          capture_output=True, text=True, env=env, cwd=workdir)
    if proc.returncode != 0:
        raise RuntimeError(f"{checkout}: {proc.stderr[-2000:]}")
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as f:
        return json.load(f)["train_seconds"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="the other checkout (e.g. a git worktree)")
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args(argv)
    checkouts = {"before": pathlib.Path(args.before).resolve(), "now": REPO}
    print("| dataset | before s | now s | now / before |\n|---|---:|---:|---:|", flush=True)
    for name in args.datasets.split(","):
        _, train_df, _, seed = splits(name, "report")[0]
        seconds = {k: [] for k in checkouts}
        with tempfile.TemporaryDirectory(prefix="seqclf-timing-") as workdir:
            for r in range(args.repeats):
                for label, checkout in checkouts.items():  # alternating: drift hits both
                    seconds[label].append(
                        train_seconds(checkout, train_df, seed, workdir, f"{label}{r}"))
        before, now = (statistics.median(seconds[k]) for k in checkouts)
        print(f"| {name} | {before:.1f} | {now:.1f} | {now / before:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

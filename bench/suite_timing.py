"""Training seconds of the default `seqclf train`, today's code beside another checkout, side by
side in one run, one run at a time (nothing else training beside it).

    python bench/suite_timing.py --before /path/to/old/checkout [--repeats 1]

For each suite dataset (`bench/suite.py`), on its first report split, runs `seqclf train` with
no flags but `--data`, `--out` and `--seed` (plus `--group-column batch_id` on IMDb CAD, as the
suite does) from each checkout in turn (`PYTHONPATH` set to it, a fresh process each), and
prints `train_seconds` from each run's `metrics.json`, their ratio, and the medians over
repeats. The suite itself runs two jobs at once, so its own seconds include the other job's
contention; this measures each run alone. `--serving` also measures, on the last run of today's
code, the single-text serving p50 of its export beside a one-model export
(`bench/suite_serving.py`), with nothing else running.
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
    """`(train_seconds, run_dir)` of a default `seqclf train` run of `checkout` on `train_df`."""
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
        return json.load(f)["train_seconds"], out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="the other checkout (e.g. a git worktree)")
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--serving", action="store_true")
    args = p.parse_args(argv)
    checkouts = {"before": pathlib.Path(args.before).resolve(), "now": REPO}
    print("| dataset | before s | now s | now / before | serving p50 ms: default / one model |"
          "\n|---|---:|---:|---:|---|", flush=True)
    for name in args.datasets.split(","):
        _, train_df, test_df, seed = splits(name, "report")[0]
        seconds = {k: [] for k in checkouts}
        with tempfile.TemporaryDirectory(prefix="seqclf-timing-") as workdir:
            for r in range(args.repeats):
                for label, checkout in checkouts.items():  # alternating: drift hits both
                    took, out = train_seconds(checkout, train_df, seed, workdir, f"{label}{r}")
                    seconds[label].append(took)
            serving = ""
            if args.serving:
                from bench.suite_serving import serving_latency

                s = serving_latency(out, test_df["sentence"].tolist(), workdir)
                p50, one = s["serving_p50_ms"], s.get("serving_one_model_p50_ms")
                serving = (f"{p50:.3f} / {one:.3f} ({p50 / one:.2f}x)" if one
                           else f"{p50:.3f} (the linear path alone)")
        before, now = (statistics.median(seconds[k]) for k in checkouts)
        print(f"| {name} | {before:.1f} | {now:.1f} | {now / before:.2f} | {serving} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

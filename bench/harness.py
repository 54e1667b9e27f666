"""`python -m bench`: every seqclf benchmark in one process tree -> bench/results.{md,json}.

Each benchmark runs in subprocesses of this one (isolation, and a clean peak-memory figure per
training run: `os.wait4` gives each child's own `ru_maxrss`, what `getrusage(RUSAGE_CHILDREN)`
reports for a process with that one child). Every figure is the **median** of `--repeats` runs
(seeds 0..N-1 for trained models) with the **spread** (min-max); each figure lists the exact
commands of its first repeat. Model settings are seqclf's defaults, read from
`seqclf.run.TrainConfig()` when the benchmark runs.

Figures (names for `--only`):

    throughput      SST-2 train, epochs 1 (cold) and 2 (warm) of a fresh model: seqclf vs the
                    TensorFlow RNN tutorial recipe vs an equivalent PyTorch model and loop
                    (bench_torch.py), samples/s, ratios; and the PyTorch model's SST-2 dev accuracy
                    after seqclf's default epochs
    accuracy        SST-2 dev accuracy and shuffled_accuracy of `seqclf train` defaults for bow,
                    simple_rnn, lstm, bidirectional lstm, gru (early stopping on 10% of train held
                    out, dev scored once) and of the same LSTM trained by the tutorial recipe
    imdb_pairs      counterfactual IMDb: accuracy and pair accuracy of bow and lstm
    gradient_stats  epoch time with and without the GradientStats callback
    serving         exported model through TensorFlow's C API vs model.predict: latency, throughput
    memory          peak RSS of `seqclf train` with defaults on SST-2 (reuses the accuracy
                    figure's default run when both are selected)
    suite           (alone: `python -m bench --only suite [suite flags]`) the recipe on seven
                    public sets beside bow, the fixed defaults and TF-IDF + logistic
                    regression; see bench/suite.py

Usage:

    python -m bench [--quick] [--only NAME[,NAME]] [--repeats N] [--out DIR] [--workdir DIR]

`--quick` smoke-tests the harness in a few minutes: small row counts, 1 epoch, 1 repeat. Its
numbers are not benchmark figures.

The module is a little over 500 lines: `Bench`'s figure methods share one `Runner`, one sizes
preset and one results dict; statistics and output live in `bench/report.py`.
"""

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

from bench.report import (
    ACCURACY_MODELS,
    REPO,
    SHARED,
    check_targets,
    machine_info,
    stat_row,
    versions,
    write_results,
)

SST2_TRAIN = SHARED / "sst2" / "train.tsv"
SST2_DEV = SHARED / "sst2" / "dev.tsv"
CAD_TRAIN = SHARED / "imdb_cad" / "train_paired.tsv"
CAD_DEV = SHARED / "imdb_cad" / "dev_paired.tsv"
FIGURES = ("throughput", "accuracy", "imdb_pairs", "gradient_stats", "serving", "memory")
DEFAULT_REPEATS = 3
PAIR_MODELS = ("bow", "lstm")
THROUGHPUT_ROWS = ("seqclf", "seqclf, 1 step/call", "tutorial", "torch", "torch, 1 thread")
# (numerator, denominator) of the throughput ratios, per repeat.
THROUGHPUT_RATIOS = (
    ("seqclf", "tutorial"),
    ("seqclf, 1 step/call", "tutorial"),
    ("seqclf", "torch"),
    ("seqclf", "torch, 1 thread"),
)
# (epoch, label) of the timed epochs; the first includes the first pass over the data and tracing.
THROUGHPUT_EPOCHS = ((1, "epoch 1 (cold)"), (2, "epoch 2 (warm)"))
SERVING_PATHS = ("C API round trip (harness)", "C API TF_SessionRun only", "keras model.predict")


@dataclasses.dataclass
class Sizes:
    """What a run trains on: full data, or `--quick`'s small subsets."""

    throughput_rows: int | None = None  # None: all of SST-2 train
    train_rows: int | None = None
    cad_train_rows: int | None = None
    epochs: int | None = None  # None: seqclf's default
    gradient_args: tuple = ()
    serving_args: tuple = ()


QUICK = Sizes(
    throughput_rows=2000,
    train_rows=2000,
    cad_train_rows=400,
    epochs=1,
    gradient_args=("--samples", "512", "--epochs", "2", "--length", "30"),
    serving_args=("--runs", "20", "--batch-runs", "5"),
)


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------- seqclf defaults

def seqclf_defaults():
    """`dataclasses.asdict(fixed_config())`, asked of a child (no TensorFlow in this process):
    the settings of `--recipe fixed` (the automatic recipe's depend on the data)."""
    code = "import dataclasses, json; from seqclf.run import fixed_config; " \
           "print(json.dumps(dataclasses.asdict(fixed_config())))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, env=child_env())
    if proc.returncode:
        raise BenchError(f"cannot read seqclf's defaults:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- running commands

def child_env():
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def display(cmd):
    """The command as a person would type it from the repository root."""
    shown = []
    for i, part in enumerate(cmd):
        part = str(part)
        if i == 0 and part == sys.executable:
            part = "python"
        elif part.startswith(str(REPO.parent) + os.sep):
            part = os.path.relpath(part, REPO)
        shown.append(part)
    if shown[:3] == ["python", "-m", "seqclf"]:
        shown = ["seqclf"] + shown[3:]
    return shlex.join(shown)


class Runner:
    """Runs commands for the figures, logging their output; one log file per command."""

    def __init__(self, workdir, verbose=True):
        self.workdir = pathlib.Path(workdir)
        self.logs = self.workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.count = 0
        self.verbose = verbose

    def path(self, name):
        return self.workdir / name

    def __call__(self, cmd):
        """Runs `cmd`; returns (wall seconds, peak RSS MiB of the child). Raises on failure."""
        cmd = [str(c) for c in cmd]
        self.count += 1
        log = self.logs / f"{self.count:03d}.log"
        if self.verbose:
            print(f"  $ {display(cmd)}", flush=True)
        start = time.perf_counter()
        with open(log, "wb") as f:
            proc = subprocess.Popen(cmd, cwd=REPO, env=child_env(), stdout=f,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        if proc.returncode:
            tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise BenchError(f"exit status {proc.returncode}: {display(cmd)}\n(log {log})\n{tail}")
        return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def subset_tsv(src, dst, rows, seed=0, keep_order=False):
    """Writes the header and `rows` lines of a TSV (a seeded sample, or the first ones)."""
    lines = pathlib.Path(src).read_bytes().split(b"\n")
    header, body = lines[0], [ln for ln in lines[1:] if ln.strip()]
    picked = body[:rows] if keep_order else random.Random(seed).sample(body, min(rows, len(body)))
    pathlib.Path(dst).write_bytes(b"\n".join([header, *picked]) + b"\n")
    return dst


def read_json(path):
    return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- the figures

class Bench:
    def __init__(self, repeats, sizes, runner, defaults):
        self.repeats = repeats
        self.sizes = sizes
        self.run = runner
        self.defaults = defaults
        self.default_train_runs = []  # (wall s, peak MiB) of `seqclf train` with defaults on SST-2
        self._sst2_train = None

    def epochs_flag(self):
        return ["--epochs", str(self.sizes.epochs)] if self.sizes.epochs else []

    def sst2_train(self):
        """SST-2 train, or `--quick`'s seeded sample of it."""
        if self._sst2_train is None:
            self._sst2_train = SST2_TRAIN
            if self.sizes.train_rows:
                self._sst2_train = subset_tsv(SST2_TRAIN, self.run.path("sst2_train_sample.tsv"),
                                              self.sizes.train_rows)
        return self._sst2_train

    def throughput(self, fig):
        fig["title"] = "Training throughput on SST-2 train, same LSTM"
        out = self.run.path("throughput.json")
        cmd = [sys.executable, "-m", "bench.bench_torch", "--data", SST2_TRAIN,
               "--repeats", self.repeats, "--json", out]
        if self.sizes.throughput_rows:
            cmd += ["--rows", self.sizes.throughput_rows]
        fig["commands"].append(display(cmd))
        self.run(cmd)
        rates = read_json(out)
        for epoch, when in THROUGHPUT_EPOCHS:
            for name in THROUGHPUT_ROWS:
                if (key := f"{name}, epoch {epoch}") in rates:
                    fig["rows"].append(stat_row(f"rate:{name}:{epoch}", f"{name}, {when}",
                                                "samples/s", rates[key]))
            for a, b in THROUGHPUT_RATIOS:
                ka, kb = f"{a}, epoch {epoch}", f"{b}, epoch {epoch}"
                if ka in rates and kb in rates:
                    fig["rows"].append(stat_row(
                        f"ratio:{a}/{b}:{epoch}", f"ratio {a} / {b}, {when}", "x (per repeat)",
                        [x / y for x, y in zip(rates[ka], rates[kb])]))
        results = []
        for seed in range(self.repeats):
            out = self.run.path(f"torch_accuracy_{seed}.json")
            cmd = [sys.executable, "-m", "bench.bench_torch", "--accuracy", "--seed", seed,
                   "--data", self.sst2_train(), "--dev", SST2_DEV, "--json", out,
                   *self.epochs_flag()]
            if seed == 0:
                fig["commands"].append(display(cmd))
            self.run(cmd)
            results.append(read_json(out))
        for metric in ("accuracy", "shuffled_accuracy", "order_drop"):
            fig["rows"].append(stat_row(f"acc:torch:{metric}", f"PyTorch reference: dev {metric}",
                                        "fraction", [r[metric] for r in results]))
        fig["rows"].append(stat_row("torch:epochs", "PyTorch reference: epochs trained", "epochs",
                                    [r["epochs"] for r in results]))
        d = self.defaults
        fig["notes"] += [
            f"LSTM {d['units']} units, embedding {d['embedding_dim']}, batch {d['batch_size']}, "
            f"{d['optimizer']} lr {d['learning_rate']} (constant while timing), clipnorm "
            f"{d['clipnorm']}; seqclf at steps_per_execution={d['steps_per_execution']}.",
            "Each run trains a fresh model for 2 epochs, timed apart. Epoch 1 (cold) of the Keras "
            "rows includes the first pass over the data (vectorization, cache fill) and tracing; "
            "epoch 2 (warm) is the steady state. The PyTorch rows get seqclf's token ids "
            "vectorized before the clock starts. Runs alternate, order rotated per repeat.",
            "PyTorch accuracy: trained as `seqclf train` trains (same held-out 10% of train for "
            "early stopping, best weights kept, seqclf's default epochs and cosine schedule, same "
            "initial weights), dev scored once.",
        ]
        if d.get("batch_tokens"):
            fig["notes"].append(
                "seqclf grows its batches of short texts to about "
                f"batch_tokens={d['batch_tokens']} tokens (its default); the tutorial and PyTorch "
                f"rows keep {d['batch_size']} texts per batch.")
        if results[0].get("not_mirrored"):
            fig["notes"].append("Defaults the PyTorch model does NOT mirror: "
                                + ", ".join(results[0]["not_mirrored"]) + ".")

    def accuracy(self, fig):
        fig["title"] = ("SST-2 dev accuracy, seqclf defaults (early stopping on 10% of train "
                        "held out)")
        train = self.sst2_train()
        default_label = "lstm, bidirectional" if self.defaults.get("bidirectional") else \
            self.defaults.get("model")
        per_model = {label: [] for label, _ in ACCURACY_MODELS}
        tutorial = []
        for seed in range(self.repeats):
            for label, flags in ACCURACY_MODELS:
                run_dir = self.run.path(f"acc_{label.replace(', ', '_')}_{seed}")
                if label == default_label:
                    flags = []  # exactly `seqclf train` with defaults: the memory figure reuses it
                train_cmd = [sys.executable, "-m", "seqclf", "train", "--data", train, *flags,
                             "--seed", seed, "--out", run_dir, "--quiet", *self.epochs_flag()]
                eval_cmd = [sys.executable, "-m", "seqclf", "evaluate", run_dir, "--data",
                            SST2_DEV, "--quiet"]
                if seed == 0:
                    fig["commands"] += [display(train_cmd), display(eval_cmd)]
                wall, peak = self.run(train_cmd)
                if label == default_label:
                    self.default_train_runs.append((wall, peak))
                self.run(eval_cmd)
                evaluation = max((run_dir / "evaluations").glob("*.json"),
                                 key=lambda p: p.stat().st_mtime)
                per_model[label].append({**read_json(evaluation),
                                         **read_json(run_dir / "metrics.json")})
            out = self.run.path(f"tutorial_accuracy_{seed}.json")
            cmd = [sys.executable, "-m", "bench.bench_pipeline", "--tutorial-accuracy", "--seed",
                   seed, "--data", train, "--dev", SST2_DEV, "--json", out, *self.epochs_flag()]
            if seed == 0:
                fig["commands"].append(display(cmd))
            self.run(cmd)
            tutorial.append(read_json(out))
        per_model["tutorial recipe (same LSTM)"] = tutorial
        for label, results in per_model.items():
            key = "tutorial" if label.startswith("tutorial") else label
            for metric in ("accuracy", "shuffled_accuracy", "order_drop"):
                fig["rows"].append(stat_row(f"acc:{key}:{metric}", f"{label}: dev {metric}",
                                            "fraction", [r[metric] for r in results]))
        for label, results in per_model.items():
            if results and "epochs" in results[0]:
                fig["rows"].append(stat_row(f"epochs:{label}", f"{label}: epochs trained",
                                            "epochs", [r["epochs"] for r in results]))
        fig["notes"] += [
            "dev (872 sentences) is scored once per run; nothing is selected on it. "
            "shuffled_accuracy: the words of each dev text randomly permuted (seed 0); "
            "order_drop = accuracy - shuffled_accuracy.",
            "Tutorial recipe: the same LSTM (seqclf's sizes, dropout, optimizer at a constant "
            "learning rate) with the TextVectorization layer inside the model, raw strings "
            "shuffled (buffer 10,000) and batched without bucketing, trained on the same 90% "
            "split for seqclf's default epochs with no early stopping (the tutorial itself trains "
            "10 epochs at lr 1e-4 and validates on the test set).",
        ]

    def imdb_pairs(self, fig):
        fig["title"] = "Counterfactual IMDb pairs: dev accuracy and pair accuracy"
        train = CAD_TRAIN
        if self.sizes.cad_train_rows:
            train = subset_tsv(CAD_TRAIN, self.run.path("cad_train_sample.tsv"),
                               self.sizes.cad_train_rows, keep_order=True)
        results = {m: [] for m in PAIR_MODELS}
        for seed in range(self.repeats):
            for model in PAIR_MODELS:
                out = self.run.path(f"pairs_{model}_{seed}.json")
                cmd = [sys.executable, "-m", "bench.bench_pairs", "--model", model, "--seed", seed,
                       "--train", train, "--dev", CAD_DEV, "--json", out, *self.epochs_flag()]
                if seed == 0:
                    fig["commands"].append(display(cmd))
                self.run(cmd)
                results[model].append(read_json(out))
        for model, rs in results.items():
            fig["rows"].append(stat_row(f"pairs:{model}:pair_accuracy", f"{model}: pair accuracy",
                                        "fraction of pairs", [r["pair_accuracy"] for r in rs]))
            fig["rows"].append(stat_row(f"pairs:{model}:accuracy", f"{model}: dev accuracy",
                                        "fraction of reviews", [r["accuracy"] for r in rs]))
        n = results[PAIR_MODELS[0]][0]
        fig["notes"].append(
            f"Trained with `seqclf train` defaults on {n['n_train']} reviews of train_paired.tsv "
            f"(the rest held out for early stopping); dev_paired.tsv: {n['n']} reviews, "
            f"{n['n_pairs']} pairs; a pair counts when both of its reviews are right.")

    def gradient_stats(self, fig):
        fig["title"] = "GradientStats callback overhead (epoch time)"
        out = self.run.path("gradient_stats.json")
        cmd = [sys.executable, "-m", "bench.bench_gradient_stats", "--rounds", self.repeats,
               "--json", out, *self.sizes.gradient_args]
        fig["commands"].append(display(cmd))
        self.run(cmd)
        result = read_json(out)
        times = result["epoch_seconds"]
        per_round = {}
        for name, ts in times.items():
            k = len(ts) // self.repeats
            per_round[name] = [statistics.median(ts[i * k:(i + 1) * k])
                               for i in range(self.repeats)]
            fig["rows"].append(stat_row(f"grad:{name}", f"{name}: epoch time", "s (all epochs)",
                                        ts))
        for name, med in per_round.items():
            if name != "baseline":
                fig["rows"].append(stat_row(
                    f"grad:ratio:{name}", f"ratio {name} / baseline", "x (per round)",
                    [a / b for a, b in zip(med, per_round["baseline"])]))
        fig["notes"].append(
            f"Embedding(1000, 32) + LSTM(64) on synthetic data, {result['steps_per_epoch']} steps "
            "per epoch; the first epoch of each fit (tracing) is dropped; configurations rotate.")

    def serving(self, fig):
        fig["title"] = "Serving: exported model through TensorFlow's C API vs model.predict"
        runs = []
        for r in range(self.repeats):
            out = self.run.path(f"serving_{r}.json")
            cmd = [sys.executable, "-m", "bench.bench_serving", "--units", self.defaults["units"],
                   "--json", out, *self.sizes.serving_args]
            if r == 0:
                fig["commands"].append(display(cmd))
            self.run(cmd)
            runs.append(read_json(out))
        for path in SERVING_PATHS:
            for metric, what, unit in (("p50_ms", "1 text p50", "ms"),
                                       ("p99_ms", "1 text p99", "ms"),
                                       ("batch64_texts_per_s", "batch 64", "texts/s")):
                fig["rows"].append(stat_row(f"serving:{path}:{metric}", f"{path}: {what}", unit,
                                            [run[path][metric] for run in runs]))
        fig["rows"].append(stat_row(
            "serving:ratio", "ratio model.predict / C API round trip, 1 text p50", "x (per run)",
            [run[SERVING_PATHS[2]]["p50_ms"] / run[SERVING_PATHS[0]]["p50_ms"] for run in runs]))
        fig["notes"].append("Randomly initialised Embedding + LSTM export (weights do not "
                            "change the cost), loaded in a separate worker by "
                            "TF_LoadSessionFromSavedModel; one process run per repeat.")

    def memory(self, fig):
        fig["title"] = "Peak memory of `seqclf train` with defaults on SST-2"
        runs = self.default_train_runs
        if self.sizes.train_rows:
            fig["notes"].append(f"--quick: trained on {self.sizes.train_rows} rows of SST-2 train.")
        if runs:
            fig["notes"].append("Measured on the default-model runs of the accuracy figure.")
        else:
            for seed in range(self.repeats):
                run_dir = self.run.path(f"memory_{seed}")
                cmd = [sys.executable, "-m", "seqclf", "train", "--data", self.sst2_train(),
                       "--seed", seed, "--out", run_dir, "--quiet", *self.epochs_flag()]
                if seed == 0:
                    fig["commands"].append(display(cmd))
                runs.append(self.run(cmd))
        fig["rows"] += [
            stat_row("memory:peak_rss", "peak RSS (max resident set) of the training process",
                     "MiB", [p for _, p in runs]),
            stat_row("memory:wall", "wall time of the whole command (start-up included)", "s",
                     [w for w, _ in runs]),
        ]
        fig["notes"].append("ru_maxrss of the `seqclf train` child (os.wait4; what "
                            "getrusage(RUSAGE_CHILDREN) reports for a process with that one "
                            "child).")


# --------------------------------------------------------------------------- main

def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Runs every seqclf benchmark and writes bench/results.md and results.json.",
        epilog="figures: " + ", ".join(FIGURES),
    )
    parser.add_argument("--quick", action="store_true",
                        help="smoke-test the harness: tiny data, 1 epoch, 1 repeat (a few minutes)")
    parser.add_argument("--only", metavar="NAME[,NAME]",
                        help="run only these figures (" + ", ".join(FIGURES) + ")")
    parser.add_argument("--repeats", type=int, default=None, metavar="N",
                        help=f"runs (and seeds) per figure (default {DEFAULT_REPEATS}; "
                             "1 with --quick)")
    parser.add_argument("--out", default=str(REPO / "bench"),
                        help="where results.md and results.json go (default: bench/)")
    parser.add_argument("--workdir", help="keep run directories and logs here "
                        "(default: a temporary directory, removed at the end)")
    args = parser.parse_args(argv)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in FIGURES]
        if unknown or not names:
            parser.error(f"--only: unknown figure {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(FIGURES)}")
        args.only = [n for n in FIGURES if n in names]
    else:
        args.only = list(FIGURES)
    if args.repeats is None:
        args.repeats = 1 if args.quick else DEFAULT_REPEATS
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["--only", "suite"] or argv[:1] == ["--only=suite"]:
        # The suite has its own runner (parallel workers, resumable results): its flags follow.
        from bench import suite

        return suite.main(argv[2:] if argv[:2] == ["--only", "suite"] else argv[1:])
    args = parse_args(argv)
    for path in (SST2_TRAIN, SST2_DEV, CAD_TRAIN, CAD_DEV):
        if not path.is_file():
            sys.exit(f"python -m bench: error: the shared data set {path} is missing "
                     "(set SEQCLF_SHARED_DATA to the folder holding sst2/ and imdb_cad/)")
    workdir = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="seqclf-bench-"))
    results = {
        "command": shlex.join(["python", "-m", "bench", *argv]),
        "quick": args.quick,
        "repeats": args.repeats,
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": versions(),
        "defaults": seqclf_defaults(),
        "figures": [],
    }
    bench = Bench(args.repeats, QUICK if args.quick else Sizes(), Runner(workdir),
                  results["defaults"])
    failed = []
    try:
        for name in args.only:
            fig = {"name": name, "title": name, "commands": [], "rows": [], "notes": []}
            print(f"[{name}]", flush=True)
            start = time.perf_counter()
            try:
                getattr(bench, name)(fig)
            except Exception as e:  # one figure failing must not lose the others
                failed.append(name)
                fig["error"] = str(e) if isinstance(e, BenchError) else traceback.format_exc()
                print(f"[{name}] FAILED: {fig['error'][:2000]}", flush=True)
            fig["wall_s"] = round(time.perf_counter() - start, 1)
            results["figures"].append(fig)
            results["targets"] = check_targets(results["figures"])
            write_results(results, args.out)  # after every figure: a late crash keeps the rest
            print(f"[{name}] {fig['wall_s']:.0f} s", flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    results["finished"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    results["machine"]["load average at end (1/5/15 min)"] = " / ".join(
        f"{x:.2f}" for x in os.getloadavg())
    md, js = write_results(results, args.out)
    print(f"wrote {md} and {js}")
    return 1 if failed else 0

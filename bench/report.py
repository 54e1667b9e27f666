"""The benchmark harness's statistics and output: medians with spread, `results.md`, targets,
the machine and versions a result was measured with.

Split from `bench/harness.py` (which runs the figures) so that rendering and checking results
needs neither TensorFlow nor a run: `tests/test_bench.py` exercises these on made-up results.
"""

import importlib.metadata
import json
import math
import os
import pathlib
import platform
import statistics
import subprocess

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("SEQCLF_SHARED_DATA", REPO.parent / "shared" / "data"))
# The suite's table (bench/suite.py) sits between these in results.md and docs/benchmarks.md.
MARK_BEGIN, MARK_END = "<!-- suite:begin -->", "<!-- suite:end -->"

# (row label, `seqclf train` flags); the label "lstm" is the default model.
ACCURACY_MODELS = (
    ("bow", ["--model", "bow"]),
    ("simple_rnn", ["--model", "simple_rnn"]),
    ("lstm", ["--model", "lstm"]),
    ("lstm, bidirectional", ["--model", "lstm", "--bidirectional"]),
    ("gru", ["--model", "gru"]),
)

# --------------------------------------------------------------------------- statistics, output

def summarize(values):
    """{median, min, max, n, values} of a list of numbers (NaN/None left out)."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals), "values": vals}


def stat_row(key, what, unit, values):
    return {"key": key, "what": what, "unit": unit, **summarize(values)}


def fmt(value):
    if value is None:
        return "n/a"
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    a = abs(value)
    if a >= 100:
        return f"{value:,.0f}"
    if a >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def render_markdown(results):
    """results.md from the results dict (the same one results.json holds)."""
    out = ["# seqclf benchmarks", ""]
    if results.get("quick"):
        out += ["**`--quick` smoke test: tiny data, 1 epoch; these numbers are NOT benchmark "
                "figures.**", ""]
    out += [f"Command: `{results['command']}`  ", f"Started {results['started']}, "
            f"finished {results.get('finished', 'n/a')}; repeats: {results['repeats']}. Each "
            "figure: median of the repeats (seeds 0..N-1 for trained models), spread = min-max.",
            ""]
    machine = results.get("machine", {})
    versions = results.get("versions", {})
    out += ["## Machine and versions", "", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in {**machine, **versions}.items()]
    out.append("")
    if results.get("defaults"):
        d = results["defaults"]
        keys = ("model", "layers", "bidirectional", "units", "embedding_dim", "dropout",
                "learning_rate", "lr_schedule", "clipnorm", "batch_size", "epochs", "patience",
                "max_tokens", "max_length", "steps_per_execution")
        out += ["seqclf defaults (`TrainConfig()`): "
                + ", ".join(f"{k}={d[k]}" for k in keys if k in d), ""]
    if results.get("targets"):
        out += ["## Targets (issue 6)", "", "| target | measured | met |", "|---|---|---|"]
        out += [f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'NO'} |"
                for t in results["targets"]]
        out.append("")
    for fig in results.get("figures", []):
        out += [f"## {fig['title']} (`{fig['name']}`)", ""]
        if fig.get("error"):
            out += ["**FAILED**:", "", "```", fig["error"].rstrip(), "```", ""]
        if fig.get("rows"):
            out += ["| what | median | spread (min-max) | unit | n |", "|---|---:|---|---|---:|"]
            for r in fig["rows"]:
                spread = f"{fmt(r['min'])}-{fmt(r['max'])}" if r["n"] > 1 else ""
                out.append(f"| {r['what']} | {fmt(r['median'])} | {spread} | {r['unit']} "
                           f"| {r['n']} |")
            out.append("")
        for note in fig.get("notes", []):
            out.append(f"* {note}")
        if fig.get("notes"):
            out.append("")
        if fig.get("commands"):
            out += [f"Commands (first repeat; {fig.get('wall_s', 0):.0f} s in all):", "", "```"]
            out += fig["commands"] + ["```", ""]
    return "\n".join(out).rstrip() + "\n"


def write_results(results, out_dir):
    """Writes results.json and results.md into `out_dir`; returns their paths."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "results.json", out_dir / "results.md"
    json_path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    text = render_markdown(results)
    # The suite (bench/suite.py) keeps its table in results.md between markers: keep it.
    old = md_path.read_text(encoding="utf-8") if md_path.exists() else ""
    if MARK_BEGIN in old and MARK_END in old:
        block = MARK_BEGIN + old.split(MARK_BEGIN, 1)[1].split(MARK_END, 1)[0] + MARK_END
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    md_path.write_text(text, encoding="utf-8")
    return md_path, json_path


def row_median(figures, key):
    for fig in figures:
        for r in fig.get("rows", []):
            if r["key"] == key:
                return r["median"]
    return None


def check_targets(figures):
    """The issue's targets, for the figures that were run."""
    targets = []

    def add(target, measured, met):
        targets.append({"target": target, "measured": measured, "met": bool(met)})

    for other, key, floor in (("tutorial recipe", "tutorial", 2.5),
                              ("PyTorch reference", "torch", 1.0),
                              ("PyTorch reference, 1 thread", "torch, 1 thread", 1.0)):
        warm = row_median(figures, f"ratio:seqclf/{key}:2")
        cold = row_median(figures, f"ratio:seqclf/{key}:1")
        if warm is not None:
            add(f"seqclf LSTM throughput >= {floor}x {other} (warm epoch)",
                f"{warm:.2f}x (cold first epoch: {cold:.2f}x)", warm >= floor)
    lstm = row_median(figures, "acc:lstm:accuracy")
    for other, key in (("PyTorch reference", "acc:torch:accuracy"),
                       ("tutorial recipe", "acc:tutorial:accuracy")):
        theirs = row_median(figures, key)
        if lstm is not None and theirs is not None:
            add(f"seqclf LSTM dev accuracy >= {other}'s", f"{lstm:.3f} vs {theirs:.3f}",
                lstm >= theirs)
    recurrent = {m: row_median(figures, f"acc:{m}:accuracy") for m, _ in ACCURACY_MODELS
                 if m != "bow"}
    recurrent = {m: v for m, v in recurrent.items() if v is not None}
    if recurrent:
        best = max(recurrent, key=recurrent.get)
        add("best recurrent default SST-2 dev accuracy >= 0.86", f"{recurrent[best]:.3f} ({best})",
            recurrent[best] >= 0.86)
        drop = row_median(figures, f"acc:{best}:order_drop")
        if drop is not None:
            add("its shuffled_accuracy >= 4 points below its accuracy",
                f"{100 * drop:.1f} points", drop >= 0.04)
    bow_drop = row_median(figures, "acc:bow:order_drop")
    if bow_drop is not None:
        add("bow's shuffled_accuracy unchanged", f"{100 * bow_drop:.1f} points",
            abs(bow_drop) < 0.005)
    return targets


# --------------------------------------------------------------------------- machine, versions

def machine_info():
    cpu = platform.processor() or "unknown"
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "logical cores": os.cpu_count(), "usable cores": usable, "ram": ram,
            "platform": platform.platform(),
            "load average at start (1/5/15 min)": " / ".join(f"{x:.2f}" for x in os.getloadavg())}


def versions():
    def version(dist):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    def git(*args):
        try:
            return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    commit = git("rev-parse", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    return {"python": platform.python_version(), "tensorflow": version("tensorflow"),
            "keras": version("keras"), "torch": version("torch"), "numpy": version("numpy"),
            "seqclf": version("seqclf"), "seqclf git commit": commit}

"""The benchmark suite: seqclf's recipe on seven public text-classification sets, beside baselines.

`python -m bench --only suite` (or `python bench/suite.py`) runs, on each dataset of
`../shared/data`,

    auto-lstm, auto-gru, auto-simple_rnn   `seqclf train` with the automatic recipe (the default)
    bow                                    `--model bow --ngram-buckets 0`: the order-blind
                                           mean-of-embeddings model, same recipe otherwise
    fixed                                  `--recipe fixed`: the pre-recipe defaults (LSTM)
    tfidf-lr                               TF-IDF word 1-2 grams + logistic regression (C=3),
                                           scikit-learn (the `bench` extra); it takes no seed,
                                           so it is fitted once per split of data and its row
                                           copied to the split's other seeds (`same_as`; ± 0.0)

and reports accuracy mean ± sd, `shuffled_accuracy` (words of each test text permuted) and train
seconds, with the published random-embedding CNN rows beside them. Evaluation protocols:

    MR, CR, MPQA  10-fold CV on the fixed `fold` column
    TREC          its training data split 90/10 (stratified, seed 0), 3 training seeds
    SST-1, SST-2  train -> dev, 3 seeds        IMDb CAD  train -> dev, 3 seeds (+ pair accuracy)

Every seqclf run validates (early stopping) on 10% of its own training part, held out by
`seqclf train` itself; the test part is scored once. On IMDb CAD it holds out whole pairs
(`--group-column batch_id`). Each review comes with a counterfactual edit (a few words changed,
the opposite label), and a random holdout puts one of a pair in validation with its twin in
training, where the model has learned the twin's label: on the inner split such validation
accuracy was 0.56-0.65 at every epoch against 0.85-0.88 held out by pair (GRU, seeds 0-2), so
it chose the epoch nearly at random (`bench/tune_recipe.md`, "Paired data: validation by pair").
`--mode tune` runs the same models on *inner* splits of training data only (TREC: the 90% part
split again 80/20; SST-1, IMDb CAD: train split 80/20, IMDb by pair) — that is where the
recipe's rules were chosen
(`bench/tune_recipe.md`); MR, CR, MPQA, SST-2 were never used to choose anything.

Results go to a JSON-lines file, one line per run, so an interrupted suite resumes where it
stopped (`--results`); the table is written into `bench/results.md` between markers.
"""

import argparse
import csv
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np
import pandas as pd

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `bench` and `seqclf` importable
    sys.path.insert(0, str(REPO))

from bench.bench_pairs import pair_accuracy as share_of_pairs  # noqa: E402
from bench.report import MARK_BEGIN, MARK_END, SHARED  # noqa: E402
from bench.suite_baselines import run_nbsvm, run_tfidf  # noqa: E402
from bench.suite_targets import DEFAULT, by_size, linear_targets, render_targets  # noqa: E402

RESULTS = REPO / "bench" / "suite_results.jsonl"

# Published rows (../shared/data/README.md): Kim (2014) CNN, Torch replication, accuracy %.
CNN_RAND = {"mr": 75.9, "cr": 78.3, "mpqa": 84.6, "trec": 88.2, "sst1": 42.2, "sst2": 83.5}
CNN_STATIC = {"mr": 80.5, "cr": 83.3, "mpqa": 89.6, "trec": 91.8, "sst1": 44.8, "sst2": 85.6}

DATASETS = ("mr", "cr", "mpqa", "trec", "sst1", "sst2", "imdb")
SENTIMENT = ("mr", "cr", "mpqa", "sst1", "sst2", "imdb")
MODELS = {
    "auto-lstm": {"model": "lstm"},
    "auto-gru": {"model": "gru"},
    "auto-simple_rnn": {"model": "simple_rnn"},
    "bow": {"model": "bow", "ngram_buckets": 0},
    "fixed": {"model": "lstm", "recipe": "fixed"},
    "tfidf-lr": None,
    "nbsvm": None,
}
BASELINES = {"tfidf-lr": run_tfidf, "nbsvm": run_nbsvm}
SEEDS = (0, 1, 2)


def _read(path, text="sentence", label="label"):
    df = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    out = pd.DataFrame({"sentence": df[text], "label": df[label]})
    for extra in ("fold", "batch_id"):
        if extra in df:
            out[extra] = df[extra]
    return out


def _stratified(df, fraction, seed):
    """(rest, held): `fraction` of each label's rows held out, seeded."""
    rng = np.random.default_rng(seed)
    held = []
    for _, rows in df.groupby("label", sort=True):
        idx = rows.index.to_numpy()
        held.extend(rng.choice(idx, size=max(1, round(fraction * len(idx))), replace=False))
    mask = df.index.isin(held)
    return df[~mask], df[mask]


def _by_pair(df, fraction, seed):
    """(rest, held) with whole pairs (`batch_id`) held out."""
    rng = np.random.default_rng(seed)
    ids = np.array(sorted(df["batch_id"].unique()))
    held = set(rng.choice(ids, size=round(fraction * len(ids)), replace=False))
    mask = df["batch_id"].isin(held)
    return df[~mask], df[mask]


# The small-data protocol (`--mode small`): each binary set's training part (its first report
# split: MR/CR/MPQA fold 0, SST-2 and IMDb CAD train) cut to these sizes, seeded draws, each
# scored on that split's test part. IMDb CAD is cut by pair (half as many pairs as rows).
SMALL_DATASETS = ("mr", "cr", "mpqa", "sst2", "imdb")
SMALL_SIZES = (500, 1000, 3000)
SMALL_DRAWS = 5


def _small(name):
    _, train, test, _ = splits(name, "report")[0]
    out = []
    for size in SMALL_SIZES:
        for k in range(SMALL_DRAWS):
            rng = np.random.default_rng([size, k])
            if "batch_id" in train:
                pairs = np.array(sorted(train["batch_id"].unique()))
                keep = rng.choice(pairs, size=min(size // 2, len(pairs)), replace=False)
                part = train[train["batch_id"].isin(set(keep))]
            else:
                part = train.iloc[np.sort(rng.choice(len(train), min(size, len(train)),
                                                     replace=False))]
            out.append((f"n{size}-draw{k}", part, test, k))
    return out


def splits(name, mode):
    """[(split_id, train_df, test_df, seed)] of a dataset in `report`, `tune` or `small` mode."""
    d = SHARED
    if mode == "small":
        return _small(name) if name in SMALL_DATASETS else []
    if name in ("mr", "cr", "mpqa"):
        if mode == "tune":
            return []  # never used to choose the recipe
        df = _read(d / name / f"{name}.tsv")
        return [(f"fold{k}", df[df["fold"] != str(k)], df[df["fold"] == str(k)], 0)
                for k in range(10)]
    if name == "trec":
        df = _read(d / "trec" / "train.tsv")
        train, test = _stratified(df, 0.1, seed=0)
        if mode == "tune":
            train, test = _stratified(train.reset_index(drop=True), 0.2, seed=1)
        return [(f"seed{s}", train, test, s) for s in SEEDS]
    if name == "sst1":
        train = _read(d / "sst5" / "train.tsv")
        if mode == "tune":
            train, test = _stratified(train, 0.2, seed=1)
        else:
            test = _read(d / "sst5" / "dev.tsv")
        return [(f"seed{s}", train, test, s) for s in SEEDS]
    if name == "sst2":
        if mode == "tune":
            # Whole sentences of train held out, their sub-phrases dropped (bench/tune_sst2.py).
            from bench.tune_sst2 import grouped_split

            cache = pathlib.Path(tempfile.gettempdir()) / "seqclf-suite-sst2-split"
            if not (cache / "holdout.tsv").exists():
                grouped_split(d / "sst2" / "train.tsv", str(cache))
            return [(f"seed{s}", _read(cache / "fit.tsv"), _read(cache / "holdout.tsv"), s)
                    for s in SEEDS]
        return [(f"seed{s}", _read(d / "sst2" / "train.tsv"), _read(d / "sst2" / "dev.tsv"), s)
                for s in SEEDS]
    if name == "imdb":
        train = _read(d / "imdb_cad" / "train_paired.tsv", "Text", "Sentiment")
        if mode == "tune":
            train, test = _by_pair(train, 0.2, seed=1)
        else:
            test = _read(d / "imdb_cad" / "dev_paired.tsv", "Text", "Sentiment")
        return [(f"seed{s}", train, test, s) for s in SEEDS]
    raise ValueError(f"unknown dataset {name!r}")


def _write(df, path):
    df[["sentence", "label"]].to_csv(path, sep="\t", index=False, quoting=csv.QUOTE_NONE)


def pair_accuracy(test_df, predicted):
    """Share of pairs (`batch_id`) whose two members are both right."""
    right = test_df["label"].to_numpy() == np.asarray(predicted)
    return float(share_of_pairs(test_df["batch_id"].to_numpy(), right)[0])


def run_seqclf(train_df, test_df, overrides, seed, workdir, serving=False):
    import keras

    from seqclf.run import TrainConfig, evaluate, predict, train

    keras.backend.clear_session()
    train_path, test_path = os.path.join(workdir, "train.tsv"), os.path.join(workdir, "test.tsv")
    if "batch_id" in train_df:  # paired data: validation holds whole pairs (module docstring)
        overrides = {**overrides, "group_column": "batch_id"}
        train_df[["sentence", "label", "batch_id"]].to_csv(train_path, sep="\t", index=False,
                                                            quoting=csv.QUOTE_NONE)
    else:
        _write(train_df, train_path)
    _write(test_df, test_path)
    out = os.path.join(workdir, "run")
    metrics = train(TrainConfig(data=train_path, out=out, seed=seed, quiet=True, **overrides))
    result = evaluate(out, test_path)
    with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    predicted = None
    if "batch_id" in test_df:
        predicted = [p["label"] for p in predict(out, test_df["sentence"].tolist())]
    extra = {}
    if serving:
        from bench.suite_serving import serving_latency

        extra = serving_latency(out, test_df["sentence"].tolist(), workdir)
    blend = metrics.get("blend") or {}
    return {"accuracy": result["accuracy"], "shuffled_accuracy": result["shuffled_accuracy"],
            "train_seconds": metrics["train_seconds"], "epochs": metrics["epochs"],
            "best_epoch": metrics["best_epoch"], **extra,
            "blend": {k: blend[k] for k in ("linear_weight", "recurrent_weight",
                                            "linear_val_accuracy", "recurrent_val_accuracy")
                      if k in blend} or None,
            "choices": config.get("recipe_record", {}).get("choices"), "predicted": predicted}


def run_job(job):
    name, split_id, model, mode = job["dataset"], job["split"], job["model"], job["mode"]
    train_df, test_df, seed = next((tr, te, s) for i, tr, te, s in splits(name, mode)
                                   if i == split_id)
    with tempfile.TemporaryDirectory(prefix="seqclf-suite-") as workdir:
        if MODELS[model] is None:
            r = BASELINES[model](train_df, test_df)
        else:
            r = run_seqclf(train_df, test_df, {**MODELS[model], **job.get("extra", {})}, seed,
                           workdir, serving=job.get("serving", False))
    predicted = r.pop("predicted")
    if predicted is not None and "batch_id" in test_df:
        r["pair_accuracy"] = pair_accuracy(test_df, predicted)
    return {**{k: job[k] for k in ("dataset", "split", "model", "mode", "variant")}, **r}


# Order of the runs: the rows the targets need first, so that a suite stopped early has them.
PRIORITY = ("auto-lstm", "bow", "tfidf-lr", "fixed", "auto-gru", "auto-simple_rnn")


def jobs(datasets, models, mode, variants=None):
    variants = variants or {"": {}}
    out = []
    models = sorted(models, key=lambda m: PRIORITY.index(m) if m in PRIORITY else len(PRIORITY))
    split_ids, same_data = {}, {}
    for name in datasets:
        parts = splits(name, mode)
        split_ids[name] = [i for i, *_ in parts]
        # Training seeds of one split share its data frames (`splits` returns the same
        # objects): a model that takes no seed (tfidf-lr) is fitted once for all of them.
        first = {}
        for i, train_df, test_df, _ in parts:
            first.setdefault((id(train_df), id(test_df)), []).append(i)
        same_data[name] = {ids[0]: ids[1:] for ids in first.values()}
    for model in models:
        for name in datasets:
            for split_id in split_ids[name]:
                seedless = MODELS[model] is None
                if seedless and split_id not in same_data[name]:
                    continue  # written with the first split of its data
                for variant, extra in variants.items():
                    if variant and seedless:
                        continue
                    job = {"dataset": name, "split": split_id, "model": model,
                           "mode": mode, "variant": variant, "extra": extra}
                    if seedless:
                        job["same_as"] = same_data[name][split_id]
                    out.append(job)
    return out


def job_splits(job):
    """The split ids a job writes a row for: its own, and those of the same data it stands for."""
    return [job["split"], *job.get("same_as", [])]


def unfinished(todo, done):
    """The jobs of `todo` with a row still to write, each told which (`write`)."""
    out = []
    for job in todo:
        missing = [s for s in job_splits(job) if result_key({**job, "split": s}) not in done]
        if missing:
            out.append({**job, "write": missing})
    return out


def result_key(r):
    return (r["dataset"], r["split"], r["model"], r["mode"], r.get("variant", ""))


def finished_keys(path):
    """Keys of the runs in the results file that finished (a failed run is done again)."""
    return {result_key(r) for r in read_results(path) if "error" not in r}


def read_results(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _worker(job_queue, results_path, threads):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import queue as queue_module

    parent = os.getppid()
    while True:
        try:
            job = job_queue.get(timeout=10)
        except queue_module.Empty:
            if os.getppid() != parent:  # the suite was stopped: do not run on as an orphan
                return
            continue
        if job is None:
            return
        start = time.perf_counter()
        try:
            r = run_job(job)
        except Exception as e:  # a failed run is recorded, not fatal to the suite
            r = {**{k: job[k] for k in ("dataset", "split", "model", "mode", "variant")},
                 "error": f"{type(e).__name__}: {e}"}
        r["wall_seconds"] = round(time.perf_counter() - start, 1)
        for row in write_rows(results_path, job, r):
            print(json.dumps({k: v for k, v in row.items() if k != "choices"}), flush=True)


def write_rows(results_path, job, r):
    """Appends one row per split the run stands for (the seeds of a seedless model's one fit,
    marked `same_as`) and returns them."""
    rows = [dict(r) if split_id == job["split"] else {**r, "split": split_id,
                                                      "same_as": job["split"]}
            for split_id in job.get("write", [job["split"]])]
    with open(results_path, "a", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    return rows


def run_all(todo, results_path, workers):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    for job in todo:
        queue.put(job)
    threads = max(1, (os.cpu_count() or 2) // workers)
    procs = [ctx.Process(target=_worker, args=(queue, results_path, threads))
             for _ in range(workers)]
    for _ in procs:
        queue.put(None)
    for p in procs:
        p.start()
    for p in procs:
        p.join()


def summarize(results, mode="report", variant=""):
    """{dataset: {model: {accuracy: [..], shuffled_accuracy: [..], ...}}}, runs without errors."""
    table = {}
    for r in results:
        if r["mode"] != mode or r.get("variant", "") != variant or "error" in r:
            continue
        cell = table.setdefault(r["dataset"], {}).setdefault(r["model"], {})
        for k in ("accuracy", "shuffled_accuracy", "train_seconds", "pair_accuracy",
                  "serving_p50_ms", "serving_one_model_p50_ms", "serving_ratio"):
            if k in r:
                cell.setdefault(k, []).append(r[k])
        cell.setdefault("splits", []).append(r["split"])
    return table


def mean_sd(values):
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def diff_se(table, dataset, a, b):
    """Mean and standard error of accuracy(a) - accuracy(b), paired by split."""
    ra, rb = table[dataset].get(a), table[dataset].get(b)
    if not ra or not rb:
        return None, None
    pa = dict(zip(ra["splits"], ra["accuracy"]))
    pb = dict(zip(rb["splits"], rb["accuracy"]))
    d = [pa[s] - pb[s] for s in pa if s in pb]
    if len(d) < 2:
        return (d[0] if d else None), None
    return statistics.fmean(d), statistics.stdev(d) / len(d) ** 0.5


def render(table, models=None, sizes=False):
    """The markdown table of `table` (`summarize`'s; `by_size`'s with `sizes`): one column per
    model that has rows (`models`: those, in this order)."""
    models = models or [m for m in MODELS if any(m in row for row in table.values())]
    head = ("| dataset | " + " | ".join(models) + ("" if sizes else " | CNN rand / static")
            + " |\n|---|" + "---:|" * len(models) + ("" if sizes else "---|"))
    rows = [head]
    names = (sorted(table, key=lambda k: (k.split("@")[0], int(k.split("@")[1]))) if sizes
             else [n for n in DATASETS if n in table])
    for name in names:
        expected = SMALL_DRAWS if sizes else len(splits(name, "report"))
        cells = []
        for m in models:
            c = table[name].get(m)
            if not c:
                cells.append("")
                continue
            mu, sd = mean_sd(c["accuracy"])
            smu, _ = mean_sd(c["shuffled_accuracy"])
            secs, _ = mean_sd(c["train_seconds"])
            text = f"{100 * mu:.1f} ± {100 * sd:.1f} (sh {100 * smu:.1f}; {secs:.1f} s)"
            if "pair_accuracy" in c:
                text += f"; pairs {100 * mean_sd(c['pair_accuracy'])[0]:.1f}"
            if len(c["accuracy"]) != expected:
                text += f" [{len(c['accuracy'])} of {expected} runs]"
            cells.append(text)
        n = len(table[name][next(iter(table[name]))]["splits"])
        cnn = "" if sizes else f" | {CNN_RAND.get(name, '—')} / {CNN_STATIC.get(name, '—')}"
        rows.append(f"| {name} (n={n}) | " + " | ".join(cells) + f"{cnn} |")
    return "\n".join(rows)


def targets(table, default="auto-lstm"):
    """The issue's must targets, each as (what, measured, met)."""
    out = []
    for name in ("mr", "cr", "trec", "sst1", "sst2", "imdb"):
        if name in table:
            d, se = diff_se(table, name, default, "bow")
            if d is not None and se is not None:
                out.append((f"{name}: {default} - bow > 1 SE",
                            f"{100 * d:+.2f} (SE {100 * se:.2f})", d > se))
    if "mpqa" in table:
        d, se = diff_se(table, "mpqa", default, "bow")
        if d is not None and se is not None:
            out.append(("mpqa: not below bow by > 1 SE", f"{100 * d:+.2f} (SE {100 * se:.2f})",
                        d >= -se))
    if "imdb" in table and default in table["imdb"]:
        mu = mean_sd(table["imdb"][default]["accuracy"])[0]
        out.append(("imdb dev >= 0.83", f"{mu:.3f}", mu >= 0.83))
    for name in SENTIMENT:
        if name != "mpqa" and name in table and default in table[name]:
            c = table[name][default]
            a, s = mean_sd(c["accuracy"])[0], mean_sd(c["shuffled_accuracy"])[0]
            out.append((f"{name}: shuffled < accuracy", f"{s:.3f} < {a:.3f}", s < a))
    at_or_above, within = 0, 0
    names = [n for n in ("mr", "cr", "mpqa", "trec", "sst2") if n in table and default in table[n]]
    for name in names:
        mu = 100 * mean_sd(table[name][default]["accuracy"])[0]
        at_or_above += mu >= CNN_RAND[name]
        within += mu >= CNN_RAND[name] - 1
    if names:
        out.append(("CNN-rand: at/above on >= 4 of 5, within 1 pt on the rest",
                    f"{at_or_above} of {len(names)} at/above, {within} within 1 pt",
                    at_or_above >= 4 and within == len(names)))
    if "sst1" in table and default in table["sst1"]:
        mu = mean_sd(table["sst1"][default]["accuracy"])[0]
        out.append(("sst1 >= 0.41", f"{mu:.3f}", mu >= 0.41))
    if "sst2" in table and default in table["sst2"]:
        med = statistics.median(table["sst2"][default]["accuracy"])
        out.append(("sst2 dev median of 3 >= 0.835", f"{med:.4f}", med >= 0.835))
    return out


def write_markdown(table, path, command, mode="report", small=None):
    lines = [MARK_BEGIN, f"### Suite results (mode {mode})", "",
             f"Command: `{command}`. Accuracy % mean ± sd over folds/seeds; `sh` = accuracy with "
             "the words of each test text shuffled; seconds = training time per run (mean).", "",
             render(table), ""]
    if small:
        lines += ["Small-data protocol (`--mode small`): the training part of each binary set's "
                  f"first split cut to {', '.join(map(str, SMALL_SIZES))} rows, {SMALL_DRAWS} "
                  "seeded draws each, scored on that split's test part.", "",
                  render(small, sizes=True), ""]
    t = linear_targets(table, small)
    if t and mode == "report":
        lines += [render_targets(t), ""]
    lines.append(MARK_END)
    block = "\n".join(lines) + "\n"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if MARK_BEGIN in text and MARK_END in text:
        before, rest = text.split(MARK_BEGIN, 1)
        after = rest.split(MARK_END, 1)[1].lstrip("\n")
        text = before + block + ("\n" + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text, encoding="utf-8")
    return block


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("report", "tune", "small"), default="report")
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--variants", help="JSON {name: TrainConfig overrides} (tuning candidates)")
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--markdown", default=str(REPO / "bench" / "results.md"))
    p.add_argument("--page", "--readme", dest="page", default=str(REPO / "docs" / "benchmarks.md"),
                   help="also write the table into this file between the suite markers "
                        "('' for none)")
    p.add_argument("--table-only", action="store_true", help="render what is there; run nothing")
    p.add_argument("--serving", action="store_true",
                   help="also measure the serving latency of the default's first split per "
                        "dataset, beside a one-model export (bench/suite_serving.py)")
    args = p.parse_args(argv)
    datasets, models = args.datasets.split(","), args.models.split(",")
    variants = json.loads(args.variants) if args.variants else None
    os.makedirs(os.path.dirname(args.results), exist_ok=True)
    done = finished_keys(args.results)
    todo = unfinished(jobs(datasets, models, args.mode, variants), done)
    if args.serving:
        for job in todo:
            job["serving"] = (job["model"] == DEFAULT
                              and job["split"] == splits(job["dataset"], job["mode"])[0][0])
    print(f"{len(todo)} runs to do ({len(done)} rows already in {args.results})", flush=True)
    if todo and not args.table_only:
        run_all(todo, args.results, args.workers)
    results = read_results(args.results)
    command = "python -m bench --only suite" if args.mode == "report" else \
        "python bench/suite.py --mode tune"
    if args.mode in ("report", "small") and not args.variants:
        table = summarize(results)
        small = by_size(summarize(results, "small"))
        print(write_markdown(table, pathlib.Path(args.markdown), command, small=small))
        if args.page:  # docs/benchmarks.md shows the same table
            write_markdown(table, pathlib.Path(args.page), command, small=small)
    else:
        for variant in (variants or {"": {}}):
            print(f"### variant {variant or '(none)'}")
            print(render(summarize(results, args.mode, variant), models))
    return 0


if __name__ == "__main__":
    sys.exit(main())

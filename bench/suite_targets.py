"""The targets of the "never worse than the linear model" work, read off the suite's rows.

`linear_targets(report, small)` compares the default (`auto-lstm`) with the better of the two
linear models a user tries first (`tfidf-lr`, `nbsvm`: whichever has the higher mean accuracy
on that data), paired by split, on the report protocol and on the small-data protocol
(`--mode small`, one row per dataset and size), and checks training time against the recipe
before it (`BEFORE_SECONDS`, the suite means of the ensemble recipe, rows kept in
`bench/suite_results_ensemble_recipe.jsonl`) and the serving latency ratio.
"""

import statistics

DEFAULT = "auto-lstm"
LINEAR = ("tfidf-lr", "nbsvm")
# Mean train seconds of the default before this recipe (5-member ensembles, patience = epochs).
BEFORE_SECONDS = {"mr": 88, "cr": 80, "mpqa": 42, "trec": 60, "sst1": 83, "sst2": 143,
                  "imdb": 50}
ORDER_SETS = ("mr", "cr", "sst1", "sst2", "imdb")  # sentiment sets but MPQA


def by_size(table):
    """The small-data table `{dataset: {model: cell}}` regrouped as `{"mr@500": ...}`."""
    out = {}
    for name, models in table.items():
        for model, cell in models.items():
            for i, split in enumerate(cell["splits"]):
                size = split.split("-")[0][1:]
                row = out.setdefault(f"{name}@{size}", {}).setdefault(model, {"splits": []})
                row["splits"].append(split)
                for k, values in cell.items():
                    if k != "splits":
                        row.setdefault(k, []).append(values[i])
    return out


def _mean(cell, key="accuracy"):
    return statistics.fmean(cell[key])


def better_linear(models):
    present = [m for m in LINEAR if m in models]
    return max(present, key=lambda m: _mean(models[m])) if present else None


def paired(models, a, b):
    """Mean and standard error of accuracy(a) - accuracy(b), paired by split."""
    pa = dict(zip(models[a]["splits"], models[a]["accuracy"]))
    pb = dict(zip(models[b]["splits"], models[b]["accuracy"]))
    d = [pa[s] - pb[s] for s in pa if s in pb]
    if len(d) < 2:
        return (d[0] if d else None), 0.0
    return statistics.fmean(d), statistics.stdev(d) / len(d) ** 0.5


def linear_targets(report, small=None):
    """[(what, measured, met, must)] of the issue's musts and goals that the rows can answer."""
    out = []
    ahead = 0
    for name, models in [*report.items(), *sorted((small or {}).items())]:
        lin = better_linear(models)
        if DEFAULT not in models or lin is None:
            continue
        d, se = paired(models, DEFAULT, lin)
        out.append((f"{name}: not below the better linear model ({lin}) by > 1 SE",
                    f"{100 * d:+.2f} (SE {100 * se:.2f})", d >= -se, True))
        if "@" not in name:
            ahead += d > 0
            need = {"trec": 0.01, "sst2": 0.01, "sst1": 0.0}.get(name)
            if need is not None:
                out.append((f"{name}: above the better linear model by {100 * need:.1f} pt"
                            + ("s" if need else ""), f"{100 * d:+.2f}", d > need or
                            (need == 0 and d > 0), True))
            if "nbsvm" in models and name in ("mr", "cr"):
                dn = _mean(models[DEFAULT]) - _mean(models["nbsvm"])
                out.append((f"{name}: >= NBSVM + 1 pt (goal)", f"{100 * dn:+.2f}", dn >= 0.01,
                            False))
            for m in LINEAR:
                if m in models:
                    dm = _mean(models[DEFAULT]) - _mean(models[m])
                    out.append((f"{name}: above {m} (goal)", f"{100 * dm:+.2f}", dm > 0, False))
    names = [n for n in report if DEFAULT in report[n] and better_linear(report[n])]
    if names:
        out.append(("above the better linear model on >= 4 of the full sets",
                    f"{ahead} of {len(names)}", ahead >= 4, True))
    for name in ORDER_SETS:
        if name in report and DEFAULT in report[name]:
            a, s = _mean(report[name][DEFAULT]), _mean(report[name][DEFAULT], "shuffled_accuracy")
            out.append((f"{name}: shuffled < accuracy", f"{s:.3f} < {a:.3f}", s < a, True))
            if name in ("mr", "cr", "imdb"):
                out.append((f"{name}: order drop >= 2 pts (goal)", f"{100 * (a - s):.1f}",
                            a - s >= 0.02, False))
    for name, before in BEFORE_SECONDS.items():
        if name in report and DEFAULT in report[name]:
            secs = _mean(report[name][DEFAULT], "train_seconds")
            out.append((f"{name}: train seconds <= 1/3 of before ({before} s)",
                        f"{secs:.1f} s ({secs / before:.2f}x)", secs <= before / 3, True))
    for name, models in report.items():
        cell = models.get(DEFAULT, {})
        if cell.get("serving_ratio"):
            ratio = cell["serving_ratio"][0]
            out.append((f"{name}: serving p50 <= 1.3x a one-model export",
                        f"{cell['serving_p50_ms'][0]:.2f} vs "
                        f"{cell['serving_one_model_p50_ms'][0]:.2f} ms ({ratio:.2f}x)",
                        ratio <= 1.3, True))
        elif cell.get("serving_p50_ms"):
            # The blend left the recurrent model out on this split: nothing heavier to serve.
            out.append((f"{name}: serving p50 <= 1.3x a one-model export",
                        f"{cell['serving_p50_ms'][0]:.2f} ms, the linear path alone", True, True))
    if "sst2" in report and DEFAULT in report["sst2"]:
        med = statistics.median(report["sst2"][DEFAULT]["accuracy"])
        out.append(("sst2 dev median of 3 >= 0.835", f"{med:.4f}", med >= 0.835, True))
    for name, models in sorted((small or {}).items()):
        lin = "tfidf-lr"
        if DEFAULT in models and lin in models:
            ratio = _mean(models[DEFAULT], "train_seconds") / _mean(models[lin], "train_seconds")
            out.append((f"{name}: train time within 5x TF-IDF + LR's (goal)", f"{ratio:.1f}x",
                        ratio <= 5, False))
    return out


def render_targets(rows):
    lines = ["| target | measured | met | kind |", "|---|---|---|---|"]
    lines += [f"| {w} | {m} | {'yes' if ok else 'NO'} | {'must' if must else 'goal'} |"
              for w, m, ok, must in rows]
    return "\n".join(lines)

"""Per-class results of a classifier: what accuracy alone hides on imbalanced data.

`class_report` turns true and predicted class ids into precision, recall and F1 per class,
macro-F1, the confusion matrix and the majority-class baseline (scikit-learn's metrics);
`format_report` prints it as a table and `collapse_warning` says, in one line, when the
figures show a model that mostly answers one class. `seqclf train` (`metrics.json`'s
`validation_report`, the end of its output, TensorBoard, `confusion.png`) and `seqclf evaluate`
(its JSON and the table) use the same report.
"""

import numpy as np

from seqclf.errors import SeqclfError

# A model whose macro-F1 is within this of the all-majority answer's has learned little beyond
# the class frequencies, whatever its accuracy.
COLLAPSE_MARGIN = 0.05
# The report's keys beyond `n` and `accuracy`, which the callers report as they are.
REPORT_FIELDS = ("macro_f1", "per_class", "confusion_matrix", "majority_baseline")


def class_report(labels, predicted, label_names):
    """A JSON-ready dict of per-class results for true class ids `labels` and `predicted` ones.

    Keys: `n`, `accuracy`, `macro_f1`, `per_class` (label name: `precision`, `recall`, `f1`,
    `support`), `confusion_matrix` (`labels`, and `counts[true][predicted]`) and
    `majority_baseline`: the most frequent true class of these rows with the accuracy and the
    macro-F1 that always answering it scores. A class with no predicted row has precision 0 (as
    for one with no true row, recall 0): scikit-learn's `zero_division=0`.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = np.asarray(labels, dtype="int64").reshape(-1)
    predicted = np.asarray(predicted, dtype="int64").reshape(-1)
    names = [str(n) for n in label_names]
    k = len(names)
    if len(labels) != len(predicted):
        raise SeqclfError(
            "`labels` and `predicted` must have the same length. "
            f"Received: {len(labels)} labels, {len(predicted)} predictions"
        )
    if len(labels) == 0:
        raise SeqclfError("A class report needs at least one row. Received: 0 rows")
    ids = np.concatenate([labels, predicted])
    if ids.min() < 0 or ids.max() >= k:
        raise SeqclfError(
            f"Class ids must lie in 0..{k - 1} for {k} label names. "
            f"Received: ids from {int(ids.min())} to {int(ids.max())}"
        )
    classes = list(range(k))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0
    )
    counts = np.bincount(labels, minlength=k)
    majority = int(np.argmax(counts))
    share = counts[majority] / len(labels)
    present = counts > 0
    return {
        "n": int(len(labels)),
        "accuracy": float(np.mean(labels == predicted)),
        # Over the classes these rows hold: a class absent from them has no recall to average.
        "macro_f1": float(f1[present].mean()),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(names, precision, recall, f1, support)
        },
        "confusion_matrix": {
            "labels": names,
            "counts": confusion_matrix(labels, predicted, labels=classes).tolist(),
        },
        "majority_baseline": {
            "label": names[majority],
            "accuracy": float(share),
            # Precision `share` and recall 1 on the majority class, 0 on the others present.
            "macro_f1": float(2 * share / (1 + share) / present.sum()),
        },
    }


def collapse_warning(report, *, class_weighted=False):
    """One plain line when `report` shows a collapsed model, else None: a class of the rows
    that the model never gets right, or a macro-F1 within `COLLAPSE_MARGIN` of always
    answering the majority class. `class_weighted`: the model was trained with class weights
    (the line then does not suggest them)."""
    majority = report["majority_baseline"]
    never = [name for name, c in report["per_class"].items()
             if c["support"] > 0 and c["recall"] == 0]
    near_majority = report["macro_f1"] <= majority["macro_f1"] + COLLAPSE_MARGIN
    if not never and not near_majority:
        return None
    said = []
    if never:
        said.append("it never predicts " + ", ".join(repr(n) for n in never)
                    + " correctly (recall 0)")
    said.append(f"macro-F1 {report['macro_f1']:.3f} against {majority['macro_f1']:.3f} for "
                f"always answering {majority['label']!r}, whose accuracy would be "
                f"{majority['accuracy']:.3f}")
    hint = "more data of the rare classes" if class_weighted else (
        "--class-weight balanced, or more data of the rare classes")
    return ("warning: the model has collapsed (it mostly answers one class): " + "; ".join(said)
            + f". Try {hint}.")


def format_report(report):
    """The report as a readable table: per-class precision, recall, F1 and support, the
    summary figures, then the confusion matrix (rows: true class, columns: predicted)."""
    names = list(report["per_class"])
    width = max([len(n) for n in names] + [len("macro-F1")])
    lines = [f"{'class':<{width}}  precision  recall     f1  support"]
    for name, c in report["per_class"].items():
        lines.append(f"{name:<{width}}  {c['precision']:9.3f}  {c['recall']:6.3f}  "
                     f"{c['f1']:5.3f}  {c['support']:7d}")
    majority = report["majority_baseline"]
    lines.append(f"accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f} on "
                 f"{report['n']} rows; always answering {majority['label']!r} would score "
                 f"accuracy {majority['accuracy']:.3f}, macro-F1 {majority['macro_f1']:.3f}")
    counts = report["confusion_matrix"]["counts"]
    cell = max([len(str(v)) for row in counts for v in row] + [len(n) for n in names])
    lines.append("confusion matrix (rows: true class, columns: predicted):")
    lines.append(" " * width + "  " + "  ".join(f"{n:>{cell}}" for n in names))
    for name, row in zip(names, counts):
        lines.append(f"{name:<{width}}  " + "  ".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)

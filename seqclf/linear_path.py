"""The linear n-gram path fitted as the convex problem it is: TF-IDF + logistic regression or
NBSVM, whichever inner cross-validation on the training data prefers.

`fit_ngram_linear` reads the token ids the recurrent model reads, builds the binary bag of
unigrams and hashed bigrams that `seqclf.models.NgramLinear(features="binary")` computes in the
graph (`ngram_matrix` is its NumPy twin), fits scikit-learn's `LogisticRegression` on either

* `tfidf`: presence x idf, L2-normalized per text (TF-IDF + logistic regression), or
* `nb`: presence scaled by the naive-Bayes log-count ratio of each class against the rest
  (NBSVM, Wang & Manning 2012; logistic regression instead of the SVM),

each at a few strengths `C`, and keeps the candidate with the best mean accuracy over stratified
folds of the training data (ties: the lower log loss; whole groups per fold where the run has
`--group-column`). The chosen weights go into an
`NgramLinear` layer: the exported model computes the same features from raw strings, no Python.
"""

import time

import numpy as np

from seqclf.models.ngram_linear import HASH_MULTIPLIER, NgramLinear

# Regularization strengths tried per feature kind (logistic regression's C, scikit-learn's
# convention: larger = weaker L2). TF-IDF rows are unit-norm, so they need larger C than the
# unnormalized NB features.
C_GRID = {"tfidf": (3.0, 10.0, 30.0), "nb": (0.3, 1.0, 3.0)}
CV_FOLDS = 3
# Small data: the folds are drawn again (other shuffles), at most this many times, until about
# CV_SCORED_ROWS held-out predictions score each candidate.
MAX_CV_REPEATS = 5
CV_SCORED_ROWS = 3000
# Candidates are compared on at most this many training rows (a seeded stratified sample);
# the chosen one is then fitted on all of them. Keeps the choice cheap on large data.
MAX_CV_ROWS = 20_000
# The recurrent model enters the blend only if its held-out gain over the linear path alone
# exceeds this many standard errors: a one-sided test at about 2.5%, as "never worse than the
# linear model beyond noise" asks (a validation split of 50 texts often shows a useless model a
# few points ahead by chance).
BLEND_GAIN_SE = 2.0
# Naive-Bayes smoothing of the log-count ratios (Wang & Manning's alpha).
NB_ALPHA = 1.0


def ngram_matrix(ids, vocab_size, buckets):
    """Binary `[n, vocab_size + buckets]` CSR matrix of the distinct n-grams of each row of
    right-padded token ids (unigrams keep their id; bigrams of two known tokens are hashed as
    `seqclf.models.ngram_linear.ngram_indices` hashes them). Padding (0) and the unknown word (1)
    are no features, nor are bigrams holding either."""
    import scipy.sparse as sp

    ids = np.asarray(ids, dtype="int64")
    n = ids.shape[0]
    first, second = ids[:, :-1], ids[:, 1:]
    pair = (first > 1) & (second > 1)
    # int64 products wrap as TensorFlow's do; Python's % is floormod, as tf.math.floormod.
    with np.errstate(over="ignore"):
        bigrams = vocab_size + ((first * vocab_size + second) * HASH_MULTIPLIER) % buckets
    index = np.concatenate([ids, bigrams], axis=1)
    mask = np.concatenate([ids > 1, pair], axis=1)
    rows = np.broadcast_to(np.arange(n)[:, None], index.shape)[mask]
    x = sp.csr_matrix((np.ones(int(mask.sum()), "float32"), (rows, index[mask])),
                      shape=(n, vocab_size + buckets))
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def idf_weights(x):
    """Smoothed idf (scikit-learn's `smooth_idf`) of each column of a binary matrix; 0 for a
    column no row has. scikit-learn's vectorizers have no such column: an n-gram first met at
    prediction time must not weigh in a text's L2 norm (largest idf of all, it would shrink the
    text's known n-grams towards nothing and leave the bias to decide)."""
    df = np.asarray(x.sum(axis=0)).ravel()
    idf = np.log((1.0 + x.shape[0]) / (1.0 + df)) + 1.0
    idf[df == 0] = 0.0  # padding, unknown words, n-grams never seen
    return idf.astype("float32")


def _tfidf(x, idf):
    import scipy.sparse as sp

    x = x.multiply(idf).tocsr()
    norm = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    return sp.diags(1.0 / np.maximum(norm, 1e-12)) @ x


def nb_ratios(x, y, num_classes):
    """`[columns, classes]` log-count ratios of each class against the rest; 0 for a column no
    training row has. Only columns seen in training are smoothed and counted in the totals, as
    in a vectorizer fitted on the training texts: the empty hash buckets (most of them on small
    data) would otherwise each add `NB_ALPHA` to both totals and shift every ratio."""
    total = np.asarray(x.sum(axis=0)).ravel()
    seen = total > 0
    out = np.zeros((x.shape[1], num_classes), "float32")
    for k in range(num_classes):
        p = NB_ALPHA + np.asarray(x[y == k].sum(axis=0)).ravel()[seen]
        q = NB_ALPHA + (total[seen] - (p - NB_ALPHA))
        out[seen, k] = np.log(p / p.sum()) - np.log(q / q.sum())
    return out


def _fit_path(kind, cs, x, y, num_classes, idf, seed, row_weights=None):
    """`[(kernel [columns, classes], bias [classes])]`, one per C of `cs` (ascending), on binary
    features `x`, each row weighted by `row_weights` (None: 1). lbfgs and saga fits are
    warm-started from the previous C: a path costs little more than its last fit."""
    from sklearn.linear_model import LogisticRegression

    present = np.unique(y)
    binary = len(present) == 2
    if kind == "tfidf":
        # On unit-norm rows liblinear (binary) and saga (multinomial) converge several times
        # faster than lbfgs to the same optimum; on the unnormalized NB features lbfgs is the
        # faster one (bench/tune_recipe.md, rounds 13 and 14).
        problems = [(None, _tfidf(x, idf), y, "liblinear" if binary else "saga")]
    else:
        ratios = nb_ratios(x, y, num_classes)
        # One-vs-rest on presence scaled by the class's ratios; the ratios fold into the kernel.
        problems = [(k, x.multiply(ratios[:, k]).tocsr(), (y == k).astype("int64"), "lbfgs")
                    for k in (present[1:] if binary else present)]
    models = [LogisticRegression(solver=solver, max_iter=1000, random_state=seed,
                                 warm_start=solver in ("lbfgs", "saga")) for *_, solver in problems]
    out = []
    for c in cs:
        kernel = np.zeros((x.shape[1], num_classes), "float32")
        bias = np.zeros(num_classes, "float32")
        for model, (k, features, target, _) in zip(models, problems):
            model.set_params(C=c).fit(
                features, target,
                sample_weight=row_weights)
            if k is not None:
                kernel[:, k] = model.coef_[0] * ratios[:, k]
                bias[k] = model.intercept_[0]
            elif binary:
                # One decision function d for the larger class: logits [0, d] give sigmoid(d).
                kernel[:, present[1]] = model.coef_[0]
                bias[present[1]] = model.intercept_[0]
            else:
                kernel[:, present] = model.coef_.T
                bias[present] = model.intercept_
        out.append((kernel, bias))
    return out


def linear_logits(x, kind, idf, kernel, bias):
    """The logits `NgramLinear(features="binary")` computes, from the binary matrix `x`."""
    features = _tfidf(x, idf) if kind == "tfidf" else x
    return np.asarray(features @ kernel) + bias


def _log_loss(logits, y, weights=None):
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-np.average(log_p[np.arange(len(y)), y], weights=weights))


def _folds(y, seed, groups=None):
    """Train/test index pairs of the inner cross-validation: `CV_FOLDS` stratified folds (whole
    groups with `groups`), repeated with other shuffles on small data until about
    `CV_SCORED_ROWS` predictions are scored: on a few hundred rows one split of three folds
    ranks the candidates by noise."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    counts = np.bincount(y)
    folds = min(CV_FOLDS, int(counts[counts > 0].min()))
    if groups is not None:
        folds = min(folds, len(np.unique(groups)))
    if folds < 2:
        return None
    repeats = int(np.clip(np.ceil(CV_SCORED_ROWS / len(y)), 1, MAX_CV_REPEATS))
    out = []
    for r in range(repeats):
        if groups is None:
            split = StratifiedKFold(folds, shuffle=True, random_state=seed + r).split(
                np.zeros(len(y)), y)
        else:
            split = StratifiedGroupKFold(folds, shuffle=True, random_state=seed + r).split(
                np.zeros(len(y)), y, groups)
        out.extend(split)
    return out


def choose_candidate(x, y, num_classes, seed=0, groups=None, class_weights=None,
                     sample_weight=None):
    """`(kind, C, scores)`: the candidate with the best inner cross-validated accuracy. With
    `groups` (each row's group name), a fold holds out whole groups, as the run's validation
    split does: rows of one group (a text and its edited copy) never score each other. With
    `class_weights` (by class id) and `sample_weight` (by row), fits and scores weigh each row
    by the product."""
    rng = np.random.default_rng(seed)
    rows = _row_weights(y, class_weights, sample_weight)
    if x.shape[0] > MAX_CV_ROWS:
        pick = np.sort(rng.choice(x.shape[0], MAX_CV_ROWS, replace=False))
        x, y = x[pick], y[pick]
        groups = None if groups is None else groups[pick]
        rows = None if rows is None else rows[pick]
    folds = _folds(y, seed, None if groups is None else np.asarray(groups).astype(str))
    if folds is None:  # a class with one example: nothing to cross-validate on
        return "nb", 1.0, {}
    scores = {}
    for train, test in folds:
        idf = idf_weights(x[train])
        for kind, grid in C_GRID.items():
            path = _fit_path(kind, grid, x[train], y[train], num_classes, idf, seed,
                             None if rows is None else rows[train])
            weights = None if rows is None else rows[test]
            for c, (kernel, bias) in zip(grid, path):
                logits = linear_logits(x[test], kind, idf, kernel, bias)
                acc = float(np.average(logits.argmax(axis=1) == y[test], weights=weights))
                scores.setdefault((kind, c), []).append(
                    (acc, _log_loss(logits, y[test], weights)))
    mean = {k: (float(np.mean([a for a, _ in v])), float(np.mean([loss for _, loss in v])))
            for k, v in scores.items()}
    kind, c = max(mean, key=lambda k: (mean[k][0], -mean[k][1]))
    return kind, c, {f"{k}@{c:g}": round(v[0], 4) for (k, c), v in mean.items()}


def _row_weights(y, class_weights=None, sample_weight=None):
    if class_weights is None and sample_weight is None:
        return None
    rows = np.ones(len(y)) if class_weights is None else np.asarray(class_weights, float)[y]
    return rows if sample_weight is None else rows * np.asarray(sample_weight, float)


def fit_ngram_linear(ids, labels, *, num_classes, vocab_size, buckets, seed=0, candidate=None,
                     groups=None, class_weights=None, sample_weight=None, name="ngram_linear",
                     layer=None):
    """`(layer, record)`: an `NgramLinear(features="binary")` fitted on right-padded token ids
    and class ids, and what was chosen (`kind`, `C`, the inner CV accuracies, seconds).
    `candidate=(kind, C)` skips the choice (a refit of a chosen candidate on more data);
    `groups` keeps each group in one inner fold (`choose_candidate`); `class_weights` (by class
    id) and `sample_weight` (by row) weigh each row's loss and score. `layer`: an existing
    binary `NgramLinear` of these sizes to fit in place (else a new one)."""
    start = time.perf_counter()
    y = np.asarray(labels, dtype="int64")
    x = ngram_matrix(ids, vocab_size, buckets)
    if candidate is None:
        kind, c, scores = choose_candidate(x, y, num_classes, seed=seed, groups=groups,
                                           class_weights=class_weights,
                                           sample_weight=sample_weight)
    else:
        (kind, c), scores = candidate, {}
    idf = idf_weights(x)
    [(kernel, bias)] = _fit_path(kind, [c], x, y, num_classes, idf, seed,
                                 _row_weights(y, class_weights, sample_weight))
    if layer is None:
        layer = NgramLinear(vocab_size, num_classes, buckets=buckets, features="binary",
                            name=name)
        layer.build((None, None))
    # Fixed when the graph is traced: the caller makes its model's functions again.
    layer.normalize = kind == "tfidf"
    layer.idf.assign(idf if kind == "tfidf" else np.ones_like(idf))
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)
    layer.trainable = False
    record = {"kind": kind, "C": c, "cv_accuracy": scores,
              "seconds": round(time.perf_counter() - start, 2)}
    return layer, record


def fit_blend(logits, probabilities, labels, sample_weight=None):
    """`(linear_weight, recurrent_weight, log_loss)` of `seqclf.models.LogitBlend` minimizing the
    log loss of held-out `labels` (each row weighted by `sample_weight`, default 1), each weight
    in [0, 4].

    The recurrent model is taken in only where it clearly helps: the blend's weights are fitted
    on each half of the examples and scored on the other (so the gain is measured on examples
    the weights never saw), and the blend must lower the loss of the linear path alone by more
    than `BLEND_GAIN_SE` standard errors of that gain. Fitted and scored on the same examples, a
    second model always lowers the loss a little, and on a small validation split that little is
    noise.
    Otherwise the linear path serves alone (`recurrent_weight` 0)."""
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    y = np.asarray(labels, dtype="int64")
    row_weights = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
    parts = (np.asarray(logits, "float64"),
             np.log(np.clip(np.asarray(probabilities, "float64"), 1e-7, 1.0)))

    def losses(w, rows):
        # Scaled so that their mean is the weighted mean loss.
        z = w[0] * parts[0][rows] + w[1] * parts[1][rows]
        scale = row_weights[rows] / row_weights[rows].mean()
        return scale * (logsumexp(z, axis=1) - z[np.arange(len(rows)), y[rows]])

    def fit(rows, with_recurrent):
        starts = ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0)) if with_recurrent else ((1.0, 0.0),)
        bounds = [(0.0, 4.0), (0.0, 4.0) if with_recurrent else (0.0, 0.0)]
        best = None
        for start in starts:  # each model alone, and both
            found = minimize(lambda w: float(np.mean(losses(w, rows))), start,
                             method="L-BFGS-B", bounds=bounds)
            if best is None or found.fun < best.fun:
                best = found
        return tuple(round(float(w), 4) for w in best.x)

    everything = np.arange(len(y))
    halves = np.array_split(np.random.default_rng(0).permutation(len(y)), 2)
    gain = np.concatenate([
        losses(fit(other, False), rows) - losses(fit(other, True), rows)
        for rows, other in (halves, halves[::-1]) if len(rows) and len(other)
    ]) if len(y) >= 4 else np.zeros(1)
    standard_error = float(np.std(gain, ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else 0.0
    clear = gain.mean() > BLEND_GAIN_SE * standard_error and gain.mean() > 0
    linear_weight, recurrent_weight = fit(everything, clear)
    return linear_weight, recurrent_weight, float(np.mean(losses((linear_weight,
                                                                   recurrent_weight),
                                                                  everything)))


def token_id_matrix(preprocessor, texts, batch_size=4096):
    """The right-padded token ids of `texts` (`preprocessor`'s), as one `[n, longest]` array."""
    import tensorflow as tf

    texts = np.asarray(texts, dtype=object)
    parts = [preprocessor(tf.constant(texts[i:i + batch_size])).numpy()
             for i in range(0, len(texts), batch_size)]
    width = max([p.shape[1] for p in parts] + [1])
    return np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1]))) for p in parts]
                          or [np.zeros((0, 1), "int64")])


def fit_linear_and_blend(classifier, train, val, *, refit=None, seed=0, batch_size=64):
    """What `linear_stage` and `blend_stage` do for `seqclf train`, in place, for
    `TextClassifier.fit`: fits the linear path that the classifier's `LogitBlend` holds on the
    training texts, then the blend's weights on the validation texts; returns the record.

    `train`, `val` and `refit` are `(texts, label ids, row weights or None)`. The classifier's
    blend must be at weights 0 and 1 (its recurrent model alone) when this is called. `refit`:
    the texts the linear path is fitted on again once the blend is chosen (same features and C,
    the blend weights kept), as `blend_stage` does when the validation texts were held out of
    the user's training data.
    """
    from seqclf.models.logit_blend import find_logit_blend, set_blend_weights

    start = time.perf_counter()
    blend = find_logit_blend(classifier.backbone)
    layer, preprocessor = blend.linear, classifier.preprocessor
    sizes = dict(num_classes=layer.units, vocab_size=layer.vocab_size, buckets=layer.buckets,
                 seed=seed)
    texts, labels, weights = train
    _, record = fit_ngram_linear(token_id_matrix(preprocessor, texts), labels,
                                 sample_weight=weights, layer=layer, **sizes)
    val_texts, y, val_weights = val
    probabilities = classifier.predict(val_texts, batch_size=batch_size, verbose=0)
    figures, _ = held_out_blend(layer, record["kind"], preprocessor, val_texts, y, probabilities,
                                weights=val_weights, accuracy_weights=val_weights)
    if refit is not None:
        texts, labels, weights = refit
        fit_ngram_linear(token_id_matrix(preprocessor, texts), labels, sample_weight=weights,
                         layer=layer, candidate=(record["kind"], record["C"]), **sizes)
    set_blend_weights(classifier, figures["linear_weight"], figures["recurrent_weight"])
    return {**figures, "linear_path": record, "linear_refit_on_validation": refit is not None,
            "seconds": round(time.perf_counter() - start, 2)}


def held_out_blend(layer, kind, preprocessor, texts, labels, probabilities, *, weights=None,
                   accuracy_weights=None):
    """`(figures, blended scores)` of the blend of the fitted linear path `layer` (features
    `kind`) with a recurrent model's `probabilities` of held-out `texts`: the weights fitted by
    `fit_blend` (each row's loss weighted by `weights`), the blend's loss, and the accuracy of
    the blend and of each part alone (weighted by `accuracy_weights`)."""
    y = np.asarray(labels, dtype="int64")
    x = ngram_matrix(token_id_matrix(preprocessor, texts), layer.vocab_size, layer.buckets)
    logits = linear_logits(x, kind, layer.idf.numpy(), layer.kernel.numpy(), layer.bias.numpy())
    linear_weight, recurrent_weight, loss = fit_blend(logits, probabilities, y, weights)
    blended = linear_weight * logits + recurrent_weight * np.log(np.clip(probabilities, 1e-7, 1))

    def accuracy(scores):
        return float(np.average(np.argmax(scores, axis=1) == y, weights=accuracy_weights))

    return {"val_accuracy": accuracy(blended), "val_loss": loss,
            "linear_val_accuracy": accuracy(logits),
            "recurrent_val_accuracy": accuracy(probabilities),
            "linear_weight": linear_weight, "recurrent_weight": recurrent_weight}, blended


def blend_summary(blend):
    """The one line that says what the blend chose (`blend_stage`'s or
    `fit_linear_and_blend`'s record)."""
    return (f"validation accuracy: linear path {blend['linear_val_accuracy']:.4f}, "
            f"recurrent {blend['recurrent_val_accuracy']:.4f}, blended "
            f"{blend['val_accuracy']:.4f} (weights {blend['linear_weight']:g} and "
            f"{blend['recurrent_weight']:g}"
            + (": the recurrent model is left out, it did not lower the validation loss "
               "beyond noise (twice the standard error of the gain)"
               if blend["recurrent_weight"] == 0 else "")
            + ")")

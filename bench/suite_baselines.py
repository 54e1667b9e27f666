"""The linear models a user tries first, as the suite runs them beside seqclf (scikit-learn).

* `tfidf-lr`: TF-IDF word 1-2 grams + logistic regression (C=3).
* `nbsvm`: NBSVM-bigram (Wang & Manning 2012): binarized word 1-2 gram counts scaled by the
  naive-Bayes log-count ratio, then logistic regression (instead of the SVM) with C chosen by
  inner 3-fold cross-validation on the training part; one-vs-rest with each class's own ratios
  on more than two classes.

Both are written from scikit-learn's parts as a user would, independently of
`seqclf.linear_path` (which is what they check).
"""

import time

import numpy as np

NBSVM_C = (0.1, 0.3, 1.0, 3.0, 10.0)


def _scores(name, clf_predict, transform, train_seconds, test_df):
    from seqclf.data.pipeline import shuffle_words

    y = test_df["label"].to_numpy()
    pred = clf_predict(transform(test_df["sentence"]))
    shuffled = clf_predict(transform(shuffle_words(test_df["sentence"].tolist(), seed=0)))
    return {"accuracy": float((pred == y).mean()),
            "shuffled_accuracy": float((shuffled == y).mean()),
            "train_seconds": train_seconds, "predicted": list(pred)}


def run_tfidf(train_df, test_df):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=False)
    x = vec.fit_transform(train_df["sentence"])
    clf = LogisticRegression(C=3.0, max_iter=2000).fit(x, train_df["label"])
    return _scores("tfidf-lr", clf.predict, vec.transform, time.perf_counter() - start, test_df)


class NBSVM:
    """NB-scaled binarized n-grams + logistic regression, one-vs-rest on more than 2 classes."""

    def __init__(self, c=1.0, alpha=1.0):
        self.c, self.alpha = c, alpha

    def fit(self, x, y):
        from sklearn.linear_model import LogisticRegression

        self.classes_ = np.unique(y)
        targets = self.classes_[1:] if len(self.classes_) == 2 else self.classes_
        self.models_ = []
        for k in targets:
            positive = y == k
            p = self.alpha + np.asarray(x[positive].sum(axis=0)).ravel()
            q = self.alpha + np.asarray(x[~positive].sum(axis=0)).ravel()
            r = np.log((p / p.sum()) / (q / q.sum()))
            lr = LogisticRegression(C=self.c, max_iter=2000).fit(x.multiply(r).tocsr(), positive)
            self.models_.append((r, lr))
        return self

    def decision_function(self, x):
        return np.stack([lr.decision_function(x.multiply(r).tocsr()) for r, lr in self.models_],
                        axis=1)

    def predict(self, x):
        d = self.decision_function(x)
        if len(self.classes_) == 2:
            return self.classes_[(d[:, 0] > 0).astype(int)]
        return self.classes_[d.argmax(axis=1)]


def run_nbsvm(train_df, test_df, seed=0):
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.model_selection import StratifiedKFold

    start = time.perf_counter()
    vec = CountVectorizer(ngram_range=(1, 2), binary=True)
    x = vec.fit_transform(train_df["sentence"]).astype("float64")
    y = train_df["label"].to_numpy()
    counts = np.unique(y, return_counts=True)[1]
    folds = StratifiedKFold(min(3, int(counts.min())), shuffle=True, random_state=seed)
    cv = {c: np.mean([(NBSVM(c).fit(x[a], y[a]).predict(x[b]) == y[b]).mean()
                      for a, b in folds.split(x, y)]) for c in NBSVM_C}
    best = max(cv, key=cv.get)
    clf = NBSVM(best).fit(x, y)
    r = _scores("nbsvm", clf.predict, lambda t: vec.transform(t).astype("float64"),
                time.perf_counter() - start, test_df)
    return {**r, "C": best}

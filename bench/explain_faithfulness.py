"""Faithfulness of `seqclf.explain`'s attribution methods, by deletion.

A faithful attribution ranks first the tokens the prediction depends on most: deleting its
top-k tokens should lower the predicted class's probability more than deleting k tokens picked
at random. For each method this trains small models on the embedded word-order data (whose
label is decided by a few words: the sentiment adjectives and the contrast or negation word
around them) and on SST-2 when `../shared/data` has it, explains `N_TEXTS` test texts and
reports:

* `drop@k`: the mean fall of the predicted class's probability when the k highest-weighted
  tokens are deleted (higher is more faithful);
* `top1 decisive` (word-order data only): how often the highest-weighted token is a sentiment
  adjective or a contrast/negation word (`decisive_words`);
* seconds per 100 texts.

`random` ranks the tokens by a seeded random permutation (mean over `RANDOM_SEEDS`). Two models:
a GRU alone (`ngram_buckets=0`), where all three methods apply, and the default model (the
recipe's GRU with the linear n-gram path, blended), which only occlusion explains whole.

Run: `python -m bench.explain_faithfulness` (a few minutes on a CPU). Results:
`bench/explain_faithfulness.md`.
"""

import time

import numpy as np

from bench.harness import SST2_DEV, SST2_TRAIN

CONFIG = "word_order"  # the default config: short sentences, 20,000 training texts
TRAIN_TEXTS = 6_000
EPOCHS = 4
UNITS = 32
N_TEXTS = 300
KS = (1, 2, 3)
RANDOM_SEEDS = 5
SEED = 0
METHODS = ("occlusion", "gradient_x_input", "integrated_gradients")


def decisive_words():
    from seqclf.data import word_order

    markers = {"but", "although", "yet", "not", "just", "never", "always", "expected"}
    return set(word_order.POSITIVE) | set(word_order.NEGATIVE) | markers


def load(train_spec, test_spec):
    from seqclf.data import load_spec

    train = load_spec(train_spec, quiet=True)
    test = load_spec(test_spec, quiet=True)
    rng = np.random.default_rng(SEED)
    pick = rng.permutation(len(train))[:TRAIN_TEXTS]
    few = rng.permutation(len(test))[:N_TEXTS]
    return (list(train.texts[pick]), train.labels[pick], train.label_names,
            list(test.texts[few]), test.labels[few])


def train_model(texts, labels, label_names, **settings):
    from seqclf.models import TextClassifier

    clf = TextClassifier.from_texts(texts, labels, label_names=label_names, model="gru",
                                    units=UNITS, embedding_dim=UNITS, seed=SEED, **settings)
    clf.compile()
    clf.fit(texts, labels, epochs=EPOCHS, batch_size=32, verbose=0)
    return clf


def deletion_drops(clf, explanations, rankings):
    """Mean fall of the predicted class's probability when each text's first-k ranked tokens
    (`rankings[t]`: token positions, most important first) are deleted, for k in `KS`."""
    from seqclf.explain import probabilities, tokenize

    texts = [e.text for e in explanations]
    _, ids = tokenize(clf.preprocessor, texts)
    max_length = clf.preprocessor.max_length
    classes = [clf.label_names.index(e.label) for e in explanations]
    base = np.array([e.probability for e in explanations])
    drops = {}
    for k in KS:
        rows = [[i for j, i in enumerate(row) if j not in set(rank[:k])][:max_length]
                for row, rank in zip(ids, rankings)]
        p = probabilities(clf, rows)[np.arange(len(rows)), classes]
        drops[k] = float(np.mean(base - p))
    return drops


def top1_decisive(explanations, rankings, words):
    if words is None:
        return float("nan")
    hits = [e.tokens[r[0]] in words for e, r in zip(explanations, rankings) if r]
    return float(np.mean(hits))


def measure(clf, texts, method):
    from seqclf.explain import explain_texts

    start = time.perf_counter()
    explanations = explain_texts(clf, texts, method=method)
    seconds = time.perf_counter() - start
    ranked = [list(np.argsort(-np.array(e.weights), kind="stable")) for e in explanations]
    return explanations, ranked, seconds


def rows_for(name, clf, texts, methods, words):
    rows = []
    explanations = None
    for method in methods:
        explanations, ranked, seconds = measure(clf, texts, method)
        rows.append((name, method, deletion_drops(clf, explanations, ranked),
                     top1_decisive(explanations, ranked, words), 100 * seconds / len(texts)))
    drops, hits = {k: [] for k in KS}, []
    for seed in range(RANDOM_SEEDS):
        rng = np.random.default_rng(seed)
        ranked = [list(rng.permutation(len(e.tokens))) for e in explanations]
        for k, v in deletion_drops(clf, explanations, ranked).items():
            drops[k].append(v)
        hits.append(top1_decisive(explanations, ranked, words))
    rows.append((name, "random", {k: float(np.mean(v)) for k, v in drops.items()},
                 float(np.mean(hits)), 0.0))
    return rows


def main():
    datasets = [("word_order", f"{CONFIG}:train", f"{CONFIG}:test", decisive_words())]
    if SST2_TRAIN.is_file():
        # Natural sentences, where no word list says what decides; deletion still measures.
        datasets.append(("sst2", str(SST2_TRAIN), str(SST2_DEV), None))
    table = []
    for data, train_spec, test_spec, words in datasets:
        texts, labels, names, test_texts, test_labels = load(train_spec, test_spec)
        for name, settings, methods in (("gru", {"ngram_buckets": 0}, METHODS),
                                        ("gru+ngram (default)", {}, ("occlusion",))):
            clf = train_model(texts, labels, names, **settings)
            accuracy = float(np.mean(clf.predict(test_texts).argmax(1) == test_labels))
            print(f"{data} {name}: test accuracy {accuracy:.3f} on {len(test_texts)} texts, "
                  f"ngram_buckets={clf.settings.get('ngram_buckets')}")
            table += rows_for(f"{data} {name}", clf, test_texts, methods, words)
    head = ["model", "method", *(f"drop@{k}" for k in KS), "top1 decisive", "s/100 texts"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, method, drops, hits, seconds in table:
        hit = "n/a" if np.isnan(hits) else f"{hits:.2f}"
        cells = [name, method, *(f"{drops[k]:.3f}" for k in KS), hit, f"{seconds:.2f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

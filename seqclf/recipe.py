"""The automatic training recipe: settings chosen from statistics of the training data.

`seqclf train` (`TrainConfig(recipe="auto")`, the default) measures the training split —
number of examples and classes, the smallest class, the token-length distribution, the
vocabulary and how much of it is rare — and `choose` turns those figures into the settings
below. It never looks at a file name, path or dataset identity: two datasets with the same
statistics get the same recipe. Every explicit setting overrides its part of the recipe
(`TrainConfig` fields left at `None` are the recipe's to fill). `recipe="fixed"` fills them with
`FIXED`, the defaults chosen on SST-2 before the recipe existed.

The rules and the measurements behind them are in `bench/tune_recipe.py` (inner splits of the
shared training data only) and `docs/long_text_gradients.md`.
"""

import dataclasses
import math

import numpy as np

from seqclf.errors import SeqclfError
from seqclf.names import RECIPES

# The settings a recipe fills in, with the values of `recipe="fixed"` (the pre-recipe defaults).
FIXED = {
    "epochs": 3,
    "patience": 2,
    "max_length": 256,
    "max_tokens": 20_000,
    "pooling": "last",
    "ngram_buckets": 0,
    "dropout": 0.5,
    "embedding_dropout": 0.25,
    "lr_schedule": "cosine",
    "members": 1,
}
RECIPE_FIELDS = tuple(FIXED)

# Updates a model gets at the least: small training sets take more epochs (early stopping on
# validation ends them when they stop helping) instead of stopping after 3 epochs of 100 steps.
TARGET_STEPS = 1200
MIN_EPOCHS, MAX_EPOCHS = 3, 30
# ... but no more epochs than it takes to read this many tokens (long texts: a step costs ~ its
# padded length). Halved from 3 M once the linear path was blended in: on long reviews it
# carries most of the accuracy, and the recurrent model's later epochs cost more than they
# add (bench/tune_recipe.md, round 13).
TOKEN_BUDGET = 1_500_000
# Texts whose median is at least this many tokens are "long": the gradient from the last state
# reaches their early tokens weakly (docs/long_text_gradients.md), so the recurrent outputs are
# max-pooled.
LONG_TEXT_TOKENS = 50
MAX_LENGTH_CAP = 512
# The vocabulary keeps every training token, within these bounds: the linear n-gram path gains
# from the rare ones (NBSVM and TF-IDF keep them; on MR and CR inner folds, dropping tokens seen
# once cost the linear path 0.7-1 point, bench/tune_recipe.md).
MIN_VOCAB, MAX_VOCAB = 1_000, 50_000
# Epochs without a better validation accuracy before training stops.
PATIENCE = 2


@dataclasses.dataclass
class DataStats:
    """What the recipe reads off the training split."""

    n_train: int
    num_classes: int
    smallest_class: int
    largest_class: int
    length_mean: float
    length_median: float
    length_p95: float
    length_p99: float
    length_max: int
    vocabulary: int
    rare_share: float  # share of the vocabulary seen once
    tokens_seen_twice: int

    def as_dict(self):
        return {k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in dataclasses.asdict(self).items()}


def data_stats(class_counts, lengths, token_counts, n_train=None):
    """`DataStats` from the rows per class, the token lengths and per-token counts of the texts.

    `token_counts[i]` is how often vocabulary token `i` occurs (padding and OOV excluded).
    `lengths` may be a sample (streamed data); `n_train` is then the true number of examples.
    """
    per_class = np.asarray(class_counts, dtype="int64")
    lengths = np.asarray(lengths)
    counts = np.asarray(token_counts)
    counts = counts[counts > 0]
    if len(lengths) == 0:
        raise SeqclfError("The recipe needs at least one training text. Received: 0 texts")
    return DataStats(
        n_train=int(n_train if n_train is not None else len(lengths)),
        num_classes=int(len(per_class)),
        smallest_class=int(per_class.min()) if len(per_class) else 0,
        largest_class=int(per_class.max()) if len(per_class) else 0,
        length_mean=float(np.mean(lengths)),
        length_median=float(np.median(lengths)),
        length_p95=float(np.percentile(lengths, 95)),
        length_p99=float(np.percentile(lengths, 99)),
        length_max=int(lengths.max()),
        vocabulary=int(len(counts)),
        rare_share=float((counts == 1).mean()) if len(counts) else 0.0,
        tokens_seen_twice=int((counts >= 2).sum()),
    )


def _pow2_at_least(x):
    return 1 << max(int(math.ceil(math.log2(max(x, 1)))), 0)


def choose(stats, *, batch_size=32, model="lstm"):
    """The auto recipe: `(settings, reasons)` for `stats`; settings cover `RECIPE_FIELDS`."""
    s, why = {}, []
    steps_per_epoch = max(1, math.ceil(stats.n_train / batch_size))
    tokens_per_epoch = max(1.0, stats.n_train * stats.length_mean)
    epochs = min(math.ceil(TARGET_STEPS / steps_per_epoch),
                 math.ceil(TOKEN_BUDGET / tokens_per_epoch))
    s["epochs"] = int(np.clip(epochs, MIN_EPOCHS, MAX_EPOCHS))
    # The cosine schedule anneals over the planned epochs and the best epoch's weights are
    # kept; training stops once validation accuracy has not improved for PATIENCE epochs
    # (on small data the best epoch comes early and the rest only overfit).
    s["patience"] = min(PATIENCE, s["epochs"])
    why.append(f"{stats.n_train} training examples: up to {s['epochs']} passes over them; "
               f"training stops after {s['patience']} without a better validation score and "
               "keeps the best")

    # Cut nothing the training data shows (batches are padded to their own longest text, so
    # the bound costs only where texts are that long), up to a cap for heavy tails. Test texts
    # may be longer than training ones (SST-2: phrases to train, sentences to score).
    s["max_length"] = int(np.clip(8 * math.ceil(stats.length_max / 8), 8, MAX_LENGTH_CAP))
    long_texts = stats.length_median >= LONG_TEXT_TOKENS
    s["pooling"] = "max" if long_texts else "last"
    why.append(f"texts of {stats.length_median:g} words typically, {stats.length_max} at most: "
               f"read up to {s['max_length']} words"
               + ("; long texts, so the strongest signal anywhere in a text counts "
                  "(--pooling max), not only what reaches its end" if long_texts else ""))

    s["max_tokens"] = int(np.clip(stats.vocabulary + 2, MIN_VOCAB, MAX_VOCAB))
    # What the vectorizer will hold (max_tokens is a bound: a small vocabulary stays whole).
    kept = min(s["max_tokens"], stats.vocabulary + 2)
    why.append(f"vocabulary: {kept} words ({stats.vocabulary} distinct, "
               f"{stats.rare_share:.0%} of them seen once)")

    # The linear bag of n-grams beside the recurrent path; bigram buckets ~ 4x the vocabulary.
    if model == "bow":
        # The order-blind baseline stays order-blind: bigrams would read word order.
        s["ngram_buckets"] = 0
    else:
        s["ngram_buckets"] = int(np.clip(_pow2_at_least(4 * s["max_tokens"]), 2**14, 2**18))
        why.append("a word and word-pair counting model is fitted beside the recurrent one; "
                   "the two are blended as the validation data shows best")

    if stats.smallest_class < 10:
        why.append(f"the smallest of {stats.num_classes} classes has {stats.smallest_class} "
                   "training examples: too few to learn it reliably")
    if stats.largest_class and stats.smallest_class < 0.1 * stats.largest_class:
        why.append(f"imbalanced classes ({stats.smallest_class} vs {stats.largest_class} "
                   "examples): accuracy favours the large ones; see the per-class results at "
                   "the end, and consider --class-weight balanced")

    # One recurrent model: the fitted linear path, blended in, brings what an ensemble of
    # recurrent models brought, at a fraction of the cost (bench/tune_recipe.md, round 13).
    s["members"] = 1

    s["lr_schedule"] = FIXED["lr_schedule"]
    s["dropout"] = FIXED["dropout"]
    s["embedding_dropout"] = FIXED["embedding_dropout"]
    return s, why


def resolve(config_values, recipe, stats):
    """Fills the `None` recipe fields of `config_values` (a dict); returns (values, choices, why).

    `choices` holds what the recipe chose for every recipe field (including those the user
    set, which keep the user's value); `why` is a list of short reasons.
    """
    if recipe not in RECIPES:
        raise SeqclfError(
            f"Unknown recipe. Expected one of: {', '.join(RECIPES)}. Received: recipe={recipe!r}"
        )
    if recipe == "fixed":
        choices, why = dict(FIXED), ["fixed recipe: the pre-recipe defaults"]
    else:
        choices, why = choose(stats, batch_size=config_values.get("batch_size") or 32,
                              model=config_values.get("model", "lstm"))
    values = dict(config_values)
    overridden = []
    for k in RECIPE_FIELDS:
        if values.get(k) is None:
            values[k] = choices[k]
        elif values[k] != choices[k]:
            overridden.append(f"{k}={values[k]!r}")
    if overridden:
        why.append("given explicitly: " + ", ".join(overridden))
    return values, choices, why

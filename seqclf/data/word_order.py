"""`seqclf_word_order`: a generated sentiment dataset that only an order-aware model can solve.

Every example comes with a partner made of **the same multiset of words** and the opposite label:

* contrast: `the plot was dull but the acting was superb` (positive) vs
  `the acting was superb but the plot was dull` (negative) — the clause after "but" decides;
  likewise `although A , B`, `A , yet B`, and `i expected the X to be A , but it was B`;
* negation scope: `the ending was not good , just bad` vs `the ending was not bad , just good`;
* correction: `the cast was superb , not dull` vs `the cast was dull , not superb`;
* `never dull , always gripping` vs `never gripping , always dull`.

Both members of a pair always land in the same split, so a bag-of-words model sees identical
inputs with opposite labels and cannot beat 50% on them. Every sentiment word occurs in training,
but each (positive adjective, negative adjective) combination belongs to one split only, so the
test set holds word combinations never seen in training: a model must learn the rule rather than
memorise sentences.

Configurations set the distance between the deciding cue and the end of the text by appending
neutral filler clauses (`the tickets cost ten dollars`) after the cue: `default` has short
sentences (up to ~10 filler tokens), `distance_N` puts at least N filler tokens after the cue
(`distance_200` texts are 200+ tokens long). The long-range variants feed the vanishing-gradient
demonstration: an RNN must carry the cue across the filler to the final state.

Generation is deterministic given the config's seed and needs no network, so
`tfds.load("seqclf_word_order")` works offline once `seqclf.data` is imported.
"""

import dataclasses
import hashlib

import numpy as np
import tensorflow_datasets as tfds

ASPECTS = (
    "plot acting script soundtrack cinematography dialogue pacing ending cast direction story "
    "score editing humor premise visuals characters finale opening screenplay lead villain "
    "costumes twist sequel"
).split()
POSITIVE = (
    "superb brilliant wonderful excellent great charming gripping delightful moving clever "
    "stunning engaging masterful fresh witty beautiful compelling thrilling solid terrific "
    "enjoyable inventive touching powerful good"
).split()
NEGATIVE = (
    "dull awful boring terrible clumsy tedious weak bland lifeless dreadful flat messy poor bad "
    "predictable shallow forgettable painful sloppy stale lazy incoherent hollow grating mediocre"
).split()
INTENSIFIERS = ("", "", "", "very", "really", "truly", "quite", "rather", "utterly", "remarkably")
COPULAS = ("was", "is", "felt", "seemed")

# Neutral filler: clauses with no sentiment words, negators or contrast markers.
_PEOPLE = ("my friend|my sister|my brother|a neighbour|my cousin|the usher|a stranger|"
           "my father").split("|")
_ACTIONS = (
    "bought the popcorn|found two seats near the aisle|checked the time|parked the car outside|"
    "read the poster in the lobby|asked about the schedule|paid for the tickets|"
    "walked in a little late|sat in the third row|put the phone away"
).split("|")
_TIMES = (
    "on a tuesday|in the evening|after work|before dinner|on the weekend|last month|"
    "in the afternoon|during the holidays|at the late show|in early spring"
).split("|")
_FACTS = (
    "the tickets cost ten dollars|it ran for about two hours|the theater was half full|"
    "there was a trailer before it|the room was cold|we took the bus home afterwards|"
    "the screen was on the second floor|the lights went down at eight|"
    "the credits rolled for a few minutes|the lobby had a new carpet|"
    "the film was shown in the original language|the seats were red"
).split("|")


@dataclasses.dataclass
class WordOrderConfig(tfds.core.BuilderConfig):
    """A configuration of `seqclf_word_order`.

    Attributes:
        distance: minimum number of filler tokens between the deciding cue and the end of the
            text (0: short sentences with up to one filler clause on either side).
        num_train_pairs / num_validation_pairs / num_test_pairs: pairs per split; each pair gives
            two examples.
        seed: generation seed.
    """

    distance: int = 0
    num_train_pairs: int = 10_000
    num_validation_pairs: int = 1_000
    num_test_pairs: int = 2_000
    seed: int = 1234


def _config(distance, train_pairs):
    name = "default" if distance == 0 else f"distance_{distance}"
    what = ("short sentences" if distance == 0
            else f"at least {distance} filler tokens after the cue")
    return WordOrderConfig(
        name=name,
        description=f"Word-order-sensitive sentiment pairs, {what}.",
        distance=distance,
        num_train_pairs=train_pairs,
    )


def _split_of_combo(positive, negative):
    # A stable hash (not Python's salted `hash`) so splits never change between runs.
    h = int(hashlib.sha256(f"{positive}|{negative}".encode()).hexdigest()[:8], 16) % 100
    return "test" if h < 12 else "validation" if h < 22 else "train"


def _clause(rng, aspect, adjective):
    intens = INTENSIFIERS[rng.integers(len(INTENSIFIERS))]
    adj = f"{intens} {adjective}".strip()
    return f"the {aspect} {COPULAS[rng.integers(len(COPULAS))]} {adj}"


def _filler_clause(rng):
    if rng.random() < 0.5:
        return _FACTS[rng.integers(len(_FACTS))]
    who = _PEOPLE[rng.integers(len(_PEOPLE))]
    return f"{who} {_ACTIONS[rng.integers(len(_ACTIONS))]} {_TIMES[rng.integers(len(_TIMES))]}"


def _filler(rng, min_tokens):
    clauses, n = [], 0
    while n < min_tokens:
        clause = _filler_clause(rng)
        clauses.append(clause)
        n += len(clause.split())  # words only: the joining "." is stripped by vectorization
    return clauses


def _pair(rng, template, pos, neg):
    """Returns (text_a, text_b); text_a is positive, text_b negative, same multiset of words."""
    a1, a2 = rng.choice(ASPECTS, size=2, replace=False)
    if template == "but":
        p, n = _clause(rng, a1, pos), _clause(rng, a2, neg)
        return f"{n} but {p}", f"{p} but {n}"
    if template == "although":
        p, n = _clause(rng, a1, pos), _clause(rng, a2, neg)
        return f"although {n} , {p}", f"although {p} , {n}"
    if template == "yet":
        p, n = _clause(rng, a1, pos), _clause(rng, a2, neg)
        return f"{n} , yet {p}", f"{p} , yet {n}"
    if template == "expected":
        return (
            f"i expected the {a1} to be {neg} , but it was {pos}",
            f"i expected the {a1} to be {pos} , but it was {neg}",
        )
    if template == "negation":
        return (
            f"the {a1} was not {neg} , just {pos}",
            f"the {a1} was not {pos} , just {neg}",
        )
    if template == "correction":
        return f"the {a1} was {pos} , not {neg}", f"the {a1} was {neg} , not {pos}"
    if template == "never":
        return f"never {neg} , always {pos}", f"never {pos} , always {neg}"
    raise ValueError(f"Unknown template. Received: template={template!r}")


TEMPLATES = ("but", "although", "yet", "expected", "negation", "correction", "never")


def generate_pairs(split, num_pairs, distance, seed):
    """Yields `(pair_id, template, [(text, label), (text, label)])` for one split.

    Deterministic in (split, num_pairs, distance, seed). Label 1 is positive.
    """
    split_index = ("train", "validation", "test").index(split)
    rng = np.random.default_rng([seed, split_index, distance])
    combos = [(p, n) for p in POSITIVE for n in NEGATIVE if _split_of_combo(p, n) == split]
    for pair_id in range(num_pairs):
        template = TEMPLATES[rng.integers(len(TEMPLATES))]
        pos, neg = combos[rng.integers(len(combos))]
        positive_text, negative_text = _pair(rng, template, pos, neg)
        if distance == 0:
            # Short sentences: up to one neutral clause before and after, so the cue is not
            # always at a fixed position.
            before = _filler(rng, 1) if rng.random() < 0.3 else []
            after = _filler(rng, 1) if rng.random() < 0.3 else []
        else:
            before, after = [], _filler(rng, distance)
        texts = []
        for text in (positive_text, negative_text):
            parts = [*(f"{c} ." for c in before), text, *(f". {c}" for c in after)]
            texts.append(" ".join(parts))
        # Shared filler keeps the two members' word multisets identical.
        order = [(texts[0], 1), (texts[1], 0)]
        if rng.random() < 0.5:
            order.reverse()
        yield pair_id, template, order


class SeqclfWordOrder(tfds.core.GeneratorBasedBuilder):
    """Word-order-sensitive sentiment pairs (see the module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        _config(0, 10_000),
        _config(25, 10_000),
        _config(50, 5_000),
        _config(100, 5_000),
        _config(200, 4_000),
        # A few hundred examples: for tests, smoke runs and a first look.
        WordOrderConfig(
            name="tiny",
            description="A small sample of the default configuration, for tests and smoke runs.",
            num_train_pairs=300,
            num_validation_pairs=50,
            num_test_pairs=100,
        ),
    ]
    DEFAULT_CONFIG_NAME = "default"

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "text": tfds.features.Text(),
                    "label": tfds.features.ClassLabel(names=["negative", "positive"]),
                    "pair_id": np.int64,
                    "template": tfds.features.Text(),
                }
            ),
            supervised_keys=("text", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Generated locally: nothing to download.
        c = self.builder_config
        return {
            "train": self._generate_examples("train", c.num_train_pairs),
            "validation": self._generate_examples("validation", c.num_validation_pairs),
            "test": self._generate_examples("test", c.num_test_pairs),
        }

    def _generate_examples(self, split, num_pairs):
        c = self.builder_config
        for pair_id, template, members in generate_pairs(split, num_pairs, c.distance, c.seed):
            for member, (text, label) in enumerate(members):
                yield f"{pair_id}-{member}", {
                    "text": text,
                    "label": label,
                    "pair_id": pair_id,
                    "template": template,
                }

"""Hochreiter & Schmidhuber's temporal-order task (LSTM paper, 1997, experiment 6a).

Each sequence starts with the marker `E`, ends with the marker `B`, and is otherwise filled with
the distractor symbols `a b c d`, except at two random positions `t1` and `t2` that hold one of
the relevant symbols `X` or `Y`. The class is the ordered pair of relevant symbols:
`XX`, `XY`, `YX`, `YY` (four classes, chance = 0.25). To classify, a model must carry the first
relevant symbol across roughly 80-100 distractors to the end of the sequence.

The original setting (``length=100``): sequence lengths are drawn uniformly from [100, 110],
``t1`` from [10, 20] and ``t2`` from [50, 60] (0-based positions; position 0 holds `E`).
Other lengths scale every range proportionally: lengths in [L, L + L/10],
``t1`` in [L/10, L/5], ``t2`` in [L/2, 3L/5] (rounded, at least 3 tokens apart from each other and
from the markers).

Ids: 0 is reserved for padding (sequences are right-padded with 0, as `mask_zero=True` expects);
the symbols take ids 1..8 in the order of `VOCABULARY`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqclf._checks import check_int, check_positive_int
from seqclf.errors import SeqclfError

DISTRACTORS = ("a", "b", "c", "d")
RELEVANT = ("X", "Y")
START, END = "E", "B"
#: Symbols in id order; id = index + 1 (id 0 is padding).
VOCABULARY: tuple[str, ...] = DISTRACTORS + (START, END) + RELEVANT
LABEL_NAMES: tuple[str, ...] = ("XX", "XY", "YX", "YY")
PAD_ID = 0
#: Vocabulary size including the padding id, as `keras.layers.Embedding(input_dim=...)` needs.
VOCAB_SIZE = len(VOCABULARY) + 1

_ID = {s: i + 1 for i, s in enumerate(VOCABULARY)}


@dataclass(frozen=True)
class TemporalOrderData:
    """A generated split.

    x: int32 [n, max_len] symbol ids, right-padded with 0.
    labels: int32 [n] in 0..3 (index into `label_names`).
    lengths: int32 [n] true lengths (including the `E` and `B` markers).
    t1, t2: int32 [n] positions of the first and second relevant symbol.
    """

    x: np.ndarray
    labels: np.ndarray
    lengths: np.ndarray
    t1: np.ndarray
    t2: np.ndarray
    vocabulary: tuple[str, ...] = VOCABULARY
    label_names: tuple[str, ...] = LABEL_NAMES

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary) + 1

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def texts(self) -> np.ndarray:
        """The sequences as space-separated strings (`"E a c X ... B"`), for text pipelines."""
        out = []
        for row, n in zip(self.x, self.lengths, strict=True):
            out.append(" ".join(VOCABULARY[i - 1] for i in row[:n]))
        return np.asarray(out, dtype=object)


def position_ranges(length: int) -> dict[str, tuple[int, int]]:
    """Inclusive ranges of sequence length, t1 and t2 for the variant with minimum length `length`.

    `length=100` gives the paper's ranges: length [100, 110], t1 [10, 20], t2 [50, 60].
    """
    length = check_int("length", length, 12)
    t1 = (max(1, round(length / 10)), max(2, round(length / 5)))
    t2_lo = max(t1[1] + 3, round(length / 2))
    t2 = (t2_lo, max(t2_lo, round(0.6 * length)))
    if t2[1] > length - 3:
        raise SeqclfError(f"Temporal-order length too short. Received: length={length}")
    return {"length": (length, length + round(length / 10)), "t1": t1, "t2": t2}


def generate(
    n: int,
    *,
    length: int = 100,
    seed: int | None = 0,
    fixed_length: bool = False,
    pad_to: int | None = None,
) -> TemporalOrderData:
    """Generate `n` temporal-order sequences.

    Args:
        n: number of sequences.
        length: minimum sequence length L (the paper's 100); lengths are drawn from
            [L, L + L/10] unless `fixed_length`, and relevant-symbol positions scale with L.
        seed: seed of the NumPy generator; the same seed gives the same data.
        fixed_length: every sequence has exactly `length` tokens (handy for probe batches).
        pad_to: pad the id matrix to this many columns (default: the longest possible length,
            so that splits of one configuration have one shape).

    Labels are drawn uniformly (balanced in expectation) and map to `LABEL_NAMES`:
    0 = XX, 1 = XY, 2 = YX, 3 = YY.
    """
    n = check_positive_int("n", n)
    ranges = position_ranges(length)
    lo, hi = ranges["length"]
    if fixed_length:
        hi = lo
    width = hi if pad_to is None else int(pad_to)
    if width < hi:
        raise SeqclfError(
            f"pad_to must be at least the longest sequence ({hi}). Received: pad_to={pad_to}"
        )
    rng = np.random.default_rng(seed)
    lengths = rng.integers(lo, hi + 1, size=n)
    t1 = rng.integers(ranges["t1"][0], ranges["t1"][1] + 1, size=n)
    t2 = rng.integers(ranges["t2"][0], ranges["t2"][1] + 1, size=n)
    labels = rng.integers(0, 4, size=n)
    first = labels // 2  # 0 = X, 1 = Y
    second = labels % 2
    distractor_ids = np.array([_ID[s] for s in DISTRACTORS])
    x = distractor_ids[rng.integers(0, len(DISTRACTORS), size=(n, width))]
    cols = np.arange(width)[None, :]
    x = np.where(cols < lengths[:, None], x, PAD_ID)
    rows = np.arange(n)
    x[rows, 0] = _ID[START]
    x[rows, lengths - 1] = _ID[END]
    x[rows, t1] = np.where(first == 0, _ID["X"], _ID["Y"])
    x[rows, t2] = np.where(second == 0, _ID["X"], _ID["Y"])
    i32 = np.int32
    return TemporalOrderData(
        x=x.astype(i32),
        labels=labels.astype(i32),
        lengths=lengths.astype(i32),
        t1=t1.astype(i32),
        t2=t2.astype(i32),
    )


def splits(
    n_train: int, n_test: int, *, length: int = 100, seed: int = 0
) -> tuple[TemporalOrderData, TemporalOrderData]:
    """A training and a test split of one configuration, from independent seeds."""
    ss = np.random.SeedSequence(seed)
    a, b = (int(s.generate_state(1)[0]) for s in ss.spawn(2))
    return generate(n_train, length=length, seed=a), generate(n_test, length=length, seed=b)

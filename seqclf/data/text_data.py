"""`TextData`: texts with integer labels and the label names they index."""

import dataclasses

import numpy as np

from seqclf.errors import SeqclfError


@dataclasses.dataclass
class TextData:
    """An in-memory labelled text collection.

    Attributes:
        texts: 1-D object array of Python strings.
        labels: 1-D int64 array; `labels[i]` indexes `label_names`.
        label_names: the class names, in class-id order.
        source: where the data came from (a path or spec), for messages.
        skipped: counts of rows left out while loading, by reason.
        groups: None, or each row's group name (`read_table(group_column=...)`): `split` then
            holds out whole groups.
    """

    texts: np.ndarray
    labels: np.ndarray
    label_names: list
    source: str = ""
    skipped: dict = dataclasses.field(default_factory=dict)
    groups: np.ndarray | None = None

    def __post_init__(self):
        self.texts = np.asarray(self.texts, dtype=object)
        self.labels = np.asarray(self.labels, dtype="int64")
        self.label_names = [str(n) for n in self.label_names]
        if len(self.texts) != len(self.labels):
            raise SeqclfError(
                f"texts and labels differ in length. Received: {len(self.texts)} texts, "
                f"{len(self.labels)} labels"
            )
        if self.groups is not None:
            self.groups = np.asarray(self.groups, dtype=object)
            if len(self.groups) != len(self.texts):
                raise SeqclfError(
                    f"texts and groups differ in length. Received: {len(self.texts)} texts, "
                    f"{len(self.groups)} groups"
                )

    def __len__(self):
        return len(self.texts)

    @property
    def num_classes(self):
        return len(self.label_names)

    def subset(self, index, skipped=None):
        """The rows `index` selects; `skipped` defaults to this data's counts (they describe the
        source, and dropping them would hide rows lost while loading)."""
        skipped = dict(self.skipped if skipped is None else skipped)
        return TextData(self.texts[index], self.labels[index], self.label_names, self.source,
                        skipped, None if self.groups is None else self.groups[index])

    def dataset(self, vectorizer, **kwargs):
        """`make_dataset(self.texts, self.labels, vectorizer, **kwargs)`: the same call as for a
        `seqclf.data.streaming.StreamedTextData`, so training code need not tell them apart."""
        from seqclf.data.pipeline import make_dataset

        return make_dataset(self.texts, self.labels, vectorizer, **kwargs)

    def relabel(self, label_names):
        """Re-expresses the labels in the class order of `label_names` (e.g. a trained model's)."""
        if list(label_names) == self.label_names:
            return self
        mapping = label_mapping(self.source, self.label_names, label_names)
        return TextData(self.texts, mapping[self.labels], label_names, self.source, self.skipped,
                        self.groups)

    def split(self, fraction, seed):
        """Holds out a stratified `fraction` as a second `TextData`: returns (rest, held_out).

        With `groups`, it holds out whole groups instead, about `fraction` of the rows (at least
        one group), and only groups whose classes keep training rows elsewhere: a row never
        validates a model trained on its own group. The rest keeps the source's
        `skipped` counts and the held-out part has none, so adding the two counts rows once.
        """
        rng = np.random.default_rng(seed)
        if self.groups is not None:
            return self._split_groups(fraction, rng)
        held = []
        for c in range(self.num_classes):
            idx = np.flatnonzero(self.labels == c)
            rng.shuffle(idx)
            # At least one row of each class is held out, and at least one stays for training
            # (a class with a single row is trained on and has no validation example).
            held.extend(idx[: min(len(idx) - 1, max(1, round(len(idx) * fraction)))])
        if not held:
            raise SeqclfError(
                f"{self.source}: no row can be held out for validation: every label has one row "
                f"(is the label column an id?); pass validation data or a column of classes. "
                f"Received: {self.num_classes} labels in {len(self)} rows"
            )
        mask = np.zeros(len(self), dtype=bool)
        mask[held] = True
        return self.subset(~mask), self.subset(mask, skipped={})

    def _split_groups(self, fraction, rng):
        names, inverse = np.unique(self.groups.astype(str), return_inverse=True)
        if len(names) < 2:
            raise SeqclfError(
                f"{self.source}: holding out validation data by group needs at least 2 groups "
                f"(or pass validation data). Received: {len(names)} group(s) in {len(self)} rows"
            )
        # Rows of each class in each group. `fraction` is of the rows, as in the row split
        # above, not of the groups: one large group (a batch of a thousand rows among pairs)
        # must not become most of the validation data. Groups are drawn in a seeded order; a
        # group is held out if it fits within the rows still wanted and every class it holds
        # keeps a training row elsewhere. If no group is that small, the smallest one that
        # keeps the classes is held out alone.
        per_group = np.zeros((len(names), self.num_classes), dtype="int64")
        np.add.at(per_group, (inverse, self.labels), 1)
        sizes = per_group.sum(axis=1)
        kept = per_group.sum(axis=0)
        wanted = max(1, round(len(self) * fraction))
        held, held_rows = np.zeros(len(names), dtype=bool), 0

        def keeps_classes(g):
            return np.all((kept > per_group[g]) | (per_group[g] == 0))

        order = rng.permutation(len(names))
        for g in order:
            if held_rows + sizes[g] <= wanted and keeps_classes(g):
                held[g], held_rows = True, held_rows + sizes[g]
                kept -= per_group[g]
                if held_rows == wanted:
                    break
        if not held_rows:
            fallback = [g for g in order[np.argsort(sizes[order], kind="stable")]
                        if keeps_classes(g)]
            if not fallback:
                raise SeqclfError(
                    f"{self.source}: no group can be held out without taking the last training "
                    f"rows of a class; pass validation data instead. Received: {len(names)} groups"
                )
            held[fallback[0]] = True
        mask = held[inverse]
        return self.subset(~mask), self.subset(mask, skipped={})


def label_mapping(source, names, label_names):
    """Class ids in `label_names` of each of `names`; names missing there are an error."""
    label_names = [str(n) for n in label_names]
    missing = sorted(set(names) - set(label_names))
    if missing:
        raise SeqclfError(
            f"{source}: labels unknown to the model. Expected labels among {label_names}. "
            f"Received: {missing}"
        )
    return np.array([label_names.index(n) for n in names], dtype="int64")

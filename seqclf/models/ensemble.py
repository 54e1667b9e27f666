"""An ensemble backbone: several trained classifiers whose probabilities are averaged."""

import keras

from seqclf.errors import SeqclfError


def average_backbones(backbones, name="ensemble"):
    """One `keras.Model` (token ids in, probabilities out) averaging `backbones`' probabilities.

    The members keep their weights and layers (each is a nested model named `member_<k>`), so
    the ensemble saves, loads and exports as any backbone does, and serves from raw strings
    behind the same preprocessor. All members must read the same token ids (one vocabulary) and
    predict the same classes.
    """
    backbones = list(backbones)
    if len(backbones) < 2:
        raise SeqclfError(
            f"An ensemble needs at least 2 members. Received: {len(backbones)} backbone(s)"
        )
    shapes = {tuple(b.outputs[0].shape[1:]) for b in backbones}
    if len(shapes) != 1:
        raise SeqclfError(
            "Ensemble members must predict the same classes. "
            f"Received: output shapes {sorted(shapes)}"
        )
    inputs = keras.Input(shape=(None,), dtype="int64", name="token_ids")
    outputs = []
    for k, member in enumerate(backbones):
        # Nested models need distinct names within the ensemble; weights are untouched.
        member.name = f"member_{k}"
        outputs.append(member(inputs))
    averaged = keras.layers.Average(name="average_probabilities")(outputs)
    return keras.Model(inputs, averaged, name=name)

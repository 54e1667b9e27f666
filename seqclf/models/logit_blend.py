"""`LogitBlend`: a linear model's logits and a recurrent model's probabilities, blended."""

import keras

from seqclf.errors import SeqclfError


@keras.saving.register_keras_serializable(package="seqclf")
class LogitBlend(keras.layers.Layer):
    """`softmax(linear_weight * logits + recurrent_weight * log(probabilities))`.

    A product of experts of the linear n-gram path (its logits) and the recurrent backbone (its
    probabilities), each raised to a weight chosen on held-out data
    (`seqclf.linear_path.fit_blend`): a weight of 0 leaves that model out, so the blend can
    always fall back to either one alone.

    Args:
        linear_weight: the linear path's weight (>= 0).
        recurrent_weight: the recurrent model's weight (>= 0).
    """

    def __init__(self, linear_weight=1.0, recurrent_weight=1.0, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("linear_weight", linear_weight),
                           ("recurrent_weight", recurrent_weight)):
            if not float(value) >= 0.0:
                raise SeqclfError(f"`{arg}` must be a number >= 0. Received: {arg}={value!r}")
        self.linear_weight = float(linear_weight)
        self.recurrent_weight = float(recurrent_weight)

    def call(self, inputs):
        logits, probabilities = inputs
        # Clipped: a probability of exactly 0 would make the log -inf.
        log_p = keras.ops.log(keras.ops.clip(probabilities, 1e-7, 1.0))
        return keras.ops.softmax(self.linear_weight * logits + self.recurrent_weight * log_p)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(linear_weight=self.linear_weight, recurrent_weight=self.recurrent_weight)
        return config


def blend_backbones(linear, recurrent, linear_weight, recurrent_weight, name="blend"):
    """One backbone (token ids in, probabilities out) blending an `NgramLinear` layer and a
    recurrent backbone as `LogitBlend` says. With `recurrent_weight=0` the recurrent model is
    left out of the graph altogether (it would cost serving time for nothing)."""
    inputs = keras.Input(shape=(None,), dtype="int64", name="token_ids")
    logits = linear(inputs)
    if recurrent_weight == 0:
        scaled = keras.layers.Rescaling(linear_weight, name="linear_weight")(logits)
        outputs = keras.layers.Activation("softmax", name="probabilities")(scaled)
        return keras.Model(inputs, outputs, name="linear")
    recurrent.name = "recurrent"  # nested models need names distinct from the layers here
    outputs = LogitBlend(linear_weight, recurrent_weight, name="logit_blend")(
        [logits, recurrent(inputs)]
    )
    return keras.Model(inputs, outputs, name=name)

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

    Called on `[logits, probabilities]`; or, when it holds the linear path itself (`linear`),
    on `[token_ids, probabilities]`. Holding it lets `TextClassifier.fit` train the recurrent
    model alone (weights 0 and 1) without computing the linear path at every step, then fit the
    path and the weights in place (`seqclf.linear_path.fit_linear_and_blend`).

    Args:
        linear_weight: the linear path's weight (>= 0).
        recurrent_weight: the recurrent model's weight (>= 0).
        linear: an `NgramLinear` layer to apply to the token ids, or None (logits given).
    """

    def __init__(self, linear_weight=1.0, recurrent_weight=1.0, linear=None, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("linear_weight", linear_weight),
                           ("recurrent_weight", recurrent_weight)):
            if not float(value) >= 0.0:
                raise SeqclfError(f"`{arg}` must be a number >= 0. Received: {arg}={value!r}")
        self.linear_weight = float(linear_weight)
        self.recurrent_weight = float(recurrent_weight)
        if isinstance(linear, dict):
            linear = keras.saving.deserialize_keras_object(linear)
        self.linear = linear

    def build(self, input_shape):
        if self.linear is not None and not self.linear.built:
            self.linear.build(input_shape[0])

    def call(self, inputs):
        first, probabilities = inputs
        # The weights are fixed when the graph is traced (the model's functions are made again
        # when they change): a part with weight 0 is left out of the graph.
        if self.linear_weight == 0.0 and self.recurrent_weight == 1.0:
            return keras.ops.copy(probabilities)
        logits = first if self.linear is None else self.linear(first)
        if self.recurrent_weight == 0.0:
            return keras.ops.softmax(self.linear_weight * logits)
        # Clipped: a probability of exactly 0 would make the log -inf.
        log_p = keras.ops.log(keras.ops.clip(probabilities, 1e-7, 1.0))
        return keras.ops.softmax(self.linear_weight * logits + self.recurrent_weight * log_p)

    def compute_output_shape(self, input_shape):
        return input_shape[1]

    def get_config(self):
        config = super().get_config()
        config.update(linear_weight=self.linear_weight, recurrent_weight=self.recurrent_weight)
        if self.linear is not None:
            config["linear"] = keras.saving.serialize_keras_object(self.linear)
        return config


def with_linear_path(recurrent, linear):
    """The recurrent backbone (token ids in, probabilities out) with the linear path `linear`
    (an `NgramLinear`, not trained by gradient descent) beside it, blended at weights 0 and 1:
    the recurrent model alone until `seqclf.linear_path.fit_linear_and_blend` fits the path and
    the weights. One flat graph: the recurrent model's layers stay the model's own layers."""
    linear.trainable = False
    outputs = LogitBlend(0.0, 1.0, linear=linear, name="logit_blend")(
        [recurrent.input, recurrent.output])
    return keras.Model(recurrent.input, outputs, name=recurrent.name)


def find_logit_blend(model):
    """The `LogitBlend` of `model` that holds its linear path, or None."""
    for layer in model.layers:
        if isinstance(layer, LogitBlend) and layer.linear is not None:
            return layer
    return None


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


def set_blend_weights(model, linear_weight, recurrent_weight):
    """Sets the weights of `model`'s linear-path `LogitBlend` (`find_logit_blend`) and makes
    Keras trace the train, test and predict functions of the model (and of its `backbone`)
    again: the old ones have the old weights fixed in them."""
    blend = find_logit_blend(model)
    blend.linear_weight, blend.recurrent_weight = float(linear_weight), float(recurrent_weight)
    for traced in (model, getattr(model, "backbone", None)):
        if traced is not None:
            traced.train_function = traced.test_function = traced.predict_function = None

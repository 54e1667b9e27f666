"""`MaskedGlobalMaxPooling1D`: max over time that ignores padded steps."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seqclf")
class MaskedGlobalMaxPooling1D(keras.layers.Layer):
    """Max over the time axis of `[batch, time, features]`, skipping masked (padding) steps.

    Keras' `GlobalMaxPooling1D` ignores the mask, and a masked recurrent layer emits zeros at
    padded steps, so a feature that is negative at every real step would be read as 0. Here masked
    steps are replaced by the dtype's lowest value before the max. A sequence must have at least
    one unmasked step (seqclf's pipeline guarantees it: an empty text becomes one OOV token).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is not None:
            lowest = ops.convert_to_tensor(float("-inf"), dtype=inputs.dtype)
            inputs = ops.where(ops.expand_dims(ops.cast(mask, "bool"), -1), inputs, lowest)
        return ops.max(inputs, axis=1)

    def compute_mask(self, inputs, mask=None):
        # The time axis is gone, and with it the mask.
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

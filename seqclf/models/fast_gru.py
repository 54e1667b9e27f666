"""`FastGRU`: `keras.layers.GRU` with the input projection done once per sequence on CPU."""

import keras
import tensorflow as tf

from seqclf.models import _fast_recurrence as fast


@keras.saving.register_keras_serializable(package="seqclf")
class FastGRU(keras.layers.GRU):
    """`keras.layers.GRU`, same arguments, variables and config, faster on CPU.

    As `seqclf.models.FastLSTM`; the fast path needs `reset_after=True` (Keras' default), tanh
    and sigmoid, and falls back to the stock layer otherwise.
    """

    def call(self, sequences, initial_state=None, mask=None, training=False):
        cell = self.cell
        activations_ok = (cell.reset_after and fast.is_activation(cell.activation, "tanh")
                          and fast.is_activation(cell.recurrent_activation, "sigmoid"))
        if (initial_state is not None or self.return_state
                or not fast.fast_path_applies(self, training, activations_ok)):
            return super().call(sequences, initial_state=initial_state, mask=mask,
                                training=training)
        if cell.bias is None:
            input_bias = None
            recurrent_bias = tf.zeros([3 * cell.units], self.compute_dtype)
        else:
            input_bias, recurrent_bias = tf.unstack(cell.bias.value)
        return fast.fast_call(self, fast.GRUMath, sequences, mask, training, input_bias,
                              [cell.recurrent_kernel.value, recurrent_bias], 1)

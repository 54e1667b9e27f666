"""`FastLSTM`: `keras.layers.LSTM` with the input projection done once per sequence on CPU."""

import keras
import tensorflow as tf

from seqclf.models import _fast_recurrence as fast


@keras.saving.register_keras_serializable(package="seqclf")
class FastLSTM(keras.layers.LSTM):
    """`keras.layers.LSTM`, same arguments, variables and config, faster on CPU.

    On CPU, `call` multiplies every step's input by the kernel in one matmul before the time
    loop and runs a loop with a written-out backward pass (`seqclf.models._fast_recurrence`).
    With a GPU visible (cuDNN), dropout inside the recurrence while training, an initial state,
    `return_state`, or `SEQCLF_STOCK_RNN=1`, it is the stock layer. Weights load either way:
    `keras.layers.LSTM.from_config(fast.get_config())` builds the same variables.
    """

    def call(self, sequences, initial_state=None, mask=None, training=False):
        cell = self.cell
        activations_ok = (fast.is_activation(cell.activation, "tanh")
                          and fast.is_activation(cell.recurrent_activation, "sigmoid"))
        if (initial_state is not None or self.return_state
                or not fast.fast_path_applies(self, training, activations_ok)):
            return super().call(sequences, initial_state=initial_state, mask=mask,
                                training=training)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if mask is None:
            return fast.block_lstm(self, sequences, None)

        def loop():
            bias = None if cell.bias is None else cell.bias.value
            return fast.fast_call(self, fast.LSTMMath, sequences, mask, training, bias,
                                  [cell.recurrent_kernel.value], 2)

        # seqclf's masks are right-padded; any other mask takes the loop (same result).
        return tf.cond(fast.right_padded(mask), lambda: fast.block_lstm(self, sequences, mask),
                       loop)

"""`FastSimpleRNN`: `keras.layers.SimpleRNN` with the input projection done once on CPU."""

import keras

from seqclf.models import _fast_recurrence as fast


@keras.saving.register_keras_serializable(package="seqclf")
class FastSimpleRNN(keras.layers.SimpleRNN):
    """`keras.layers.SimpleRNN`, same arguments, variables and config, faster on CPU.

    As `seqclf.models.FastLSTM`; the fast path needs the tanh activation (Keras' default) and
    falls back to the stock layer otherwise.
    """

    def call(self, sequences, initial_state=None, mask=None, training=False):
        cell = self.cell
        activations_ok = fast.is_activation(cell.activation, "tanh")
        if (initial_state is not None or self.return_state
                or not fast.fast_path_applies(self, training, activations_ok)):
            return super().call(sequences, initial_state=initial_state, mask=mask,
                                training=training)
        bias = None if cell.bias is None else cell.bias.value
        return fast.fast_call(self, fast.SimpleRNNMath, sequences, mask, training, bias,
                              [cell.recurrent_kernel.value], 1)

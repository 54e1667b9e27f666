"""`PaddedIds`: ragged token ids → the padded int64 ids a classifier reads."""

import keras

from seqclf._checks import check_positive_int
from seqclf.data.pipeline import pad_ids


@keras.saving.register_keras_serializable(package="seqclf")
class PaddedIds(keras.layers.Layer):
    """Cuts each row of ragged token ids to `max_length`, then pads the batch to its longest row.

    The step between a ragged `TextVectorization` (`seqclf.data.pipeline.ragged_twin`) and a
    classifier (`seqclf.data.pipeline.pad_ids`): cutting first keeps the memory of a batch holding
    one enormous text proportional to its tokens, and a text without tokens becomes one OOV id.
    `seqclf.models.TextPreprocessor` now holds the vocabulary and this step in one layer; this
    one stays registered so that end-to-end `.keras` files saved before it still load.

    Args:
        max_length: the most token ids kept per text.
    """

    def __init__(self, max_length, **kwargs):
        super().__init__(**kwargs)
        self.max_length = check_positive_int("max_length", max_length)

    def call(self, inputs):
        return pad_ids(inputs, self.max_length)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((inputs.shape[0], None), dtype="int64")

    def get_config(self):
        config = super().get_config()
        config.update(max_length=self.max_length)
        return config

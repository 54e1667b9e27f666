"""Data: the embedded word-order dataset, local files, TFDS datasets, and the tf.data pipeline."""

from seqclf.data.files import read_table
from seqclf.data.pipeline import (
    bucket_boundaries,
    make_dataset,
    make_vectorizer,
    shuffle_words,
    token_lengths,
)
from seqclf.data.sources import WORD_ORDER_TFDS_NAME, load_spec, parse_spec
from seqclf.data.streaming import StreamedTextData, open_stream
from seqclf.data.text_data import TextData
from seqclf.data.word_order import SeqclfWordOrder, WordOrderConfig

__all__ = [
    "WORD_ORDER_TFDS_NAME",
    "SeqclfWordOrder",
    "StreamedTextData",
    "TextData",
    "WordOrderConfig",
    "bucket_boundaries",
    "load_spec",
    "make_dataset",
    "make_vectorizer",
    "open_stream",
    "parse_spec",
    "read_table",
    "shuffle_words",
    "token_lengths",
]

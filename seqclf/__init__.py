"""seqclf: recurrent sequence classifiers with Keras 3 on TensorFlow.

The public API, importable from the top level. Every name is loaded on first use (one lazy
table, `_EXPORTS`), so `import seqclf` and the CLI's `--help` stay fast:

* the task: `TextClassifier` (fit / evaluate / predict on raw strings), `TextPreprocessor`
* data: `load_spec`, `read_table`, `make_vectorizer`, `make_dataset`, `TextData`
* models: `build_classifier`, `compile_classifier`, `make_optimizer`, `LazyAdam`
* gradients: `GradientStats`, `timestep_gradient_norms`
* runs: `TrainConfig`, `train`, `evaluate`, `predict` (`TextClassifier.from_run` loads a run)
* serving: `export_saved_model`, `export_run`
* errors: `SeqclfError`

`import seqclf` imports no TensorFlow. It makes two things happen when TensorFlow and Keras are
imported later, by whatever code: the quiet start-up of the command line (`seqclf._startup`:
no TensorFlow C++ start-up lines; `SEQCLF_VERBOSE=1` keeps them), and Keras' registry learns
seqclf's saved classes (`seqclf._registry`), so that `keras.saving.load_model` reads a saved
`TextClassifier` after `import seqclf` alone.

Internals stay importable from their modules: `seqclf.callbacks.RunBackup`,
`seqclf.data.SeqclfWordOrder` (the TFDS builder), `seqclf.data.parse_spec`,
`seqclf.data.bucket_boundaries`.
"""

import importlib

from seqclf._registry import register_stand_ins
from seqclf._startup import install_import_hook

__version__ = "0.1.0"

_EXPORTS = {
    "TextClassifier": "seqclf.models",
    "TextPreprocessor": "seqclf.models",
    "load_spec": "seqclf.data",
    "read_table": "seqclf.data",
    "make_vectorizer": "seqclf.data",
    "make_dataset": "seqclf.data",
    "TextData": "seqclf.data",
    "build_classifier": "seqclf.models",
    "compile_classifier": "seqclf.models",
    "make_optimizer": "seqclf.optimizers",
    "LazyAdam": "seqclf.lazy_adam",
    "GradientStats": "seqclf.callbacks",
    "timestep_gradient_norms": "seqclf.callbacks",
    "TrainConfig": "seqclf.run",
    "train": "seqclf.run",
    "evaluate": "seqclf.run",
    "predict": "seqclf.run",
    "export_saved_model": "seqclf.serving",
    "export_run": "seqclf.serving",
    "SeqclfError": "seqclf.errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

install_import_hook(register_stand_ins)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'seqclf' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_EXPORTS})

"""seqclf: recurrent sequence classifiers with Keras 3 on TensorFlow.

The public API, importable from the top level (loaded on first use, so `import seqclf` and the
CLI's `--help` stay fast):

* data: `load_spec`, `read_table`, `make_vectorizer`, `make_dataset`, `TextData`, `SeqclfWordOrder`
* models: `build_classifier`, `compile_classifier`, `build_end_to_end`, `make_optimizer`
* gradients: `GradientStats`, `timestep_gradient_norms`
* runs: `TrainConfig`, `train`, `evaluate`, `predict`, `load_run`, `RunBackup` (crash and resume)
* serving: `export_saved_model`, `export_run`
"""

import importlib

from seqclf.errors import SeqclfError

__version__ = "0.1.0"

_EXPORTS = {
    "load_spec": "seqclf.data",
    "read_table": "seqclf.data",
    "make_vectorizer": "seqclf.data",
    "make_dataset": "seqclf.data",
    "TextData": "seqclf.data",
    "SeqclfWordOrder": "seqclf.data",
    "build_classifier": "seqclf.models",
    "compile_classifier": "seqclf.models",
    "build_end_to_end": "seqclf.models",
    "make_optimizer": "seqclf.optimizers",
    "LazyAdam": "seqclf.lazy_adam",
    "GradientStats": "seqclf.callbacks",
    "timestep_gradient_norms": "seqclf.callbacks",
    "RunBackup": "seqclf.callbacks",
    "TrainConfig": "seqclf.run",
    "train": "seqclf.run",
    "evaluate": "seqclf.run",
    "predict": "seqclf.run",
    "load_run": "seqclf.run",
    "export_saved_model": "seqclf.serving",
    "export_run": "seqclf.serving",
}

__all__ = ["SeqclfError", "__version__", *sorted(_EXPORTS)]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'seqclf' has no attribute {name!r}")

"""TensorFlow Serving support: SavedModel export, a C API loader harness, REST and gRPC clients.

Submodules (imported on first use, so `import seqclf.serving` stays cheap):

* `seqclf.serving.export`: `export_saved_model`, `validate_export`, `write_models_config`.
* `seqclf.serving.run_export`: `export_run` (a run directory, through `TextClassifier`).
* `seqclf.serving.capi`: `CApiHarness` (TF C API in a fresh process).
* `seqclf.serving.inspection`: reading an export back: `read_signatures`, `audit_ops`,
  `read_warmup_requests`.
* `seqclf.serving.client`: `RestClient`, `GrpcClient`, `predict_texts`, `ServingError`.
"""

import importlib

_EXPORTS = {
    "export_saved_model": "export",
    "export_run": "run_export",
    "validate_export": "export",
    "write_models_config": "export",
    "CApiHarness": "capi",
    "CApiError": "capi",
    "audit_ops": "inspection",
    "RestClient": "client",
    "GrpcClient": "client",
    "ServingError": "client",
    "predict_texts": "client",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    # Lazy: the export pulls in TensorFlow/Keras, the clients only what they use.
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"seqclf.serving.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'seqclf.serving' has no attribute {name!r}")

"""What an export holds, read back: its signatures, its ops (audited for a CPU TF Serving) and its
warmup requests, plus the names of the files that hold them.

Both `seqclf.serving.export` (which validates what it wrote) and `seqclf.serving.capi` (which
replays the warmup requests through the C API) use this module; it imports neither of them.
"""

from __future__ import annotations

import os

from seqclf import _compat
from seqclf.errors import SeqclfError

__all__ = [
    "FORBIDDEN_OPS",
    "FORBIDDEN_OP_PREFIXES",
    "WARMUP_FILE",
    "audit_ops",
    "list_ops",
    "read_signatures",
    "read_warmup_requests",
]

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# Ops that must never reach a serving graph: cuDNN kernels only exist on GPU builds, and py_func
# ops call back into the Python interpreter that exported the model.
FORBIDDEN_OP_PREFIXES = ("CudnnRNN",)
FORBIDDEN_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})


def read_signatures(export_dir, tags=("serve",)):
    """Signatures of the meta graph with `tags` in `export_dir/saved_model.pb`, decoded with the
    same code the worker uses: {key: {"method_name", "inputs", "outputs"}}."""
    from seqclf.serving.capi_worker import parse_signatures, read_fields

    path = os.path.join(export_dir, "saved_model.pb")
    if not os.path.exists(path):
        raise SeqclfError(
            f"No saved_model.pb in the export directory. Received: export_dir={export_dir!r}"
        )
    with open(path, "rb") as f:
        data = f.read()
    for field, meta_graph in read_fields(memoryview(data)):
        if field != 2:  # SavedModel.meta_graphs
            continue
        meta_tags = set()
        for f_, v in read_fields(meta_graph):
            if f_ == 1:  # meta_info_def
                meta_tags |= {bytes(t).decode() for tf_, t in read_fields(v) if tf_ == 4}
        if meta_tags == set(tags):
            return parse_signatures(bytes(meta_graph))
    raise SeqclfError(f"No meta graph with these tags in the export. Received: tags={list(tags)}")


def list_ops(export_dir):
    """Sorted op type names used by the export's graph and its function library."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    ops = set()
    for meta_graph in saved_model.meta_graphs:
        ops |= {node.op for node in meta_graph.graph_def.node}
        for function in meta_graph.graph_def.library.function:
            ops |= {node.op for node in function.node_def}
    # Calls of library functions appear as op types named after the function: not real ops.
    functions = {
        fn.signature.name
        for meta_graph in saved_model.meta_graphs
        for fn in meta_graph.graph_def.library.function
    }
    return sorted(ops - functions)


def audit_ops(export_dir):
    """Audit the ops of an export for a CPU TF Serving.

    Returns `{"ops": [...], "problems": [...]}`; a problem is an op not registered in core
    TensorFlow (e.g. from a custom op library) or a forbidden one (`CudnnRNN*` GPU-only kernels,
    `PyFunc`/`EagerPyFunc` Python callbacks).
    """
    ops = list_ops(export_dir)
    problems = []
    for op in ops:
        if op in FORBIDDEN_OPS or op.startswith(FORBIDDEN_OP_PREFIXES):
            problems.append(f"{op}: forbidden in a CPU serving graph")
        elif not _compat.is_core_op(op):
            problems.append(f"{op}: not registered in core TensorFlow")
    return {"ops": ops, "problems": problems}


def read_warmup_requests(export_dir):
    """The `PredictionLog` protos stored in an export's warmup file."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(export_dir, WARMUP_FILE)
    logs = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        logs.append(prediction_log_pb2.PredictionLog.FromString(record))
    return logs

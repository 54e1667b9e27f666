"""Serve an export through TensorFlow's C API, in a fresh process, the way TF Serving loads it.

`CApiHarness` starts `capi_worker.py` as a plain script (`python -I -S`: no site-packages, so no
seqclf and no TensorFlow Python package), which `ctypes`-loads `libtensorflow_cc.so.2` from the
installed tensorflow package, calls `TF_LoadSessionFromSavedModel` (the C++ SavedModel loader
that TF Serving also uses), resolves signature tensor names from the returned MetaGraphDef and
runs `TF_SessionRun`. Requests and replies are JSON lines over the worker's stdin/stdout.

Reading an export's signatures, ops and warmup requests is in `seqclf.serving.inspection`.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading

import numpy as np

from seqclf.errors import SeqclfError
from seqclf.serving.inspection import read_warmup_requests

WORKER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "capi_worker.py")

# TF_Code values (tensorflow/c/tf_status.h) by name, for readable errors.
TF_CODES = {
    0: "OK",
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}


class CApiError(RuntimeError):
    """A TF_Status error (or a worker failure) from the C API harness.

    Attributes:
        code: the TF_Code number (e.g. 3 for INVALID_ARGUMENT).
        code_name: its name.
    """

    def __init__(self, message, code=2):
        self.code = int(code)
        self.code_name = TF_CODES.get(self.code, str(code))
        super().__init__(f"{self.code_name}: {message}")
        self.message = message


def tensorflow_lib_dir():
    """The installed tensorflow package directory (holds libtensorflow_cc.so.2), found without
    importing tensorflow."""
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise SeqclfError("The tensorflow package is not installed. Received: tensorflow=None")
    for location in spec.submodule_search_locations:
        if os.path.exists(os.path.join(location, "libtensorflow_cc.so.2")):
            return location
    raise SeqclfError(
        "libtensorflow_cc.so.2 was not found in the tensorflow package. "
        f"Received: locations={list(spec.submodule_search_locations)}"
    )


def _encode_tensor(value, dtype=None):
    """A numpy-convertible value -> the worker's JSON tensor."""
    arr = np.asarray(value, dtype=object if dtype == "string" else None)
    kind = dtype
    if kind is None:
        if arr.dtype.kind in "USO":
            kind = "string"
        elif arr.dtype == np.float64:
            kind = "double"
        elif arr.dtype.kind == "f":
            kind = "float"
        elif arr.dtype == np.int32:
            kind = "int32"
        elif arr.dtype.kind in "iu":
            kind = "int64"
        elif arr.dtype.kind == "b":
            kind = "bool"
        else:
            raise SeqclfError(f"Unsupported input dtype. Received: dtype={arr.dtype}")
    flat = arr.reshape(-1).tolist()
    if kind == "string":
        flat = [
            base64.b64encode(v.encode("utf-8") if isinstance(v, str) else bytes(v)).decode("ascii")
            for v in flat
        ]
    return {"dtype": kind, "shape": list(arr.shape), "values": flat}


def _decode_tensor(t):
    shape = tuple(t["shape"])
    if t["dtype"] == "string":
        arr = np.empty(len(t["values"]), dtype=object)
        arr[:] = [base64.b64decode(v) for v in t["values"]]
        return arr.reshape(shape)
    np_dtype = {
        "float": np.float32,
        "double": np.float64,
        "int32": np.int32,
        "int64": np.int64,
        "bool": np.bool_,
    }[t["dtype"]]
    return np.asarray(t["values"], dtype=np_dtype).reshape(shape)


class CApiHarness:
    """A worker process serving one SavedModel through the TensorFlow C API.

    Thread-safe (one request at a time). Use as a context manager, or call `close()`.

    Args:
        timeout: seconds to wait for any single reply (the first one includes loading the
            ~1 GB TensorFlow library).
        env: extra environment variables for the worker.
    """

    def __init__(self, timeout=300.0, env=None):
        self.timeout = timeout
        self._lock = threading.Lock()
        self._stderr = tempfile.TemporaryFile()
        worker_env = dict(os.environ)
        worker_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        worker_env.update(env or {})
        # -I -S: no user site, no site-packages: the worker cannot import seqclf or tensorflow.
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", WORKER_PATH, tensorflow_lib_dir()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=worker_env,
            text=True,
            bufsize=1,
        )
        self._replies = queue.Queue()
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        hello = self._receive()
        self.tf_version = hello.get("version")
        self.signatures = {}
        self.export_dir = None

    @property
    def pid(self):
        return self._proc.pid

    @property
    def worker_args(self):
        """The serving worker's command line (`python -I -S worker.py LIBDIR`)."""
        return list(self._proc.args)

    def _read_loop(self):
        for line in self._proc.stdout:
            self._replies.put(line)
        self._replies.put(None)

    def _stderr_tail(self, n=2000):
        try:
            self._stderr.seek(0)
            return self._stderr.read().decode("utf-8", "replace")[-n:]
        except (OSError, ValueError):
            return ""

    def _receive(self):
        try:
            line = self._replies.get(timeout=self.timeout)
        except queue.Empty:
            self._kill()
            raise CApiError(f"the C API worker did not answer within {self.timeout} s", 4) from None
        if line is None:
            code = self._proc.wait()
            raise CApiError(
                f"the C API worker exited (status {code}); stderr tail:\n{self._stderr_tail()}", 14
            )
        reply = json.loads(line)
        if not reply.get("ok"):
            raise CApiError(reply.get("error", "unknown error"), reply.get("code", 2))
        return reply

    def _request(self, **req):
        with self._lock:
            if self._proc.poll() is not None:
                raise CApiError("the C API worker is not running", 14)
            try:
                self._proc.stdin.write(json.dumps(req) + "\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError) as e:
                raise CApiError(f"the C API worker is gone: {e}", 14) from e
            return self._receive()

    def load(self, export_dir, tags=("serve",)):
        """Load a SavedModel with `TF_LoadSessionFromSavedModel`; return its signatures."""
        reply = self._request(op="load", export_dir=os.path.abspath(export_dir), tags=list(tags))
        self.signatures = reply["signatures"]
        self.export_dir = os.path.abspath(export_dir)
        return self.signatures

    def run(self, signature, inputs, outputs=None, repeat=1, dtypes=None, timings=False):
        """Run a signature. `inputs`: {key: array-like}; returns {key: numpy array}.

        `dtypes` optionally forces the fed dtype per input key ("string", "float", ...). With
        `timings=True` also returns the per-run TF_SessionRun wall times (seconds) measured in the
        worker (`repeat` runs on the same input tensors).
        """
        dtypes = dtypes or {}
        encoded = {k: _encode_tensor(v, dtypes.get(k)) for k, v in inputs.items()}
        req = {"op": "run", "signature": signature, "inputs": encoded, "repeat": repeat}
        if outputs:
            req["outputs"] = list(outputs)
        reply = self._request(**req)
        result = {k: _decode_tensor(v) for k, v in reply["outputs"].items()}
        return (result, reply["seconds"]) if timings else result

    def predict(self, texts):
        """`serving_default` on a list of texts."""
        arr = np.empty(len(texts), dtype=object)
        arr[:] = list(texts)
        return self.run("serving_default", {"text": arr}, dtypes={"text": "string"})

    def classify(self, texts):
        """`classify` on texts wrapped as serialized tf.Examples with a `text` bytes feature."""
        arr = np.empty(len(texts), dtype=object)
        arr[:] = [make_example(t) for t in texts]
        return self.run("classify", {"inputs": arr}, dtypes={"inputs": "string"})

    def replay_warmup(self, export_dir=None):
        """Replay every record of `assets.extra/tf_serving_warmup_requests`; return the count.

        Each record's outputs are checked for the batch size of its request.
        """
        import tensorflow as tf

        export_dir = export_dir or self.export_dir
        logs = read_warmup_requests(export_dir)
        if not logs:
            raise CApiError(f"no warmup requests in {export_dir!r}", 5)
        for i, log in enumerate(logs):
            request = log.predict_log.request
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            outputs = self.run(
                request.model_spec.signature_name or "serving_default",
                inputs,
                outputs=list(request.output_filter) or None,
            )
            batch = len(next(iter(inputs.values())))
            for key, value in outputs.items():
                if value.shape[:1] != (batch,):
                    raise CApiError(
                        f"warmup record {i}: output {key!r} has shape {value.shape} for a batch "
                        f"of {batch}",
                        13,
                    )
        return len(logs)

    def _kill(self):
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def close(self):
        if self._proc.poll() is None:
            try:
                with self._lock:
                    self._proc.stdin.write(json.dumps({"op": "close"}) + "\n")
                    self._proc.stdin.flush()
                self._proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                self._kill()
        for stream in (self._proc.stdin, self._proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self._stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def make_example(text):
    """A serialized `tf.Example` with a `text` bytes feature (what `classify` expects)."""
    from tensorflow.core.example import example_pb2, feature_pb2

    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    example = example_pb2.Example(
        features=feature_pb2.Features(
            feature={"text": feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=[data]))}
        )
    )
    return example.SerializeToString()

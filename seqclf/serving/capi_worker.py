"""Load a SavedModel through TensorFlow's C API and run signatures; JSON lines on stdin/stdout.

Run as a plain script (`python -I -S capi_worker.py LIBDIR`): it uses only the standard library and
`ctypes`, so neither seqclf nor TensorFlow's Python package is imported. That is the point: what
this process can serve, TF Serving's C++ loader can serve.

Protocol: one JSON object per line in, one per line out. Every reply has `ok`; failures carry
`error` (the TF_Status message) and `code` (the TF_Code). Requests:

* `{"op": "load", "export_dir": D, "tags": ["serve"]}` -> `{"signatures": {...}}`
* `{"op": "run", "signature": K, "inputs": {name: TENSOR}, "outputs": [names] (optional),
   "repeat": n (optional)}` -> `{"outputs": {name: TENSOR}, "seconds": [per-run times]}`
* `{"op": "close"}`

TENSOR is `{"dtype": "string"|"float"|"double"|"int32"|"int64"|"bool", "shape": [...],
"values": [...]}` with string values base64 encoded, values flattened in row-major order.
"""

import base64
import ctypes
import json
import os
import struct
import sys
import time

# TF_DataType enum values (tensorflow/c/tf_datatype.h).
DTYPES = {"float": 1, "double": 2, "int32": 3, "string": 7, "int64": 9, "bool": 10}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
FORMATS = {"float": "f", "double": "d", "int32": "i", "int64": "q", "bool": "?"}
# DataType enum names as in types.proto, for the signature description.
PROTO_DTYPES = {
    1: "DT_FLOAT",
    2: "DT_DOUBLE",
    3: "DT_INT32",
    7: "DT_STRING",
    9: "DT_INT64",
    10: "DT_BOOL",
}
TSTRING_SIZE = 24  # sizeof(TF_TString): tensorflow/core/platform/ctstring_internal.h


class TF_Output(ctypes.Structure):
    _fields_ = [("oper", ctypes.c_void_p), ("index", ctypes.c_int)]


class TF_Buffer(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("length", ctypes.c_size_t),
        ("data_deallocator", ctypes.c_void_p),
    ]


class CError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def _bind(lib):
    vp, c_int, c_size, c_char_p = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t, ctypes.c_char_p
    sigs = {
        "TF_Version": (c_char_p, []),
        "TF_NewStatus": (vp, []),
        "TF_DeleteStatus": (None, [vp]),
        "TF_GetCode": (c_int, [vp]),
        "TF_Message": (c_char_p, [vp]),
        "TF_NewGraph": (vp, []),
        "TF_DeleteGraph": (None, [vp]),
        "TF_NewSessionOptions": (vp, []),
        "TF_DeleteSessionOptions": (None, [vp]),
        "TF_NewBuffer": (ctypes.POINTER(TF_Buffer), []),
        "TF_DeleteBuffer": (None, [ctypes.POINTER(TF_Buffer)]),
        "TF_LoadSessionFromSavedModel": (
            vp,
            [vp, vp, c_char_p, ctypes.POINTER(c_char_p), c_int, vp, ctypes.POINTER(TF_Buffer), vp],
        ),
        "TF_CloseSession": (None, [vp, vp]),
        "TF_DeleteSession": (None, [vp, vp]),
        "TF_GraphOperationByName": (vp, [vp, c_char_p]),
        "TF_SessionRun": (
            None,
            [
                vp,
                vp,
                ctypes.POINTER(TF_Output),
                ctypes.POINTER(vp),
                c_int,
                ctypes.POINTER(TF_Output),
                ctypes.POINTER(vp),
                c_int,
                ctypes.POINTER(vp),
                c_int,
                vp,
                vp,
            ],
        ),
        "TF_AllocateTensor": (vp, [c_int, ctypes.POINTER(ctypes.c_int64), c_int, c_size]),
        "TF_DeleteTensor": (None, [vp]),
        "TF_TensorData": (vp, [vp]),
        "TF_TensorByteSize": (c_size, [vp]),
        "TF_TensorType": (c_int, [vp]),
        "TF_NumDims": (c_int, [vp]),
        "TF_Dim": (ctypes.c_int64, [vp, c_int]),
        "TF_StringInit": (None, [vp]),
        "TF_StringCopy": (None, [vp, c_char_p, c_size]),
        "TF_StringGetDataPointer": (vp, [vp]),
        "TF_StringGetSize": (c_size, [vp]),
        "TF_StringDealloc": (None, [vp]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    return lib


# --- Minimal protobuf wire decoding of MetaGraphDef.signature_def (no protobuf package here). ---


def _varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def read_fields(buf):
    """`(field number, value)` pairs of a serialized protobuf message (also used by
    `seqclf.serving.inspection`, so both decode signatures with the same code)."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i : i + length], i + length
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield field, value


def _signed(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def _tensor_info(buf):
    info = {"name": None, "dtype": "DT_INVALID", "shape": None}
    for f, v in read_fields(buf):
        if f == 1:
            info["name"] = bytes(v).decode()
        elif f == 2:
            info["dtype"] = PROTO_DTYPES.get(v, f"DT_{v}")
        elif f == 3:
            dims, unknown = [], False
            for sf, sv in read_fields(v):
                if sf == 2:
                    size = 0  # proto3: an absent `size` is 0; unknown dims are written as -1
                    for df, dv in read_fields(sv):
                        if df == 1:
                            size = _signed(dv)
                    dims.append(size)
                elif sf == 3 and sv:
                    unknown = True
            info["shape"] = None if unknown else dims
    return info


def _map_entry(buf):
    key = value = None
    for f, v in read_fields(buf):
        if f == 1:
            key = bytes(v).decode()
        elif f == 2:
            value = v
    return key, value if value is not None else b""


def parse_signatures(meta_graph_def):
    """{key: {"method_name", "inputs": {k: info}, "outputs": {k: info}}} from a MetaGraphDef."""
    signatures = {}
    for field, value in read_fields(memoryview(meta_graph_def)):
        if field != 5:  # MetaGraphDef.signature_def
            continue
        key, sig_buf = _map_entry(value)
        sig = {"method_name": "", "inputs": {}, "outputs": {}}
        for f, v in read_fields(sig_buf):
            if f in (1, 2):
                k, info = _map_entry(v)
                sig["inputs" if f == 1 else "outputs"][k] = _tensor_info(info)
            elif f == 3:
                sig["method_name"] = bytes(v).decode()
        signatures[key] = sig
    return signatures


# --- Session handling ---


class Worker:
    def __init__(self, libdir):
        # libtensorflow_cc.so.2 needs libtensorflow_framework.so.2 from the same directory; load
        # it first with RTLD_GLOBAL so the dependency resolves whatever the rpath says.
        mode = getattr(os, "RTLD_GLOBAL", 0) | getattr(os, "RTLD_NOW", 0)
        ctypes.CDLL(os.path.join(libdir, "libtensorflow_framework.so.2"), mode=mode)
        self.lib = _bind(ctypes.CDLL(os.path.join(libdir, "libtensorflow_cc.so.2"), mode=mode))
        self.status = self.lib.TF_NewStatus()
        self.session = self.graph = None
        self.signatures = {}

    def _check(self):
        code = self.lib.TF_GetCode(self.status)
        if code != 0:
            raise CError(code, self.lib.TF_Message(self.status).decode("utf-8", "replace"))

    def close(self):
        if self.session:
            self.lib.TF_CloseSession(self.session, self.status)
            self.lib.TF_DeleteSession(self.session, self.status)
            self.session = None
        if self.graph:
            self.lib.TF_DeleteGraph(self.graph)
            self.graph = None

    def load(self, export_dir, tags=("serve",)):
        self.close()
        lib = self.lib
        graph = lib.TF_NewGraph()
        opts = lib.TF_NewSessionOptions()
        meta = lib.TF_NewBuffer()
        ctags = (ctypes.c_char_p * len(tags))(*[t.encode() for t in tags])
        try:
            session = lib.TF_LoadSessionFromSavedModel(
                opts, None, export_dir.encode(), ctags, len(tags), graph, meta, self.status
            )
            try:
                self._check()
            except CError:
                lib.TF_DeleteGraph(graph)
                raise
            self.session, self.graph = session, graph
            self.signatures = parse_signatures(
                ctypes.string_at(meta.contents.data, meta.contents.length)
            )
        finally:
            lib.TF_DeleteBuffer(meta)
            lib.TF_DeleteSessionOptions(opts)
        return self.signatures

    def _output(self, tensor_name):
        op_name, _, index = tensor_name.partition(":")
        oper = self.lib.TF_GraphOperationByName(self.graph, op_name.encode())
        if not oper:
            raise CError(5, f"Operation {op_name!r} not found in the graph")
        return TF_Output(oper, int(index or 0))

    def _make_tensor(self, spec):
        lib = self.lib
        dtype = spec["dtype"]
        if dtype not in DTYPES:
            raise CError(3, f"Unsupported dtype {dtype!r}")
        shape = [int(d) for d in spec["shape"]]
        count = 1
        for d in shape:
            count *= d
        values = spec["values"]
        if len(values) != count:
            raise CError(3, f"{len(values)} values do not fill shape {shape}")
        dims = (ctypes.c_int64 * len(shape))(*shape)
        if dtype == "string":
            t = lib.TF_AllocateTensor(7, dims, len(shape), count * TSTRING_SIZE)
            base = lib.TF_TensorData(t)
            for i, v in enumerate(values):
                data = base64.b64decode(v)
                lib.TF_StringInit(base + i * TSTRING_SIZE)
                lib.TF_StringCopy(base + i * TSTRING_SIZE, data, len(data))
            return t
        fmt = FORMATS[dtype]
        raw = struct.pack(f"<{count}{fmt}", *values)
        t = lib.TF_AllocateTensor(DTYPES[dtype], dims, len(shape), len(raw))
        ctypes.memmove(lib.TF_TensorData(t), raw, len(raw))
        return t

    def _read_tensor(self, t):
        lib = self.lib
        code = lib.TF_TensorType(t)
        shape = [lib.TF_Dim(t, i) for i in range(lib.TF_NumDims(t))]
        count = 1
        for d in shape:
            count *= d
        base = lib.TF_TensorData(t)
        name = DTYPE_NAMES.get(code)
        if name == "string":
            values = []
            for i in range(count):
                p = base + i * TSTRING_SIZE
                data = ctypes.string_at(lib.TF_StringGetDataPointer(p), lib.TF_StringGetSize(p))
                values.append(base64.b64encode(data).decode("ascii"))
        elif name is not None:
            raw = ctypes.string_at(base, lib.TF_TensorByteSize(t)) if count else b""
            values = list(struct.unpack(f"<{count}{FORMATS[name]}", raw))
        else:
            raise CError(12, f"Output dtype {code} is not supported by this harness")
        return {"dtype": name, "shape": shape, "values": values}

    def run(self, signature, inputs, outputs=None, repeat=1):
        if self.session is None:
            raise CError(9, "No SavedModel loaded")
        sig = self.signatures.get(signature)
        if sig is None:
            raise CError(3, f"No signature was found with the name: {signature}")
        unknown = set(inputs) - set(sig["inputs"])
        if unknown:
            raise CError(3, f"Unknown input(s) {sorted(unknown)} for signature {signature!r}")
        missing = set(sig["inputs"]) - set(inputs)
        if missing:
            raise CError(3, f"Missing input(s) {sorted(missing)} for signature {signature!r}")
        out_keys = list(outputs) if outputs else sorted(sig["outputs"])
        for k in out_keys:
            if k not in sig["outputs"]:
                raise CError(3, f"Unknown output {k!r} for signature {signature!r}")
        in_keys = sorted(inputs)
        lib = self.lib
        c_inputs = (TF_Output * len(in_keys))(
            *[self._output(sig["inputs"][k]["name"]) for k in in_keys]
        )
        c_outputs = (TF_Output * len(out_keys))(
            *[self._output(sig["outputs"][k]["name"]) for k in out_keys]
        )
        tensors = []
        try:
            for k in in_keys:
                tensors.append(self._make_tensor(inputs[k]))
            c_values = (ctypes.c_void_p * len(in_keys))(*tensors)
            seconds = []
            result = None
            for _ in range(max(1, int(repeat))):
                out_values = (ctypes.c_void_p * len(out_keys))()
                start = time.perf_counter()
                lib.TF_SessionRun(
                    self.session,
                    None,
                    c_inputs,
                    c_values,
                    len(in_keys),
                    c_outputs,
                    out_values,
                    len(out_keys),
                    None,
                    0,
                    None,
                    self.status,
                )
                seconds.append(time.perf_counter() - start)
                try:
                    self._check()
                    result = {k: self._read_tensor(out_values[i]) for i, k in enumerate(out_keys)}
                finally:
                    for v in out_values:
                        if v:
                            lib.TF_DeleteTensor(v)
            return {"outputs": result, "seconds": seconds}
        finally:
            for t in tensors:
                if t:
                    if lib.TF_TensorType(t) == 7:
                        base = lib.TF_TensorData(t)
                        n = lib.TF_TensorByteSize(t) // TSTRING_SIZE
                        for i in range(n):
                            lib.TF_StringDealloc(base + i * TSTRING_SIZE)
                    lib.TF_DeleteTensor(t)


def main(argv):
    libdir = argv[1]
    # Keep the protocol stream clean: anything native code prints on fd 1 goes to stderr instead.
    proto_out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    try:
        worker = Worker(libdir)
        proto_out.write(
            json.dumps({"ok": True, "ready": True, "version": worker.lib.TF_Version().decode()})
            + "\n"
        )
    except OSError as e:
        proto_out.write(
            json.dumps({"ok": False, "code": 2, "error": f"cannot load the C API: {e}"}) + "\n"
        )
        return 1
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            op = req.get("op")
            if op == "load":
                reply = {"signatures": worker.load(req["export_dir"], req.get("tags", ["serve"]))}
            elif op == "run":
                reply = worker.run(
                    req["signature"], req["inputs"], req.get("outputs"), req.get("repeat", 1)
                )
            elif op == "close":
                worker.close()
                proto_out.write(json.dumps({"ok": True}) + "\n")
                break
            else:
                raise CError(3, f"unknown op {op!r}")
            reply["ok"] = True
        except CError as e:
            reply = {"ok": False, "code": e.code, "error": str(e)}
        except Exception as e:  # a harness bug must not kill the worker silently
            reply = {"ok": False, "code": 13, "error": f"{type(e).__name__}: {e}"}
        proto_out.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

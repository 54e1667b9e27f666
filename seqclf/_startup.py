"""A quiet TensorFlow start-up for the command line (no TensorFlow import here).

Where the lines a plain `import tensorflow` prints on a CPU machine come from (TF 2.21), and
what `quiet_tensorflow` does about each:

* **The second absl banner and its two `I0000` lines.** `import tensorflow` loads
  `tensorflow/python/profiler/internal/_pywrap_profiler_plugin.so` (for the never-used
  `tf.profiler.experimental.client`). That 90 MB extension is a statically linked second copy
  of TensorFlow's runtime, with its own absl logging and its own static initializers, so the
  oneDNN and CUDA-stub notices and absl's "before absl::InitializeLog()" banner appear once per
  copy; loading it also costs about 3 s. It is not a second pip package (there is no
  `tensorflow-cpu` beside `tensorflow` here; tensorboard, tensorflow-serving-api and
  tensorflow-datasets load no native TensorFlow code of their own). `quiet_tensorflow` defers
  loading that extension until something uses one of its functions.
* **The first banner and its `I0000` lines** (`port.cc` oneDNN note, `cudart_stub.cc` "Could not
  find cuda drivers") are written by the static initializers of `libtensorflow_framework.so`
  while it loads, before TensorFlow reads `TF_CPP_MIN_LOG_LEVEL`; that is why setting the
  variable does not hide them. While TensorFlow's native libraries load, stderr goes to a
  temporary file and is then written back with TensorFlow's log lines below
  `TF_CPP_MIN_LOG_LEVEL` (default here: 2, errors only) and absl's banner left out: the threshold
  TensorFlow applies to every later line, applied to the ones it writes too early to filter.
  Everything else (Python warnings, errors, unformatted output) is written back unchanged.
* **`E0000 ... failed call to cuInit`**: TensorFlow probes CUDA when it creates its devices and
  logs the failure as an error on a machine without a CUDA driver. Where `libcuda.so.1` cannot be
  loaded no GPU can be used, so `TF_ENABLED_DEVICE_TYPES=CPU` tells TensorFlow not to register
  its GPU device factory, and nothing is probed. Machines with a driver are left alone.
* **`E0000 ... oneDNN supports DT_BOOL only on platforms with AVX-512`**: TensorFlow's oneDNN
  graph pass logs this once per process (`absl::call_once`), at error level, the first time it
  meets a boolean op it would not rewrite, here the `Transpose` of the mask that Keras' RNN
  layers make; it then uses Eigen's kernel, which is what it does anyway. The once-only note is
  spent on a one-op graph of seqclf's own, while stderr is captured, so that it cannot appear
  during the user's training; TensorFlow log lines from that graph are dropped (they can only be
  about it), anything else is written back.

`--verbose` (or `SEQCLF_VERBOSE=1`) skips all of this: TensorFlow then prints what it prints on
its own.
"""

import contextlib
import ctypes
import importlib
import importlib.util
import os
import re
import sys
import tempfile
import types

from seqclf._compat import PROFILER_PLUGIN_MODULE as _PLUGIN

VERBOSE_ENV = "SEQCLF_VERBOSE"
# TensorFlow's (absl's) log-line prefix: severity letter, MMDD, time, thread, file:line].
_LOG_LINE = re.compile(rb"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] ")
_BANNER = re.compile(rb"^WARNING: All log messages before absl::InitializeLog\(\) is called")
_SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}


def verbose_requested(flag=False):
    """Whether full TensorFlow logs were asked for, by `--verbose` or `SEQCLF_VERBOSE`."""
    return bool(flag) or os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false")


class _DeferredExtension(types.ModuleType):
    """Stands in `sys.modules` for an extension module until one of its attributes is used."""

    def __getattr__(self, name):
        if name.startswith("__"):
            # `inspect.getmodule` and friends probe dunders of every module in sys.modules;
            # answering them must not load the library.
            raise AttributeError(name)
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        module = importlib.import_module(self.__name__)
        return getattr(module, name)


def _defer_profiler_plugin():
    spec = importlib.util.find_spec("tensorflow")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return
    # The extension's folder inside the tensorflow package (tensorflow/python/profiler/internal).
    folder = os.path.join(spec.submodule_search_locations[0], *_PLUGIN.split(".")[1:-1])
    if not os.path.isdir(folder) or not any(
        n.startswith("_pywrap_profiler_plugin.") for n in os.listdir(folder)
    ):
        return  # another TensorFlow layout: nothing to defer
    sys.modules.setdefault(_PLUGIN, _DeferredExtension(_PLUGIN))


def _has_cuda_driver():
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _stderr_captured(keep_line):
    """Sends file descriptor 2 to a temporary file; afterwards writes back the lines
    `keep_line(line: bytes)` accepts. Native libraries write to the descriptor directly, so
    redirecting `sys.stderr` alone would not see them."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().splitlines(keepends=True) if keep_line(line)]
            if kept:
                os.write(2, b"".join(kept))


def _min_log_level():
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def _below_threshold(line):
    if _BANNER.match(line):
        return True
    found = _LOG_LINE.match(line)
    return bool(found) and _SEVERITY[found.group(1)] < _min_log_level()


def _spend_once_only_notices(tf):
    # See the module docstring (DT_BOOL): a boolean Transpose in a graph, as Keras' RNNs make.
    transpose = tf.function(tf.transpose, autograph=False)
    transpose(tf.constant([[True, False]]))


def _before_tensorflow_import():
    # The threshold TensorFlow applies to what it logs after start-up: errors and worse.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not _has_cuda_driver():
        os.environ.setdefault("TF_ENABLED_DEVICE_TYPES", "CPU")
    _defer_profiler_plugin()


class _WrappedLoader:
    """A module's loader whose `exec_module` runs inside `around(name)` (a context manager)
    and then calls `after(module)`; everything else is the original loader's."""

    def __init__(self, loader, around, after):
        self._loader, self._around, self._after = loader, around, after

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with self._around():
            self._loader.exec_module(module)
        if self._after is not None:
            self._after(module)


class _ImportHook:
    """A `sys.meta_path` finder that changes nothing about *what* is imported: on the first
    import of `tensorflow` it applies the start-up treatment (see the module docstring), and
    when `keras` has been imported it calls `on_keras(keras)`. It removes itself once both are
    done, so later imports pay nothing."""

    def __init__(self, on_keras):
        self.on_keras = on_keras
        self.pending = {"tensorflow", "keras"} - set(sys.modules)

    def find_spec(self, name, path=None, target=None):
        if name not in self.pending:
            return None
        _done_with(name)
        spec = None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        if spec is None or spec.loader is None:
            return spec
        if name == "tensorflow":
            if verbose_requested():
                return spec
            _before_tensorflow_import()
            spec.loader = _WrappedLoader(
                spec.loader, lambda: _stderr_captured(lambda line: not _below_threshold(line)),
                None)
        else:
            spec.loader = _WrappedLoader(spec.loader, contextlib.nullcontext, self.on_keras)
        return spec


def install_import_hook(on_keras):
    """What `import seqclf` does: the start-up treatment when TensorFlow is first imported,
    whoever imports it, and `on_keras(keras)` once Keras is imported (at once if it already
    is). Imports nothing heavy itself."""
    if "keras" in sys.modules:
        on_keras(sys.modules["keras"])
    hook = _ImportHook(on_keras)
    if hook.pending and not any(isinstance(f, _ImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, hook)


def _done_with(name):
    """Stops the hook from watching `name`; it leaves `sys.meta_path` when nothing is left."""
    for finder in list(sys.meta_path):
        if isinstance(finder, _ImportHook):
            finder.pending.discard(name)
            if not finder.pending:
                sys.meta_path.remove(finder)


def spend_once_only_notices():
    """Spends TensorFlow's once-only error notices (see the module docstring) on a graph of
    seqclf's own, once per process; unless verbose output was asked for. For code that runs
    after TensorFlow's devices exist (`TextClassifier`), where no configuration can follow."""
    global _NOTICES_SPENT
    if _NOTICES_SPENT or verbose_requested():
        return
    _NOTICES_SPENT = True
    import tensorflow as tf

    with _stderr_captured(lambda line: not _LOG_LINE.match(line) and not _BANNER.match(line)):
        _spend_once_only_notices(tf)


_NOTICES_SPENT = False


def quiet_tensorflow(verbose=False, spend_notices=True):
    """Imports TensorFlow without its start-up notices (see the module docstring).

    Call it before anything imports TensorFlow. `spend_notices` runs the one-op graph that spends
    the once-only notices; it creates TensorFlow's devices, so pass False where something must
    configure TensorFlow first (`MultiWorkerMirroredStrategy`). With `verbose` (or
    `SEQCLF_VERBOSE=1`) it changes nothing. Returns whether it quietened.
    """
    if verbose_requested(verbose):
        _done_with("tensorflow")  # `import seqclf`'s hook must not quieten it either
        return False
    if "tensorflow" not in sys.modules:
        _done_with("tensorflow")  # done here instead
        _before_tensorflow_import()
        with _stderr_captured(lambda line: not _below_threshold(line)):
            import tensorflow  # noqa: F401
    if not spend_notices:
        return True
    import tensorflow as tf

    # Devices first, outside the capture: an error creating them is about the user's machine.
    tf.config.list_logical_devices()
    spend_once_only_notices()
    return True

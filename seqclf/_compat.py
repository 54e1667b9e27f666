"""Every use of a private Keras or TensorFlow API in seqclf, one hook each, with why.

Private APIs change without notice between releases, so they all sit here: the rest of seqclf
calls the public-named functions below, and `tests/test_compat.py` fails loudly, naming the
hooks, when the installed Keras or TensorFlow is a version the hooks were not checked against,
or when a hook's target no longer exists. To support a new version: read each hook's target in
the new release, adjust the hook if needed, then add the version to `CHECKED_VERSIONS`.

No TensorFlow or Keras import at module level: `seqclf._startup` reads `PROFILER_PLUGIN_MODULE`
before TensorFlow is imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

#: The releases (major.minor) whose private APIs the hooks below were read and tested against.
CHECKED_VERSIONS = {"keras": ("3.15",), "tensorflow": ("2.21",)}


def _attribute_exists(module, path):
    def check():
        obj = importlib.import_module(module)
        for name in path.split("."):
            obj = getattr(obj, name)
        return True

    return check


#: hook name -> (library, target, check). `check()` returns True when the target still exists
#: (or raises). `tests/test_compat.py` runs every check.
HOOKS = {
    "optimizer-clip": (
        "keras", "keras.optimizers.Optimizer._backend_apply_gradients / _clip_gradients",
        lambda: all(hasattr(importlib.import_module("keras").optimizers.Optimizer, n)
                    for n in ("_backend_apply_gradients", "_clip_gradients")),
    ),
    "adam-moments": (
        "keras", "keras.optimizers.Adam._momentums / _velocities / _get_variable_index",
        lambda: _adam_has_moments(),  # defined below
    ),
    "progbar-eta": (
        "keras", "keras.utils.Progbar._estimate_step_duration",
        _attribute_exists("keras", "utils.Progbar._estimate_step_duration"),
    ),
    "initial-epoch": (
        "keras", "keras.Model._initial_epoch (read by Model.fit)",
        lambda: "_initial_epoch" in _fit_source(),
    ),
    "symbolic-build": (
        "keras", "keras.Model._symbolic_build / _maybe_symbolic_build",
        lambda: all(hasattr(importlib.import_module("keras").Model, n)
                    for n in ("_symbolic_build", "_maybe_symbolic_build")),
    ),
    "reduce-per-replica": (
        "keras", "keras.src.backend.tensorflow.trainer.reduce_per_replica",
        lambda: all(hasattr(importlib.import_module("keras.src.backend.tensorflow.trainer"), n)
                    for n in ("reduce_per_replica", "_collective_all_reduce_multi_worker")),
    ),
    "string-vocabulary": (
        "keras", "keras.layers.StringLookup.set_vocabulary / _tensor_vocab_to_numpy",
        lambda: all(hasattr(importlib.import_module("keras").layers.StringLookup, n)
                    for n in ("set_vocabulary", "_tensor_vocab_to_numpy")),
    ),
    "flatten-layers": (
        "keras", "keras.layers.Layer._flatten_layers",
        _attribute_exists("keras", "layers.Layer._flatten_layers"),
    ),
    "fingerprinting": (
        "tensorflow", "tensorflow.python.saved_model.pywrap_saved_model.fingerprinting",
        _attribute_exists("tensorflow.python.saved_model.pywrap_saved_model",
                          "fingerprinting.CreateFingerprintDef"),
    ),
    "op-registry": (
        "tensorflow", "tensorflow.python.framework.op_def_registry.get",
        _attribute_exists("tensorflow.python.framework.op_def_registry", "get"),
    ),
    "profiler-plugin": (
        "tensorflow", "tensorflow.python.profiler.internal._pywrap_profiler_plugin",
        # A module in sys.modules is there (`seqclf._startup` defers this one only where its
        # file exists); find_spec refuses modules without a spec, as the deferred one is.
        lambda: (PROFILER_PLUGIN_MODULE in sys.modules
                 or importlib.util.find_spec(PROFILER_PLUGIN_MODULE) is not None),
    ),
    "dataset-graph": (
        "tensorflow", "tf.data.Dataset._as_serialized_graph (tests only)",
        _attribute_exists("tensorflow", "data.Dataset._as_serialized_graph"),
    ),
}


def _adam_has_moments():
    import keras

    opt = keras.optimizers.Adam()
    v = keras.Variable([1.0])
    opt.build([v])
    return (hasattr(opt, "_momentums") and hasattr(opt, "_velocities")
            and opt._get_variable_index(v) == 0)


def _fit_source():
    import inspect

    from keras.src.backend.tensorflow import trainer

    return inspect.getsource(trainer.TensorFlowTrainer.fit)


# --------------------------------------------------------------------------- optimizer-clip
# `GradientStats` must see the gradients of the real, compiled train step, before and after
# clipping, without a custom train_step. Keras 3's `BaseOptimizer.apply` calls
# `_backend_apply_gradients(grads, variables)`, which calls `_clip_gradients(grads)` and gets the
# clipped list back: the one place that holds both lists. Wrapping the two on the optimizer
# *instance* leaves the class and every other optimizer alone.
OPTIMIZER_APPLY = "_backend_apply_gradients"
OPTIMIZER_CLIP = "_clip_gradients"


def optimizer_methods(optimizer):
    """`(apply_gradients, clip_gradients)`: the optimizer's current private step methods."""
    return getattr(optimizer, OPTIMIZER_APPLY), getattr(optimizer, OPTIMIZER_CLIP)


def wrap_optimizer_methods(optimizer, apply_gradients, clip_gradients):
    """Sets the two methods on the instance; returns what `unwrap_optimizer_methods` restores."""
    saved = {}
    for name, fn in ((OPTIMIZER_APPLY, apply_gradients), (OPTIMIZER_CLIP, clip_gradients)):
        saved[name] = optimizer.__dict__.get(name)
        # object.__setattr__: a plain instance attribute, invisible to Keras tracking.
        object.__setattr__(optimizer, name, fn)
    return saved


def unwrap_optimizer_methods(optimizer, saved):
    for name, previous in saved.items():
        if previous is None:
            if name in optimizer.__dict__:
                object.__delattr__(optimizer, name)
        else:
            object.__setattr__(optimizer, name, previous)


def clip_gradients(optimizer, grads):
    """The optimizer's own clipping (clipnorm, global_clipnorm, clipvalue) of `grads`."""
    return getattr(optimizer, OPTIMIZER_CLIP)(grads)


class ClipGradientsOverride:
    """Mixin for an optimizer that changes how its gradients are clipped (`LazyAdam`).

    Keras has no public clipping hook; it calls the private `_clip_gradients`. The subclass
    defines `clip_gradients(grads, keras_clip)` instead, `keras_clip` being Keras' clipping.
    Put it before the Keras optimizer in the bases.
    """

    def _clip_gradients(self, grads):
        return self.clip_gradients(grads, super()._clip_gradients)


# --------------------------------------------------------------------------- adam-moments
# `LazyAdam.update_step` updates only the rows of Adam's moment estimates that a sparse gradient
# touches, so it needs Adam's slot variables, which Keras keeps in private lists.
def adam_moments(optimizer, variable):
    """`(m, v)`: Adam's first and second moment variables of `variable`."""
    index = optimizer._get_variable_index(variable)
    return optimizer._momentums[index], optimizer._velocities[index]


# --------------------------------------------------------------------------- progbar-eta
class ProgbarStepDurationOverride:
    """Mixin for a `keras.utils.Progbar` that supplies its own time per step (`StepProgress`).

    Progbar computes its ETA in the private `_estimate_step_duration(current, now)`; the
    subclass defines `step_duration(current, now, keras_estimate)` instead.
    """

    def _estimate_step_duration(self, current, now):
        return self.step_duration(current, now, super()._estimate_step_duration)


# --------------------------------------------------------------------------- initial-epoch
# `RunBackup` resumes a run at its next epoch inside one `fit` call. `fit` starts at
# `model._initial_epoch` when it is set (how Keras' own BackupAndRestore works); there is no
# public way for a callback to move the start.
def set_initial_epoch(model, epoch):
    """Makes the coming `fit` start at `epoch`; None restores Keras' default."""
    model._initial_epoch = epoch


# --------------------------------------------------------------------------- symbolic-build
# Under a multi-replica strategy Keras 3 builds the metric/loss/optimizer state in `fit` from a
# first batch drawn from the distributed input (see `seqclf.distribute.build_before_fit` for
# why that is wrong here). `_symbolic_build` builds it from shapes alone; replacing
# `_maybe_symbolic_build` on the instance stops `fit` from building again.
def build_from_spec(model, element_spec):
    """Builds a compiled model's metric, loss and optimizer state from a dataset's spec."""
    model._symbolic_build(data_batch=tuple(element_spec))

    def _maybe_symbolic_build(iterator=None, data_batch=None):
        del iterator, data_batch  # Built above.

    # A plain instance attribute: Keras' attribute tracking has nothing to track in it.
    object.__setattr__(model, "_maybe_symbolic_build", _maybe_symbolic_build)


# --------------------------------------------------------------------------- reduce-per-replica
def patch_multi_worker_reduce():
    """Makes Keras 3 average a step's logs across workers correctly under multi-worker training.

    Keras reduces each scalar log (loss, accuracy) of a multi-worker step with
    `strategy.reduce("MEAN", v, axis=0)`, which fails on a scalar ("Invalid reduction dimension
    0 for input with 0 dimensions"). The all-reduce it means is `axis=None`: the mean of the
    replicas' values, the same on every worker, so that `EarlyStopping` decides alike everywhere.
    The function is module-level in Keras' TensorFlow trainer, with no public override, so the
    module attribute is replaced. Only multi-worker `"auto"`/`"mean"` reductions change;
    idempotent.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    if getattr(original, "_seqclf_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(
            strategy
        ):
            return tf.nest.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None), values
            )
        return original(values, strategy, reduction)

    reduce_per_replica._seqclf_patched = True
    tf_trainer.reduce_per_replica = reduce_per_replica


# --------------------------------------------------------------------------- string-vocabulary
def patch_string_vocabulary():
    """Makes Keras hold a string vocabulary as Python strings, not a fixed-width NumPy array.

    `StringLookup` (inside `TextVectorization`) turns a vocabulary into `np.array(tokens)` when
    it is set, read (`get_vocabulary`) or loaded (`model.keras`' asset): a `<U` array whose every
    entry is as wide as the longest token, so one 200 KB token in a few thousand made GBs, and a
    10 MB one tens of GiB. An object array holds each token at its own size; Keras' code reads
    it the same way (comparisons, `set`, `tf.constant`). Idempotent.
    """
    import numpy as np
    import tensorflow as tf
    from keras.layers import StringLookup

    if getattr(StringLookup.set_vocabulary, "_seqclf_patched", False):
        return
    original_set = StringLookup.set_vocabulary

    def set_vocabulary(self, vocabulary, idf_weights=None):
        if isinstance(vocabulary, (list, tuple)):
            vocabulary = np.array(vocabulary, dtype=object)
        elif tf.is_tensor(vocabulary):
            vocabulary = self._tensor_vocab_to_numpy(vocabulary)
        return original_set(self, vocabulary, idf_weights)

    def _tensor_vocab_to_numpy(self, vocabulary):
        tokens = vocabulary.numpy()
        out = np.empty(len(tokens), dtype=object)
        out[:] = [tf.compat.as_text(x, self.encoding) for x in tokens]
        return out

    set_vocabulary._seqclf_patched = True
    StringLookup.set_vocabulary = set_vocabulary
    StringLookup._tensor_vocab_to_numpy = _tensor_vocab_to_numpy


# --------------------------------------------------------------------------- flatten-layers
# The export turns cuDNN off on every RNN layer, nested ones (inside `Bidirectional`, nested
# models) included; `model.layers` lists direct children only, and Keras' own recursive walk
# is private.
def all_sublayers(model):
    """Every layer below `model`, recursively, `model` itself excluded."""
    return list(model._flatten_layers(include_self=False, recursive=True))


# --------------------------------------------------------------------------- fingerprinting
# The export rewrites `saved_model.pb` (the classify signature's method name); `fingerprint.pb`
# hashes that file, so it must be made anew, and only TensorFlow's private pywrap module can.
def saved_model_fingerprint(export_dir):
    """The serialized `FingerprintDef` of a SavedModel directory, or None where TF has none."""
    try:
        from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting

        return fingerprinting.CreateFingerprintDef(export_dir)
    except (ImportError, AttributeError):
        return None


# --------------------------------------------------------------------------- op-registry
# The ops audit asks whether an op is one of core TensorFlow's (a CPU TF Serving has exactly
# those); the op registry is only reachable through `tensorflow.python`.
def is_core_op(op_name):
    """Whether `op_name` is registered by core TensorFlow (TensorFlow is imported first)."""
    import tensorflow as tf  # noqa: F401  (registers the core ops with the registry below)
    from tensorflow.python.framework import op_def_registry

    return op_def_registry.get(op_name) is not None


# --------------------------------------------------------------------------- profiler-plugin
# `seqclf._startup` defers loading this extension (a second copy of TensorFlow's runtime that
# prints the start-up banners again and costs ~3 s); it is named by its private module path.
PROFILER_PLUGIN_MODULE = "tensorflow.python.profiler.internal._pywrap_profiler_plugin"


# --------------------------------------------------------------------------- dataset-graph
# Tests check which ops a tf.data pipeline is made of; only the private method serializes it.
def dataset_graph_def(dataset):
    """The `GraphDef` of a `tf.data.Dataset`."""
    import tensorflow as tf

    return tf.compat.v1.GraphDef.FromString(dataset._as_serialized_graph().numpy())

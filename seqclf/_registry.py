"""Keras finds seqclf's saved objects after `import seqclf` alone, at no import cost.

`keras.saving.load_model` looks each `"seqclf>Name"` up in Keras' registry of custom objects,
which the `@register_keras_serializable` decorators fill when their modules are imported. Those
modules import TensorFlow, which `import seqclf` must not do (`seqclf --help` stays fast). So once
Keras is imported (`seqclf._startup.install_import_hook`), each name gets a stand-in: the first
stand-in Keras uses imports `seqclf.models`, whose decorators then replace every stand-in with the
real object, and hands over to that object. Nothing is imported until a file naming seqclf is
loaded.
"""

import importlib

PACKAGE = "seqclf"
# Registered name -> whether it is a function (else a class). `tests/test_registry.py` checks this
# table against what importing `seqclf.models` registers.
SERIALIZABLE = {
    "TextClassifier": False,
    "TextPreprocessor": False,
    "NgramLinear": False,
    "LogitBlend": False,
    "FastLSTM": False,
    "FastGRU": False,
    "FastSimpleRNN": False,
    "MaskedGlobalMaxPooling1D": False,
    "PaddedIds": False,
    "ForgetBias": False,
    "ChronoBias": False,
    "LazyAdam": False,
    "standardize": True,
}
# The modules whose import registers everything above.
MODULES = ("seqclf.models", "seqclf.lazy_adam", "seqclf.data.pipeline")


def _real(key):
    import keras

    for module in MODULES:
        importlib.import_module(module)
    # Keras' global table itself: during `load_model`, Keras' own lookups first read a copy
    # taken before this import, which still holds the stand-ins.
    found = keras.saving.get_custom_objects().get(key)
    if found is None or getattr(found, "_seqclf_stand_in", False):
        raise ImportError(f"Importing {', '.join(MODULES)} did not register {key!r}.")
    return found


def _stand_in(key, is_function):
    name = key.split(">", 1)[1]
    if is_function:
        def stand_in(*args, **kwargs):
            return _real(key)(*args, **kwargs)

        stand_in.__name__ = stand_in.__qualname__ = name
    else:
        class StandIn:
            @classmethod
            def from_config(cls, config, *args, **kwargs):
                return _real(key).from_config(config, *args, **kwargs)

        stand_in = StandIn
        stand_in.__name__ = stand_in.__qualname__ = name
    stand_in._seqclf_stand_in = True
    return stand_in


def register_stand_ins(keras):
    """Puts a stand-in into Keras' registry for each seqclf name not registered yet."""
    objects = keras.saving.get_custom_objects()
    for name, is_function in SERIALIZABLE.items():
        key = f"{PACKAGE}>{name}"
        if key in objects:
            continue
        stand_in = _stand_in(key, is_function)
        if is_function:
            # Also named in Keras' reverse table, so that a model holding the stand-in saves it
            # under the same name.
            keras.saving.register_keras_serializable(PACKAGE, name)(stand_in)
        else:
            objects[key] = stand_in

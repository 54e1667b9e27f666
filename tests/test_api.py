"""The top-level API: every name in `seqclf.__all__` imports; internals are not there."""

import importlib
import subprocess
import sys

import seqclf


def test_every_name_in_all_imports():
    for name in seqclf.__all__:
        assert getattr(seqclf, name) is not None, name
    namespace = {}
    exec("from seqclf import *", namespace)  # noqa: S102 - the star import a user may write
    assert set(seqclf.__all__) <= set(namespace)


def test_the_task_and_its_parts_are_top_level():
    assert {"TextClassifier", "TextPreprocessor", "load_spec", "SeqclfError"} <= set(seqclf.__all__)
    assert seqclf.TextClassifier.__module__ == "seqclf.models.text_classifier"


def test_internals_leave_the_top_level_but_stay_in_their_modules():
    for name, module in (("RunBackup", "seqclf.callbacks"), ("SeqclfWordOrder", "seqclf.data"),
                         ("parse_spec", "seqclf.data"), ("bucket_boundaries", "seqclf.data")):
        assert name not in seqclf.__all__ and not hasattr(seqclf, name)
        assert getattr(importlib.import_module(module), name) is not None


def test_import_loads_no_tensorflow():
    code = "import sys, seqclf; seqclf.SeqclfError; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

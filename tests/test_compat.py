"""The private Keras/TensorFlow hooks of `seqclf._compat`: checked versions, targets present."""

import importlib.metadata

import pytest

from seqclf import _compat


def _major_minor(version):
    return ".".join(version.split(".")[:2])


@pytest.mark.parametrize("library", sorted(_compat.CHECKED_VERSIONS))
def test_installed_version_is_one_the_hooks_were_checked_against(library):
    installed = importlib.metadata.version(library)
    hooks = sorted(name for name, (lib, _, _) in _compat.HOOKS.items() if lib == library)
    checked = _compat.CHECKED_VERSIONS[library]
    assert _major_minor(installed) in checked, (
        f"{library} {installed} is not a version the private-API hooks {hooks} of "
        f"seqclf/_compat.py were checked against ({', '.join(checked)}): read each hook's target "
        "in this release, then add the version to CHECKED_VERSIONS."
    )


@pytest.mark.parametrize("hook", sorted(_compat.HOOKS))
def test_hook_target_exists(hook):
    library, target, check = _compat.HOOKS[hook]
    try:
        ok = check()
    except (ImportError, AttributeError) as e:
        ok, why = False, f"{type(e).__name__}: {e}"
    else:
        why = "check returned False"
    assert ok, f"hook {hook!r}: {target} ({library}) is gone or changed ({why})"


def test_every_hook_names_a_checked_library():
    assert {lib for lib, _, _ in _compat.HOOKS.values()} <= set(_compat.CHECKED_VERSIONS)

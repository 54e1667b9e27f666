"""Argument checks shared by seqclf's public functions, so that they word and decide alike.

Every message names the argument and ends `Received: name=value` (the value's repr), the form
Keras uses. `bool` is rejected wherever an integer is asked for: `True` is an `int` in Python,
and `batch_size=True` is a mistake, not a batch of one.
"""

from __future__ import annotations

import math
import numbers
import os

from seqclf.errors import SeqclfError

__all__ = ["check_int", "check_new_file", "check_positive_int", "check_positive_number",
           "check_train_settings"]


def check_int(name, value, minimum, allow_none=False):
    """`int(value)` if `value` is an integer (not a bool) >= `minimum`; raises `SeqclfError`.

    NumPy integers are accepted and returned as `int`. With `allow_none`, None is returned as is.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        if allow_none:
            wanted += " or None"
        raise SeqclfError(f"`{name}` must be {wanted}. Received: {name}={value!r}")
    return int(value)


def check_positive_int(name, value, allow_none=False):
    """`check_int(name, value, 1, allow_none)`: an integer >= 1."""
    return check_int(name, value, 1, allow_none=allow_none)


def check_positive_number(name, value, allow_none=False, unit=""):
    """`value` if it is a real number (not a bool) > 0; raises `SeqclfError`.

    `unit` (e.g. "seconds") is named in the message.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        wanted = f"a positive number{' of ' + unit if unit else ''}"
        if allow_none:
            wanted += " or None"
        raise SeqclfError(f"`{name}` must be {wanted}. Received: {name}={value!r}")
    return value


def _check_finite(name, value, low, high, allow_none=True, low_open=False, high_open=True):
    """`value` a finite real number within [low, high) (ends as the flags say); raises."""
    if value is None and allow_none:
        return None
    ok = (not isinstance(value, bool) and isinstance(value, numbers.Real)
          and math.isfinite(value)
          and (value > low if low_open else value >= low)
          and (high is None or (value < high if high_open else value <= high)))
    if not ok:
        where = f"{'(' if low_open else '['}{low}, {'inf)' if high is None else str(high)}"
        where += "" if high is None else (")" if high_open else "]")
        raise SeqclfError(f"`{name}` must be a finite number in {where}. "
                          f"Received: {name}={value!r}")
    return value


def check_train_settings(config):
    """The numeric settings of a `TrainConfig` that no data can make right: infinite or NaN
    rates, clipping and fractions, a negative seed, a vocabulary with no room for a token."""
    for name in ("learning_rate", "clipnorm", "global_clipnorm", "clipvalue"):
        _check_finite(name, getattr(config, name), 0, None, allow_none=name != "learning_rate",
                      low_open=True)
    for name in ("dropout", "embedding_dropout"):
        _check_finite(name, getattr(config, name), 0, 1)
    _check_finite("forget_bias", config.forget_bias, -1e6, 1e6)
    _check_finite("val_fraction", config.val_fraction, 0, 1, allow_none=False, low_open=True)
    check_int("seed", config.seed, 0)
    if config.seed >= 2**32:  # NumPy's seeds are 32-bit
        raise SeqclfError(f"`seed` must be below 2**32. Received: seed={config.seed!r}")
    # Padding and out-of-vocabulary take ids 0 and 1: fewer than 3 leaves no token.
    check_int("max_tokens", config.max_tokens, 3, allow_none=True)
    for name in ("units", "embedding_dim", "batch_size", "layers"):
        check_positive_int(name, getattr(config, name))
    tensorboard = config.tensorboard
    if tensorboard and os.path.lexists(tensorboard) and not os.path.isdir(tensorboard):
        raise SeqclfError(
            f"--tensorboard must name a folder; {tensorboard} is a file. "
            f"Received: tensorboard={tensorboard!r}"
        )


def check_new_file(name, path, suffixes):
    """`path`'s suffix (lower case) if it is one of `suffixes` and nothing exists at `path`:
    seqclf writes a user's output files but never replaces one. Raises `SeqclfError`."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in suffixes:
        raise SeqclfError(f"`{name}` must end in one of: {', '.join(sorted(suffixes))}. "
                          f"Received: {name}={path!r}")
    if os.path.lexists(path):
        raise SeqclfError(f"{path}: the file exists; seqclf does not replace it. Choose another "
                          f"name or remove it first. Received: {name}={path!r}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise SeqclfError(f"{path}: no such directory {directory!r} to write into. "
                          f"Received: {name}={path!r}")
    return ext

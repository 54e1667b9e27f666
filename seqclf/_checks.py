"""Argument checks shared by seqclf's public functions, so that they word and decide alike.

Every message names the argument and ends `Received: name=value` (the value's repr), the form
Keras uses. `bool` is rejected wherever an integer is asked for: `True` is an `int` in Python,
and `batch_size=True` is a mistake, not a batch of one.
"""

from __future__ import annotations

import numbers

from seqclf.errors import SeqclfError

__all__ = ["check_int", "check_positive_int", "check_positive_number"]


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

"""`seqclf._checks`: one wording, bool rejected, NumPy integers accepted."""

import numpy as np
import pytest

from seqclf._checks import check_int, check_positive_int, check_positive_number
from seqclf.errors import SeqclfError


@pytest.mark.parametrize("value", [True, False, 0, -3, 1.0, "2", None])
def test_positive_int_rejects(value):
    with pytest.raises(SeqclfError) as info:
        check_positive_int("batch_size", value)
    assert str(info.value) == (
        f"`batch_size` must be a positive integer. Received: batch_size={value!r}"
    )


def test_positive_int_accepts_and_normalizes():
    assert check_positive_int("n", 3) == 3
    value = check_positive_int("n", np.int64(4))
    assert value == 4 and type(value) is int
    assert check_positive_int("version", None, allow_none=True) is None


def test_minimum_and_none_in_the_message():
    assert check_int("growth_window", 3, 3) == 3
    with pytest.raises(SeqclfError) as info:
        check_int("growth_window", 2, 3)
    assert str(info.value) == "`growth_window` must be an integer >= 3. Received: growth_window=2"
    with pytest.raises(SeqclfError) as info:
        check_positive_int("version", True, allow_none=True)
    assert str(info.value).endswith("must be a positive integer or None. Received: version=True")


@pytest.mark.parametrize("value", [True, 0, -1.5, float("nan"), "1", None])
def test_positive_number_rejects(value):
    with pytest.raises(SeqclfError) as info:
        check_positive_number("timeout", value, unit="seconds")
    assert str(info.value) == (
        f"`timeout` must be a positive number of seconds. Received: timeout={value!r}"
    )


def test_positive_number_accepts():
    assert check_positive_number("learning_rate", 1e-3) == 1e-3
    assert check_positive_number("scale", 2) == 2
    assert check_positive_number("clipnorm", None, allow_none=True) is None

"""Optimizer factory with gradient clipping.

Keras 3 offers three clipping modes, and they are not interchangeable:

* `clipnorm=c` clips **each gradient tensor** separately to L2 norm at most `c`. A large gradient
  in one variable (say the recurrent kernel) is shrunk without touching the others, so the
  direction of the overall update changes.
* `global_clipnorm=c` rescales **all gradients together** when their joint (global) L2 norm
  exceeds `c`; the update direction is kept, only its length is capped. This is the rule of
  Pascanu et al. (2013) for exploding gradients in RNNs.
* `clipvalue=v` clips **every element** to `[-v, v]`, which changes the direction too.

At most one may be given: Keras rejects `clipnorm` with `global_clipnorm`, and mixing element-wise
with norm clipping makes the effective rule hard to reason about.
"""

import keras

from seqclf._checks import check_positive_number
from seqclf.errors import SeqclfError
from seqclf.lazy_adam import LazyAdam
from seqclf.names import OPTIMIZERS as _NAMES

OPTIMIZERS = dict(zip(_NAMES, (
    keras.optimizers.Adam, LazyAdam, keras.optimizers.AdamW, keras.optimizers.RMSprop,
    keras.optimizers.SGD,
), strict=True))


def make_optimizer(
    name="adam",
    learning_rate=1e-3,
    *,
    clipnorm=None,
    global_clipnorm=None,
    clipvalue=None,
    **kwargs,
):
    """Returns a Keras optimizer with at most one clipping mode.

    Args:
        name: one of `adam`, `lazy_adam` (Adam updating only the embedding rows a batch uses,
            see `seqclf.lazy_adam.LazyAdam`), `adamw`, `rmsprop`, `sgd`.
        learning_rate: a positive float or a `keras.optimizers.schedules.LearningRateSchedule`.
        clipnorm: clip each gradient tensor to this L2 norm.
        global_clipnorm: clip the global norm of all gradients to this value.
        clipvalue: clip each gradient element to `[-clipvalue, clipvalue]`.
        **kwargs: passed to the optimizer (e.g. `weight_decay` for AdamW).
    """
    key = str(name).lower()
    if key not in OPTIMIZERS:
        raise SeqclfError(
            f"Unknown optimizer. Expected one of: {', '.join(OPTIMIZERS)}. Received: name={name!r}"
        )
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        check_positive_number("learning_rate", learning_rate)
    clipping = {
        k: v
        for k, v in (
            ("clipnorm", clipnorm),
            ("global_clipnorm", global_clipnorm),
            ("clipvalue", clipvalue),
        )
        if v is not None
    }
    if len(clipping) > 1:
        given = ", ".join(f"{k}={v}" for k, v in clipping.items())
        raise SeqclfError(
            "Pass at most one of `clipnorm`, `global_clipnorm`, `clipvalue`: they are different "
            f"clipping rules (see seqclf.optimizers). Received: {given}"
        )
    for k, v in clipping.items():
        check_positive_number(k, v)
    return OPTIMIZERS[key](learning_rate=learning_rate, **clipping, **kwargs)

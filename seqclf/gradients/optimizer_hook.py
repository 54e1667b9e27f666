"""How `GradientStats` sees the gradients of the real train step: a wrapper on the optimizer.

Keras 3 calls, from inside the compiled train step, the optimizer's apply step with the
gradients and their variables, which calls its clipping with the gradients just before
clipping and gets the clipped ones back. `OptimizerHook` wraps both on the optimizer
*instance* (the class is not touched; the private names are in `seqclf._compat`): the apply
wrapper only remembers which variables the coming gradients belong to, the clip wrapper hands
the raw and clipped gradients and the variables to `record`, which builds graph ops.
"""

from __future__ import annotations

import threading

from seqclf import _compat

__all__ = ["OptimizerHook"]


class OptimizerHook:
    """Calls `record(grads, clipped, variables)` at trace time of every clipping of `optimizer`.

    `install()` wraps, `restore()` puts back what was there before (idempotent). `record` is
    called while the train step is traced, so what it builds runs in every step.
    """

    def __init__(self, optimizer, record):
        self.optimizer = optimizer
        self._record = record
        self._local = threading.local()
        self._saved = None

    def install(self):
        original_apply, original_clip = _compat.optimizer_methods(self.optimizer)
        local = self._local
        record = self._record

        def apply_gradients(grads, trainable_variables):
            # Remember (per replica thread, at trace time) which variables the gradients of
            # the coming clipping call belong to.
            local.variables = list(trainable_variables)
            try:
                return original_apply(grads, trainable_variables)
            finally:
                local.variables = None

        def clip_gradients(grads):
            clipped = original_clip(grads)
            variables = getattr(local, "variables", None)
            if variables is not None and len(variables) == len(grads):
                record(list(grads), list(clipped), variables)
            return clipped

        self._saved = _compat.wrap_optimizer_methods(self.optimizer, apply_gradients,
                                                     clip_gradients)

    def restore(self):
        if self._saved is not None:
            _compat.unwrap_optimizer_methods(self.optimizer, self._saved)
            self._saved = None

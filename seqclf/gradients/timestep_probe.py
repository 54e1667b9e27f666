"""Gradient of the loss with respect to each recurrent layer's input, per timestep.

`timestep_gradient_norms` measures how much of the training signal reaches each position of a
sequence: for every recurrent layer (`SimpleRNN`, `LSTM`, `GRU`, any `keras.layers.RNN`, or a
`Bidirectional` wrapper around one) it computes `||dL/d input_t||` on a fixed probe batch and
indexes it by *distance from the sequence's end* (d=0 is each sequence's last real token), using
the Keras mask that `Embedding(mask_zero=True)` (or a `Masking` layer) attaches. Aligning by the
true end is what makes sequences of different lengths comparable: in right-padded batches, raw
position t means "t tokens from the start", which for a classifier reading the final state is a
different distance from the output for every sequence.

The function never changes the model: for the duration of one eager forward pass, each recurrent
layer's `call` is wrapped (instance attribute, removed in a `finally`) so that the tensor it
receives is watched by a `GradientTape`. This works for Sequential, functional and subclassed
models alike, since it does not depend on how the layers are wired.
"""

from __future__ import annotations

import contextlib
import weakref

import keras
import numpy as np
import tensorflow as tf

from seqclf.errors import SeqclfError

__all__ = ["recurrent_layers", "timestep_gradient_norms", "watching_inputs"]


def recurrent_layers(model):
    """The recurrent layers of `model` whose input gradients are measured, in layer order.

    A `Bidirectional` layer counts once (its wrapped forward/backward layers are not listed
    separately: they share its input). Nested models are searched recursively.
    """
    found = []

    def visit(layer):
        if isinstance(layer, (keras.layers.Bidirectional, keras.layers.RNN)):
            found.append(layer)
            return
        for sub in getattr(layer, "layers", None) or []:
            visit(sub)

    for layer in model.layers:
        visit(layer)
    return found


def _resolve_loss(model, loss):
    """A function `(y_true, y_pred) -> per-example losses`."""
    if loss is None:
        loss = getattr(model, "loss", None)
        if loss is None:
            raise SeqclfError(
                "The model was compiled without a loss (or not compiled); pass `loss=` to "
                f"`timestep_gradient_norms`. Received: loss={loss!r}"
            )
    if isinstance(loss, (dict, list, tuple)):
        raise SeqclfError(
            f"Only single-output models with a single loss are supported. Received: loss={loss!r}"
        )
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        # `Loss.__call__` reduces over the batch; `call` gives per-example values, which keeps
        # each sequence's gradient independent of the batch size (see the function docstring).
        return loss.call
    if callable(loss):
        return loss
    raise SeqclfError(f"`loss` must be a loss name, a callable or a Loss. Received: loss={loss!r}")


def _distance_from_end(mask):
    """For a [B, T] boolean mask: distance of each real position from the last real one.

    Counting real positions from the right handles right padding, left padding and holes alike;
    padded positions get -1.
    """
    m = mask.astype(np.int64)
    # Number of real tokens at or after position t, minus one.
    rev = np.cumsum(m[:, ::-1], axis=1)[:, ::-1] - 1
    return np.where(mask, rev, -1)


def timestep_gradient_norms(model, x, y, loss=None, per_sequence=False, layers=None):
    """Norm of the loss gradient w.r.t. each recurrent layer's input, by distance from the end.

    Args:
        model: A built Keras 3 model (TensorFlow backend) with at least one recurrent layer.
        x: Probe inputs (e.g. int token ids, right-padded with 0 when the Embedding uses
            `mask_zero=True`). Anything `model(x)` accepts.
        y: Probe targets for `loss`.
        loss: A loss name, a `keras.losses.Loss` or a callable `(y_true, y_pred)` returning
            per-example losses. Defaults to the model's compiled loss.
        per_sequence: When True, also return the per-sequence values.
        layers: Optional list of layer names to measure (default: all of `recurrent_layers`).

    Returns:
        `{layer_name: np.ndarray [T]}` where entry d is the mean over the probe sequences of
        `||dL_i / d input_{i, t}||` at the position t that is d real tokens before the
        sequence's last real token (d=0: the last real token). NaN where no sequence has that
        many real tokens. T is the padded length of the layer's input.
        With `per_sequence=True`, a tuple `(means, per_seq)` where `per_seq[name]` has shape
        [B, T] (NaN beyond each sequence's length).

    The loss is the *sum* of per-example losses, so sequence i's entry is the gradient of its
    own loss and does not shrink with the probe batch size (the training gradient of a
    mean-reduced loss is these values divided by the batch size). The model runs in inference
    mode (`training=False`: no dropout), so repeated calls give the same numbers.
    The mask is the one Keras passes to the layer's `call`; when there is none, every position
    counts as real and d is measured from the padded end.
    """
    if not isinstance(model, keras.Model):
        raise SeqclfError(f"`model` must be a Keras model. Received: model={model!r}")
    targets = recurrent_layers(model)
    if layers is not None:
        names = [layers] if isinstance(layers, str) else list(layers)
        unknown = sorted(set(names) - {layer.name for layer in targets})
        if unknown:
            raise SeqclfError(
                "Unknown recurrent layer name(s). Expected some of: "
                f"{[layer.name for layer in targets]}. Received: layers={names!r}"
            )
        targets = [layer for layer in targets if layer.name in names]
    if not targets:
        raise SeqclfError(
            "The model has no recurrent layer (SimpleRNN, LSTM, GRU, RNN or Bidirectional). "
            f"Received: model={model.name!r}"
        )
    n_x = len(_first_array(x))
    n_y = len(y)
    if n_x != n_y or n_x == 0:
        raise SeqclfError(
            "`x` and `y` must be non-empty and have the same number of examples. "
            f"Received: len(x)={n_x}, len(y)={n_y}"
        )
    loss_fn = _resolve_loss(model, loss)

    names = [layer.name for layer in targets]
    fn = _compiled(model, targets, loss, loss_fn)
    x_t = tf.nest.map_structure(tf.convert_to_tensor, x)
    norms_list, masks_list = fn(x_t, tf.convert_to_tensor(y))

    means, per_seq = {}, {}
    for name, norms, mask in zip(names, norms_list, masks_list, strict=True):
        norms = norms.numpy()
        mask = mask.numpy().astype(bool)
        batch, steps = norms.shape
        dist = _distance_from_end(mask)
        real = dist >= 0
        d = dist[real]
        sums = np.bincount(d, weights=norms[real], minlength=steps)
        counts = np.bincount(d, minlength=steps)
        with np.errstate(invalid="ignore", divide="ignore"):
            means[name] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        if per_sequence:
            out = np.full((batch, steps), np.nan)
            rows = np.nonzero(real)[0]
            out[rows, d] = norms[real]
            per_seq[name] = out
    if per_sequence:
        return means, per_seq
    return means


@contextlib.contextmanager
def watching_inputs(layers, tape, captured, transform=None):
    """While open, each of `layers` watches the tensor its `call` receives on `tape` and
    records `captured[layer.name] = (inputs, mask)`.

    `transform`, if given, maps the received tensor first (`seqclf.explain` scales the
    embeddings along the path of integrated gradients); the watched tensor is the result. The
    layers' `call` is wrapped on the instance and restored on leaving, so the model itself is
    never changed; open it around a forward pass inside a `tf.function` being traced.
    """

    def wrap(layer, original):
        def call(inputs, *args, **kwargs):
            if transform is not None:
                inputs = transform(inputs)
            # Watch exactly the tensor the layer consumes (after any autocasting), so the
            # gradient is w.r.t. what the recurrence sees at each timestep.
            tape.watch(inputs)
            captured[layer.name] = (inputs, kwargs.get("mask"))
            return original(inputs, *args, **kwargs)

        return call

    patched = []
    try:
        for layer in layers:
            previous = layer.__dict__.get("call")
            object.__setattr__(layer, "call", wrap(layer, layer.call))
            patched.append((layer, previous))
        yield captured
    finally:
        for layer, previous in reversed(patched):
            if previous is not None:
                object.__setattr__(layer, "call", previous)
            else:
                object.__delattr__(layer, "call")


# Compiled probe functions per model, keyed by (layer names, loss): tracing an RNN costs about
# a second, but running it eagerly costs that on every call (the time loop runs in Python).
_CACHE = weakref.WeakKeyDictionary()


def _compiled(model, targets, loss, loss_fn):
    loss = model.loss if loss is None else loss
    key = (tuple(layer.name for layer in targets), loss if isinstance(loss, str) else id(loss))
    per_model = _CACHE.setdefault(model, {})
    if key in per_model:
        return per_model[key]

    @tf.function(reduce_retracing=True)
    def probe(x, y):
        captured = {}
        with tf.GradientTape() as tape:
            # The wrappers only exist while this function is traced; the traced graph keeps
            # the watched tensors, so later calls run without touching the layers at all.
            with watching_inputs(targets, tape, captured):
                y_pred = model(x, training=False)
            if isinstance(y_pred, (list, tuple, dict)):
                raise SeqclfError(
                    "Only single-output models are supported. "
                    f"Received: a model with {len(y_pred)} outputs"
                )
            total = tf.reduce_sum(tf.cast(loss_fn(y, y_pred), tf.float32))
        missing = [layer.name for layer in targets if layer.name not in captured]
        if missing:
            raise SeqclfError(
                "These recurrent layers were not called by the model's forward pass. "
                f"Received: layers={missing!r}"
            )
        inputs = [captured[layer.name][0] for layer in targets]
        grads = tape.gradient(total, inputs, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        norms, masks = [], []
        for layer, _inp, grad in zip(targets, inputs, grads, strict=True):
            g = tf.cast(grad, tf.float32)
            axes = list(range(2, len(g.shape)))
            norm = tf.sqrt(tf.reduce_sum(tf.square(g), axis=axes)) if axes else tf.abs(g)
            mask = captured[layer.name][1]
            if mask is None:
                mask = tf.ones_like(norm, dtype=tf.bool)
            norms.append(norm)
            masks.append(tf.reshape(tf.cast(mask, tf.bool), tf.shape(norm)))
        return norms, masks

    per_model[key] = probe
    return probe


def _first_array(x):
    """The first array of a dict or tuple of inputs (to count examples); lists are data."""
    if isinstance(x, dict):
        return next(iter(x.values()))
    if isinstance(x, tuple):
        return x[0]
    return x

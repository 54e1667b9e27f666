"""The CPU recurrences behind `FastLSTM`, `FastGRU` and `FastSimpleRNN`.

Keras' generic RNN loop (its CPU path) calls the cell once per time step, and the cell multiplies
that step's input by the kernel: two small matrix multiplies, a dozen element-wise ops and the
masking `where`s per step, each a separate TensorFlow op whose dispatch costs more than its
arithmetic at 64 units. Here, as in cuDNN and oneDNN, the input projection `x @ kernel + bias` of
every step is one large matrix multiply before the loop; the loop keeps only the recurrent
product and the gates.

The backward pass is written out (`tf.custom_gradient`) rather than differentiated through the
`while_loop`: autodiff would push every intermediate of every step onto a stack and multiply
`h_{t-1}^T @ dz_t` for the recurrent kernel's gradient inside the loop, a small matmul per step.
Written out, the loop saves only the gate activations and runs only `dz_t @ recurrent_kernel^T`;
the kernel gradients are one large matmul each after it.

All tensors inside are time-major, `[time, batch, ...]`; `mask` is `[time, batch, 1]` bool or
None. Masking follows Keras' `backend.rnn` exactly: at a masked step the states keep their
previous values, and so does the output (or it is zero, `zero_output_for_mask`). With zero initial
states the held output equals the held `h` state, which is what is returned.
"""

import os

import keras
import tensorflow as tf

#: Set to 1 to make `FastLSTM` / `FastGRU` / `FastSimpleRNN` run Keras' own loop (escape hatch).
STOCK_ENV = "SEQCLF_STOCK_RNN"


def gpu_visible():
    return bool(tf.config.list_logical_devices("GPU"))


def stock_forced():
    return os.environ.get(STOCK_ENV, "").strip().lower() not in ("", "0", "false", "no")


def fast_path_applies(layer, training, activations_ok):
    """Whether `layer` (a stock RNN subclass) may take the fast path for this call.

    The fast path covers what seqclf builds: the TensorFlow backend, no GPU (there cuDNN is
    faster), tanh/sigmoid activations (their derivatives are written out), zero initial
    states, no dropout inside the recurrence while training, no stateful or unrolled layer.
    Anything else runs Keras' loop, which gives the same result.
    """
    if keras.backend.backend() != "tensorflow" or stock_forced() or gpu_visible():
        return False
    if layer.stateful or layer.unroll or not activations_ok:
        return False
    if training and (layer.cell.dropout or layer.cell.recurrent_dropout):
        return False
    return True


def is_activation(fn, name):
    return fn is getattr(keras.activations, name) or getattr(fn, "__name__", None) == name


def time_major(sequences, mask, go_backwards):
    """`[batch, time, ...]` inputs and `[batch, time]` mask -> time-major, reversed if asked."""
    x = tf.transpose(sequences, [1, 0, 2])
    if mask is not None:
        mask = tf.expand_dims(tf.transpose(tf.cast(mask, tf.bool)), -1)
    if go_backwards:
        x = tf.reverse(x, [0])
        mask = None if mask is None else tf.reverse(mask, [0])
    return x, mask


def project(x, kernel, bias):
    """`x @ kernel + bias` for all steps at once: `[time, batch, in]` -> `[time, batch, out]`."""
    shape = tf.shape(x)
    z = tf.matmul(tf.reshape(x, [-1, shape[2]]), kernel)
    if bias is not None:
        z = z + bias
    return tf.reshape(z, tf.concat([shape[:2], tf.shape(kernel)[1:]], 0))


def _read_all(tensor_arrays, t):
    return [ta.read(t) for ta in tensor_arrays]


def _write_all(tensor_arrays, t, values):
    return [ta.write(t, v) for ta, v in zip(tensor_arrays, values)]


def _arrays(dtype, steps, count):
    return [tf.TensorArray(dtype, size=steps) for _ in range(count)]


def recurrence(step, z, mask, states, saved_count):
    """Runs `step` over time; returns the held first state per step, final states, saved.

    `step(z_t, states) -> (new_states, saved)` computes one step's new states (the first is
    the output `h`) and the tensors the backward pass needs. At masked steps the states keep
    their values; `saved` are stacked `[time, ...]` tensors.
    """
    steps = tf.shape(z)[0]
    z_ta = tf.TensorArray(z.dtype, size=steps).unstack(z)
    m_ta = None if mask is None else tf.TensorArray(tf.bool, size=steps).unstack(mask)

    def body(t, states, h_ta, saved_tas):
        new_states, saved = step(z_ta.read(t), states)
        if m_ta is not None:
            m = m_ta.read(t)
            new_states = [tf.where(m, new, old) for new, old in zip(new_states, states)]
        return t + 1, new_states, h_ta.write(t, new_states[0]), _write_all(saved_tas, t, saved)

    _, final, h_ta, saved_tas = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (0, list(states), tf.TensorArray(z.dtype, size=steps), _arrays(z.dtype, steps,
                                                                       saved_count)),
        parallel_iterations=1,
        maximum_iterations=steps,
    )
    return h_ta.stack(), final, [ta.stack() for ta in saved_tas]


def backward_recurrence(step_grad, dhs, mask, d_final, saved, count):
    """Backpropagates through `recurrence`: `(stacked per-step grads, initial states' grads)`.

    `step_grad(d_states, saved_t) -> (grads_t, d_prev_states)` is one step's backward pass
    through the unmasked update; its `count` per-step grads are stacked over time. `dhs` is the
    gradient reaching each step's held output, `d_final` the final states'. At a masked step the
    gradient passes to the previous states unchanged and the step's grads are zero (its update
    was discarded).
    """
    steps = tf.shape(dhs)[0]
    dh_ta = tf.TensorArray(dhs.dtype, size=steps).unstack(dhs)
    m_ta = None if mask is None else tf.TensorArray(tf.bool, size=steps).unstack(mask)
    saved_tas = [tf.TensorArray(s.dtype, size=steps).unstack(s) for s in saved]

    def body(t, d_states, grad_tas):
        d_states = [d_states[0] + dh_ta.read(t), *d_states[1:]]
        through = d_states
        if m_ta is not None:
            m = m_ta.read(t)
            through = [tf.where(m, d, tf.zeros_like(d)) for d in d_states]
        grads, d_prev = step_grad(through, _read_all(saved_tas, t))
        if m_ta is not None:
            # The part of the gradient that skipped the discarded update: d - through.
            d_prev = [p + d - g for p, d, g in zip(d_prev, d_states, through)]
        return t - 1, d_prev, _write_all(grad_tas, t, grads)

    _, d_initial, grad_tas = tf.while_loop(
        lambda t, *_: t >= 0,
        body,
        (steps - 1, list(d_final), _arrays(dhs.dtype, steps, count)),
        parallel_iterations=1,
        maximum_iterations=steps,
    )
    return [ta.stack() for ta in grad_tas], d_initial


def run(cell, z, mask, states, weights, training):
    """The recurrence of `cell` (a `CellMath`) over the projected inputs `z` `[T, B, G]`.

    Returns `(hs, final_states)`: the held output per step `[T, B, U]` and the final states.
    While training, the gradient is `cell`'s written-out backward pass; otherwise the loop saves
    nothing (TensorFlow can still differentiate it, slowly).
    """
    if not training:
        hs, final, _ = recurrence(lambda z_t, s: (cell.step(z_t, s, weights)[0], []),
                                  z, mask, states, 0)
        return hs, final
    n = len(states)

    @tf.custom_gradient
    def differentiable(z, *args):
        states0, w = list(args[:n]), list(args[n:])
        hs, final, saved = recurrence(lambda z_t, s: cell.step(z_t, s, w), z, mask, states0,
                                      cell.saved_count)

        def grad(dhs, *d_final):
            d_final = [tf.zeros_like(s) if d is None else d for d, s in zip(d_final, final)]
            if dhs is None:
                dhs = tf.zeros_like(hs)
            per_step, d_states0 = backward_recurrence(
                lambda d, s: cell.step_grad(d, s, w), dhs, mask, d_final, saved,
                cell.grad_count)
            dz, dw = cell.weight_grads(per_step, hs, states0[0], w)
            return (dz, *d_states0, *dw)

        return (hs, *final), grad

    hs, *final = differentiable(z, *states, *weights)
    return hs, final


def previous(hs, h0):
    """`[h0, hs[0], ..., hs[T-2]]`: the held output each step started from."""
    return tf.concat([tf.expand_dims(h0, 0), hs[:-1]], 0)


def summed_outer(hs, h0, dr):
    """`sum_t h_{t-1}^T @ dr_t` (a recurrent kernel's gradient) as one matmul over all steps."""
    prev = previous(hs, h0)
    return tf.matmul(tf.reshape(prev, [-1, tf.shape(prev)[2]]),
                     tf.reshape(dr, [-1, tf.shape(dr)[2]]), transpose_a=True)


class LSTMMath:
    """One LSTM step (Keras' gate order i, f, c, o; sigmoid and tanh) and its backward pass."""

    saved_count = 6  # i, f, g, o, tanh(c_t), c_{t-1}
    grad_count = 1  # dz_t

    @staticmethod
    def step(z_t, states, weights):
        h, c = states
        (rk,) = weights
        i, f, g, o = tf.split(z_t + tf.matmul(h, rk), 4, axis=1)
        i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
        c_new = f * c + i * g
        tc = tf.tanh(c_new)
        return [o * tc, c_new], [i, f, g, o, tc, c]

    @staticmethod
    def step_grad(d_states, saved, weights):
        dh, dc = d_states
        i, f, g, o, tc, c_prev = saved
        (rk,) = weights
        dc = dc + dh * o * (1.0 - tc * tc)
        dz = tf.concat([dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f),
                        dc * i * (1.0 - g * g), dh * tc * o * (1.0 - o)], axis=1)
        return [dz], [tf.matmul(dz, rk, transpose_b=True), dc * f]

    @staticmethod
    def weight_grads(per_step, hs, h0, weights):
        (dz,) = per_step
        return dz, [summed_outer(hs, h0, dz)]


def fast_call(layer, cell_math, sequences, mask, training, input_bias, weights, state_count):
    """A stock RNN layer's `call` output, computed on the fast path.

    Projects all steps with the cell's kernel and `input_bias`, runs `cell_math` from zero
    states, and shapes the result as Keras does (`return_sequences`, `go_backwards`,
    `zero_output_for_mask`).
    """
    if isinstance(mask, (list, tuple)):
        mask = mask[0]
    sequences = tf.cast(sequences, layer.compute_dtype)
    x, mask = time_major(sequences, mask, layer.go_backwards)
    z = project(x, layer.cell.kernel.value, input_bias)
    zeros = tf.zeros([tf.shape(sequences)[0], layer.cell.units], layer.compute_dtype)
    hs, final = run(cell_math, z, mask, [zeros] * state_count, weights, training)
    if not layer.return_sequences:
        # Without masking-to-zero, the last output is the final (held) output state.
        return final[0]
    if layer.zero_output_for_mask and mask is not None:
        hs = tf.where(mask, hs, tf.zeros_like(hs))
    return tf.transpose(hs, [1, 0, 2])


class GRUMath:
    """One GRU step with `reset_after=True` (Keras' default and cuDNN's; gates z, r, h)."""

    saved_count = 5  # z, r, hh, the recurrent candidate part, h_{t-1}
    grad_count = 2  # d(input pre-activations), d(recurrent pre-activations)

    @staticmethod
    def step(z_t, states, weights):
        (h,) = states
        rk, recurrent_bias = weights
        x_z, x_r, x_h = tf.split(z_t, 3, axis=1)
        m_z, m_r, m_h = tf.split(tf.matmul(h, rk) + recurrent_bias, 3, axis=1)
        z = tf.sigmoid(x_z + m_z)
        r = tf.sigmoid(x_r + m_r)
        hh = tf.tanh(x_h + r * m_h)
        return [z * h + (1 - z) * hh], [z, r, hh, m_h, h]

    @staticmethod
    def step_grad(d_states, saved, weights):
        (dh,) = d_states
        z, r, hh, m_h, h_prev = saved
        rk, _ = weights
        d_pre_z = dh * (h_prev - hh) * z * (1.0 - z)
        d_pre_h = dh * (1.0 - z) * (1.0 - hh * hh)
        d_pre_r = d_pre_h * m_h * r * (1.0 - r)
        dx = tf.concat([d_pre_z, d_pre_r, d_pre_h], axis=1)
        dm = tf.concat([d_pre_z, d_pre_r, d_pre_h * r], axis=1)
        return [dx, dm], [dh * z + tf.matmul(dm, rk, transpose_b=True)]

    @staticmethod
    def weight_grads(per_step, hs, h0, weights):
        dx, dm = per_step
        return dx, [summed_outer(hs, h0, dm), tf.reduce_sum(dm, axis=[0, 1])]


class SimpleRNNMath:
    """One tanh `SimpleRNN` step."""

    saved_count = 1  # h_t before masking
    grad_count = 1  # d(pre-activation)

    @staticmethod
    def step(z_t, states, weights):
        (h,) = states
        (rk,) = weights
        h_new = tf.tanh(z_t + tf.matmul(h, rk))
        return [h_new], [h_new]

    @staticmethod
    def step_grad(d_states, saved, weights):
        (dh,) = d_states
        (h_new,) = saved
        (rk,) = weights
        d_pre = dh * (1.0 - h_new * h_new)
        return [d_pre], [tf.matmul(d_pre, rk, transpose_b=True)]

    @staticmethod
    def weight_grads(per_step, hs, h0, weights):
        (d_pre,) = per_step
        return d_pre, [summed_outer(hs, h0, d_pre)]


# --------------------------------------------------------------------------- LSTM as one op
def right_padded(mask):
    """Whether every row of a `[batch, time]` mask is True up to its length, then False."""
    mask = tf.cast(mask, tf.bool)
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    return tf.reduce_all(tf.equal(mask, tf.sequence_mask(lengths, tf.shape(mask)[1])))


@tf.custom_gradient
def _block_lstm_outputs(x, weights, bias):
    """`h` of every step `[time, batch, units]` of `BlockLSTMV2` from zero states.

    TensorFlow 2.21 registers V1's gradient for `BlockLSTMV2`, and V1 packs the gates i, c, f, o:
    the gradient it gives is wrong. This one calls `BlockLSTMGradV2`.
    """
    steps = tf.cast(tf.shape(x)[0], tf.int64)
    units = tf.shape(weights)[1] // 4
    zeros = tf.zeros(tf.stack([tf.shape(x)[1], units]), x.dtype)
    no_peephole = tf.zeros([units], x.dtype)
    args = dict(seq_len_max=steps, x=x, cs_prev=zeros, h_prev=zeros, w=weights, wci=no_peephole,
                wcf=no_peephole, wco=no_peephole, b=bias)
    i, cs, f, o, ci, co, h = tf.raw_ops.BlockLSTMV2(cell_clip=0.0, use_peephole=False, **args)

    def grad(dh):
        x_grad, _, _, w_grad, _, _, _, b_grad = tf.raw_ops.BlockLSTMGradV2(
            i=i, cs=cs, f=f, o=o, ci=ci, co=co, h=h, cs_grad=tf.zeros_like(cs), h_grad=dh,
            use_peephole=False, **args)
        return x_grad, w_grad, b_grad

    return h, grad


def block_lstm(layer, sequences, mask):
    """A `keras.layers.LSTM`'s `call` output through TensorFlow's `BlockLSTMV2` op.

    The op runs the whole sequence (forward: `BlockLSTMV2`, backward: `BlockLSTMGradV2`) in
    C++, one op instead of one graph iteration per step. It has no mask, only a length for all
    rows, so `mask` must be right-padded (`right_padded`): each row's result is read at its own
    last step, and `go_backwards` reverses each row within its length first. The outputs are
    then placed as Keras' loop leaves them (held last output, or zeros, at padded steps).
    """
    cell = layer.cell
    x = tf.cast(sequences, layer.compute_dtype)
    batch, steps = tf.shape(x)[0], tf.shape(x)[1]
    if mask is None:
        lengths = tf.fill([batch], steps)
    else:
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    if layer.go_backwards:
        x = tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0)
    # BlockLSTMV2 packs its gates as Keras does (i, f, c, o) and multiplies [x_t, h_{t-1}].
    weights = tf.concat([cell.kernel.value, cell.recurrent_kernel.value], axis=0)
    bias = tf.zeros([4 * cell.units], x.dtype) if cell.bias is None else cell.bias.value
    hs = tf.transpose(_block_lstm_outputs(tf.transpose(x, [1, 0, 2]), weights, bias), [1, 0, 2])
    started = tf.expand_dims(lengths > 0, -1)
    if not layer.return_sequences:
        last = tf.gather(hs, tf.maximum(lengths - 1, 0), batch_dims=1)
        return tf.where(started, last, tf.zeros_like(last))
    t = tf.range(steps)[tf.newaxis, :]
    lengths = lengths[:, tf.newaxis]
    if layer.go_backwards:
        # Keras' reversed order: the padding comes first (zero outputs), then the row.
        index = t - (steps - lengths)
        real = index >= 0
    else:
        index = tf.minimum(t, lengths - 1)
        real = (t < lengths if layer.zero_output_for_mask
                else tf.broadcast_to(started, [batch, steps]))
    outputs = tf.gather(hs, tf.maximum(index, 0), batch_dims=1)
    return tf.where(real[..., tf.newaxis], outputs, tf.zeros_like(outputs))

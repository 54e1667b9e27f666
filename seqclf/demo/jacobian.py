"""The Jacobian analysis: the measured log-slope of a gradient curve and the predicted one.

`fit_log_slope` fits the per-step log-slope of `||dL/dx_t||` against the distance d from the end;
`simple_rnn_jacobian_factors` recomputes a SimpleRNN's per-step Jacobian factors in NumPy, whose
mean log (`mean_log_factor`) is the slope the product law predicts.
"""

from __future__ import annotations

import math

import numpy as np

from seqclf.errors import SeqclfError


def fit_log_slope(curve, max_distance=None, floor=1e-30):
    """Least-squares slope of `log(curve[d])` against d (per-step log-slope).

    Uses d = 0..max_distance where the value is finite, positive and above `floor` times
    `curve[0]` (float32 gradients underflow to 0 around 1e-38, which would bend the fit).
    Returns NaN with fewer than 3 usable points.
    """
    curve = np.asarray(curve, dtype=float)
    if max_distance is not None:
        curve = curve[: max_distance + 1]
    d = np.arange(len(curve))
    ok = np.isfinite(curve) & (curve > 0)
    if ok.sum() and np.isfinite(curve[0]) and curve[0] > 0:
        ok &= curve > floor * curve[0]
    if ok.sum() < 3:
        return float("nan")
    return float(np.polyfit(d[ok], np.log(curve[ok]), 1)[0])


def simple_rnn_jacobian_factors(model, x, y, max_distance=None):
    """Per-step Jacobian factors of the first SimpleRNN of `model` on the probe batch `(x, y)`.

    Recomputes the forward pass in NumPy from the layer's weights, h_t = tanh(x_t W + h_{t-1} U + b)
    (Keras' row-vector convention), and backpropagates the loss gradient by hand:
    delta_T = dL/dh_T from the softmax head, delta_{t-1} = J_t^T delta_t with
    J_t = dh_t/dh_{t-1} = diag(1 - h_t^2) U^T. For every real step it records three factors:

    * `path`: ||J_t^T delta_t|| / ||delta_t||, the factor by which the step shrinks the vector
      that is actually backpropagated. By construction the logs of these factors telescope:
      log ||delta_{T-k}|| - log ||delta_T|| is exactly their sum over the k steps.
    * `spectral`: ||J_t||_2, the largest factor any vector can get (an upper bound: a product of
      spectral norms bounds the norm of the product).
    * `isotropic`: ||J_t||_F / sqrt(n), the RMS factor of a random isotropic vector.

    Returns a dict with arrays `[B, T]` (NaN at padded positions and beyond `max_distance`),
    indexed by distance from the end like `timestep_gradient_norms`, plus `input_grad` [B, T]:
    ||dL/dx_t|| = ||(delta_t * (1 - h_t^2)) W^T|| as recomputed here (a cross-check of the
    NumPy recursion against TensorFlow's gradient).
    """
    import keras

    rnn = next((la for la in model.layers if isinstance(la, keras.layers.SimpleRNN)), None)
    if rnn is None:
        raise SeqclfError(f"The model has no SimpleRNN layer. Received: model={model.name!r}")
    emb = next(la for la in model.layers if isinstance(la, keras.layers.Embedding))
    head = model.layers[-1]
    if not isinstance(head, keras.layers.Dense) or rnn.return_sequences:
        raise SeqclfError("Expected Embedding -> SimpleRNN -> Dense(softmax) classifier.")
    x = np.asarray(x)
    e = np.asarray(emb(x), dtype=np.float64)  # [B, T, E]
    mask = x != 0
    W, U, b = (np.asarray(v, dtype=np.float64) for v in rnn.cell.weights)
    Wo, bo = (np.asarray(v, dtype=np.float64) for v in head.weights)
    B, T, _ = e.shape
    n = U.shape[0]
    lengths = mask.sum(axis=1)
    h = np.zeros((B, n))
    hs = np.zeros((B, T, n))
    for t in range(T):
        new = np.tanh(e[:, t] @ W + h @ U + b)
        h = np.where(mask[:, t : t + 1], new, h)
        hs[:, t] = h
    logits = h @ Wo + bo
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    onehot = np.eye(p.shape[1])[np.asarray(y, dtype=int)]
    delta = (p - onehot) @ Wo.T  # dL/dh_T for each sequence's last real step, [B, n]

    span = T if max_distance is None else min(T, max_distance + 1)
    out = {k: np.full((B, T), np.nan) for k in ("path", "spectral", "isotropic", "input_grad")}
    UT = U.T
    for i in range(B):
        L = int(lengths[i])
        dvec = delta[i]
        for d in range(min(L, span)):
            t = L - 1 - d
            D = 1.0 - hs[i, t] ** 2
            a = dvec * D  # dL/da_t
            out["input_grad"][i, d] = np.linalg.norm(a @ W.T)
            if t == 0:
                break  # no earlier hidden state: the recursion ends here
            J = D[:, None] * UT  # J_t = diag(1 - h_t^2) U^T (maps dh_{t-1} to dh_t)
            new = a @ UT  # delta_{t-1} = J_t^T delta_t, row form (delta * D) U^T
            nd = np.linalg.norm(dvec)
            out["path"][i, d] = np.linalg.norm(new) / nd if nd > 0 else np.nan
            out["spectral"][i, d] = np.linalg.norm(J, 2)
            out["isotropic"][i, d] = np.linalg.norm(J) / math.sqrt(n)
            dvec = new
    return out


def mean_log_factor(factors, max_distance):
    """Mean log of the finite, positive factors within `max_distance`: a predicted slope."""
    vals = factors[:, :max_distance]
    vals = vals[np.isfinite(vals) & (vals > 0)]
    return float(np.mean(np.log(vals))) if vals.size else float("nan")


def ratio_first_last(curve, first):
    """`curve[first] / curve[0]`, NaN where undefined."""
    curve = np.asarray(curve, dtype=float)
    if first >= len(curve) or not curve[0] > 0:
        return float("nan")
    return float(curve[first] / curve[0])

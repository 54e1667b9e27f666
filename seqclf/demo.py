"""The vanishing/exploding-gradient demonstration behind `seqclf demo --out DIR`.

Three measurements, each small enough that the default run takes a few minutes on 2 CPU cores:

1. **Decay sweep (no training).** SimpleRNN classifiers whose recurrent kernel is
   `Orthogonal(gain=g)` for g in 0.5, 0.9, 1.0 (Keras' default) and 1.5, plus a default LSTM
   (Keras' `unit_forget_bias=True`) and a chrono-initialised LSTM, are probed at initialisation
   on one batch of temporal-order sequences: `timestep_gradient_norms` gives the mean
   `||dL/dx_t||` by distance d from each sequence's end, and a least-squares fit of
   `log ||dL/dx_t||` against d gives the *measured* per-step log-slope. For SimpleRNN the
   *predicted* slope comes from the per-step Jacobians on the same batch (see
   `simple_rnn_jacobian_factors`): the product law says the gradient d steps back is the
   last-step gradient multiplied by d Jacobian factors, so its log-slope is the mean log factor.
2. **Consequence for learning.** SimpleRNN, default LSTM and chrono LSTM with equal budgets
   (same data, epochs, batch size, optimizer, width) on the temporal-order task at several
   lengths (the paper's length 100 among them) and on the embedded word-order dataset at
   increasing cue distances; test accuracy and the first/last-timestep gradient ratio before
   and after training are recorded per model.
3. **Exploding and clipping.** A SimpleRNN with a large recurrent gain, trained with plain SGD,
   without and with `clipnorm` under the same seed; `GradientStats` records every step's
   pre/post-clip gradient norms and whether clipping fired.

Outputs in `out_dir`: `summary.json`, `gradient_stats.csv` (all GradientStats rows with a `run`
column), `decay_curves.csv`, `step_losses.csv`, PNG plots and `report.md`.

Library code only: nothing here imports `pipelines/`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings

import numpy as np

from seqclf._io import atomic_path, atomic_write_text
from seqclf.errors import SeqclfError

__all__ = ["DemoConfig", "run_demo", "simple_rnn_jacobian_factors", "fit_log_slope"]


@dataclasses.dataclass
class DemoConfig:
    """Sizes of the demonstration; `DemoConfig.default()` and `DemoConfig.smoke()` are presets."""

    # 1. decay sweep
    decay_gains: tuple = (0.5, 0.9, 1.0, 1.5)
    decay_length: int = 100
    decay_batch: int = 64
    decay_units: int = 64
    decay_fit_max_distance: int = 60
    # 2. learning comparison (equal budgets for every cell)
    units: int = 32
    embedding_dim: int = 16
    learning_rate: float = 3e-3
    clipnorm: float = 1.0
    batch_size: int = 32
    temporal_lengths: tuple = (50, 100, 200)
    temporal_train: int = 4000
    temporal_test: int = 1000
    temporal_epochs: int = 2
    word_order_configs: tuple = ("default", "distance_25")
    word_order_train: int = 6000
    word_order_test: int = 2000
    word_order_epochs: int = 2
    probe_batch: int = 64
    stats_frequency: int = 10
    # 3. exploding gradients
    explode_gain: float = 2.0
    explode_length: int = 30
    explode_train: int = 2000
    explode_units: int = 64
    explode_optimizer: str = "sgd"
    explode_learning_rate: float = 1.0
    explode_clipnorm: float = 0.1
    explode_epochs: int = 1

    @classmethod
    def default(cls):
        return cls()

    @classmethod
    def smoke(cls):
        return cls(
            decay_length=30,
            decay_batch=16,
            decay_units=16,
            decay_fit_max_distance=25,
            units=8,
            embedding_dim=8,
            temporal_lengths=(12,),
            temporal_train=128,
            temporal_test=64,
            temporal_epochs=1,
            word_order_configs=(),
            word_order_train=128,
            word_order_test=64,
            word_order_epochs=1,
            probe_batch=16,
            stats_frequency=2,
            explode_length=20,
            explode_train=128,
            explode_units=16,
        )


# --------------------------------------------------------------------------- measurements


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


def _mean_log(factors, max_distance):
    vals = factors[:, :max_distance]
    vals = vals[np.isfinite(vals) & (vals > 0)]
    return float(np.mean(np.log(vals))) if vals.size else float("nan")


def _ratio_first_last(curve, first):
    curve = np.asarray(curve, dtype=float)
    if first >= len(curve) or not curve[0] > 0:
        return float("nan")
    return float(curve[first] / curve[0])


# --------------------------------------------------------------------------- helpers


class _StepLoss:
    """Keras callback (built lazily, Keras imported late) recording each step's own loss.

    Keras logs the running mean of the epoch; the step's loss is recovered from consecutive means.
    """

    @staticmethod
    def make():
        import keras

        class StepLoss(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.losses = []
                self._prev = None

            def on_epoch_begin(self, epoch, logs=None):
                self._prev = None
                self._k = 0

            def on_train_batch_end(self, batch, logs=None):
                m = float((logs or {}).get("loss", float("nan")))
                k = self._k
                step = m if self._prev is None else (k + 1) * m - k * self._prev
                self.losses.append(step)
                self._prev = m
                self._k = k + 1

        return StepLoss()


def _progress(total, quiet):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=quiet, desc="seqclf demo", unit="run", leave=True)


def _say(bar, quiet, message):
    if quiet:
        return
    bar.write(message)


def _accuracy(model, x, y, batch_size=256):
    p = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(p, axis=1) == np.asarray(y)))


def _record_frame(frame, run):
    frame = frame.copy()
    frame.insert(0, "run", run)
    return frame


def _probe_curve(frame, epoch):
    rows = frame[(frame["statistic"] == "input_grad_norm") & (frame["epoch"] == epoch)]
    rows = rows.sort_values("timestep")
    return rows["value"].to_numpy(float)


def _clip_fraction(frame):
    rows = frame[(frame["layer"] == "(global)") & (frame["statistic"] == "clip_fired")]
    return float(rows["value"].mean()) if len(rows) else 0.0


# --------------------------------------------------------------------------- experiments


def _decay_sweep(cfg, seed, bar, quiet):
    from seqclf.callbacks import timestep_gradient_norms
    from seqclf.models import build_classifier
    from seqclf.tasks import temporal_order as T

    probe = T.generate(cfg.decay_batch, length=cfg.decay_length, seed=seed + 101, fixed_length=True)
    curves, records = {}, []
    fit_max = min(cfg.decay_fit_max_distance, cfg.decay_length - 2)
    for gain in cfg.decay_gains:
        model = build_classifier(
            "simple_rnn",
            vocab_size=T.VOCAB_SIZE,
            num_classes=T.LABEL_NAMES.__len__(),
            embedding_dim=16,
            units=cfg.decay_units,
            recurrent_gain=gain,
            seed=seed,
        )
        curve = timestep_gradient_norms(
            model, probe.x, probe.labels, loss="sparse_categorical_crossentropy"
        )
        curve = next(iter(curve.values()))
        fac = simple_rnn_jacobian_factors(model, probe.x, probe.labels, max_distance=fit_max)
        label = f"SimpleRNN gain={gain:g}" + (" (Keras default)" if gain == 1.0 else "")
        curves[label] = curve
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            check = np.nanmean(fac["input_grad"], axis=0)[: fit_max + 1]
            rel = np.abs(check - curve[: fit_max + 1]) / curve[: fit_max + 1]
        measured = fit_log_slope(curve, fit_max)
        predicted = _mean_log(fac["path"], fit_max)
        records.append(
            {
                "cell": "simple_rnn",
                "gain": float(gain),
                "measured_log_slope": measured,
                "predicted_log_slope": predicted,
                "relative_error": abs(measured - predicted) / abs(predicted) if predicted else None,
                "spectral_bound_log_slope": _mean_log(fac["spectral"], fit_max),
                "isotropic_log_slope": _mean_log(fac["isotropic"], fit_max),
                "log_gain": math.log(gain),
                "mean_tanh_derivative": float(
                    np.nanmean(fac["isotropic"][:, :fit_max] / gain)
                ),
                "grad_ratio_d50": _ratio_first_last(curve, 50) if len(curve) > 50 else None,
                "grad_ratio_d99": _ratio_first_last(curve, 99) if len(curve) > 99 else None,
                "fit_distances": [0, fit_max],
                "numpy_recursion_max_rel_error": float(np.nanmax(rel[np.isfinite(rel)]))
                if np.isfinite(rel).any()
                else None,
            }
        )
        bar.update(1)
        _say(
            bar,
            quiet,
            f"  decay gain={gain:g}: measured slope {measured:+.4f}/step, "
            f"predicted {predicted:+.4f}",
        )
    lstm_records = []
    for init in ("default", "chrono"):
        model = build_classifier(
            "lstm",
            vocab_size=T.VOCAB_SIZE,
            num_classes=len(T.LABEL_NAMES),
            embedding_dim=16,
            units=cfg.decay_units,
            lstm_init=init,
            chrono_max_timescale=cfg.decay_length if init == "chrono" else None,
            seed=seed,
        )
        curve = next(
            iter(
                timestep_gradient_norms(
                    model, probe.x, probe.labels, loss="sparse_categorical_crossentropy"
                ).values()
            )
        )
        label = f"LSTM {init}" + (" (Keras default)" if init == "default" else "")
        curves[label] = curve
        slope = fit_log_slope(curve, fit_max)
        lstm_records.append(
            {
                "cell": "lstm",
                "init": init,
                "measured_log_slope": slope,
                "grad_ratio_d50": _ratio_first_last(curve, 50) if len(curve) > 50 else None,
                "grad_ratio_d99": _ratio_first_last(curve, 99) if len(curve) > 99 else None,
            }
        )
        bar.update(1)
        _say(bar, quiet, f"  decay LSTM {init}: measured slope {slope:+.4f}/step")
    return records, lstm_records, curves


def _train_one(
    *,
    cell,
    init,
    task,
    distance,
    x_train,
    y_train,
    x_test,
    y_test,
    probe,
    vocab_size,
    num_classes,
    cfg,
    seed,
    epochs,
    chrono_timescale,
    recurrent_gain=None,
    optimizer="adam",
    learning_rate=None,
    clipnorm=None,
    units=None,
    stats_frequency=None,
    run,
):
    import keras

    from seqclf.callbacks import GradientStats
    from seqclf.models import build_classifier
    from seqclf.optimizers import make_optimizer

    keras.utils.set_random_seed(seed)
    model = build_classifier(
        cell,
        vocab_size=vocab_size,
        num_classes=num_classes,
        embedding_dim=cfg.embedding_dim,
        units=units or cfg.units,
        lstm_init=init if cell == "lstm" else "default",
        chrono_max_timescale=chrono_timescale if init == "chrono" else None,
        recurrent_gain=recurrent_gain,
        seed=seed,
    )
    model.compile(
        optimizer=make_optimizer(
            optimizer, learning_rate or cfg.learning_rate, clipnorm=clipnorm
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    stats = GradientStats(
        frequency=stats_frequency or cfg.stats_frequency,
        probe_data=probe,
        probe_frequency=epochs,
        growth_factor=None,
    )
    step_loss = _StepLoss.make()
    keras.utils.set_random_seed(seed)  # same shuffling for runs that share a seed
    t0 = time.time()
    error = None
    try:
        model.fit(
            x_train,
            y_train,
            batch_size=cfg.batch_size,
            epochs=epochs,
            verbose=0,
            shuffle=True,
            callbacks=[stats, step_loss],
        )
    except SeqclfError as e:  # GradientStats stops and raises on a non-finite gradient
        error = str(e)
    seconds = time.time() - t0
    frame = stats.to_dataframe()
    losses = np.asarray(step_loss.losses, dtype=float)
    first_loss = float(losses[0]) if len(losses) else float("nan")
    nonfinite = bool(error) or not np.all(np.isfinite(losses))
    weights_finite = all(np.all(np.isfinite(np.asarray(w))) for w in model.weights)
    # Blow-up: the last 10% of steps average more than 3x the first step's loss (chance level).
    tail = losses[-max(1, len(losses) // 10) :]
    blowup = bool(len(losses) and np.nanmean(tail) > 3.0 * first_loss)
    diverged = nonfinite or blowup or not weights_finite
    first = int(np.min(np.count_nonzero(probe[0], axis=1))) - 1
    init_curve = _probe_curve(frame, -1)
    final_curve = _probe_curve(frame, epochs - 1) if not error else np.array([])
    test_acc = _accuracy(model, x_test, y_test) if weights_finite else float("nan")
    record = {
        "run": run,
        "cell": cell,
        "init": init,
        "clipnorm": clipnorm,
        "optimizer": optimizer,
        "learning_rate": learning_rate or cfg.learning_rate,
        "task": task,
        "distance": int(distance),
        "units": units or cfg.units,
        "train_examples": int(len(y_train)),
        "epochs": int(epochs),
        "steps": int(len(losses)),
        "test_accuracy": test_acc,
        "grad_first_over_last_init": _ratio_first_last(init_curve, first),
        "grad_first_over_last_final": _ratio_first_last(final_curve, first),
        "probe_first_distance": first,
        "diverged": bool(diverged),
        "clip_fraction": _clip_fraction(frame) if clipnorm else 0.0,
        "first_step_loss": first_loss,
        "final_loss": float(np.nanmean(tail)) if len(losses) else float("nan"),
        "train_seconds": round(seconds, 2),
        "error": error,
    }
    return record, _record_frame(frame, run), losses


def _explode(cfg, seed, bar, quiet):
    from seqclf.tasks import temporal_order as T

    train, test = T.splits(cfg.explode_train, 500, length=cfg.explode_length, seed=seed + 7)
    probe = T.generate(cfg.probe_batch, length=cfg.explode_length, seed=seed + 8, fixed_length=True,
                       pad_to=train.x.shape[1])
    records, frames, losses = [], [], {}
    init = f"gain={cfg.explode_gain:g}"
    for clip in (None, cfg.explode_clipnorm):
        run = f"explode/simple_rnn/{init}/clipnorm={clip}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec, frame, loss = _train_one(
                cell="simple_rnn",
                init=init,
                task="temporal_order",
                distance=cfg.explode_length,
                x_train=train.x,
                y_train=train.labels,
                x_test=test.x,
                y_test=test.labels,
                probe=(probe.x, probe.labels),
                vocab_size=T.VOCAB_SIZE,
                num_classes=len(T.LABEL_NAMES),
                cfg=cfg,
                seed=seed,
                epochs=cfg.explode_epochs,
                chrono_timescale=None,
                recurrent_gain=cfg.explode_gain,
                optimizer=cfg.explode_optimizer,
                learning_rate=cfg.explode_learning_rate,
                clipnorm=clip,
                units=cfg.explode_units,
                stats_frequency=1,
                run=run,
            )
        rec["experiment"] = "explode"
        records.append(rec)
        frames.append(frame)
        losses[run] = loss
        bar.update(1)
        _say(
            bar,
            quiet,
            f"  explode clipnorm={clip}: diverged={rec['diverged']} first/final loss "
            f"{rec['first_step_loss']:.3g}/{rec['final_loss']:.3g}, clip fired "
            f"{rec['clip_fraction']:.0%} of steps",
        )
    return records, frames, losses


def _learning(cfg, seed, bar, quiet, data_dir):
    from seqclf.tasks import temporal_order as T

    cells = (("simple_rnn", "default"), ("lstm", "default"), ("lstm", "chrono"))
    records, frames, probes = [], [], {}
    for length in cfg.temporal_lengths:
        train, test = T.splits(cfg.temporal_train, cfg.temporal_test, length=length, seed=seed)
        probe = T.generate(cfg.probe_batch, length=length, seed=seed + 3, fixed_length=True,
                           pad_to=train.x.shape[1])
        for cell, init in cells:
            run = f"temporal_order/L={length}/{cell}/{init}"
            rec, frame, _ = _train_one(
                cell=cell, init=init, task="temporal_order", distance=length,
                x_train=train.x, y_train=train.labels, x_test=test.x, y_test=test.labels,
                probe=(probe.x, probe.labels), vocab_size=T.VOCAB_SIZE,
                num_classes=len(T.LABEL_NAMES), cfg=cfg, seed=seed, epochs=cfg.temporal_epochs,
                chrono_timescale=train.x.shape[1], clipnorm=cfg.clipnorm, run=run,
            )
            rec["experiment"] = "learning"
            rec["chance"] = 1.0 / len(T.LABEL_NAMES)
            records.append(rec)
            frames.append(frame)
            probes[run] = (_probe_curve(frame, -1), _probe_curve(frame, cfg.temporal_epochs - 1))
            bar.update(1)
            _say(bar, quiet, f"  {run}: test accuracy {rec['test_accuracy']:.3f} "
                             f"({rec['train_seconds']:.0f}s)")
    for config in cfg.word_order_configs:
        x_train, y_train, x_test, y_test, vocab, distance = _word_order_arrays(
            config, cfg, seed, data_dir, quiet
        )
        probe = (x_test[: cfg.probe_batch], y_test[: cfg.probe_batch])
        for cell, init in cells:
            run = f"word_order/{config}/{cell}/{init}"
            rec, frame, _ = _train_one(
                cell=cell, init=init, task=f"word_order/{config}", distance=distance,
                x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, probe=probe,
                vocab_size=vocab, num_classes=2, cfg=cfg, seed=seed,
                epochs=cfg.word_order_epochs, chrono_timescale=x_train.shape[1],
                clipnorm=cfg.clipnorm, run=run,
            )
            rec["experiment"] = "learning"
            rec["chance"] = 0.5
            records.append(rec)
            frames.append(frame)
            bar.update(1)
            _say(bar, quiet, f"  {run}: test accuracy {rec['test_accuracy']:.3f} "
                             f"({rec['train_seconds']:.0f}s)")
    return records, frames, probes


def _word_order_arrays(config, cfg, seed, data_dir, quiet):
    """Vectorized train/test ids of a word-order configuration (numpy, right-padded with 0)."""
    from seqclf.data import load_spec, make_vectorizer

    train = load_spec(f"word_order/{config}:train", data_dir=data_dir, quiet=quiet)
    test = load_spec(f"word_order/{config}:test", data_dir=data_dir, quiet=quiet)
    rng = np.random.default_rng(seed)
    tr = rng.permutation(len(train))[: cfg.word_order_train]
    te = rng.permutation(len(test))[: cfg.word_order_test]
    vectorizer = make_vectorizer(train.texts[tr], max_tokens=5000)

    def ids(texts):
        return np.asarray(vectorizer(np.asarray(texts, dtype=object)), dtype="int64")

    x_train, x_test = ids(train.texts[tr]), ids(test.texts[te])
    width = max(x_train.shape[1], x_test.shape[1])
    x_train = np.pad(x_train, ((0, 0), (0, width - x_train.shape[1])))
    x_test = np.pad(x_test, ((0, 0), (0, width - x_test.shape[1])))
    from seqclf.data import SeqclfWordOrder

    distance = next(
        (c.distance for c in SeqclfWordOrder.BUILDER_CONFIGS if c.name == config), None
    )
    if distance is None:
        distance = int(config.rsplit("_", 1)[1]) if config.startswith("distance_") else 0
    return (x_train, train.labels[tr], x_test, test.labels[te],
            len(vectorizer.get_vocabulary()), distance)


# --------------------------------------------------------------------------- outputs


def _plots(out, decay_curves, learning, explode_records, explode_losses, stats, probes, cfg):
    from seqclf.plotting import (
        plot_accuracy_vs_distance,
        plot_clipping_comparison,
        plot_layer_norms,
        plot_timestep_gradients,
        plot_timestep_heatmap,
    )

    files = []
    path = os.path.join(out, "decay_gradient_vs_distance.png")
    plot_timestep_gradients(
        [{k: v} for k, v in decay_curves.items()],
        path=path,
        labels=None,
        title="Gradient norm vs distance at initialisation (temporal-order probe batch)",
    )
    files.append(path)
    path = os.path.join(out, "decay_heatmap.png")
    plot_timestep_heatmap(decay_curves, path=path, title="log10 ||dL/dx_t|| at initialisation")
    files.append(path)

    path = os.path.join(out, "accuracy_vs_distance.png")
    plot_accuracy_vs_distance(learning, path=path)
    files.append(path)

    # Per-timestep gradients before/after training at the longest temporal-order length.
    longest = max(cfg.temporal_lengths)
    chosen = {k: v for k, v in probes.items() if f"/L={longest}/" in k}
    if chosen:
        curves, labels = [], []
        for run, (init_curve, final_curve) in chosen.items():
            name = run.split("/", 2)[2]
            curves += [{"init": init_curve}, {"trained": final_curve}]
            labels += [name, name]
        path = os.path.join(out, f"temporal_order_L{longest}_gradients_before_after.png")
        plot_timestep_gradients(curves, path=path, labels=labels,
                                title=f"Temporal order L={longest}: gradient vs distance")
        files.append(path)

    # Exploding: gradient-norm traces and per-step losses, with and without clipping.
    path = os.path.join(out, "exploding_clipping.png")
    plot_clipping_comparison(
        stats, explode_losses, {r["run"]: f"clipnorm={r['clipnorm']}" for r in explode_records},
        path=path, title=f"SimpleRNN gain={cfg.explode_gain:g}, {cfg.explode_optimizer} "
                         f"lr={cfg.explode_learning_rate:g}",
    )
    files.append(path)

    clipped = [r for r in explode_records if r["clipnorm"]]
    if clipped:
        path = os.path.join(out, "exploding_layer_norms_clipped.png")
        plot_layer_norms(stats[stats["run"] == clipped[0]["run"]], path=path)
        files.append(path)
    return [os.path.basename(f) for f in files]


def _fmt(v, spec=".3g"):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if v == 0 and spec == ".3g":
        return "0 (float32 underflow)"
    return format(v, spec)


def _report(summary, cfg):
    d = summary["decay"]
    lstm = summary["decay_lstm"]
    models = summary["models"]
    learn = [m for m in models if m.get("experiment") == "learning"]
    expl = [m for m in models if m.get("experiment") == "explode"]
    checks = summary["checks"]
    lines = [
        "# Vanishing and exploding gradients in Keras recurrent classifiers",
        "",
        f"Generated by `seqclf demo` ({'smoke sizes' if summary['smoke'] else 'default sizes'}, "
        f"seed {summary['seed']}, {summary['wall_seconds']:.0f} s wall time, "
        f"TensorFlow {summary['versions']['tensorflow']}, Keras {summary['versions']['keras']}). "
        "Every number below was measured in this run; `summary.json` holds them all, "
        "`gradient_stats.csv` the raw GradientStats rows (column `run`), `decay_curves.csv` the "
        "per-distance gradient norms at initialisation, `step_losses.csv` per-step losses.",
        "",
        "## Checks",
        "",
        "| claim | result |",
        "|---|---|",
    ]
    for c in checks.values():
        lines.append(f"| {c['claim']} | {'PASS' if c['passed'] else 'FAIL'}: {c['detail']} |")
    lines += [
        "",
        "## 1. The product law (decay sweep at initialisation, no training)",
        "",
        f"Probe: {cfg.decay_batch} temporal-order sequences of exactly {cfg.decay_length} "
        f"tokens; models: embedding 16, {cfg.decay_units} units, one recurrent layer, softmax "
        "head. *Measured*: `timestep_gradient_norms` gives the mean over the batch of "
        "||dL/dx_t|| (x_t the recurrent layer's input) by distance d from each sequence's last "
        "token; the log-slope is a least-squares fit of log norm on d for d = "
        f"0..{d[0]['fit_distances'][1] if d else '?'} "
        "(values below 1e-30 of the d=0 value, i.e. float32 underflow, are left out).",
        "",
        "*Predicted* (SimpleRNN): h_t = tanh(W x_t + U h_{t-1} + b), so "
        "dL/dh_{t-1} = J_t^T dL/dh_t with J_t = diag(1 - h_t^2) U. The gradient k steps back is "
        "the last-step gradient times k such factors - the product of numbers below one. The "
        "demo recomputes the forward pass in NumPy, backpropagates the actual loss gradient by "
        "hand, and takes for each step the factor ||J_t^T delta_t|| / ||delta_t|| by which that "
        "step shrinks the vector that is really backpropagated; the predicted slope is the mean "
        "log of these factors over the same steps and sequences. This is the honest estimator: "
        "the spectral norm ||J_t||_2 only bounds the shrinkage (column `spectral bound`, always "
        "above the truth), and the isotropic factor ||J_t||_F/sqrt(n) describes a random vector, "
        "not the backpropagated one. The prediction is not the measurement restated: the "
        "measured curve is ||W^T diag(1-h_t^2) delta_t||, averaged over the batch *before* the "
        "log and fitted by least squares, while the prediction averages log factors of delta "
        "alone. (The NumPy recursion's input gradients match TensorFlow's to the relative "
        "error in the last column.)",
        "",
        "| recurrent gain | measured slope | predicted slope | rel. error | spectral bound "
        "| isotropic | log gain | grad d=50 / d=0 | NumPy vs TF |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in d:
        lines.append(
            f"| {r['gain']:g} | {r['measured_log_slope']:+.4f} | {r['predicted_log_slope']:+.4f} | "
            f"{_fmt(r['relative_error'], '.1%')} | {r['spectral_bound_log_slope']:+.4f} | "
            f"{r['isotropic_log_slope']:+.4f} | {r['log_gain']:+.4f} | "
            f"{_fmt(r['grad_ratio_d50'])} | {_fmt(r['numpy_recursion_max_rel_error'], '.1e')} |"
        )
    lines += ["", "| LSTM init | measured slope | grad d=50 / d=0 |", "|---|---|---|"]
    for r in lstm:
        lines.append(
            f"| {r['init']} | {r['measured_log_slope']:+.4f} | {_fmt(r['grad_ratio_d50'])} |"
        )
    lines += [
        "",
        "![gradient vs distance](decay_gradient_vs_distance.png)",
        "",
        "What it shows: with U = Orthogonal(gain g) every singular value of U is g, and at "
        "initialisation the inputs are small so tanh' = 1 - h^2 stays near 1: the per-step "
        "factor is about g, the slope about log g (log 0.5 = -0.693, log 0.9 = -0.105). At gain "
        "1.5 the state saturates, tanh' drops, and the product of factors g * tanh' is still "
        "above one - the gradient *grows* with distance (an exploding regime at init).",
        "",
        "## 2. Consequence for learning (equal budgets)",
        "",
        f"Every model: embedding {cfg.embedding_dim}, {cfg.units} units, Adam "
        f"lr={cfg.learning_rate:g} with clipnorm={cfg.clipnorm:g}, batch {cfg.batch_size}, the "
        "same seed. Temporal order (Hochreiter & Schmidhuber 1997, exp. 6a; 4 classes, chance "
        "0.25): "
        f"{cfg.temporal_train} training sequences x {cfg.temporal_epochs} epochs, "
        f"{cfg.temporal_test} test sequences per length. Word order (`word_order/CONFIG`, binary, "
        f"chance 0.5): {cfg.word_order_train} training texts x {cfg.word_order_epochs} epochs, "
        f"{cfg.word_order_test} test texts. Chrono initialisation uses the padded length as its "
        "largest time scale. Gradient ratio = mean ||dL/dx_t|| at the first real token over that "
        "at the last, on a fixed probe batch, before and after training (for word order the "
        "'first' position is the shortest probe text's first token).",
        "",
        "| task | distance | cell | init | test acc. | grad first/last init "
        "| grad first/last trained | clip fired | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in learn:
        lines.append(
            f"| {r['task']} | {r['distance']} | {r['cell']} | {r['init']} | "
            f"{r['test_accuracy']:.3f} | "
            f"{_fmt(r['grad_first_over_last_init'])} | {_fmt(r['grad_first_over_last_final'])} | "
            f"{r['clip_fraction']:.0%} | {r['train_seconds']:.0f} |"
        )
    lines += [
        "",
        "![accuracy vs distance](accuracy_vs_distance.png)",
        "",
        *_learning_findings(learn),
        "",
        "![gradients before/after]"
        f"(temporal_order_L{max(cfg.temporal_lengths)}_gradients_before_after.png)",
        "",
        "## 3. Exploding gradients and clipping",
        "",
        f"SimpleRNN, recurrent Orthogonal(gain={cfg.explode_gain:g}), {cfg.explode_units} units, "
        f"plain {cfg.explode_optimizer.upper()} lr={cfg.explode_learning_rate:g}, temporal order "
        f"length {cfg.explode_length}, {cfg.explode_train} sequences x {cfg.explode_epochs} epoch, "
        "the same seed (same weights, same batches); GradientStats samples every step. "
        "'Diverged' means a non-finite loss, gradient or weight, or a final loss (mean of the "
        "last 10% of steps) above 3x the first step's.",
        "",
        "| clipnorm | diverged | first-step loss | final loss | max pre-clip global norm "
        "| median pre-clip global norm | clip fired | test acc. |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in expl:
        lines.append(
            f"| {r['clipnorm']} | {r['diverged']} | {_fmt(r['first_step_loss'])} | "
            f"{_fmt(r['final_loss'])} | {_fmt(r.get('max_global_norm'))} | "
            f"{_fmt(r.get('median_global_norm'))} | {r['clip_fraction']:.0%} of steps | "
            f"{_fmt(r['test_accuracy'])} |"
        )
    lines += [
        "",
        "![exploding and clipping](exploding_clipping.png)",
        "",
        "What it shows: at initialisation the gradient of this SimpleRNN *grows* with distance "
        "(first/last-token ratio "
        f"{_fmt(expl[0]['grad_first_over_last_init']) if expl else 'n/a'}); the first unclipped "
        "SGD step is proportional to that huge gradient, throws the weights far away and "
        "saturates the network, after which the loss stays high and the gradient through time "
        "is dead (first/last ratio after training "
        f"{_fmt(expl[0]['grad_first_over_last_final']) if expl else 'n/a'}). "
        "With the same seed - same weights, same batches - `clipnorm` caps each step "
        "and training stays stable: the loss stays near its starting value (final "
        f"{_fmt(expl[-1]['final_loss']) if expl else 'n/a'} vs first "
        f"{_fmt(expl[-1]['first_step_loss']) if expl else 'n/a'}); stable is not the same as "
        "learned - this short SGD budget is not meant to solve the task. "
        f"Keras' `clipnorm` clips each gradient tensor separately to norm {cfg.explode_clipnorm:g} "
        "(Pascanu et al. 2013 clip the global norm: `global_clipnorm`); with gradients routinely "
        "larger than that it fires on almost every step, so the update becomes normalised SGD.",
        "",
        "## Where Keras' defaults differ from the textbook story",
        "",
    ]
    lines += summary["keras_defaults_notes"]
    lines.append("")
    return "\n".join(lines)


def _learning_findings(learn):
    """Data-driven sentences about the learning comparison."""
    out = []
    settings = sorted({(r["task"], r["distance"]) for r in learn}, key=lambda k: (k[0], k[1]))
    for task, distance in settings:
        acc = {(r["cell"], r["init"]): r["test_accuracy"] for r in learn
               if r["task"] == task and r["distance"] == distance}
        chance = next(r["chance"] for r in learn if r["task"] == task)
        learned = [f"{c} ({i})" for (c, i), a in acc.items() if a >= 0.95]
        failed = [f"{c} ({i})" for (c, i), a in acc.items() if a <= chance + 0.1]
        out.append(
            f"- {task}, distance {distance}: reached >= 0.95: {', '.join(learned) or 'none'}; "
            f"at chance (<= chance + 0.1): {', '.join(failed) or 'none'}."
        )
    return out


def _checks(summary, cfg):
    checks = {}
    d = {r["gain"]: r for r in summary["decay"]}
    for g in (0.5, 0.9):
        if g in d:
            r = d[g]
            ok = r["relative_error"] is not None and r["relative_error"] <= 0.15
            checks[f"product_law_gain_{g:g}"] = {
                "claim": f"gain {g:g}: measured slope within 15% of predicted",
                "passed": bool(ok),
                "detail": f"measured {r['measured_log_slope']:+.4f}, predicted "
                          f"{r['predicted_log_slope']:+.4f} ({_fmt(r['relative_error'], '.1%')})",
            }
    if 0.5 in d and d[0.5]["grad_ratio_d50"] is not None:
        v = d[0.5]["grad_ratio_d50"]
        checks["gain_0.5_d50_below_1e-6"] = {
            "claim": "gain 0.5: gradient 50 steps back < 1e-6 of the last step's",
            "passed": bool(v < 1e-6),
            "detail": f"ratio {v:.3g}",
        }
    learn = [m for m in summary["models"] if m.get("experiment") == "learning"]
    best = None
    for m in learn:
        if m["cell"] != "lstm" or m["test_accuracy"] < 0.95:
            continue
        rnn = [r for r in learn if r["cell"] == "simple_rnn" and r["task"] == m["task"]
               and r["distance"] == m["distance"]]
        limit = 0.60 if m["chance"] >= 0.5 else m["chance"] + 0.1
        if rnn and rnn[0]["test_accuracy"] <= limit:
            best = (m, rnn[0])
            break
    checks["lstm_beats_simple_rnn"] = {
        "claim": "a setting where an LSTM reaches >= 0.95 while SimpleRNN stays <= 0.60 "
                 "(chance + 0.1 for 4 classes)",
        "passed": best is not None,
        "detail": (f"{best[0]['task']} distance {best[0]['distance']}: LSTM ({best[0]['init']}) "
                   f"{best[0]['test_accuracy']:.3f} vs SimpleRNN {best[1]['test_accuracy']:.3f}"
                   if best else "no such setting in this run"),
    }
    expl = {m["clipnorm"]: m for m in summary["models"] if m.get("experiment") == "explode"}
    unclipped, clipped = expl.get(None), expl.get(cfg.explode_clipnorm)
    if unclipped and clipped:
        checks["explode_without_clipping"] = {
            "claim": "exploding SimpleRNN diverges without clipping and is stable with clipnorm",
            "passed": bool(unclipped["diverged"] and not clipped["diverged"]),
            "detail": f"without: diverged={unclipped['diverged']} (final loss "
                      f"{_fmt(unclipped['final_loss'])}); with clipnorm={cfg.explode_clipnorm:g}: "
                      f"diverged={clipped['diverged']} (final loss {_fmt(clipped['final_loss'])}), "
                      f"clipping fired on {clipped['clip_fraction']:.0%} of steps",
        }
    return checks


def _simple_rnn_training_note(learn):
    rows = [m for m in learn if m["task"] == "temporal_order" and m["cell"] == "simple_rnn"]
    if not rows:
        return ""
    m = max(rows, key=lambda r: r["distance"])
    a, b = m["grad_first_over_last_init"], m["grad_first_over_last_final"]
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return ""
    trend = "smaller" if b < a else "larger"
    return (
        f" On temporal order at length {m['distance']} its first/last-token gradient ratio was "
        f"{_fmt(a)} at initialisation and {_fmt(b)} after training ({trend})."
    )


def _keras_notes(summary):
    d = {r["gain"]: r for r in summary["decay"]}
    lstm = {r["init"]: r for r in summary["decay_lstm"]}
    learn = [m for m in summary["models"] if m.get("experiment") == "learning"]
    notes = []
    if 1.0 in d:
        notes.append(
            f"- **SimpleRNN's recurrent kernel is orthogonal by default** (gain 1), not the small "
            f"random matrix of the textbook analysis. At initialisation its gradient barely decays "
            f"(slope {d[1.0]['measured_log_slope']:+.4f} per step): the only shrinking factor is "
            "tanh' < 1. Vanishing at init has to be provoked with a gain below one."
            + _simple_rnn_training_note(learn)
        )
    if "default" in lstm and 1.0 in d:
        notes.append(
            f"- **Keras' default LSTM decays faster than the default SimpleRNN at init** (slope "
            f"{lstm['default']['measured_log_slope']:+.4f} vs "
            f"{d[1.0]['measured_log_slope']:+.4f}). "
            "`unit_forget_bias=True` sets the forget-gate bias to 1, so the gate sits near "
            "sigmoid(1) = 0.73 and the cell-state path multiplies the gradient by about 0.73 x "
            "(input-dependent terms) per step. The constant error carousel needs forget gates "
            "near 1; "
            "chrono initialisation (forget bias log U(1, T-1)) gives that "
            + (f"(slope {lstm['chrono']['measured_log_slope']:+.4f})." if "chrono" in lstm else ".")
        )
    longest = [m for m in learn if m["task"] == "temporal_order"]
    if longest:
        L = max(m["distance"] for m in longest)
        acc = {(m["cell"], m["init"]): m["test_accuracy"] for m in longest if m["distance"] == L}
        notes.append(
            f"- Consequently, on temporal order at length {L} with the same budget the default "
            "LSTM "
            f"reached {_fmt(acc.get(('lstm', 'default')))} and SimpleRNN "
            f"{_fmt(acc.get(('simple_rnn', 'default')))}, while chrono LSTM reached "
            f"{_fmt(acc.get(('lstm', 'chrono')))}: 'LSTMs solve vanishing gradients' holds for "
            "the architecture with a suitable initialisation, not for Keras' defaults as such."
        )
    for m in learn:
        if m["cell"] != "simple_rnn":
            continue
        lstms = [r for r in learn if r["cell"] == "lstm" and r["task"] == m["task"]
                 and r["distance"] == m["distance"]]
        if lstms and all(m["test_accuracy"] > r["test_accuracy"] + 0.1 for r in lstms):
            notes.append(
                f"- **SimpleRNN ahead of both LSTMs** on {m['task']} (distance {m['distance']}): "
                f"{m['test_accuracy']:.3f} vs "
                + ", ".join(f"{r['init']} LSTM {r['test_accuracy']:.3f}" for r in lstms)
                + ". With a short budget the gated cells start slower (at init every gate is "
                "about half open, chrono's input gates mostly closed), and at a moderate distance "
                "the orthogonal SimpleRNN's gradient has not vanished yet: a long-range task is "
                "not automatically an LSTM win at a small, equal budget. (In development runs, "
                "not re-measured here, both LSTMs reached 1.0 on word_order/distance_25 with "
                "8,000 texts x 3 epochs.)"
            )
    notes.append(
        "- `clipnorm` in Keras clips each variable's gradient separately; `global_clipnorm` is the "
        "global-norm rule of Pascanu et al. Per-tensor clipping changes the update direction."
    )
    notes.append(
        "- Adam normalises the update per parameter, so a large gradient alone rarely blows up an "
        "Adam run; the explosion demo uses plain SGD, where the update is proportional to the "
        "gradient, as in the textbook analysis."
    )
    return notes


# --------------------------------------------------------------------------- entry point


def run_demo(out_dir, *, smoke=False, quiet=False, seed=0, data_dir=None, config=None):
    """Runs the demonstration and writes its outputs to `out_dir`; returns the summary dict.

    Args:
        out_dir: output directory (created if needed).
        smoke: tiny sizes (< 1 minute), for tests: temporal order at length 12 only and no
            word-order runs (which would need the dataset prepared); only the decay sweep's
            numbers stay meaningful at that size.
        quiet: no progress bar or messages.
        seed: seed of data generation, weight initialisation and shuffling.
        data_dir: TFDS data directory for the word-order dataset (default `~/tensorflow_datasets`).
        config: a `DemoConfig` overriding the presets.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise SeqclfError(f"`seed` must be an integer. Received: seed={seed!r}")
    if out_dir is None or not str(out_dir).strip():
        raise SeqclfError(f"`out_dir` must be a directory path. Received: out_dir={out_dir!r}")
    cfg = config or (DemoConfig.smoke() if smoke else DemoConfig.default())
    out = os.fspath(out_dir)
    if os.path.exists(out) and not os.path.isdir(out):
        raise SeqclfError(f"`out_dir` exists and is not a directory. Received: out_dir={out!r}")
    os.makedirs(out, exist_ok=True)
    start = time.time()

    import keras
    import pandas as pd
    import tensorflow as tf

    n_runs = (
        len(cfg.decay_gains) + 2
        + 3 * (len(cfg.temporal_lengths) + len(cfg.word_order_configs))
        + 2
    )
    bar = _progress(n_runs, quiet)
    # The demo builds many small models on purpose; TensorFlow's retracing warnings are noise here.
    tf_logger = tf.get_logger()
    tf_level = tf_logger.level
    tf_logger.setLevel("ERROR")
    try:
        bar.set_description("decay sweep")
        decay, decay_lstm, curves = _decay_sweep(cfg, seed, bar, quiet)
        bar.set_description("learning comparison")
        learning, frames, probes = _learning(cfg, seed, bar, quiet, data_dir)
        bar.set_description("exploding/clipping")
        explode, explode_frames, explode_losses = _explode(cfg, seed, bar, quiet)
    finally:
        bar.close()
        tf_logger.setLevel(tf_level)
    stats = pd.concat(frames + explode_frames, ignore_index=True)
    for rec in explode:
        g = stats[(stats["run"] == rec["run"]) & (stats["layer"] == "(global)")
                  & (stats["statistic"] == "global_norm") & (stats["stage"] == "pre_clip")]
        vals = g["value"].to_numpy(float)
        rec["max_global_norm"] = float(np.nanmax(vals)) if len(vals) else None
        rec["median_global_norm"] = float(np.nanmedian(vals)) if len(vals) else None
        rec["sampled_steps"] = int(len(vals))

    stats_path = os.path.join(out, "gradient_stats.csv")
    with atomic_path(stats_path) as tmp:
        stats.to_csv(tmp, index=False)
    width = max(len(c) for c in curves.values())
    decay_frame = pd.DataFrame({"distance": np.arange(width)})
    for label, c in curves.items():
        col = np.full(width, np.nan)
        col[: len(c)] = c
        decay_frame[label] = col
    with atomic_path(os.path.join(out, "decay_curves.csv")) as tmp:
        decay_frame.to_csv(tmp, index=False)
    loss_rows = [
        {"run": run, "step": i, "loss": float(v)}
        for run, losses in explode_losses.items()
        for i, v in enumerate(losses)
    ]
    with atomic_path(os.path.join(out, "step_losses.csv")) as tmp:
        pd.DataFrame(loss_rows, columns=["run", "step", "loss"]).to_csv(tmp, index=False)

    summary = {
        "smoke": bool(smoke),
        "seed": seed,
        "config": dataclasses.asdict(cfg),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "models": learning + explode,
        "decay": decay,
        "decay_lstm": decay_lstm,
    }
    summary["checks"] = _checks(summary, cfg)
    summary["keras_defaults_notes"] = _keras_notes(summary)
    summary["plots"] = _plots(out, curves, learning, explode, explode_losses, stats, probes, cfg)
    summary["files"] = sorted(
        ["summary.json", "report.md", "gradient_stats.csv", "decay_curves.csv", "step_losses.csv"]
        + summary["plots"]
    )
    summary["wall_seconds"] = round(time.time() - start, 1)
    atomic_write_text(os.path.join(out, "report.md"), _report(summary, cfg))
    atomic_write_text(os.path.join(out, "summary.json"),
                      json.dumps(_jsonable(summary), indent=2, allow_nan=True))
    if not quiet:
        print(f"seqclf demo: wrote {len(summary['files'])} files to {out} "
              f"in {summary['wall_seconds']:.0f} s")
    return summary


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj

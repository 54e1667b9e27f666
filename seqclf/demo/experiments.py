"""The demonstration's three experiments, each returning records (dicts) for the summary.

* `decay_sweep`: gradient decay at initialisation, measured and predicted (no training).
* `learning_comparison`: SimpleRNN, default LSTM and chrono LSTM with equal budgets on temporal
  order and word order (`word_order_arrays` loads the latter as id arrays).
* `explode_and_clip`: a SimpleRNN with a large recurrent gain under plain SGD, without and with
  clipnorm.

`_train_one` is the training run the last two share: one model, its `GradientStats` frame, its
per-step losses and the record of what happened.

Keras and TensorFlow are imported inside the functions, so importing `seqclf.demo` stays cheap.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from seqclf.demo.jacobian import (
    fit_log_slope,
    mean_log_factor,
    ratio_first_last,
    simple_rnn_jacobian_factors,
)
from seqclf.errors import SeqclfError
from seqclf.gradients.frames import GLOBAL_LAYER


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


def progress_bar(total, quiet):
    """One bar over all of the demo's runs (disabled when `quiet`)."""
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
    rows = frame[(frame["layer"] == GLOBAL_LAYER) & (frame["statistic"] == "clip_fired")]
    return float(rows["value"].mean()) if len(rows) else 0.0


# --------------------------------------------------------------------------- experiments


def decay_sweep(cfg, seed, bar, quiet):
    """Experiment 1: per-gain SimpleRNN records, LSTM records and the curves by label."""
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
        predicted = mean_log_factor(fac["path"], fit_max)
        records.append(
            {
                "cell": "simple_rnn",
                "gain": float(gain),
                "measured_log_slope": measured,
                "predicted_log_slope": predicted,
                "relative_error": abs(measured - predicted) / abs(predicted) if predicted else None,
                "spectral_bound_log_slope": mean_log_factor(fac["spectral"], fit_max),
                "isotropic_log_slope": mean_log_factor(fac["isotropic"], fit_max),
                "log_gain": math.log(gain),
                "mean_tanh_derivative": float(
                    np.nanmean(fac["isotropic"][:, :fit_max] / gain)
                ),
                "grad_ratio_d50": ratio_first_last(curve, 50) if len(curve) > 50 else None,
                "grad_ratio_d99": ratio_first_last(curve, 99) if len(curve) > 99 else None,
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
                "grad_ratio_d50": ratio_first_last(curve, 50) if len(curve) > 50 else None,
                "grad_ratio_d99": ratio_first_last(curve, 99) if len(curve) > 99 else None,
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
        "grad_first_over_last_init": ratio_first_last(init_curve, first),
        "grad_first_over_last_final": ratio_first_last(final_curve, first),
        "probe_first_distance": first,
        "diverged": bool(diverged),
        "clip_fraction": _clip_fraction(frame) if clipnorm else 0.0,
        "first_step_loss": first_loss,
        "final_loss": float(np.nanmean(tail)) if len(losses) else float("nan"),
        "train_seconds": round(seconds, 2),
        "error": error,
    }
    return record, _record_frame(frame, run), losses


def explode_and_clip(cfg, seed, bar, quiet):
    """Experiment 3: records, GradientStats frames and per-step losses by run."""
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


def learning_comparison(cfg, seed, bar, quiet, data_dir):
    """Experiment 2: records, GradientStats frames and the probe curves before/after."""
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
        x_train, y_train, x_test, y_test, vocab, distance = word_order_arrays(
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


def word_order_arrays(config, cfg, seed, data_dir, quiet):
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


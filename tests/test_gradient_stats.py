"""Tests for `seqclf.callbacks.GradientStats` (hooks called directly on tiny models)."""

import json
import os
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from seqclf.callbacks import GradientStats
from seqclf.errors import SeqclfError
from seqclf.gradients.growth import GrowthMonitor

X = np.array([[1.0, 2.0], [-1.0, 0.5], [3.0, -2.0], [0.0, 1.0]], dtype="float32")
Y = np.array([[1.0], [0.0], [2.0], [-1.0]], dtype="float32")


def dense_model(**opt_kwargs):
    """Dense(1) on 2 features: two variables (kernel [2, 1], bias [1]), fixed weights."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="dense")])
    model.layers[0].set_weights([np.array([[0.5], [-1.5]], "float32"), np.array([0.25], "float32")])
    model.compile(optimizer=keras.optimizers.SGD(0.01, **opt_kwargs), loss="mse")
    return model


def hand_gradients(model, x=X, y=Y):
    with tf.GradientTape() as tape:
        loss = keras.losses.MeanSquaredError()(y, model(x))
    return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


def one_step(cb, model, x=X, y=Y, batch=0):
    """What fit does around one train step, with the hooks called directly."""
    cb.on_train_batch_begin(batch)
    model.train_on_batch(x, y)
    cb.on_train_batch_end(batch)


def values(frame, stage, statistic, layer="dense"):
    rows = frame[(frame.stage == stage) & (frame.statistic == statistic) & (frame.layer == layer)]
    return dict(zip(rows.variable, rows.value, strict=True))


def lstm_model(spe=1):
    model = keras.Sequential(
        [
            keras.Input((6,), dtype="int32"),
            keras.layers.Embedding(20, 4, mask_zero=True, name="embedding"),
            keras.layers.LSTM(4, name="lstm"),
            keras.layers.Dense(2, name="dense"),
        ]
    )
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=spe,
    )
    return model


def lstm_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 20, size=(n, 6))
    for i in range(n):
        x[i, rng.integers(2, 7) :] = 0
    return x, rng.integers(0, 2, size=n)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"frequency": 0},
        {"frequency": "step"},
        {"zero_threshold": -1},
        {"probe_data": np.zeros(3)},
        {"growth_factor": 0.5},
        {"growth_window": 2},
        {"probe_frequency": 0},
        {"histogram_bins": 1},
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(SeqclfError, match="Received: "):
        GradientStats(**kwargs)


def test_get_config_round_trip():
    cb = GradientStats(frequency="epoch", zero_threshold=1e-6, growth_factor=None, log_dir="tb")
    config = cb.get_config()
    assert config["frequency"] == "epoch" and config["log_dir"] == "tb"
    assert GradientStats.from_config(config).get_config() == config


def test_needs_compiled_model():
    cb = GradientStats()
    cb.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    with pytest.raises(SeqclfError, match="optimizer"):
        cb.on_train_begin()


@pytest.mark.parametrize(
    "clip, fired",
    [
        ({}, None),
        ({"clipnorm": 1.0}, {"kernel": 1.0, "bias": 0.0}),  # ||g_kernel|| ~ 4.3, ||g_bias|| ~ 0.88
        ({"clipnorm": 100.0}, {"kernel": 0.0, "bias": 0.0}),
        ({"global_clipnorm": 1.0}, {"kernel": 1.0, "bias": 1.0}),
        ({"clipvalue": 1.0}, {"kernel": 1.0, "bias": 0.0}),
    ],
)
def test_pre_and_post_clip_match_hand_computation(clip, fired):
    model = dense_model(**clip)
    kernel, bias = model.get_weights()
    g_kernel, g_bias = hand_gradients(model)
    # Keras's clipping rules, by hand.
    if "clipnorm" in clip:
        c = clip["clipnorm"]
        post = [g * min(1.0, c / np.linalg.norm(g)) for g in (g_kernel, g_bias)]
    elif "global_clipnorm" in clip:
        c = clip["global_clipnorm"]
        total = np.sqrt(np.sum(g_kernel**2) + np.sum(g_bias**2))
        post = [g * min(1.0, c / total) for g in (g_kernel, g_bias)]
    elif "clipvalue" in clip:
        post = [np.clip(g, -1.0, 1.0) for g in (g_kernel, g_bias)]
    else:
        post = [g_kernel, g_bias]

    cb = GradientStats(frequency=1)
    cb.set_model(model)
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    one_step(cb, model)
    cb.on_train_end()
    frame = cb.to_dataframe()

    pre_norm = values(frame, "pre_clip", "norm")
    np.testing.assert_allclose(pre_norm["kernel"], np.linalg.norm(g_kernel), rtol=1e-5)
    np.testing.assert_allclose(pre_norm["bias"], np.linalg.norm(g_bias), rtol=1e-5)
    pre = {"kernel": g_kernel, "bias": g_bias}
    for name, g in pre.items():
        np.testing.assert_allclose(values(frame, "pre_clip", "mean")[name], g.mean(), atol=1e-6)
        np.testing.assert_allclose(values(frame, "pre_clip", "std")[name], g.std(), atol=1e-5)
        np.testing.assert_allclose(
            values(frame, "pre_clip", "max_abs")[name], np.abs(g).max(), rtol=1e-5
        )
    ratio = values(frame, "pre_clip", "norm_ratio")
    np.testing.assert_allclose(
        ratio["kernel"], np.linalg.norm(g_kernel) / np.linalg.norm(kernel), rtol=1e-5
    )
    np.testing.assert_allclose(
        ratio["bias"], np.linalg.norm(g_bias) / np.linalg.norm(bias), rtol=1e-5
    )
    glob = frame[(frame.layer == "(global)") & (frame.statistic == "global_norm")]
    np.testing.assert_allclose(
        glob[glob.stage == "pre_clip"].value.item(),
        np.sqrt(np.sum(g_kernel**2) + np.sum(g_bias**2)),
        rtol=1e-5,
    )
    assert (frame.step == 0).all() and (frame.epoch == 0).all()

    if fired is None:
        # No clipping configured: post_clip is not recorded separately.
        assert set(frame.stage) == {"pre_clip"}
        return
    post_norm = values(frame, "post_clip", "norm")
    np.testing.assert_allclose(post_norm["kernel"], np.linalg.norm(post[0]), rtol=1e-5)
    np.testing.assert_allclose(post_norm["bias"], np.linalg.norm(post[1]), rtol=1e-5)
    assert values(frame, "post_clip", "clip_fired") == fired
    fired_global = frame[
        (frame.layer == "(global)") & (frame.statistic == "clip_fired")
    ].value.item()
    assert fired_global == max(fired.values())


def test_records_only_sampled_steps_and_restores_optimizer():
    model = dense_model(clipnorm=1.0)
    optimizer = model.optimizer
    cb = GradientStats(frequency=3)
    cb.set_model(model)
    cb.on_train_begin()
    assert "_clip_gradients" in optimizer.__dict__
    cb.on_epoch_begin(0)
    for batch in range(7):
        one_step(cb, model, batch=batch)
    cb.on_train_end()
    assert sorted(cb.to_dataframe().step.unique()) == [0, 3, 6]
    assert "_clip_gradients" not in optimizer.__dict__
    assert "_backend_apply_gradients" not in optimizer.__dict__
    assert model.train_function is None  # the next fit traces a clean train function


def test_frequency_epoch_samples_first_step_of_each_epoch():
    model = dense_model()
    cb = GradientStats(frequency="epoch")
    cb.set_model(model)
    cb.on_train_begin()
    for epoch in range(2):
        cb.on_epoch_begin(epoch)
        for batch in range(3):
            one_step(cb, model, batch=batch)
    cb.on_train_end()
    frame = cb.to_dataframe()
    assert sorted(frame.step.unique()) == [0, 3]
    assert dict(zip(frame.step, frame.epoch, strict=True)) == {0: 0, 3: 1}


def test_nonfinite_gradient_stops_training_with_error_naming_variable_and_step():
    model = dense_model()
    x = np.tile(X, (4, 1))
    x[9, 0] = np.inf  # in the third batch of 4 -> step 2
    y = np.tile(Y, (4, 1))
    cb = GradientStats(frequency=1)
    with pytest.raises(SeqclfError, match=r"step 2 .*layer 'dense' variable 'kernel'"):
        model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0, callbacks=[cb])
    assert int(model.optimizer.iterations.numpy()) == 3  # stopped right after the bad batch
    assert "_clip_gradients" not in model.optimizer.__dict__
    assert cb.events[0]["kind"] == "nonfinite" and cb.events[0]["step"] == 2
    # Sampling rarely: found at the epoch end, still naming the first bad step.
    model = dense_model()
    cb = GradientStats(frequency=100)
    with pytest.raises(SeqclfError, match=r"step 2 .*layer 'dense' variable 'kernel'"):
        model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0, callbacks=[cb])
    assert int(model.optimizer.iterations.numpy()) == 4
    assert "_clip_gradients" not in model.optimizer.__dict__
    assert cb.events[0]["kind"] == "nonfinite" and cb.events[0]["step"] == 2


def test_finite_check_flags_only_non_finite_gradients_on_unsampled_steps():
    """Unsampled steps check a sum per gradient; the exact per-element check decides."""

    def model_with_gradient(g):
        # MAE on a bias-free Dense(1): the kernel gradient is -x for a prediction below y.
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
        model.layers[0].set_weights([np.zeros((2, 1), "float32")])
        model.compile(optimizer=keras.optimizers.SGD(1e-30), loss="mae")
        return model, -np.array([g], "float32"), np.ones((1, 1), "float32")

    # Finite gradient entries whose sum overflows float32 to -inf: not an error.
    model, x, y = model_with_gradient([3e38, 3e38])
    assert np.isinf(np.sum(hand_gradients(model, x, y)[0], dtype=np.float32))
    cb = GradientStats(frequency=100)
    cb.set_model(model)
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    for batch in range(3):
        one_step(cb, model, x, y, batch=batch)
    cb.on_epoch_end(0)
    cb.on_train_end()
    assert cb.events == [] and cb.nonfinite_step == -1
    # +inf and -inf (sum NaN) on unsampled step 1: found, with its step.
    for bad in ([np.inf, -np.inf], [np.nan, 1.0]):
        model, x, y = model_with_gradient([1.0, 1.0])
        cb = GradientStats(frequency=100)
        cb.set_model(model)
        cb.on_train_begin()
        cb.on_epoch_begin(0)
        one_step(cb, model, x, y, batch=0)
        one_step(cb, model, -np.array([bad], "float32"), y, batch=1)
        cb.on_epoch_end(0)
        with pytest.raises(SeqclfError, match=r"step 1 .*variable 'kernel'"):
            cb.on_train_end()
        assert cb.events[0]["step"] == 1


def test_growth_monitor_needs_three_norms_and_flags_factor_times_the_median():
    monitor = GrowthMonitor(factor=5.0, window=5)
    assert [monitor.check(n) for n in (1.0, 100.0, 1.1)] == [None, None, None]  # < 3 before
    assert monitor.check(float("nan")) is None and len(monitor.history) == 3  # left out
    assert monitor.check(1000.0) == 1.1  # median of 1.0, 100.0, 1.1
    assert GrowthMonitor(factor=None, window=5).check(1e9) is None


def test_growth_is_warned_and_recorded():
    # Through the callback's hooks: sampled steps with a steady gradient, then the small ones of
    # a nearly fitted model, then one batch 20x the recent median but below the fit's typical
    # scale (no alarm: ordinary late in training), then inputs 50x larger (an alarm).
    model, x, y = dense_model(), X, Y
    cb = GradientStats(frequency=1, growth_factor=5.0, growth_window=5)
    cb.set_model(model)
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    scales = [1.0] * 8 + [0.01] * 6 + [0.2]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for batch, scale in enumerate(scales):
            one_step(cb, model, scale * x, y, batch=batch)
    assert cb.events == []
    with pytest.warns(RuntimeWarning, match="more than 5x the median .* of all sampled steps"):
        one_step(cb, model, 50 * x, y, batch=len(scales))
    cb.on_epoch_end(0)
    cb.on_train_end()
    assert cb.events[0]["kind"] == "growth" and cb.events[0]["step"] == len(scales)


def test_fit_end_to_end_on_lstm_classifier(tmp_path):
    x, y = lstm_data()
    model = lstm_model()
    # A train function traced before the callback existed must not bypass it.
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    cb = GradientStats(frequency=2, probe_data=(x[:8], y[:8]), log_dir=tmp_path / "tb")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[cb])
    frame = cb.to_dataframe()
    assert list(frame.columns) == [
        "step",
        "epoch",
        "layer",
        "variable",
        "stage",
        "statistic",
        "timestep",
        "value",
    ]
    norms = frame[(frame.statistic == "norm") & (frame.stage == "pre_clip")]
    assert set(zip(norms.layer, norms.variable, strict=True)) == {
        ("embedding", "embeddings"),
        ("lstm", "kernel"),
        ("lstm", "recurrent_kernel"),
        ("lstm", "bias"),
        ("dense", "kernel"),
        ("dense", "bias"),
    }
    # The previous fit ran 4 steps; this one samples every 2nd of its 8 steps.
    assert sorted(norms.step.unique()) == [4, 6, 8, 10]
    assert np.isfinite(norms.value).all() and (norms.value > 0).all()
    frac = frame[frame.statistic == "frac_near_zero"]
    emb = frac[frac.layer == "embedding"].value
    assert (emb > 0).all()  # rows of tokens absent from the batch are exactly zero
    probe = frame[frame.stage == "probe"]
    assert sorted(probe.epoch.unique()) == [-1, 0, 1]
    assert probe.timestep.max() == 5 and probe.layer.unique().tolist() == ["lstm"]
    # TensorBoard event files with scalars and histograms.
    events = [str(p) for p in (tmp_path / "tb").iterdir()]
    tags = {
        v.tag
        for path in events
        for e in tf.compat.v1.train.summary_iterator(path)
        for v in e.summary.value
    }
    assert "global/grad_norm/pre_clip" in tags
    assert "lstm/grad_norm/recurrent_kernel/pre_clip" in tags and "lstm/grad_norm/pre_clip" in tags
    assert "dense/grad_log10_abs/kernel" in tags
    assert "lstm/input_grad_norm/d0" in tags
    # The optimizer is restored and a plain fit still works.
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)


def test_steps_per_execution_records_last_step_of_each_sampled_execution():
    x, y = lstm_data()
    model = lstm_model(spe=2)
    cb = GradientStats(frequency=4)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[cb])
    # 8 steps in executions [0,1] [2,3] [4,5] [6,7]; those holding a multiple of 4 are sampled.
    assert sorted(cb.to_dataframe().step.unique()) == [1, 5]


def test_to_dataframe_and_save(tmp_path):
    model = dense_model(clipvalue=0.5)
    cb = GradientStats(frequency=1)
    cb.set_model(model)
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    one_step(cb, model)
    one_step(cb, model, batch=1)
    cb.on_train_end()
    frame = cb.to_dataframe()
    assert set(frame.stage) == {"pre_clip", "post_clip"}
    assert frame.timestep.isna().all()
    csv = cb.save(tmp_path / "out" / "stats.csv")
    parquet = cb.save(tmp_path / "stats.parquet")
    for back in (pd.read_csv(csv), pd.read_parquet(parquet)):
        assert len(back) == len(frame)
        np.testing.assert_allclose(back.value.to_numpy(), frame.value.to_numpy())
    with pytest.raises(SeqclfError, match="Received: path="):
        cb.save(tmp_path / "stats.xlsx")


def test_state_is_reset_on_train_begin():
    model = dense_model()
    cb = GradientStats(frequency=1)
    model.fit(X, Y, batch_size=4, epochs=2, verbose=0, callbacks=[cb])
    assert len(cb.to_dataframe().step.unique()) == 2
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=[cb])
    assert cb.to_dataframe().step.unique().tolist() == [2]


_STRATEGY_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    import keras
    from seqclf.callbacks import GradientStats

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32") * 3
    w = [np.array([[0.5], [-1.0], [2.0]], "float32"), np.array([0.1], "float32")]
    clipnorm = 1.0

    def build():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, name="dense")])
        model.layers[0].set_weights(w)
        model.compile(optimizer=keras.optimizers.SGD(0.1, clipnorm=clipnorm), loss="mse")
        return model

    def grads(model, xb, yb, scale=1.0):
        with tf.GradientTape() as tape:
            loss = keras.losses.MeanSquaredError()(yb, model(xb)) * scale
        return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = build()
    cb = GradientStats(frequency=1)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    model.fit(ds, epochs=1, verbose=0, callbacks=[cb])
    frame = cb.to_dataframe()

    ref = build()
    full = grads(ref, x, y)
    # Keras clips each replica's share (half batch, loss scaled by 1/2), then sums.
    shares = [grads(ref, x[:4], y[:4], 0.5), grads(ref, x[4:], y[4:], 0.5)]
    def clip(g):
        n = np.linalg.norm(g)
        return g * min(1.0, clipnorm / n)
    post = [clip(shares[0][i]) + clip(shares[1][i]) for i in range(2)]
    fired = [float(any(np.linalg.norm(s[i]) > clipnorm for s in shares)) for i in range(2)]
    def get(stage, stat):
        rows = frame[(frame.stage == stage) & (frame.statistic == stat) & (frame.layer == "dense")]
        return dict(zip(rows.variable, rows.value))
    names = ["kernel", "bias"]
    print("RESULT", json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "pre": get("pre_clip", "norm"),
        "post": get("post_clip", "norm"),
        "fired": get("post_clip", "clip_fired"),
        "expect_pre": dict(zip(names, [float(np.linalg.norm(g)) for g in full])),
        "expect_post": dict(zip(names, [float(np.linalg.norm(g)) for g in post])),
        "expect_fired": {"kernel": fired[0], "bias": fired[1]},
        "applied": model.layers[0].get_weights()[0].ravel().tolist(),
        "expect_applied": (w[0] - 0.1 * post[0]).ravel().tolist(),
    }))
    """
)


def test_mirrored_strategy_two_logical_cpus():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, "-c", _STRATEGY_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stderr[-3000:]
    r = json.loads(lines[-1][len("RESULT ") :])
    assert r["replicas"] == 2
    np.testing.assert_allclose(r["applied"], r["expect_applied"], rtol=1e-5)  # sanity: Keras
    for name in ("kernel", "bias"):
        np.testing.assert_allclose(r["pre"][name], r["expect_pre"][name], rtol=1e-5)
        np.testing.assert_allclose(r["post"][name], r["expect_post"][name], rtol=1e-5)
        assert r["fired"][name] == r["expect_fired"][name]


@pytest.mark.parametrize("optimizer", ["adam", "lazy_adam"])
def test_clip_fired_follows_how_the_optimizer_measures_an_embedding_gradient(optimizer):
    from seqclf.optimizers import make_optimizer

    # One token four times: the embedding gradient holds four equal slices of row 1. Keras' Adam
    # clips by the norm of the slices (2 |g_slice|), LazyAdam by the dense row (4 |g_slice|).
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,), dtype="int32"),
                              keras.layers.Embedding(5, 2, name="embedding"),
                              keras.layers.GlobalAveragePooling1D(),
                              keras.layers.Dense(1, name="dense")])
    x, y = np.ones((1, 4), "int32"), np.ones((1, 1), "float32")
    with tf.GradientTape() as tape:
        loss = keras.losses.mean_squared_error(y, model(x))
    slices = tape.gradient(loss, model.layers[0].embeddings)
    dense_norm = float(tf.norm(tf.convert_to_tensor(slices)))
    slices_norm = float(tf.norm(slices.values))
    np.testing.assert_allclose(dense_norm, 2 * slices_norm, rtol=1e-5)
    clipnorm = 1.5 * slices_norm  # between the two measures
    model.compile(make_optimizer(optimizer, 0.01, clipnorm=clipnorm), loss="mse")
    cb = GradientStats(frequency=1)
    cb.set_model(model)
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    one_step(cb, model, x, y)
    cb.on_train_end()
    frame = cb.to_dataframe()
    fired = values(frame, "post_clip", "clip_fired", layer="embedding")["embeddings"]
    post = values(frame, "post_clip", "norm", layer="embedding")["embeddings"]
    np.testing.assert_allclose(values(frame, "pre_clip", "norm", layer="embedding")["embeddings"],
                               dense_norm, rtol=1e-5)
    if optimizer == "lazy_adam":
        assert fired == 1.0
        np.testing.assert_allclose(post, clipnorm, rtol=1e-5)  # clipped to exactly clipnorm
    else:
        assert fired == 0.0
        np.testing.assert_allclose(post, dense_norm, rtol=1e-5)  # under clipnorm by its slices

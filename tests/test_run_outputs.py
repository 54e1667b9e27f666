"""What a run leaves to look at: TensorBoard events (`--tensorboard`)."""

import os

import pytest

from seqclf.cli import main

LAYERS = ("embedding", "gru_0", "classifier")


@pytest.fixture(scope="module")
def run(tmp_path_factory, tfds_dir):
    root = tmp_path_factory.mktemp("outputs")
    out, tb = str(root / "run"), str(root / "tb")
    code = main(["train", "--data", "word_order/tiny", "--model", "gru", "--units", "4",
                 "--embedding-dim", "4", "--epochs", "2", "--steps-per-execution", "4",
                 "--clipnorm", "0.05", "--gradient-stats", "3", "--data-dir", tfds_dir,
                 "--out", out, "--tensorboard", tb, "--quiet"])
    assert code == 0
    return out, tb


def _events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(folder, size_guidance={"tensors": 0})
    acc.Reload()
    return acc


def _values(acc, tag):
    from tensorboard.util.tensor_util import make_ndarray

    return [float(make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]


def _plugin_tags(acc, plugin):
    return {t for t in acc.Tags()["tensors"]
            if acc.SummaryMetadata(t).plugin_data.plugin_name == plugin}


def test_tensorboard_holds_epoch_metrics_learning_rate_and_gradients(run):
    _, tb = run
    assert sorted(os.listdir(tb)) == ["gradients", "train", "validation"]
    train = _events(os.path.join(tb, "train"))
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= _plugin_tags(train, "scalars")
    lr = _values(train, "epoch_learning_rate")
    assert len(lr) == 2 and lr[1] < lr[0]  # cosine decay, read at each epoch end
    val = _events(os.path.join(tb, "validation"))
    assert {"epoch_loss", "epoch_accuracy"} <= _plugin_tags(val, "scalars")

    grads = _events(os.path.join(tb, "gradients"))
    scalars, histograms = _plugin_tags(grads, "scalars"), _plugin_tags(grads, "histograms")
    for layer in LAYERS:
        # Grouped by layer: the layer is the tag's first component.
        assert {f"{layer}/grad_norm/pre_clip", f"{layer}/grad_norm/post_clip"} <= scalars
        assert any(t.startswith(f"{layer}/grad_norm/") and t.endswith("/post_clip")
                   and t.count("/") == 3 for t in scalars)  # per variable too
        assert any(t.startswith(f"{layer}/grad_log10_abs/") for t in histograms)
    assert {"global/grad_norm/pre_clip", "global/grad_norm/post_clip",
            "global/clip_fired"} <= scalars
    pre = _values(grads, "global/grad_norm/pre_clip")
    post = _values(grads, "global/grad_norm/post_clip")
    assert len(pre) == len(post) >= 4
    # clipnorm 0.05 clips: what the optimizer applied is smaller than the raw gradient.
    assert all(b < a for a, b in zip(pre, post))

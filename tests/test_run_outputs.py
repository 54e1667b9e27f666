"""What a run leaves to look at: TensorBoard events (`--tensorboard`) and PNG plots."""

import json
import os
import struct

import pandas as pd
import pytest

from seqclf.cli import main
from seqclf.errors import SeqclfError
from seqclf.plotting import (
    plot_gradient_overview,
    plot_gradients_by_position,
    plot_run,
    plot_training_curves,
)

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
    assert sorted(os.listdir(tb)) == ["gradients", "per_class", "train", "validation"]
    per_class = _plugin_tags(_events(os.path.join(tb, "per_class")), "scalars")
    assert {"macro_f1", "majority_baseline_accuracy", "recall/negative",
            "f1/positive"} <= per_class
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


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


def test_train_writes_valid_pngs(run):
    out, _ = run
    for name in ("curves.png", "gradients.png", "gradients_by_position.png"):
        path = os.path.join(out, name)
        width, height = _png_size(path)
        assert width >= 600 and height >= 350 and os.path.getsize(path) > 10_000, name
    probe = pd.read_csv(os.path.join(out, "gradients_by_position.csv"))
    assert sorted(probe["epoch"].unique()) == [0, 1] and set(probe["layer"]) == {"gru_0"}
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-")]


def test_plot_command_redraws_a_run(run, tmp_path, capsys):
    out, _ = run
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("history.csv", "metrics.json", "gradient_stats.csv",
                 "gradients_by_position.csv"):
        (copy / name).write_bytes(open(os.path.join(out, name), "rb").read())
    assert main(["plot", str(copy)]) == 0
    printed = capsys.readouterr().out.split()
    assert [os.path.basename(p) for p in printed] == [
        "curves.png", "confusion.png", "gradients.png", "gradients_by_position.png"]
    assert all(_png_size(p) for p in printed)
    os.remove(copy / "gradient_stats.csv")
    # A run older than the per-class report: no confusion matrix to draw.
    metrics = json.loads((copy / "metrics.json").read_text())
    (copy / "metrics.json").write_text(json.dumps(
        {k: v for k, v in metrics.items() if k != "validation_report"}))
    assert [os.path.basename(p) for p in plot_run(copy)] == [
        "curves.png", "gradients_by_position.png"]
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    assert "has no history.csv" in capsys.readouterr().err


def test_plots_name_the_missing_columns(run):
    out, _ = run
    history = pd.read_csv(os.path.join(out, "history.csv"))
    with pytest.raises(SeqclfError, match=r"lacks columns \['val_loss', 'val_accuracy'\]"):
        plot_training_curves(history.drop(columns=["val_loss", "val_accuracy"]))
    stats = pd.read_csv(os.path.join(out, "gradient_stats.csv"))
    with pytest.raises(SeqclfError, match=r"lacks columns \['stage'\]"):
        plot_gradient_overview(stats.drop(columns=["stage"]))
    probe = pd.read_csv(os.path.join(out, "gradients_by_position.csv"))
    # One line per layer at the first and the last probed epoch, counted from 1.
    epochs = sorted(probe.loc[probe["epoch"] >= 0, "epoch"].unique())
    layers = sorted(probe["layer"].unique())
    legend = plot_gradients_by_position(probe).axes[0].get_legend_handles_labels()[1]
    assert sorted(legend) == sorted(f"{layer}, epoch {e + 1}" for layer in layers
                                    for e in {epochs[0], epochs[-1]})
    with pytest.raises(SeqclfError, match=r"lacks columns \['timestep'\]"):
        plot_gradients_by_position(probe.drop(columns=["timestep"]))
    with pytest.raises(SeqclfError, match="must be a DataFrame"):
        plot_training_curves(history.to_dict())

"""The `seqclf` command line end to end on the tiny word-order config, and its error contract."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from seqclf.cli import main


def _run(*args, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "seqclf", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tfds_dir):
    out = str(tmp_path_factory.mktemp("run") / "r")
    code = main(["train", "--data", "word_order/tiny", "--model", "gru", "--units", "8",
                 "--embedding-dim", "8", "--epochs", "2", "--batch-size", "32",
                 "--clipnorm", "1.0", "--gradient-stats", "5", "--data-dir", tfds_dir,
                 "--out", out, "--quiet"])
    assert code == 0
    return out


def test_train_writes_the_run_directory(run_dir):
    assert {"config.json", "vocabulary.txt", "model.keras", "history.csv", "metrics.json"} <= set(
        os.listdir(run_dir))
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert {"val_accuracy", "epochs", "train_seconds"} <= set(metrics)
    assert metrics["epochs"] == 2 and 0 <= metrics["val_accuracy"] <= 1
    assert metrics["n_train"] == 600 and metrics["n_val"] == 100  # the dataset's own val split
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["model"] == "gru" and config["clipnorm"] == 1.0
    assert config["label_names"] == ["negative", "positive"]
    assert config["val"] == "word_order/tiny:validation"
    history = open(os.path.join(run_dir, "history.csv")).read().splitlines()
    assert history[0].split(",")[:2] == ["epoch", "accuracy"] and len(history) == 3
    stats = pd.read_csv(os.path.join(run_dir, "gradient_stats.csv"))
    assert set(stats["epoch"]) == {0, 1}
    assert {"embedding", "gru_0", "classifier"} <= set(stats["layer"])
    assert {"pre_clip", "post_clip"} <= set(stats["stage"])
    vocab = open(os.path.join(run_dir, "vocabulary.txt")).read().split("\n")[:-1]
    assert vocab[:2] == ["", "[UNK]"] and len(vocab) == config["vocab_size"]


def test_evaluate_prints_json_with_order_sensitivity(run_dir, tfds_dir, capsys):
    args = ["evaluate", run_dir, "--data", "word_order/tiny:test", "--data-dir", tfds_dir]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 200
    assert {"accuracy", "shuffled_accuracy", "loss"} <= set(result)
    written = os.listdir(os.path.join(run_dir, "evaluations"))
    assert written == ["word_order_tiny_test.json"]
    assert json.load(open(os.path.join(run_dir, "evaluations", written[0]))) == result


def test_predict_prints_one_json_line_per_text(run_dir, capsys):
    assert main(["predict", run_dir, "the plot was dull but the acting was superb", "", "ok"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3
    for line in lines:
        assert line["label"] in ("negative", "positive")
        assert sum(line["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert line["label"] == max(line["probabilities"], key=line["probabilities"].get)


def test_finished_run_is_not_overwritten(run_dir, capsys):
    assert main(["train", "--data", "word_order/tiny", "--out", run_dir, "--quiet"]) == 2
    assert "already holds a finished run" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "nope.tsv", "--out", "x"], "No such data file. Received: 'nope.tsv'"),
        (["evaluate", "/no/run", "--data", "x.tsv"], "is not a finished seqclf run"),
        (["predict", "/no/run", "text"], "is not a finished seqclf run"),
        (["predict", "--server", "h:1", "text"], "--server needs --model-name"),
    ],
)
def test_user_errors_exit_2_with_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_argument_errors_from_a_real_process(tmp_path):
    bad = tmp_path / "one_class.tsv"
    bad.write_text("sentence\tlabel\ngood\t1\nfine\t1\n")
    out = _run("train", "--data", str(bad), "--out", str(tmp_path / "r"), "--quiet")
    assert out.returncode == 2
    assert "at least 2 classes" in out.stderr and "Traceback" not in out.stderr
    out = _run("train", "--data", "x", "--out", "y", "--clipnorm", "1", "--clipvalue", "1")
    assert out.returncode == 2 and "not allowed with argument --clipnorm" in out.stderr
    out = _run("train", "--data", "x", "--out", "y", "--model", "transformer")
    assert out.returncode == 2 and "invalid choice: 'transformer'" in out.stderr


def test_clipping_flags_replace_the_default_rule():
    from seqclf.cli import build_parser, config_from_args
    from seqclf.run import TrainConfig

    def config(*flags):
        return config_from_args(build_parser().parse_args(
            ["train", "--data", "d.tsv", "--out", "o", *flags]))

    default = config()
    assert (default.clipnorm, default.global_clipnorm, default.clipvalue) == (
        TrainConfig.clipnorm, None, None)
    chosen = config("--global-clipnorm", "2")
    assert (chosen.clipnorm, chosen.global_clipnorm, chosen.clipvalue) == (None, 2.0, None)
    off = config("--no-clip")
    assert (off.clipnorm, off.global_clipnorm, off.clipvalue) == (None, None, None)


def test_choices_come_from_the_library():
    from seqclf import names
    from seqclf.cli import EPILOG, build_parser
    from seqclf.data.word_order import SeqclfWordOrder

    assert [c.name for c in SeqclfWordOrder.BUILDER_CONFIGS] == list(names.WORD_ORDER_CONFIGS)
    assert all(c in EPILOG for c in names.WORD_ORDER_CONFIGS)
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    choices = {a.dest: tuple(a.choices) for a in train._actions if a.choices}
    assert choices == {"recipe": names.RECIPES, "model": names.MODEL_NAMES,
                       "pooling": names.POOLINGS, "lstm_init": names.LSTM_INITS,
                       "lr_schedule": names.LR_SCHEDULES, "optimizer": names.OPTIMIZERS,
                       "strategy": names.STRATEGIES}


def test_group_column_holds_out_whole_groups(tmp_path, capsys):
    # Twins with opposite labels: a validation row whose twin was trained on is no test at all.
    rows = [(f"film {i} was {w}", y, f"g{i}") for i in range(30)
            for w, y in (("good", "pos"), ("not good", "neg"))]
    path = tmp_path / "pairs.tsv"
    pd.DataFrame(rows, columns=["sentence", "label", "pair"]).to_csv(path, sep="\t", index=False)
    out = str(tmp_path / "run")
    assert main(["train", "--data", str(path), "--group-column", "pair", "--units", "4",
                 "--embedding-dim", "4", "--epochs", "1", "--out", out, "--quiet"]) == 0
    config = json.loads(open(os.path.join(out, "config.json"), encoding="utf-8").read())
    assert config["group_column"] == "pair"
    assert config["val"] == f"10% of {path} (whole groups of 'pair') held out (seed 0)"
    # Streamed, the groups are held out by a hash of their names.
    streamed = str(tmp_path / "streamed")
    assert main(["train", "--data", str(path), "--group-column", "pair", "--stream",
                 "--units", "4", "--embedding-dim", "4", "--epochs", "1", "--out", streamed,
                 "--quiet"]) == 0
    config = json.loads(open(os.path.join(streamed, "config.json"), encoding="utf-8").read())
    assert config["stream"] is True and config["group_column"] == "pair"
    capsys.readouterr()
    assert main(["train", "--data", str(path), "--group-column", "twin", "--out",
                 str(tmp_path / "other"), "--quiet"]) == 2
    assert "no group column 'twin'" in capsys.readouterr().err


def test_resuming_a_run_saved_before_a_new_setting_existed():
    # An unfinished run's config.json from before `group_column` existed resumes when the new
    # field keeps its default, and is refused, naming it, when it does not.
    from seqclf.errors import SeqclfError
    from seqclf.run import TrainConfig
    from seqclf.training import check_same_config

    saved, defaults = {"units": 8, "model": "lstm"}, {"group_column": None}
    check_same_config("runs/r", saved, {"units": 8, "model": "lstm", "group_column": None},
                      defaults)
    with pytest.raises(SeqclfError, match=r"\(group_column=None\).*Received: group_column='p'"):
        check_same_config("runs/r", saved, {"units": 8, "group_column": "p"}, defaults)
    # The defaults seqclf train passes are TrainConfig's own.
    assert TrainConfig.__dataclass_fields__["group_column"].default is None

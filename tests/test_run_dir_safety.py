"""Nothing of the user's is lost or overwritten: `train --out` writes only into an empty folder
or a seqclf run directory, follows no symbolic link out of it, and one `train` at a time."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from seqclf.cli import main

# The fast settings: one epoch of a tiny bag-of-words model.
T = ["--epochs", "1", "--units", "8", "--embedding-dim", "8", "--members", "1", "--quiet",
     "--model", "bow", "--ngram-buckets", "0"]


@pytest.fixture(scope="module")
def small_tsv(tmp_path_factory):
    """200 labelled rows in the SST-2 layout (two classes, a shared vocabulary)."""
    path = tmp_path_factory.mktemp("data") / "small.tsv"
    words = ["good", "bad", "film", "plot", "great", "awful", "fine", "dull"]
    rows = [f"{words[i % 8]} {words[(i * 3) % 8]} {words[(i * 5) % 8]}\t{i % 2}"
            for i in range(200)]
    path.write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    return str(path)


def _train(data, out, *extra):
    return main(["train", "--data", data, "--out", str(out), *T, *extra])


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def test_train_refuses_a_folder_that_is_not_a_seqclf_run(tmp_path, small_tsv, capsys):
    d = tmp_path / "d"
    (d / "backup").mkdir(parents=True)
    (d / "members").mkdir()
    (d / "backup" / "thesis.docx").write_text("x")
    (d / "members" / "l.txt").write_text("x")
    (d / "model.keras").write_text("mine")
    assert _train(small_tsv, d) == 2
    _one_line_error(capsys, str(d), "not a seqclf run directory")
    assert (d / "backup" / "thesis.docx").read_text() == "x"
    assert (d / "members" / "l.txt").read_text() == "x"
    assert (d / "model.keras").read_text() == "mine"
    assert sorted(os.listdir(d)) == ["backup", "members", "model.keras"]


def test_a_user_config_json_does_not_make_a_folder_seqclf_s(tmp_path, small_tsv, capsys):
    d = tmp_path / "d"
    d.mkdir()
    (d / "config.json").write_text('{"mine": 1}')
    assert _train(small_tsv, d) == 2
    _one_line_error(capsys, "not a seqclf run directory")
    assert (d / "config.json").read_text() == '{"mine": 1}'


def test_a_symlink_never_leads_a_delete_or_write_outside_the_run(tmp_path, small_tsv, capsys):
    v, r = tmp_path / "v", tmp_path / "r"
    v.mkdir()
    (v / "a.txt").write_text("x")
    # A seqclf run directory (killed before its first epoch) whose backup/ leads elsewhere.
    assert _train(small_tsv, tmp_path / "seed_run") == 0
    r.mkdir()
    (r / "config.json").write_text((tmp_path / "seed_run" / "config.json").read_text())
    os.symlink(v, r / "backup")
    assert _train(small_tsv, r, "--epochs", "2") == 2
    _one_line_error(capsys, "backup", "symbolic link")
    assert os.listdir(v) == ["a.txt"] and (v / "a.txt").read_text() == "x"


def test_evaluations_never_written_through_a_symlink(tmp_path, small_tsv, capsys):
    run, v = tmp_path / "run", tmp_path / "v"
    assert _train(small_tsv, run) == 0
    v.mkdir()
    os.symlink(v, run / "evaluations")
    assert main(["evaluate", str(run), "--data", small_tsv, "--quiet"]) == 2
    _one_line_error(capsys, "evaluations", "symbolic link")
    assert os.listdir(v) == []


def test_an_empty_folder_and_a_new_one_both_train(tmp_path, small_tsv):
    (tmp_path / "empty").mkdir()
    assert _train(small_tsv, tmp_path / "empty") == 0
    assert _train(small_tsv, tmp_path / "new" / "nested") == 0
    assert json.loads((tmp_path / "new" / "nested" / "metrics.json").read_text())["epochs"] == 1


def test_a_second_train_on_the_same_out_is_refused_and_a_killed_one_leaves_no_lock(
        tmp_path, small_tsv, capsys):
    out = tmp_path / "r"
    # The first `train` holds the run directory (its set-up done, as while it trains).
    first = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from seqclf.run import TrainConfig
        from seqclf.training import setup_stage
        setup = setup_stage(TrainConfig(data={small_tsv!r}, out={str(out)!r}, quiet=True))
        print("set up", flush=True)
        time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "set up"
        assert _train(small_tsv, out) == 2
        _one_line_error(capsys, str(out), "another seqclf train")
        assert not (out / "metrics.json").exists()
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # Killed, it holds nothing: the run directory trains.
    assert _train(small_tsv, out) == 0
    assert (out / "metrics.json").exists()


def test_a_rejected_run_leaves_no_empty_out_folder(tmp_path, capsys):
    one_class = tmp_path / "one_class.tsv"
    one_class.write_text("sentence\tlabel\ngood\t1\nfine\t1\n")
    out = tmp_path / "r"
    assert _train(str(one_class), out) == 2
    assert "at least 2 classes" in capsys.readouterr().err
    assert not out.exists()


def test_a_run_killed_just_after_metrics_json_is_tidied_by_the_next_train(
        tmp_path, small_tsv, capsys):
    out = tmp_path / "r"
    assert _train(small_tsv, out) == 0
    # As a kill between metrics.json and the clean-up leaves it: backup/ there, no plots.
    (out / "backup").mkdir()
    (out / "backup" / "state.json").write_text('{"epoch": 0}')
    (out / "curves.png").unlink()
    assert _train(small_tsv, out) == 2
    _one_line_error(capsys, "already holds a finished run")
    assert not (out / "backup").exists() and (out / "curves.png").exists()


def test_train_in_a_script_closes_its_lock_file_when_it_returns(tmp_path, small_tsv):
    """A script that trains in a loop must not keep one open lock file per run (nor its flock)
    until the garbage collector happens to run."""
    out = tmp_path / "run"

    def open_in_run():
        found = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.startswith(str(out)):
                found.append(target)
        return found

    assert _train(small_tsv, out, "--model", "lstm", "--ngram-buckets", "0") == 0
    assert open_in_run() == []

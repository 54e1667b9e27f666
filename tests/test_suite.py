"""The benchmark suite (`bench/suite.py`): protocols, statistics, table and targets. No training."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from bench import suite


def _table(auto, bow, shuffled=0.5, dataset="mr"):
    splits = [f"fold{i}" for i in range(len(auto))]
    return {dataset: {
        "auto-lstm": {"accuracy": auto, "shuffled_accuracy": [shuffled] * len(auto),
                      "train_seconds": [1.0] * len(auto), "splits": splits},
        "bow": {"accuracy": bow, "shuffled_accuracy": bow, "train_seconds": [1.0] * len(bow),
                "splits": splits},
    }}


def test_paired_difference_and_its_standard_error():
    d, se = suite.diff_se(_table([0.8, 0.7, 0.9], [0.7, 0.7, 0.8]), "mr", "auto-lstm", "bow")
    assert d == pytest.approx(0.2 / 3)
    assert se == pytest.approx(np.std([0.1, 0.0, 0.1], ddof=1) / 3 ** 0.5)


def test_targets_say_when_the_recipe_is_not_ahead_of_bow():
    ahead = dict((w, ok) for w, _, ok in suite.targets(_table([0.8, 0.81, 0.79], [0.7] * 3)))
    assert ahead["mr: auto-lstm - bow > 1 SE"]
    behind = dict((w, ok) for w, _, ok in suite.targets(_table([0.70, 0.71, 0.69], [0.7] * 3)))
    assert not behind["mr: auto-lstm - bow > 1 SE"]
    # CNN-rand row for MR is 75.9: 0.80 is above it, and the shuffled accuracy is below.
    assert ahead["mr: shuffled < accuracy"]


def test_pair_accuracy_needs_both_members_right():
    test = pd.DataFrame({"label": ["Positive", "Negative", "Positive", "Negative"],
                         "batch_id": ["1", "1", "2", "2"]})
    assert suite.pair_accuracy(test, ["Positive", "Negative", "Positive", "Positive"]) == 0.5


def test_paired_training_data_validates_on_whole_pairs(tmp_path, monkeypatch):
    # A review and its counterfactual twin (opposite label) on both sides of the validation
    # split would make validation accuracy meaningless: run_seqclf has seqclf train hold out
    # whole pairs (`group_column`), and the file it writes keeps the pair column.
    import seqclf.run
    from seqclf.data import read_table

    pairs = 40
    train = pd.DataFrame({"sentence": [f"p{i} {side}" for i in range(pairs) for side in "ab"],
                          "label": ["Positive", "Negative"] * pairs,
                          "batch_id": [str(i) for i in range(pairs) for _ in "ab"]})
    seen = {}

    def fake_train(config):
        data = read_table(config.data, group_column=config.group_column)
        rest, held = data.split(config.val_fraction, seed=config.seed)
        seen.update(val=config.val, rows=(len(rest), len(held)),
                    disjoint=set(rest.groups).isdisjoint(held.groups))
        os.makedirs(config.out)
        with open(os.path.join(config.out, "config.json"), "w") as f:
            f.write("{}")
        return {"train_seconds": 1.0, "epochs": 1, "best_epoch": 1}

    monkeypatch.setattr(seqclf.run, "train", fake_train)
    monkeypatch.setattr(seqclf.run, "evaluate",
                        lambda out, path: {"accuracy": 1.0, "shuffled_accuracy": 1.0})
    (tmp_path / "work").mkdir()
    suite.run_seqclf(train, train.drop(columns="batch_id"), {}, 0, str(tmp_path / "work"))
    assert seen == {"val": None, "rows": (72, 8), "disjoint": True}


def test_markdown_block_is_replaced_not_appended(tmp_path):
    path = tmp_path / "results.md"
    path.write_text("# header\n\nkept\n", encoding="utf-8")
    suite.write_markdown(_table([0.8, 0.8], [0.7, 0.7]), path, "cmd")
    suite.write_markdown(_table([0.9, 0.9], [0.7, 0.7]), path, "cmd")
    text = path.read_text(encoding="utf-8")
    assert text.count(suite.MARK_BEGIN) == 1 and "kept" in text
    assert "90.0 ± 0.0" in text and "80.0 ± 0.0" not in text


def test_results_resume_skips_finished_runs(tmp_path):
    path = tmp_path / "r.jsonl"
    done = {"dataset": "mr", "split": "fold0", "model": "bow", "mode": "report", "variant": "",
            "accuracy": 0.7}
    failed = {**done, "split": "fold1", "error": "boom"}
    path.write_text(json.dumps(done) + "\n" + json.dumps(failed) + "\n", encoding="utf-8")
    finished = suite.finished_keys(path)
    assert ("mr", "fold0", "bow", "report", "") in finished
    assert ("mr", "fold1", "bow", "report", "") not in finished


@pytest.mark.shared_data
def test_protocols_keep_test_parts_apart(shared_data, monkeypatch):
    monkeypatch.setattr(suite, "SHARED", shared_data)
    folds = suite.splits("mr", "report")
    assert len(folds) == 10
    assert sum(len(test) for _, _, test, _ in folds) == 10_662
    for _, train, test, _ in folds:
        assert set(train.index).isdisjoint(test.index)
    assert suite.splits("mr", "tune") == []  # never used to choose the recipe
    (_, report_train, report_test, _), *_ = suite.splits("trec", "report")
    (_, tune_train, tune_test, _), *_ = suite.splits("trec", "tune")
    assert 540 <= len(report_test) <= 550  # 10% of each class
    # Tuning splits the report's training part again, and nothing else.
    assert len(tune_train) + len(tune_test) == len(report_train)
    assert sorted(pd.concat([tune_train, tune_test])["sentence"]) == sorted(
        report_train["sentence"])
    imdb = suite.splits("imdb", "tune")[0]
    assert set(imdb[1]["batch_id"]).isdisjoint(imdb[2]["batch_id"])  # whole pairs held out


def test_a_seedless_model_is_fitted_once_per_split_of_data(tmp_path, monkeypatch):
    frame = pd.DataFrame({"sentence": ["a", "b"], "label": ["x", "y"]})
    train, test = frame, frame.copy()
    parts = {"seeded": [(f"seed{s}", train, test, s) for s in (0, 1, 2)],
             "folds": [(f"fold{k}", frame.copy(), frame.copy(), 0) for k in (0, 1)]}
    monkeypatch.setattr(suite, "splits", lambda name, mode: parts[name])
    todo = suite.jobs(["seeded", "folds"], ["tfidf-lr", "bow"], "report")
    lr = [(j["dataset"], j["split"], j.get("same_as")) for j in todo if j["model"] == "tfidf-lr"]
    assert lr == [("seeded", "seed0", ["seed1", "seed2"]), ("folds", "fold0", []),
                  ("folds", "fold1", [])]
    assert sum(j["model"] == "bow" for j in todo) == 5  # seeded models run every seed
    # Resuming writes only the rows still missing; a run writes a row for each.
    done = {("seeded", "seed0", "tfidf-lr", "report", ""), ("folds", "fold0", "tfidf-lr",
                                                             "report", "")}
    left = [j for j in suite.unfinished(todo, done) if j["model"] == "tfidf-lr"]
    assert [(j["split"], j["write"]) for j in left] == [("seed0", ["seed1", "seed2"]),
                                                       ("fold1", ["fold1"])]
    path = tmp_path / "r.jsonl"
    r = {"dataset": "seeded", "split": "seed0", "model": "tfidf-lr", "mode": "report",
         "variant": "", "accuracy": 0.5}
    suite.write_rows(path, left[0], r)
    rows = suite.read_results(path)
    assert [(x["split"], x.get("same_as")) for x in rows] == [("seed1", "seed0"),
                                                             ("seed2", "seed0")]
    assert suite.finished_keys(path) | done >= {
        ("seeded", f"seed{s}", "tfidf-lr", "report", "") for s in (0, 1, 2)}


def test_markdown_block_keeps_the_page_around_it_as_it_was(tmp_path):
    """The text after the block (docs/benchmarks.md's own sections) keeps its blank line, and
    writing the same table twice changes nothing."""
    path = tmp_path / "page.md"
    page = f"# page\n\n{suite.MARK_BEGIN}\nstale table\n{suite.MARK_END}\n\n## after\n\ntext\n"
    path.write_text(page, encoding="utf-8")
    suite.write_markdown(_table([0.8, 0.8], [0.7, 0.7]), path, "cmd")
    once = path.read_text(encoding="utf-8")
    assert f"{suite.MARK_END}\n\n## after\n\ntext\n" in once and "stale table" not in once
    suite.write_markdown(_table([0.8, 0.8], [0.7, 0.7]), path, "cmd")
    assert path.read_text(encoding="utf-8") == once

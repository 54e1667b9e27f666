"""Local data files: formats, column detection, label names, and clear errors for bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from seqclf.data import load_spec, read_table
from seqclf.errors import SeqclfError


def _write(path, text, mode="w"):
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _write_frame(frame, path, fmt):
    """`frame` as a file of format `fmt` (tsv, csv, jsonl, parquet), written by pandas."""
    if fmt == "tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    return path


def test_glue_tsv_loads_with_no_options(tmp_path):
    path = _write(tmp_path / "train.tsv", 'sentence\tlabel\nit \'s " odd " \t1\nnot good \t0\n')
    data = read_table(path)
    assert data.texts.tolist() == ['it \'s " odd " ', "not good "]
    assert data.labels.tolist() == [1, 0]
    assert data.label_names == ["0", "1"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_other_formats_and_named_columns(tmp_path, fmt):
    frame = pd.DataFrame({"body": ["good film", "bad film", "fine"],
                          "stars": ["pos", "neg", "pos"]})
    path = _write_frame(frame, tmp_path / f"data.{fmt}", fmt)
    data = read_table(path, text_column="body", label_column="stars")
    assert data.label_names == ["neg", "pos"]
    assert data.labels.tolist() == [1, 0, 1]
    assert data.texts.tolist() == ["good film", "bad film", "fine"]


def test_integer_labels_sort_numerically(tmp_path):
    rows = "\n".join(f'{{"text": "t{i}", "label": {i}}}' for i in (10, 2, 9, 1))
    data = read_table(_write(tmp_path / "d.jsonl", rows))
    assert data.label_names == ["1", "2", "9", "10"]
    assert data.labels.tolist() == [3, 1, 2, 0]


def test_empty_texts_are_skipped_and_counted(tmp_path):
    path = _write(tmp_path / "d.tsv", "sentence\tlabel\ngood\t1\n   \t0\n\t1\nbad\t0\n")
    data = read_table(path)
    assert len(data) == 2
    assert data.skipped == {"empty_text": 2}


def test_invalid_utf8_names_line_and_column(tmp_path):
    path = _write(tmp_path / "d.tsv", b"sentence\tlabel\ngood\t1\nba\xffd\t0\n", mode="wb")
    with pytest.raises(SeqclfError, match=r"d\.tsv:3:3: invalid UTF-8.*Received: bytes b'\\xff'"):
        read_table(path)


def test_missing_column_lists_what_is_there(tmp_path):
    path = _write(tmp_path / "d.csv", "review_body,y\nx,1\n")
    with pytest.raises(SeqclfError, match=r"cannot find the text column.*\['review_body', 'y'\]"):
        read_table(path)
    message = r"no label column 'stars'.*Received: label_column='stars'"
    with pytest.raises(SeqclfError, match=message):
        read_table(path, text_column="review_body", label_column="stars")


def test_missing_label_names_its_line(tmp_path):
    path = _write(tmp_path / "d.csv", "text,label\na,1\nb,\nc,0\n")
    with pytest.raises(SeqclfError, match=r"d\.csv:3: missing label.*1 rows in all"):
        read_table(path)


def test_nan_label_in_jsonl(tmp_path):
    path = _write(tmp_path / "d.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": null}\n')
    with pytest.raises(SeqclfError, match=r"d\.jsonl:2: missing label"):
        read_table(path)


def test_unknown_label_against_model_labels(tmp_path):
    path = _write(tmp_path / "d.tsv", "sentence\tlabel\na\t0\nb\t2\n")
    message = r"d\.tsv:3: label unknown.*Expected one of: \['0', '1'\]"
    with pytest.raises(SeqclfError, match=message):
        read_table(path, label_names=["0", "1"])


@pytest.mark.parametrize("content", ["", "sentence\tlabel\n"])
def test_empty_files(tmp_path, content):
    with pytest.raises(SeqclfError, match="empty|no data rows"):
        read_table(_write(tmp_path / "d.tsv", content))


def test_ragged_tsv_line_is_reported(tmp_path):
    path = _write(tmp_path / "d.tsv", "sentence\tlabel\na\t1\nb\t0\textra\n")
    with pytest.raises(SeqclfError, match=r"cannot parse as TSV.*line 3"):
        read_table(path)


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(SeqclfError, match="Unknown data file type"):
        read_table(_write(tmp_path / "d.xml", "<a/>"))
    with pytest.raises(SeqclfError, match="No such data file"):
        load_spec(str(tmp_path / "nope.tsv"))


def test_tfds_catalog_offline_fails_fast_with_instructions(tmp_path):
    with pytest.raises(SeqclfError, match=r"not prepared.*tfds build imdb_reviews"):
        load_spec("tfds:imdb_reviews:test", data_dir=str(tmp_path))
    with pytest.raises(SeqclfError, match="no such TFDS dataset"):
        load_spec("tfds:surely_not_a_dataset", data_dir=str(tmp_path))


def test_shared_sst2_and_imdb_pairs_load(shared_data):
    train = read_table(shared_data / "sst2" / "train.tsv")
    assert len(train) == 67_349
    assert np.bincount(train.labels).tolist() == [29_780, 37_569]
    cad = read_table(shared_data / "imdb_cad" / "dev_paired.tsv")
    assert cad.label_names == ["Negative", "Positive"] and len(cad) == 490
    assert json.dumps(train.skipped) == "{}"


def test_null_texts_are_skipped_but_numbers_are_errors(tmp_path):
    rows = '{"text": "good", "label": 1}\n{"text": null, "label": 0}\n{"text": "bad", "label": 0}\n'
    data = read_table(_write(tmp_path / "d.jsonl", rows))
    assert data.texts.tolist() == ["good", "bad"] and data.skipped == {"empty_text": 1}
    rows += '{"text": 5, "label": 1}\n'
    with pytest.raises(SeqclfError, match=r"d\.jsonl:4: column 'text' must hold text.*Received: 5"):
        read_table(_write(tmp_path / "d.jsonl", rows))


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl", "parquet"])
def test_group_column_is_read_and_split_keeps_groups_whole(tmp_path, fmt):
    # Pairs of near-twins with opposite labels (as counterfactual edits are), one empty text.
    pairs = 20
    frame = pd.DataFrame({
        "text": [f"review {i} {'good' if k else 'bad'}" for i in range(pairs) for k in (0, 1)]
        + [""],
        "label": ["neg", "pos"] * pairs + ["pos"],
        "pair": [i for i in range(pairs) for _ in (0, 1)] + [99],
    })
    path = _write_frame(frame, tmp_path / f"data.{fmt}", fmt)
    data = read_table(path, group_column="pair")
    assert data.skipped == {"empty_text": 1}  # the empty text and its group are left out
    assert data.groups.tolist() == [str(i) for i in range(pairs) for _ in (0, 1)]
    assert read_table(path).groups is None
    rest, held = data.split(0.1, seed=3)
    assert len(held) == 4 and len(rest) == 36  # 2 of the 20 groups, both rows of each
    assert set(held.groups).isdisjoint(rest.groups)
    assert sorted(held.texts.tolist() + rest.texts.tolist()) == sorted(data.texts.tolist())
    # Seeded: another seed holds out other groups, the same seed the same ones.
    assert data.split(0.1, seed=3)[1].groups.tolist() == held.groups.tolist()
    assert any(data.split(0.1, seed=s)[1].groups.tolist() != held.groups.tolist()
               for s in range(4, 8))
    # Relabelled (a model's class order) and subsets keep each row's group.
    flipped = data.relabel(["pos", "neg"])
    assert flipped.groups.tolist() == data.groups.tolist()
    assert flipped.labels.tolist() == (1 - data.labels).tolist()


def test_group_column_errors_name_the_file_column_and_row(tmp_path):
    path = _write(tmp_path / "d.tsv", "sentence\tlabel\tpair\ngood\tpos\t1\nbad\tneg\t \n")
    with pytest.raises(SeqclfError, match=r"d\.tsv:3: the group column 'pair' holds no group "
                                          r"name \(1 rows in all\)\. Received: ' '"):
        read_table(path, group_column="pair")
    # Counted over the whole pass like the other row problems, which it does not hide.
    many = _write(tmp_path / "m.tsv", "sentence\tlabel\tpair\na\tpos\t\nb\tneg\t\nc\tneg\t2\n")
    with pytest.raises(SeqclfError, match=r"m\.tsv:2: .*no group name \(2 rows in all\)"):
        read_table(many, group_column="pair")
    both = _write(tmp_path / "b.tsv", "sentence\tlabel\tpair\na\tpos\t\nb\t\t1\nc\tneg\t2\n")
    with pytest.raises(SeqclfError, match=r"b\.tsv:3: missing label"):
        read_table(both, group_column="pair")
    with pytest.raises(SeqclfError, match=r"no group column 'batch'.*Received: group_column="):
        read_table(path, group_column="batch")
    with pytest.raises(SeqclfError, match="must differ.*Received: group_column='label'"):
        read_table(path, group_column="label")
    one = _write(tmp_path / "one.tsv", "sentence\tlabel\tpair\ngood\tpos\t1\nbad\tneg\t1\n")
    with pytest.raises(SeqclfError, match=r"at least 2 groups .*Received: 1 group\(s\) in 2 rows"):
        read_table(one, group_column="pair").split(0.1, seed=0)
    gap = _write_frame(pd.DataFrame({"text": ["good", "bad"], "label": ["pos", "neg"],
                                     "pair": [1.0, float("nan")]}), tmp_path / "g.parquet",
                       "parquet")
    with pytest.raises(SeqclfError, match=r"g\.parquet row 2: the group column 'pair' holds no"):
        read_table(gap, group_column="pair")
    nested = _write(tmp_path / "n.jsonl", '{"text": "good", "label": "pos", "pair": [1]}\n')
    with pytest.raises(SeqclfError, match=r"n\.jsonl:1: the group column 'pair' holds no group"):
        read_table(nested, group_column="pair")
    with pytest.raises(SeqclfError, match="a TFDS or built-in dataset.*group_column='pair'"):
        load_spec("word_order", data_dir=str(tmp_path), group_column="pair")


def test_group_split_keeps_every_class_in_training_and_reads_groups_as_labels(tmp_path):
    # The only "b" rows are one group: it is never the one held out, whatever the seed.
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(18)],
                          "label": ["a"] * 16 + ["b"] * 2,
                          "pair": [f"g{i // 2}" for i in range(16)] + ["only b", "only b "]})
    data = read_table(_write_frame(frame, tmp_path / "d.tsv", "tsv"), group_column="pair")
    assert sorted(set(data.groups)) == sorted({f"g{i}" for i in range(8)} | {"only b"})
    for seed in range(20):
        rest, held = data.split(0.2, seed=seed)
        assert "b" in {data.label_names[k] for k in rest.labels}, seed
        assert len(held) == 4 and set(held.groups).isdisjoint(rest.groups)
    # JSON 3, 3.0 and "3" name one group, as they would one label.
    rows = [{"text": f"t{i}", "label": "a", "pair": g} for i, g in enumerate([3, 3.0, "3", 4])]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert read_table(path, group_column="pair").groups.tolist() == ["3", "3", "3", "4"]
    # Each group holds a class no other group has: none can be held out.
    frame = pd.DataFrame({"text": ["x", "y"], "label": ["a", "b"], "pair": ["1", "2"]})
    data = read_table(_write_frame(frame, tmp_path / "e.parquet", "parquet"), group_column="pair")
    with pytest.raises(SeqclfError, match="last training rows of a class.*Received: 2 groups"):
        data.split(0.5, seed=0)


def test_group_split_holds_out_a_fraction_of_the_rows_not_of_the_groups(tmp_path):
    # One batch of 60 rows beside 20 pairs: holding out 10% of the groups could hold out the
    # batch, 60% of the rows; the split holds out about 10% of the rows, in pairs.
    frame = pd.DataFrame({
        "text": [f"t{i}" for i in range(100)],
        "label": ["a", "b"] * 50,
        "pair": ["batch"] * 60 + [f"p{i // 2}" for i in range(40)],
    })
    data = read_table(_write_frame(frame, tmp_path / "d.tsv", "tsv"), group_column="pair")
    for seed in range(10):
        rest, held = data.split(0.1, seed=seed)
        assert len(held) == 10 and "batch" not in set(held.groups), seed
        assert len(rest) + len(held) == 100
    # Every group is larger than the rows wanted: the smallest one that keeps the classes.
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(30)], "label": ["a", "b"] * 15,
                          "pair": ["x"] * 12 + ["y"] * 10 + ["z"] * 8})
    data = read_table(_write_frame(frame, tmp_path / "e.tsv", "tsv"), group_column="pair")
    for seed in range(5):
        rest, held = data.split(0.1, seed=seed)
        assert set(held.groups) == {"z"} and len(held) == 8, seed

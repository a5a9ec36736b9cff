"""The ``table`` loader on small tables written here: training-only statistics, masking, splits."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from taskgraph.errors import TrainError
from taskgraph.spec.components import DataConfig
from taskgraph.train.data import load_data
from taskgraph.train.losses import labelled
from taskgraph.train.metrics import IGNORE


def _config(**kw):
    return TypeAdapter(DataConfig).validate_python({"loader": "table", **kw})


def _write(tmp_path, name, rows, **kw):
    path = tmp_path / name
    frame = pd.DataFrame(rows)
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif name.endswith(".tsv"):
        frame.to_csv(path, index=False, sep="\t")
    elif name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=True)
    return str(path)


TRAIN = {"age": [20.0, 30.0, 40.0, None], "city": ["a", "b", "a", None], "income": ["hi", "lo", None, "lo"],
         "score": [1.5, None, 2.5, 3.0], "ok": [1, 0, 1, None]}
VAL = {"age": [100.0, 30.0], "city": ["zzz", "b"], "income": ["lo", "mid"], "score": [0.5, None], "ok": [0, 1]}


def test_standardised_with_training_statistics_only_and_categories_one_hot(tmp_path):
    config = _config(train=_write(tmp_path, "train.csv", TRAIN), val=_write(tmp_path, "val.csv", VAL),
                     features=["age", "city"], labels={"income": "class"})
    splits = load_data(config)
    mean, std = 30.0, math.sqrt(200 / 3)  # training ages 20, 30, 40 (missing -> the mean)
    x = splits.train["x"]
    assert x.shape == (4, 3)  # age + one-hot a, b
    assert torch.allclose(x[:, 0], torch.tensor([-10 / std, 0.0, 10 / std, 0.0]), atol=1e-6)
    assert torch.allclose(splits.val["x"][:, 0], torch.tensor([(100 - mean) / std, 0.0]), atol=1e-6)
    assert x[:, 1:].tolist() == [[1, 0], [0, 1], [1, 0], [0, 0]]  # missing city: all zeros
    assert splits.val["x"][:, 1:].tolist() == [[0, 0], [0, 1]]  # unknown city 'zzz': all zeros


def test_categorical_ids_reserve_zero_for_unknown(tmp_path):
    config = _config(train=_write(tmp_path, "train.csv", TRAIN), val=_write(tmp_path, "val.csv", VAL),
                     features=["age", "city"], encoding="ids", labels=["income"])
    splits = load_data(config)
    assert splits.train["city"].tolist() == [1, 2, 1, 0] and splits.train["city"].dtype == torch.int64
    assert splits.val["city"].tolist() == [0, 2]
    assert splits.train["x"].shape == (4, 1)


def test_missing_labels_masked_by_the_loss_rule_and_string_classes_sorted(tmp_path):
    config = _config(train=_write(tmp_path, "train.csv", TRAIN), val=_write(tmp_path, "val.csv", VAL),
                     features=["age"], labels={"income": "class", "score": "float", "ok": "binary"})
    splits = load_data(config)
    assert splits.train["income"].tolist() == [0, 1, IGNORE, 1]  # classes hi, lo (sorted, training only)
    assert splits.val["income"].tolist() == [1, IGNORE]  # 'mid' never seen in training: missing
    score = splits.train["score"]
    assert score.dtype == torch.float32 and labelled(score, None).tolist() == [True, False, True, True]
    assert splits.train["ok"][:3].tolist() == [1.0, 0.0, 1.0] and math.isnan(splits.train["ok"][3])
    assert labelled(splits.train["income"], None).tolist() == [True, True, False, True]


def test_binary_needs_positive_for_text_values_and_unknown_column_suggests(tmp_path):
    path = _write(tmp_path, "t.csv", {"f": [1, 2, 3, 4], "income": ["<=50K", ">50K", ">50K", "<=50K"]})
    with pytest.raises(TrainError, match="Set `positive:`"):
        load_data(_config(path=path, labels={"income": "binary"}))
    splits = load_data(_config(path=path, val_fraction=0.5, labels={"income": {"kind": "binary", "positive": ">50K"}}))
    assert sorted(torch.cat([splits.train["income"], splits.val["income"]]).tolist()) == [0, 0, 1, 1]
    with pytest.raises(TrainError, match=r"t.csv: labels.incme.column: no column 'incme'. Did you mean 'income'\? "
                                         r"Columns: f, income"):
        load_data(_config(path=path, labels=["incme"]))
    with pytest.raises(TrainError, match="column 'income' has 2 categories in training, more than max_onehot \\(1\\)"):
        load_data(_config(path=path, labels=["f"], max_onehot=1))
    with pytest.raises(TrainError, match="features pattern 'g\\*' matches no column"):
        load_data(_config(path=path, features=["g*"], labels=["income"]))


def test_split_column_and_patterns_and_weights(tmp_path):
    rows = {"num_a": [1, 2, 3, 4, 5], "num_b": [0, 0, 1, 1, 1], "other": [9, 9, 9, 9, 9],
            "part": ["train", "train", "val", "test", "train"], "y": [0, 1, 0, 1, 1], "w": [1, 2, 3, 4, 5]}
    config = _config(path=_write(tmp_path, "t.tsv", rows), features=["num_*"], split_column="part",
                     labels=["y"], weights="w")
    splits = load_data(config)
    assert splits.train["weight"].tolist() == [1, 2, 5] and splits.val["weight"].tolist() == [3]
    assert splits.train["x"].shape == (3, 2)  # num_a, num_b; not `other`, not the split column
    with pytest.raises(TrainError, match="no row has part == 'dev'.*Values seen: test, train, val"):
        load_data(_config(path=config.path, split_column="part", val_value="dev", labels=["y"]))
    numbered = load_data(_config(path=config.path, split_column="num_b", train_value=0, val_value=1, labels=["y"]))
    assert numbered.train["y"].tolist() == [0, 1] and numbered.val["y"].tolist() == [0, 1, 1]


@pytest.mark.parametrize("name", ["t.csv", "t.parquet", "t.jsonl"])
def test_fraction_split_is_seeded_and_formats_agree(tmp_path, name):
    rows = {"f": list(range(20)), "y": [i % 3 for i in range(20)]}
    config = _config(path=_write(tmp_path, name, rows), labels=["y"], val_fraction=0.25, seed=3)
    a, b = load_data(config), load_data(_config(**{**config.model_dump(), "seed": 3}))
    assert torch.equal(a.train["x"], b.train["x"]) and len(a.val["y"]) == 5 and len(a.train["y"]) == 15
    other = load_data(_config(**{**config.model_dump(), "seed": 4}))
    assert not torch.equal(a.val["y"], other.val["y"]) or not torch.equal(a.val["x"], other.val["x"])
    # standardised over the 15 training rows only
    assert abs(float(a.train["x"].mean())) < 1e-5 and abs(float(a.val["x"].mean())) > 1e-4


def test_config_errors_are_spec_errors():
    with pytest.raises(ValidationError, match="exactly one source"):
        _config(labels=["y"])
    with pytest.raises(ValidationError, match="split_column"):
        _config(train="a.csv", val="b.csv", split_column="part")
    assert _config(path="t.csv", features=["a", "b"]).field_widths() == {}  # `a` may be text: one-hot


def test_numbers_in_yaml_match_cells_as_text(tmp_path):
    path = _write(tmp_path, "t.csv", {"f": [1, 2, 3, 4, 5, 6], "y": [1, 2, 2, None, 3, 1], "b": [0, 1, 1, 0, 1, 0]})
    config = _config(path=path, features=["f"], val_fraction=0.5,
                     labels={"y": {"classes": [3, 2, 1]}, "b": {"kind": "binary", "positive": 0}})
    splits = load_data(config)
    rows = torch.cat([splits.train["x"], splits.val["x"]])
    y = torch.cat([splits.train["y"], splits.val["y"]])
    b = torch.cat([splits.train["b"], splits.val["b"]])
    order = rows[:, 0].argsort()
    assert y[order].tolist() == [2, 1, 1, IGNORE, 0, 2]  # ids in the order `classes` lists them
    assert b[order].tolist() == [1, 0, 0, 1, 0, 1]  # positive: 0


def test_missing_file_is_named_with_its_option_and_line_before_ray(write_graph, tmp_path, capsys):
    from taskgraph.cli import main

    graph = write_graph(f"""
        name: g
        data:
          people:
            loader: table
            train: {tmp_path}/train.csv
            val: {tmp_path}/nowhere.csv
            labels: [y]
        tasks:
          a: {{data: people, modules: {{m: {{type: linear, out: 1}}}}, loss: {{type: mse, target: y}}}}
        """)
    (tmp_path / "train.csv").write_text("f,y\n1,2\n")
    assert main(["run", str(graph), "--run-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert f"{graph}:6:10: data.people.val: data source 'people': `val: {tmp_path}/nowhere.csv` does not exist" in err
    assert "Traceback" not in err


def test_metrics_skip_nan_labels_as_the_losses_do():
    from taskgraph.train.metrics import METRIC_FNS

    output = torch.tensor([[2.0], [-1.0], [3.0], [0.5]])
    target = torch.tensor([1.0, 0.0, float("nan"), 1.0])  # a binary column with one missing label
    assert METRIC_FNS.get("accuracy")(output, target) == 1.0
    assert METRIC_FNS.get("mse")(output, target) == pytest.approx((1.0 + 1.0 + 0.25) / 3)
    assert METRIC_FNS.get("binary_f1")(output, target) == 1.0

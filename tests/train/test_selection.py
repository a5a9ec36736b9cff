"""Model selection (``train: {select: best, monitor, patience}``) and test splits, without Ray:
the best epoch's weights are kept and reported, test is scored once with them, defaults change nothing."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest
import torch
from pydantic import TypeAdapter

import taskgraph
from taskgraph.errors import SpecError
from taskgraph.spec.components import DataConfig
from taskgraph.train.data import load_data, split_by_fraction
from taskgraph.train.loop import NodeRequest, evaluate, train_node
from taskgraph.train.model import NodeModel

GRAPH = """
name: sel
seed: 0
defaults:
  train: {epochs: 8, batch_size: 64, lr: 0.05}
data:
  shapes: {loader: synthetic_shapes, n: 400, dim: 16, classes: 4, test_fraction: 0.2}
tasks:
  up:
    data: shapes
    train: {select: best, monitor: accuracy, patience: 2}
    modules:
      encoder: {type: mlp, hidden: [16]}
      head: {type: linear, out: 4}
    loss: {type: cross_entropy, target: label}
    metrics: [accuracy]
  joint:
    kind: multitask
    data: shapes
    train: {select: best, monitor: cls.accuracy, patience: 2}
    modules:
      trunk: {type: mlp, hidden: [16]}
    heads:
      cls: {module: {type: linear, out: 4}, loss: {type: cross_entropy, target: label}, metrics: [accuracy]}
      par: {module: {type: linear, out: 1}, loss: {type: binary_cross_entropy, target: parity}, metrics: [accuracy]}
"""


def _spec(write_graph, text: str = GRAPH):
    return taskgraph.load(write_graph(text))


def _train(spec, name: str):
    task = spec.tasks[name]
    return train_node(NodeRequest(name, task, spec.data[task.data], 0), {})


def test_best_epoch_is_kept_reported_and_test_scored_once_with_it(write_graph):
    spec = _spec(write_graph)
    out = _train(spec, "up")
    m = out.metrics
    accuracies = [row["val_accuracy"] for row in m["history"]]
    best = accuracies.index(max(accuracies)) + 1  # the first epoch with the highest accuracy
    assert m["select"] == "best" and m["selected_epoch"] == best
    assert m["final"]["accuracy"] == max(accuracies)
    assert len(m["history"]) == best + 2 < 8, "patience 2: stops two epochs after the best"
    assert m["stopped_early_at"] == best + 2
    # the returned weights are the selected epoch's: they score its validation and the reported test values
    task = spec.tasks["up"]
    model = NodeModel(dict(task.modules), in_dim=16, where="t")
    model.load_state_dict({k: torch.from_numpy(v) for k, v in out.state.items()})
    splits = load_data(spec.data["shapes"])
    assert evaluate(model, task, splits.val["x"], splits.val["label"], 1024)["accuracy"] == m["final"]["accuracy"]
    test = evaluate(model, task, splits.test["x"], splits.test["label"], 1024)
    assert m["test"] == pytest.approx(test) and m["test_examples"] == 80


def test_joint_node_selects_by_one_heads_metric_and_scores_test_per_head(write_graph):
    m = _train(_spec(write_graph), "joint").metrics
    values = [row["val_cls.accuracy"] for row in m["history"]]
    assert m["selected_epoch"] == values.index(max(values)) + 1
    assert m["final"]["cls.accuracy"] == max(values)
    assert set(m["test"]) == {"cls.loss", "cls.accuracy", "par.loss", "par.accuracy"}


def test_defaults_keep_the_last_epoch_the_split_and_the_cache_keys(write_graph):
    plain = GRAPH.replace(", test_fraction: 0.2", "").replace("select: best, monitor: accuracy, patience: 2", "")
    spec = _spec(write_graph, plain)
    m = _train(spec, "up").metrics
    assert len(m["history"]) == 8 and "test" not in m and "selected_epoch" not in m
    assert m["final"]["accuracy"] == m["history"][-1]["val_accuracy"]
    # test_fraction 0 splits exactly as before it existed: validation is the permutation's first rows
    fields = {"x": torch.arange(50.0)[:, None]}
    order = torch.randperm(50, generator=torch.Generator().manual_seed(3))
    split = split_by_fraction(fields, 0.2, 3)
    assert split.val["x"][:, 0].tolist() == order[:10].float().tolist() and split.test is None
    # written-out defaults give the same keys as no mention at all; another choice changes the key
    from taskgraph.plan.keys import node_keys

    explicit = plain.replace("lr: 0.05}", "lr: 0.05, select: last}").replace(
        "n: 400, dim: 16, classes: 4}", "n: 400, dim: 16, classes: 4, test_fraction: 0.0}")
    best = plain.replace("lr: 0.05}", "lr: 0.05, select: best}")
    keys = [node_keys(s, taskgraph.plan_graph(s))["up"] for s in (spec, _spec(write_graph, explicit),
                                                                    _spec(write_graph, best))]
    assert keys[0] == keys[1] != keys[2]


def test_unknown_monitor_is_refused_before_training_with_a_suggestion(write_graph):
    with pytest.raises(SpecError, match=r"no validation value 'acuracy'\. Did you mean 'accuracy'\?"):
        _spec(write_graph, GRAPH.replace("monitor: accuracy", "monitor: acuracy"))


def _data(**kw):
    return load_data(TypeAdapter(DataConfig).validate_python(kw))


def test_generic_loaders_give_a_test_split(tmp_path):
    rows = {"f": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "y": [0, 1, 0, 1, 1, 0],
            "part": ["train", "train", "train", "val", "test", "test"]}
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    splits = _data(loader="table", path=str(tmp_path / "t.csv"), features=["f"], labels={"y": "binary"},
                   split_column="part", test_value="test")
    assert splits.test["y"].tolist() == [1.0, 0.0]
    mean, std = 2.0, (2 / 3) ** 0.5  # test rows are standardised with the training statistics
    assert splits.test["x"][:, 0].tolist() == pytest.approx([(5 - mean) / std, (6 - mean) / std])
    pd.DataFrame({"f": [9.0], "y": [1]}).to_csv(tmp_path / "test.csv", index=False)
    splits = _data(loader="table", path=str(tmp_path / "t.csv"), features=["f"], labels={"y": "binary"},
                   split_column="part", test=str(tmp_path / "test.csv"))
    assert splits.test["y"].tolist() == [1.0]
    (tmp_path / "train.txt").write_text("a X\nb Y\n\nb X\n")
    (tmp_path / "test.txt").write_text("a Z\nb Y\n")  # tag Z never seen in training: a missing label
    splits = _data(loader="conll", train=str(tmp_path / "train.txt"), test=str(tmp_path / "test.txt"),
                   labels={"tag": 1}, val_fraction=0.5)
    assert splits.test["tag"].tolist() == [[-100, 1]]


def test_user_loader_may_return_a_test_split(write_graph, tmp_path, monkeypatch):
    module = tmp_path / "use14_loader.py"
    module.write_text(textwrap.dedent("""
        import torch

        def load():
            x = torch.arange(12.0).reshape(6, 2)
            part = lambda a, b: {"x": x[a:b], "y": torch.zeros(b - a)}
            return {"train": part(0, 3), "val": part(3, 5), "test": part(5, 6)}
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    splits = _data(loader="use14_loader:load")
    assert splits.test["x"].tolist() == [[10.0, 11.0]]


def test_the_runs_data_cache_keeps_the_test_split(tmp_path):
    from taskgraph.train.datacache import cached_splits

    config = TypeAdapter(DataConfig).validate_python({"loader": "synthetic_shapes", "n": 50, "test_fraction": 0.2})
    splits = load_data(config)
    cached_splits(config, "generated", tmp_path, lambda: splits)  # written by the first worker
    again = cached_splits(config, "generated", tmp_path, lambda: pytest.fail("loaded twice"))  # read by the others
    assert again.test is not None and torch.equal(again.test["x"], splits.test["x"])

"""load_node / load_graph: a finished run's nodes come back as eval-mode modules with their weights,
checked against their manifests, and reproduce the run's own validation metrics."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import taskgraph
from taskgraph.errors import TaskgraphError

#: One single-task chain (up -> down, frozen encoder) and a joint node whose second head reads the first.
GRAPH = """
name: use
seed: 0
defaults:
  train: {epochs: 2, batch_size: 64}
data:
  shapes: {loader: synthetic_shapes, n: 400, dim: 16, classes: 4}
tasks:
  up:
    data: shapes
    modules:
      encoder: {type: mlp, hidden: [16]}
      head: {type: linear, out: 4}
    loss: {type: cross_entropy, target: label}
    metrics: [accuracy, macro_f1]
  down:
    data: shapes
    depends_on: {up: {share: [encoder], mode: freeze}}
    modules:
      encoder: {type: mlp, hidden: [16]}
      head: {type: linear, out: 1}
    loss: {type: binary_cross_entropy, target: parity}
    metrics: [accuracy]
  joint:
    kind: multitask
    data: shapes
    modules:
      trunk: {type: mlp, hidden: [16]}
    heads:
      cls: {module: {type: linear, out: 4}, loss: {type: cross_entropy, target: label}, metrics: [accuracy]}
      par: {module: {type: linear, out: 1}, loss: {type: binary_cross_entropy, target: parity},
            input: [trunk, cls], metrics: [accuracy]}
"""


@pytest.fixture(scope="module")
def trained_run(ray_local, tmp_path_factory) -> Path:
    """The graph above, trained once for every test of this module."""
    folder = tmp_path_factory.mktemp("use")
    graph = folder / "use.yaml"
    graph.write_text(textwrap.dedent(GRAPH).lstrip(), encoding="utf-8")
    result = taskgraph.run(taskgraph.load(graph), run_root=folder / "runs", tensorboard=False)
    assert result.ok
    return Path(result.run_dir)


def _val(run: Path):
    from taskgraph.train.data import load_data

    spec = taskgraph.load_graph(run).spec
    return load_data(spec.data["shapes"]).val


def test_load_node_gives_eval_module_with_saved_weights_and_config(trained_run):
    from safetensors.numpy import load_file

    node = taskgraph.load_node(trained_run, "down")
    assert not node.module.training
    saved = load_file(str(trained_run / "down" / "params.safetensors"))
    state = node.module.state_dict()
    assert set(state) == set(saved)
    for key, value in saved.items():
        assert np.array_equal(state[key].numpy(), value)
    up = load_file(str(trained_run / "up" / "params.safetensors"))  # the frozen, inherited encoder
    assert np.array_equal(state["encoder.layers.0.weight"].numpy(), up["encoder.layers.0.weight"])
    assert node.input.field == "x" and node.input.shape == (16,) and node.input.width == 16
    assert node.heads["down"].kind == "probability" and node.heads["down"].target == "parity"
    assert node.spec.loss.type == "binary_cross_entropy"


def test_loaded_nodes_reproduce_the_runs_validation_metrics(trained_run):
    from taskgraph.train.metrics import compute_metric

    val = _val(trained_run)
    graph = taskgraph.load_graph(trained_run)
    assert list(graph) == ["joint", "up", "down"] or set(graph) == {"joint", "up", "down"}
    for name, node in graph.items():
        final = node.metrics["final"]
        outputs = node(val["x"])
        for head, output in outputs.items():
            info = node.heads[head]
            prefix = f"{head}." if node.joint else ""
            for metric in info.metrics:
                got = compute_metric(metric, output, val[info.target])
                assert got == pytest.approx(final[f"{prefix}{metric}"], abs=1e-6), (name, head, metric)
    answers = graph["joint"].predict({"x": val["x"]})
    assert set(answers) == {"cls", "par"}
    assert answers["cls"]["probabilities"].shape == (len(val["x"]), 4)
    accuracy = (answers["par"]["class"] == val["parity"].long()).float().mean().item()
    assert accuracy == pytest.approx(graph["joint"].metrics["final"]["par.accuracy"], abs=1e-6)


def test_damaged_weights_unknown_node_and_missing_folder_are_refused(trained_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    params = copy / "up" / "params.safetensors"
    os.chmod(params, stat.S_IWUSR | stat.S_IRUSR)
    data = bytearray(params.read_bytes())
    data[-1] ^= 0xFF  # one weight's last byte: same size, other bytes
    params.write_bytes(bytes(data))
    with pytest.raises(TaskgraphError, match=r"node 'up'.*damaged.*sha256"):
        taskgraph.load_node(copy, "up")
    assert taskgraph.load_node(copy, "down").name == "down"  # the others still load
    with pytest.raises(TaskgraphError, match=r"no node 'dwn'\. Did you mean 'down'\?"):
        taskgraph.load_node(trained_run, "dwn")
    with pytest.raises(TaskgraphError, match="no such run directory"):
        taskgraph.load_node(tmp_path / "nowhere", "up")
    with pytest.raises(TaskgraphError, match="reads field 'x'"):
        taskgraph.load_node(trained_run, "up").predict({"tokens": torch.zeros(2, 16)})

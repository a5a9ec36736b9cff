"""GPU scheduling and training on a real local Ray with a real GPU (skipped where there is none).

CI has no GPU, so these run on a GPU machine only (``python3 -m pytest tests/execute/test_gpu.py``
there). They check what a CPU run cannot: that a node asking for a GPU trains on it, that Ray packs
fractional GPU requests onto one device, and that parameters learned on a GPU reach CPU nodes (and
``load_node``) as the same tensors.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import taskgraph
from taskgraph.artifacts import load_params

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

GRAPH = """
name: gpu
data:
  shapes: {loader: synthetic_shapes, n: 4000, dim: 16, classes: 4}
defaults:
  train: {epochs: 2, batch_size: 64}
tasks:
  root:
    data: shapes
    resources: {cpus: 1, gpus: 0.5}
    modules: {encoder: {type: mlp, in: 16, hidden: [64]}, head: {type: linear, out: 4}}
    loss: {type: cross_entropy, target: label}
    metrics: [accuracy]
  on_gpu:
    data: shapes
    resources: {cpus: 1, gpus: 0.5}
    depends_on: {root: {share: [encoder], mode: freeze}}
    modules: {encoder: {type: mlp, in: 16, hidden: [64]}, head: {type: linear, out: 1}}
    loss: {type: binary_cross_entropy, target: parity}
    metrics: [accuracy]
  on_cpu:
    data: shapes
    resources: {cpus: 1, gpus: 0}
    depends_on: {root: {share: [encoder], mode: freeze}}
    modules: {encoder: {type: mlp, in: 16, hidden: [64]}, head: {type: linear, out: 1}}
    loss: {type: binary_cross_entropy, target: coarse}
    metrics: [accuracy]
"""


def test_gpu_nodes_train_on_the_gpu_and_hand_parameters_to_cpu_nodes(ray_local, write_graph, tmp_path):
    result = taskgraph.run(taskgraph.load(write_graph(GRAPH)), run_root=tmp_path / "runs")
    assert result.ok
    run = json.loads((result.run_dir / "run.json").read_text())
    nodes = run["nodes"]
    assert nodes["root"]["meta"]["device"].startswith("cuda") and nodes["root"]["gpu_ids"]
    assert nodes["on_gpu"]["meta"]["device"].startswith("cuda") and nodes["on_gpu"]["gpu_ids"]
    assert nodes["on_cpu"]["meta"]["device"] == "cpu" and not nodes["on_cpu"]["gpu_ids"]
    # the frozen encoder both children hold is, tensor for tensor, the one root learned on the GPU
    root = load_params(result.run_dir / "root" / "params.safetensors")
    for child in ("on_gpu", "on_cpu"):
        held = load_params(result.run_dir / child / "params.safetensors")
        keys = [k for k in root if k.startswith("encoder.")]
        assert keys
        for key in keys:
            np.testing.assert_array_equal(np.asarray(held[key]), np.asarray(root[key]))
    # a node trained on the GPU loads on the CPU (load_node) with the weights the run wrote
    trained = taskgraph.load_node(result.run_dir, "root")
    assert next(trained.module.parameters()).device.type == "cpu"
    state = {k: v.numpy() for k, v in trained.module.state_dict().items()}
    for key in keys:
        (match,) = [name for name in state if name == key or name.endswith("." + key)]
        np.testing.assert_array_equal(state[match], np.asarray(root[key]))
    assert 0.25 < nodes["root"]["meta"]["final"]["accuracy"] <= 1.0


def test_quarter_gpu_nodes_share_one_gpu_at_once(ray_local, write_graph, tmp_path):
    """Four ``gpus: 0.25`` nodes fit one GPU together; Ray gives each the same device id."""
    if ray_local.cluster_resources().get("CPU", 0) < 2:
        pytest.skip("needs 2 CPUs for two nodes at once")
    tasks = "\n".join(
        f"""  q{i}:
    data: shapes
    resources: {{cpus: 0.5, gpus: 0.25}}
    modules: {{encoder: {{type: mlp, in: 16, hidden: [64]}}, head: {{type: linear, out: 4}}}}
    loss: {{type: cross_entropy, target: label}}"""
        for i in range(4)
    )
    graph = ("name: quarters\ndata:\n  shapes: {loader: synthetic_shapes, n: 20000, dim: 16, classes: 4}\n"
             "defaults:\n  train: {epochs: 8, batch_size: 32}\ntasks:\n" + tasks + "\n")
    result = taskgraph.run(taskgraph.load(write_graph(graph)), run_root=tmp_path / "runs")
    assert result.ok
    nodes = json.loads((result.run_dir / "run.json").read_text())["nodes"]
    ids = {tuple(n["gpu_ids"]) for n in nodes.values()}
    assert len(ids) == 1 and ids != {()}, ids  # one GPU, shared
    assert all(n["meta"]["device"].startswith("cuda") for n in nodes.values())
    # with 2 CPUs and half a CPU each, all four were admitted together: their spans overlap
    spans = sorted((n["started_at"], n["ended_at"]) for n in nodes.values())
    assert spans[-1][0] < spans[0][1], spans

"""End-to-end runs on a real local Ray: artifacts, run.json and parameter passing."""

from __future__ import annotations

import json

import numpy as np
import pytest

import taskgraph
from taskgraph.artifacts import load_params
from taskgraph.errors import ExecutionError
from taskgraph.train.model import digest, module_state

DIAMOND = """
name: diamond
data:
  shapes: {loader: synthetic_shapes, n: 3000, dim: 16, classes: 4}
defaults:
  train: {epochs: 8, batch_size: 32}
tasks:
  root:
    data: shapes
    modules: {encoder: {type: mlp, in: 16, hidden: [32]}, head: {type: linear, out: 4}}
    loss: {type: cross_entropy, target: label}
    metrics: [accuracy]
    train: {epochs: 1}
  left:
    data: shapes
    depends_on: {root: {share: [encoder], mode: freeze}}
    modules: {encoder: {type: mlp, in: 16, hidden: [32]}, head: {type: linear, out: 1}}
    loss: {type: binary_cross_entropy, target: parity}
    metrics: [accuracy]
  right:
    data: shapes
    depends_on: {root: {share: [encoder], mode: init}}
    modules: {encoder: {type: mlp, in: 16, hidden: [32]}, head: {type: linear, out: 1}}
    loss: {type: binary_cross_entropy, target: coarse}
    metrics: [accuracy]
  join:
    data: shapes
    depends_on: [left, right]
    modules: {head: {type: linear, in: 16, out: 4}}
    loss: {type: cross_entropy, target: label}
    train: {epochs: 1}
"""


@pytest.mark.slow
def test_diamond_run_writes_complete_artifacts(ray_warm, write_graph, tmp_path):
    spec = taskgraph.load(write_graph(DIAMOND))
    result = taskgraph.run(spec, run_root=tmp_path / "runs")
    assert result.ok
    run_dir = result.run_dir
    assert run_dir.parent == tmp_path / "runs" / "diamond"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "done" and set(run["nodes"]) == {"root", "left", "right", "join"}
    nodes = run["nodes"]
    # the two branches overlapped in time (2 CPUs, 1 CPU each): submitted together, ran side by side
    left, right = nodes["left"], nodes["right"]
    assert max(left["submitted_at"], right["submitted_at"]) < min(left["ended_at"], right["ended_at"])
    assert left["started_at"] < right["ended_at"] and right["started_at"] < left["ended_at"]
    for name, node in nodes.items():
        assert node["status"] == "done" and node["host"] and node["worker_id"] and node["started_at"] <= node["ended_at"]
        assert (run_dir / name / "params.safetensors").is_file() and (run_dir / name / "metrics.json").is_file()
        assert not list((run_dir / name).glob("*.tmp"))
    # provenance of inherited modules, with digests matching the upstream artifacts
    root_params = load_params(run_dir / "root" / "params.safetensors")
    root_digest = digest(module_state(root_params, "encoder"))
    assert nodes["left"]["meta"]["inherited"] == [
        {"module": "encoder", "from": "root.encoder", "mode": "freeze", "sha256": root_digest}
    ]
    # freeze: bit-identical after training; init: trained further
    left_params = load_params(run_dir / "left" / "params.safetensors")
    right_params = load_params(run_dir / "right" / "params.safetensors")
    assert digest(module_state(left_params, "encoder")) == root_digest
    assert not np.array_equal(right_params["encoder.layers.0.weight"], root_params["encoder.layers.0.weight"])
    metrics = json.loads((run_dir / "left" / "metrics.json").read_text())
    assert len(metrics["history"]) == 8 and 0.0 <= metrics["final"]["accuracy"] <= 1.0
    assert "tasks:" in (run_dir / "graph.yaml").read_text()


@pytest.mark.slow
def test_gpu_request_without_gpu_is_a_clear_error_and_cpu_only_runs(ray_local, write_graph, tmp_path):
    text = DIAMOND.replace("    train: {epochs: 1}\n  left:", "    train: {epochs: 1}\n    resources: {gpus: 1}\n  left:", 1)
    spec = taskgraph.load(write_graph(text))
    with pytest.raises(ExecutionError, match="node 'root' asks for 1 CPUs and 1 GPUs.*--cpu-only"):
        taskgraph.run(spec, run_root=tmp_path / "runs")
    result = taskgraph.run(spec, run_root=tmp_path / "runs", use_cpu_only=True)
    assert result.ok


@pytest.mark.slow
def test_failed_node_keeps_finished_artifacts(ray_local, write_graph, tmp_path):
    # `right` reads a field the data does not have: it fails, `join` is skipped, the rest is kept
    spec = taskgraph.load(write_graph(DIAMOND.replace("target: coarse", "target: colour")))
    result = taskgraph.run(spec, run_root=tmp_path / "runs")
    assert not result.ok
    status = {n: r.status for n, r in result.records.items()}
    assert status == {"root": "done", "left": "done", "right": "failed", "join": "skipped"}
    assert "no field 'colour'" in result.records["right"].error
    run = json.loads((result.run_dir / "run.json").read_text())
    assert run["status"] == "failed" and run["nodes"]["right"]["error"]
    assert (result.run_dir / "left" / "metrics.json").is_file()


@pytest.mark.slow
def test_names_of_the_longest_allowed_length_run_and_cache(ray_warm, write_graph, tmp_path):
    """Names become folder and file names (run folder, node folders, checkpoints, cache index):
    100 characters, the schema's limit, must run and be served from the cache the second time."""
    g, a, b = "g" * 100, "a" * 100, "b" * 100
    path = write_graph(f"""
name: {g}
data:
  shapes: {{loader: synthetic_shapes, n: 200, dim: 8, classes: 4}}
tasks:
  {a}:
    data: shapes
    modules: {{encoder: {{type: mlp, in: 8, hidden: [8]}}, head: {{type: linear, out: 4}}}}
    loss: {{type: cross_entropy, target: label}}
    train: {{epochs: 1, checkpoint_every: 1}}
  {b}:
    data: shapes
    depends_on: {{{a}: {{share: [encoder]}}}}
    modules: {{encoder: {{type: mlp, in: 8, hidden: [8]}}, head: {{type: linear, out: 1}}}}
    loss: {{type: binary_cross_entropy, target: parity}}
    train: {{epochs: 1}}
""")
    spec = taskgraph.load(path)
    first = taskgraph.run(spec, run_root=tmp_path / "runs")
    assert first.ok, {n: r.error for n, r in first.records.items()}
    assert (first.run_dir / b / "metrics.json").is_file()
    again = taskgraph.run(spec, run_root=tmp_path / "runs")
    assert again.ok and {r.status for r in again.records.values()} == {"cached"}


CHAIN = """
name: chain
data:
  shapes: {loader: synthetic_shapes, n: 200, dim: 8, classes: 4}
defaults:
  train: {epochs: 1, batch_size: 64}
tasks:
  a: {data: shapes, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 4}}, loss: {type: cross_entropy, target: label}}
  b: {data: shapes, depends_on: {a: {share: [encoder]}}, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 1}}, loss: {type: mse, target: parity}}
"""


@pytest.mark.slow
def test_a_relative_run_dir_is_the_drivers_when_ray_runs_elsewhere(ray_warm, write_graph, tmp_path, monkeypatch):
    """The workers of a Ray this driver joined (here the session's, started in another folder) keep
    their own working directory: the default ``runs`` still means the driver's, files and cache."""
    graph = write_graph(CHAIN)
    monkeypatch.chdir(tmp_path)
    result = taskgraph.run(taskgraph.load(graph))  # run_root: "runs", relative
    assert result.ok, result.records
    assert not result.run_dir.is_absolute() and (tmp_path / result.run_dir / "b" / "params.safetensors").is_file()
    assert taskgraph.load_node(result.run_dir, "b").heads["b"]
    again = taskgraph.run(taskgraph.load(graph))
    assert {r.status for r in again.records.values()} == {"cached"}  # the cache is the driver's runs/.cache

"""A no-change rerun: every node from the cache, and nothing imported that it does not need.

The cache is filled through the artifacts layer itself (``write_node`` + ``NodeCache.store``, what a
worker does when a node finishes), so these tests need no Ray and no training.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from taskgraph.artifacts.cache import NodeCache
from taskgraph.artifacts.rundir import write_node
from taskgraph.incremental import decide
from taskgraph.plan.graph import make_plan
from taskgraph.plan.keys import node_keys
from taskgraph.plan.select import descendants
from taskgraph.runner import dump_graph
from taskgraph.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]

GRAPH = """
name: rerun
data:
  shapes: {loader: synthetic_shapes, n: 400, dim: 8, classes: 4}
defaults:
  train: {epochs: 1, batch_size: 64}
tasks:
  a: {data: shapes, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 4}}, loss: {type: cross_entropy, target: label}}
  b: {data: shapes, depends_on: {a: {share: [encoder]}}, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 1}}, loss: {type: mse, target: parity}}
  c: {data: shapes, depends_on: [b], modules: {head: {type: linear, in: 8, out: 1}}, loss: {type: mse, target: parity}}
  d: {data: shapes, modules: {head: {type: linear, in: 8, out: 1}}, loss: {type: mse, target: coarse}}
"""


def fill_cache(spec, runs: Path, work: Path, names=None) -> dict[str, str]:
    """Store a finished result for each node (``names``; default all) under its cache key."""
    keys = node_keys(spec, make_plan(spec))
    cache = NodeCache.for_run_root(runs)
    for name in names if names is not None else keys:
        node_dir = work / name
        files = write_node(node_dir, {"encoder.w": np.full((2, 3), len(name), np.float32)},
                           {"node": name, "final": {"loss": 0.5}})
        cache.store(keys[name], node_dir, {"final": {"loss": 0.5}, "inherited": [], "device": "cpu", "steps": 1,
                                           "node": name, "host": "here", "trained_at": 1.0}, files)
    return keys


def test_a_no_change_rerun_imports_no_ray_torch_networkx_or_numpy_and_writes_the_whole_run_folder(
        write_graph, tmp_path):
    path, runs = write_graph(GRAPH), tmp_path / "runs"
    spec, _ = load_spec(path)
    keys = fill_cache(spec, runs, tmp_path / "work")
    code = (
        "import sys; from taskgraph.cli import main;"
        f"rc = main(['run', {str(path)!r}, '--run-dir', {str(runs)!r}, '--plain']);"
        "print('RC', rc, 'IMPORTED', sorted(m for m in ('ray', 'torch', 'networkx', 'numpy') if m in sys.modules))"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert "RC 0 IMPORTED []" in out.stdout, out.stdout + out.stderr
    (run_dir,) = (runs / "rerun").iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "done" and run["keys"] == keys
    assert {n: r["status"] for n, r in run["nodes"].items()} == dict.fromkeys("abcd", "cached")
    assert list(run["nodes"]) == list(run["order"]) == ["a", "b", "c", "d"]
    assert (run_dir / "graph.yaml").read_text() == dump_graph(spec)
    assert "traceEvents" in json.loads((run_dir / "trace.json").read_text())
    entry = Path(NodeCache.for_run_root(runs).entry(keys["b"]))
    assert os.path.samefile(run_dir / "b" / "params.safetensors", entry / "params.safetensors")  # linked, not copied


def test_a_changed_node_reruns_with_exactly_its_descendants_in_a_20_node_dag(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from bench_peers import dag_graph
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    text, names = dag_graph()
    (tmp_path / "dag.yaml").write_text(text)
    spec, _ = load_spec(tmp_path / "dag.yaml")
    fill_cache(spec, tmp_path / "runs", tmp_path / "work")
    cache = NodeCache.for_run_root(tmp_path / "runs")
    unchanged = decide(spec, make_plan(spec), cache)
    assert unchanged.cached == set(names) and not unchanged.to_run
    for changed in (names[3], names[6], names[12]):
        edited = text.replace(f"  {changed}:\n", f"  {changed}:\n    train: {{lr: 2.0e-3}}\n")
        (tmp_path / "edited.yaml").write_text(edited)
        spec2, _ = load_spec(tmp_path / "edited.yaml")
        plan2 = make_plan(spec2)
        selection = decide(spec2, plan2, cache)
        expected = {changed} | descendants(plan2, {changed})
        assert len(expected) < len(names)
        assert selection.to_run == expected and selection.cached == set(names) - expected

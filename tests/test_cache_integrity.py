"""A damaged cache entry is found, evicted and recomputed, never served; resume reuses verified
run-folder artifacts when the cache is gone. Real local Ray, no mocks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import taskgraph
from taskgraph.artifacts import load_params
from taskgraph.artifacts.cache import NODE_META, NodeCache
from taskgraph.artifacts.manifest import IntegrityWarning
from taskgraph.artifacts.rundir import METRICS, PARAMS
from taskgraph.cli import main
from taskgraph.train.model import digest, module_state
from tests.artifacts.test_integrity import flip_byte, truncate
from tests.test_incremental import cli

ROOT = Path(__file__).resolve().parents[1]

GRAPH = """
name: integ
data:
  shapes: {loader: synthetic_shapes, n: 200, dim: 8, classes: 4}
defaults:
  train: {epochs: 1, batch_size: 64}
tasks:
  a: {data: shapes, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 4}}, loss: {type: cross_entropy, target: label}}
  b: {data: shapes, depends_on: {a: {share: [encoder]}}, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 1}}, loss: {type: mse, target: parity}}
  c: {data: shapes, depends_on: {b: {share: [encoder]}}, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 1}}, loss: {type: mse, target: coarse}}
"""


def statuses(result):
    return {name: record.status for name, record in result.records.items()}


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {f"{n}/{f}": (run_dir / n / f).read_bytes() for n in "abc" for f in (PARAMS, METRICS)}


@pytest.fixture
def first(ray_local, write_graph, tmp_path):
    """One finished run: (graph path, run root, its run folder, its files' bytes, the keys)."""
    path, runs = write_graph(GRAPH), tmp_path / "runs"
    result = taskgraph.run(taskgraph.load(path), run_root=runs)
    assert statuses(result) == dict.fromkeys("abc", "done")
    keys = json.loads((result.run_dir / "run.json").read_text())["keys"]
    return path, runs, result.run_dir, snapshot(result.run_dir), keys


@pytest.mark.slow
@pytest.mark.parametrize(
    ("file", "damage"), [(PARAMS, truncate), (NODE_META, truncate), (METRICS, truncate), (NODE_META, flip_byte)]
)
def test_damaged_entry_is_evicted_and_recomputed(first, file, damage):
    path, runs, run_dir, before, keys = first
    cache = NodeCache.for_run_root(runs)
    damage(cache.entry(keys["a"]) / file)
    with pytest.warns(IntegrityWarning, match=rf"node 'a': cached result .*/{file} is damaged"):
        again = taskgraph.run(taskgraph.load(path), run_root=runs)
    assert statuses(again) == {"a": "done", "b": "cached", "c": "cached"}
    assert snapshot(run_dir) == before  # the first run's files, linked to the entry, are unchanged
    assert cache.has(keys["a"])  # the recomputed result replaced the damaged one
    assert (again.run_dir / "a" / PARAMS).read_bytes() == before["a/" + PARAMS]  # training is deterministic


@pytest.mark.slow
def test_downstream_never_receives_damaged_weights(first):
    """Header intact, same size, other bytes: caught when b reads a's parameters; a is recomputed first."""
    path, runs, run_dir, before, keys = first
    cache = NodeCache.for_run_root(runs)
    params = cache.entry(keys["a"]) / PARAMS
    flip_byte(params, at=inside(params, "encoder."))
    damaged = digest(module_state(load_params(cache.entry(keys["a"]) / PARAMS), "encoder"))
    with pytest.warns(IntegrityWarning, match=rf"node 'a': cached result .*/{PARAMS} is damaged \(its sha256"):
        again = taskgraph.run(taskgraph.load(path), run_root=runs, force="b")
    assert statuses(again) == {"a": "done", "b": "done", "c": "cached"}
    inherited = again.records["b"].meta["inherited"][0]["sha256"]
    assert inherited != damaged
    assert inherited == digest(module_state(load_params(run_dir / "a" / PARAMS), "encoder"))
    assert snapshot(run_dir) == before


def inside(path: Path, prefix: str) -> int:
    """Offset of a byte inside the first tensor whose name starts with ``prefix`` (safetensors layout:
    8-byte header length, JSON header, then the data)."""
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    name = min(k for k in header if k.startswith(prefix))
    return 8 + size + header[name]["data_offsets"][0] + 1


@pytest.mark.slow
def test_status_does_not_call_a_damaged_entry_cached_and_run_recovers(first, capfd):
    """`status` in a child process (no Ray), `run` through the CLI's entry point on the session's Ray."""
    path, runs, run_dir, before, keys = first
    cache = NodeCache.for_run_root(runs)
    truncate(cache.entry(keys["b"]) / NODE_META)
    status = cli("status", str(path), "--run-dir", str(runs))
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    assert f"warning: node 'b': cached result {cache.entry(keys['b'])}/{NODE_META} is damaged" in status.stderr
    line = next(line for line in status.stdout.splitlines() if line.startswith("b "))
    assert " run " in line and "cached result damaged" in line
    assert "1 to train, 2 cached" in status.stdout
    capfd.readouterr()
    code = main(["run", str(path), "--run-dir", str(runs)])
    run = capfd.readouterr()
    assert code == 0 and "Traceback" not in run.err, run.out + run.err
    assert "done     b" in run.out and "cached   a" in run.out and "cached   c" in run.out
    assert snapshot(run_dir) == before


@pytest.mark.slow
def test_resume_without_cache_reuses_verified_folder_artifacts(first):
    """The cache is deleted and c never finished: resume takes a and b from the folder (after
    checking their digests) and trains c only; a damaged b is retrained instead."""
    path, runs, run_dir, before, keys = first
    shutil.rmtree(runs / ".cache")
    (run_dir / "c" / METRICS).unlink()
    resumed = taskgraph.run(taskgraph.load(run_dir / "graph.yaml"), run_root=runs, resume_dir=run_dir)
    assert statuses(resumed) == {"a": "cached", "b": "cached", "c": "done"}
    assert {k: v for k, v in snapshot(run_dir).items() if not k.startswith("c/")} == {
        k: v for k, v in before.items() if not k.startswith("c/")
    }

    shutil.rmtree(runs / ".cache")
    flip_byte(run_dir / "b" / PARAMS)
    with pytest.warns(IntegrityWarning, match=rf"node 'b': .*b/{PARAMS} is damaged"):
        again = taskgraph.run(taskgraph.load(run_dir / "graph.yaml"), run_root=runs, resume_dir=run_dir)
    assert statuses(again) == {"a": "cached", "b": "done", "c": "cached"}  # c: its folder files verify
    assert (run_dir / "b" / PARAMS).read_bytes() == before["b/" + PARAMS]  # retrained, deterministic


CSV_GRAPH = """
name: csvgraph
data:
  table: {loader: "tests.userdata:csv_table", table: "TABLE"}
defaults:
  train: {epochs: 2, batch_size: 32}
tasks:
  t: {data: table, modules: {head: {type: linear, in: 2, out: 1}}, loss: {type: binary_cross_entropy, target: y}, metrics: [accuracy]}
"""


@pytest.mark.slow
def test_a_changed_csv_under_any_argument_name_is_recomputed(ray_local, write_graph, tmp_path):
    """The loader's file is its `table` argument (not root/path/files): flipping its labels must
    retrain the node, not serve the old accuracy."""
    table = tmp_path / "table.csv"
    rows = [(i % 7 / 7, (i * 3) % 5 / 5) for i in range(120)]
    table.write_text("a,b,y\n" + "".join(f"{a},{b},{int(a > 0.5)}\n" for a, b in rows))
    path, runs = write_graph(CSV_GRAPH.replace("TABLE", str(table))), tmp_path / "runs"
    first = taskgraph.run(taskgraph.load(path), run_root=runs)
    assert statuses(first) == {"t": "done"}
    assert statuses(taskgraph.run(taskgraph.load(path), run_root=runs)) == {"t": "cached"}
    table.write_text("a,b,y\n" + "".join(f"{a},{b},{int(a <= 0.5)}\n" for a, b in rows))  # labels flipped
    changed = taskgraph.run(taskgraph.load(path), run_root=runs)
    assert statuses(changed) == {"t": "done"}
    assert changed.metrics("t") != first.metrics("t")

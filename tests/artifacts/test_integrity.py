"""Stored artifacts carry digests and are verified on use; cached files are never written in place."""

from __future__ import annotations

import ast
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from taskgraph.artifacts import store
from taskgraph.artifacts.cache import NODE_META, NodeCache
from taskgraph.artifacts.manifest import MANIFEST, DamagedArtifact, IntegrityWarning
from taskgraph.artifacts.rundir import METRICS, PARAMS, RunDir, write_node
from taskgraph.errors import ArtifactError

STATE = {"encoder.w": np.arange(64, dtype=np.float32).reshape(8, 8), "head.b": np.ones(3, dtype=np.float32)}
METRICS_DATA = {"node": "a", "final": {"loss": 0.25}, "history": [{"epoch": 1, "loss": 0.25}]}


def flip_byte(path: Path, at: int = -5) -> None:
    """Change one byte, keeping the size (and a safetensors header) intact; a new file, renamed
    over the old name, so other hard links to the old file keep their bytes."""
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    replace(path, bytes(data))


def truncate(path: Path) -> None:
    replace(path, path.read_bytes()[: path.stat().st_size // 2])


def replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".damaged")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@pytest.fixture
def stored(tmp_path):
    """A node written to a run folder and published in the cache: (cache, key, run folder node dir)."""
    node_dir = tmp_path / "run" / "a"
    files = write_node(node_dir, STATE, METRICS_DATA)
    cache = NodeCache(tmp_path / ".cache")
    key = "ab" + "0" * 62
    cache.store(key, node_dir, {"node": "a", "final": {"loss": 0.25}}, files)
    return cache, key, node_dir


def test_write_node_records_the_digest_of_what_it_wrote(tmp_path):
    files = write_node(tmp_path / "a", STATE, METRICS_DATA)
    for name in (PARAMS, METRICS):
        data = (tmp_path / "a" / name).read_bytes()
        assert files[name] == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert json.loads((tmp_path / "a" / MANIFEST).read_text()) == files


def test_cache_files_are_sealed_links_of_the_run_folder(stored):
    cache, key, node_dir = stored
    entry = cache.entry(key)
    for name in (PARAMS, METRICS):
        assert os.path.samefile(entry / name, node_dir / name)  # no copy
    for name in (PARAMS, METRICS, NODE_META, MANIFEST):
        assert (entry / name).stat().st_mode & 0o777 == 0o444, name
    assert cache.has(key) and cache.check(key) is None


@pytest.mark.parametrize(
    ("file", "damage", "what"),
    [
        (PARAMS, truncate, "bytes, expected"),
        (NODE_META, truncate, "bytes, expected"),
        (METRICS, truncate, "bytes, expected"),
        (NODE_META, flip_byte, "sha256 differs"),
        (METRICS, flip_byte, "sha256 differs"),
        (MANIFEST, truncate, "not valid JSON"),
    ],
)
def test_check_finds_damage(stored, file, damage, what):
    cache, key, _ = stored
    damage(cache.entry(key) / file)
    found = cache.check(key)
    assert isinstance(found, DamagedArtifact) and what in found.what
    assert not cache.has(key)


def test_flipped_parameters_are_caught_when_read_and_evicted(stored):
    """Same size, intact header, other bytes: cheap checks pass, the digest of the read bytes does not."""
    cache, key, node_dir = stored
    before = (node_dir / PARAMS).read_bytes()
    flip_byte(cache.entry(key) / PARAMS)
    assert cache.check(key) is None  # sizes and small files are fine
    with pytest.raises(DamagedArtifact, match="sha256 differs"):
        cache.load_state(key)
    with pytest.warns(IntegrityWarning, match=rf"node 'a': cached result .*{PARAMS} is damaged .* evicted"):
        assert cache.usable_state(key, "a") is None
    assert not cache.present(key)
    assert (node_dir / PARAMS).read_bytes() == before  # the run folder's own link is untouched


def test_restore_never_writes_into_an_existing_file(stored, tmp_path):
    """A leftover file in the target folder (an interrupted try) is replaced by a rename: a file
    it shares an inode with elsewhere keeps its bytes."""
    cache, key, _ = stored
    other = tmp_path / "elsewhere.bin"
    other.write_bytes(b"someone else's file")
    target = tmp_path / "run2" / "a"
    target.mkdir(parents=True)
    os.link(other, target / PARAMS)
    cache.restore(key, target)
    assert other.read_bytes() == b"someone else's file"
    assert os.path.samefile(target / PARAMS, cache.entry(key) / PARAMS)
    assert RunDir(tmp_path / "run2").verify_node("a")


def test_run_folder_reads_check_the_manifest(tmp_path):
    run = RunDir(tmp_path)
    write_node(run.node_dir("a"), STATE, METRICS_DATA)
    np.testing.assert_array_equal(run.read_params("a")["encoder.w"], STATE["encoder.w"])
    flip_byte(tmp_path / "a" / PARAMS)
    with pytest.raises(ArtifactError, match=rf"{PARAMS} is damaged \(its sha256 differs"):
        run.read_params("a")
    with pytest.raises(DamagedArtifact):
        run.verify_node("a")
    truncate(tmp_path / "a" / METRICS)
    with pytest.raises(ArtifactError, match=rf"{METRICS} is damaged"):
        run.read_metrics("a")


def test_a_damaged_json_file_is_an_artifact_error(tmp_path):
    path = tmp_path / "run.json"
    path.write_text('{"status": "do')
    with pytest.raises(ArtifactError, match="run.json is damaged: not valid JSON"):
        store.read_json(path)


def test_a_damaged_entry_is_replaced_when_the_node_is_stored_again(stored, tmp_path):
    cache, key, node_dir = stored
    truncate(cache.entry(key) / METRICS)
    fresh = tmp_path / "run3" / "a"
    files = write_node(fresh, STATE, METRICS_DATA)
    with pytest.warns(IntegrityWarning, match="node 'a'"):
        cache.store(key, fresh, {"node": "a"}, files)
    assert cache.has(key) and os.path.samefile(cache.entry(key) / PARAMS, fresh / PARAMS)


def test_store_is_the_lowest_artifacts_module():
    tree = ast.parse(Path(store.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m.startswith("taskgraph.artifacts")}


def test_decide_reruns_a_damaged_entry_and_says_why(tmp_path):
    """Sizes and small files are checked when deciding; the parameters a node to run inherits are
    read (and verified) before the run starts, and a damaged upstream is decided again: it reruns."""
    from taskgraph.incremental import decide, decide_and_load
    from taskgraph.plan import make_plan
    from taskgraph.spec import parse_spec

    spec, source = parse_spec(
        "name: d\ndata:\n  s: {loader: synthetic_shapes, n: 100, dim: 8}\ntasks:\n"
        "  a: {data: s, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 4}}, "
        "loss: {type: cross_entropy, target: label}}\n"
        "  b: {data: s, depends_on: {a: {share: [encoder]}}, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, "
        "head: {type: linear, out: 1}}, loss: {type: mse, target: parity}}\n"
    )
    plan = make_plan(spec, source)
    cache = NodeCache(tmp_path / ".cache")
    first = decide(spec, plan, cache)
    for name in "ab":
        files = write_node(tmp_path / "run" / name, STATE, METRICS_DATA)
        cache.store(first.keys[name], tmp_path / "run" / name, {"node": name}, files)
    assert decide(spec, plan, cache).cached == {"a", "b"}

    truncate(cache.entry(first.keys["b"]) / METRICS)
    with pytest.warns(IntegrityWarning, match=rf"node 'b': cached result .*{METRICS} is damaged"):
        selection = decide(spec, plan, cache)
    assert selection.action("b") == "run" and selection.reasons["b"] == "cached result damaged: evicted"

    flip_byte(cache.entry(first.keys["a"]) / PARAMS)  # b runs and inherits a's encoder: a is read
    with pytest.warns(IntegrityWarning, match=rf"node 'a': cached result .*{PARAMS} is damaged"):
        selection, given = decide_and_load(spec, plan, cache, {"a": set(), "b": {"a"}})
    assert selection.to_run == {"a", "b"} and given == {}
    assert selection.reasons["a"] == "cached result damaged: evicted"

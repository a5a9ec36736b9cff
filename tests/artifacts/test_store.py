"""The artifact store: local paths stay atomic; fsspec URLs (memory:// here) behave the same."""

from __future__ import annotations

import numpy as np
import pytest

from taskgraph.artifacts import store
from taskgraph.artifacts.rundir import RunDir, write_node
from taskgraph.errors import ArtifactError


@pytest.fixture(params=["local", "file", "memory"])
def root(request, tmp_path):
    if request.param == "memory":
        url = f"memory://tg-{tmp_path.name}"
        yield url
        store.remove(url, recursive=True)
    else:
        yield str(tmp_path) if request.param == "local" else f"file://{tmp_path}"


def test_write_read_list_remove(root):
    path = store.join(root, "a", "b.json")
    store.write_json(path, {"x": 1})
    store.write_bytes(store.join(root, "a", "c.bin"), b"\x00\x01")
    assert store.exists(path) and store.read_json(path) == {"x": 1}
    assert store.listdir(store.join(root, "a")) == ["b.json", "c.bin"]  # no temp files left behind
    assert store.listdir(store.join(root, "missing")) == []
    store.remove(path)
    assert not store.exists(path)
    with pytest.raises(ArtifactError, match="does not exist"):
        store.read_bytes(path)


def test_locations_keep_their_kind(tmp_path):
    assert store.normalize(f"file://{tmp_path}") == tmp_path
    assert store.join("s3://bucket/runs/", "g", "n") == "s3://bucket/runs/g/n"
    assert store.is_remote("gs://b/x") and not store.is_remote(f"file://{tmp_path}") and not store.is_remote("runs")


def test_run_dir_on_any_store(root):
    first, second = RunDir.create(root, "g"), RunDir.create(root, "g")
    assert first.path != second.path  # same second: a -1 suffix, never a shared folder
    first.write_run({"status": "done"})
    write_node(first.node_dir("n"), {"encoder.w": np.arange(4, dtype=np.float32)}, {"final": {"loss": 0.5}})
    opened = RunDir.open(first.path)
    assert opened.read_run() == {"status": "done"} and opened.node_complete("n")
    np.testing.assert_array_equal(opened.read_params("n")["encoder.w"], np.arange(4, dtype=np.float32))
    assert opened.read_metrics("n")["final"] == {"loss": 0.5}
    assert not opened.node_complete("other")
    with pytest.raises(ArtifactError, match="not a run directory"):
        RunDir.open(store.join(root, "nowhere"))

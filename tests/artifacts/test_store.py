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


def _pieces(rng) -> list[bytes | memoryview]:
    """A file of pieces of awkward sizes that cross the direct-I/O buffer's edges: 8 MB * 2.6 in all."""
    big = rng.integers(0, 255, size=store.DIRECT_BUFFER_BYTES + 12_345, dtype=np.uint8)
    other = rng.integers(0, 255, size=store.DIRECT_BUFFER_BYTES // 2 + 7, dtype=np.uint8)
    return [b"header of 23 bytes here", memoryview(big), b"", memoryview(other), b"x" * 5,
            memoryview(rng.integers(0, 255, size=store.DIRECT_BUFFER_BYTES + 1, dtype=np.uint8))]


def _written(tmp_path, pieces, name="p.bin") -> tuple[str, int, bytes]:
    sha256, size = store.write_chunks(tmp_path / name, pieces)
    return sha256, size, (tmp_path / name).read_bytes()


def test_a_large_file_goes_past_the_page_cache_with_the_same_bytes(tmp_path, monkeypatch):
    """Parameters files that fill the buffer are written with O_DIRECT (Linux), hashed as written; a
    small file never is. Either way the bytes, digest and size are those of the pieces joined."""
    import hashlib
    import os

    turned: list[bool] = []
    set_direct = store._set_direct
    monkeypatch.setattr(store, "_set_direct", lambda fd, on: turned.append(set_direct(fd, on)) or turned[-1])
    pieces = _pieces(np.random.default_rng(0))
    expected = b"".join(bytes(p) for p in pieces)
    sha256, size, data = _written(tmp_path, pieces)
    assert data == expected and size == len(expected) and sha256 == hashlib.sha256(expected).hexdigest()
    if hasattr(os, "O_DIRECT"):  # Linux, on a filesystem with direct I/O (pytest's tmp_path is on disk)
        assert turned[0] is True, "the large file was written through the page cache"
    turned.clear()
    assert _written(tmp_path, [b"small", b" file"], "s.bin")[2] == b"small file"
    assert turned == [], "a file smaller than the buffer went direct"


def test_where_direct_io_is_refused_the_file_goes_through_the_page_cache(tmp_path, monkeypatch):
    import hashlib
    import os

    pieces = _pieces(np.random.default_rng(1))
    expected = b"".join(bytes(p) for p in pieces)
    monkeypatch.setattr(store, "_direct_write", lambda fd, data: False)  # a filesystem that says EINVAL
    assert _written(tmp_path, pieces, "refused.bin")[2] == expected
    monkeypatch.delattr(os, "O_DIRECT", raising=False)  # a platform without it (macOS)
    sha256, _size, data = _written(tmp_path, pieces, "none.bin")
    assert data == expected and sha256 == hashlib.sha256(expected).hexdigest()

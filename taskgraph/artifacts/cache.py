"""The result cache: finished nodes stored by cache key, shared by every run under one ``--run-dir``.

Layout: ``<run-dir>/.cache/nodes/<key[:2]>/<key>/`` with ``params.safetensors``, ``metrics.json``
and ``node.json`` (what the run record needs). An entry is created by renaming a complete temp
folder into place, so it is either whole or absent. Run folders hard-link the cached files (a
copy where links are impossible), so a cached node costs no disk and no copy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from taskgraph.artifacts.files import atomic_write_json, load_params, read_json
from taskgraph.artifacts.rundir import METRICS, PARAMS

__all__ = ["NodeCache", "NODE_META"]

NODE_META = "node.json"
_FILES = (PARAMS, METRICS, NODE_META)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


class NodeCache:
    """Finished node results keyed by cache key."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    @classmethod
    def for_run_root(cls, run_root: str | os.PathLike[str]) -> NodeCache:
        """The cache of a local ``--run-dir`` (``file://`` URLs included)."""
        from taskgraph.artifacts import store

        return cls(Path(store.normalize(run_root)) / ".cache")

    def entry(self, key: str) -> Path:
        return self.root / "nodes" / key[:2] / key

    def partial(self, key: str) -> Path:
        """Where an unfinished node keeps its checkpoints (survives a killed worker or driver)."""
        return self.root / "partial" / key

    def has(self, key: str) -> bool:
        entry = self.entry(key)
        return all((entry / f).is_file() for f in _FILES)

    def store(self, key: str, node_dir: str | os.PathLike[str], meta: dict[str, Any]) -> None:
        """Publish a finished node's artifacts under its key (first writer wins; links, no copies)."""
        if self.has(key):
            return
        node_dir = Path(node_dir)
        entry = self.entry(key)
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{key[:12]}."))
        try:
            for name in (PARAMS, METRICS):
                _link_or_copy(node_dir / name, tmp / name)
            atomic_write_json(tmp / NODE_META, meta)
            try:
                os.rename(tmp, entry)
            except OSError:  # another worker published the same key first: same content
                pass
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(self.partial(key), ignore_errors=True)

    def restore(self, key: str, node_dir: str | os.PathLike[str]) -> dict[str, Any]:
        """Place a cached node's artifacts into a run folder; returns its stored meta."""
        node_dir = Path(node_dir)
        node_dir.mkdir(parents=True, exist_ok=True)
        entry = self.entry(key)
        for name in (PARAMS, METRICS):
            target = node_dir / name
            if not target.exists():
                _link_or_copy(entry / name, target)
        return self.meta(key)

    def meta(self, key: str) -> dict[str, Any]:
        return read_json(self.entry(key) / NODE_META)

    def load_state(self, key: str) -> dict[str, np.ndarray]:
        return load_params(self.entry(key) / PARAMS)

    # The index remembers each graph node's last key, so `status` can say *why* a node reruns.
    def _index_path(self, graph: str) -> Path:
        return self.root / "index" / f"{graph}.json"

    def last_keys(self, graph: str) -> dict[str, str]:
        path = self._index_path(graph)
        return read_json(path) if path.is_file() else {}

    def remember(self, graph: str, keys: dict[str, str]) -> None:
        atomic_write_json(self._index_path(graph), {**self.last_keys(graph), **keys})

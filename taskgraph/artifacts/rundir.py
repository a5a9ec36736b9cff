"""The run directory: ``<run-dir>/<graph>/<timestamp>/`` with the graph, ``run.json`` and a folder per node.

Per node: ``params.safetensors``, ``manifest.json`` (each file's sha256 and size, from the bytes
written: ``artifacts.manifest``), then ``metrics.json``. Metrics go last, so a node folder with
``metrics.json`` is complete; anything else is an interrupted write and is never trusted. Reads
check the manifest: a file that changed since it was written is an error, not a result.
``<run-dir>`` is a local path or an fsspec URL (``artifacts.store``): on a cluster, a store every
Ray node reaches.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskgraph.artifacts import store
from taskgraph.artifacts.files import atomic_write_text, params_from_bytes, read_json
from taskgraph.artifacts.manifest import MANIFEST, Digest, check_sizes, digest, read_manifest, read_verified
from taskgraph.errors import ArtifactError

if TYPE_CHECKING:  # numpy (and tensorfile) only where tensors are written: a cached rerun never needs them
    import numpy as np

__all__ = ["RunDir", "write_node", "run_state", "disk_errors", "PARAMS", "METRICS", "RUN", "GRAPH", "NODE_FILES"]

PARAMS, METRICS, RUN, GRAPH = "params.safetensors", "metrics.json", "run.json", "graph.yaml"
#: The files of a finished node, as its manifest lists them.
NODE_FILES = (PARAMS, METRICS)

#: What a full, read-only or forbidden run directory raises: the user's to fix, never a traceback.
_FIXES = {
    errno.ENOSPC: "Free space on that disk or pass --run-dir on another one",
    errno.EDQUOT: "Free space on that disk or pass --run-dir on another one",
    errno.EROFS: "Pass --run-dir a folder you can write to",
    errno.EACCES: "Pass --run-dir a folder you can write to",
    errno.EPERM: "Pass --run-dir a folder you can write to",
    errno.ENOTDIR: "A file is in the way: pass --run-dir a folder",
    # A folder that cannot be made where it is asked for (/proc/runs, a mount point that went away).
    errno.ENOENT: "Pass --run-dir a folder that exists or can be made (on a cluster: one every node mounts)",
}


@contextmanager
def disk_errors(target: str | os.PathLike[str], run_dir: str | os.PathLike[str] | None = None) -> Iterator[None]:
    """Turn a failed write of ``target`` (full disk, read-only, no permission) into one line.

    With ``run_dir`` (a run already under way), the line ends with the resume command: what
    finished is in the cache, so nothing computed is lost. Other OS errors stay bugs.
    """
    try:
        yield
    except OSError as exc:
        if exc.errno not in _FIXES:
            raise
        where = exc.filename or target
        then = (f"; finished nodes are kept in the cache, and `taskgraph resume {run_dir}` trains the rest"
                if run_dir is not None else "")
        raise ArtifactError(f"cannot write {where}: {exc.strerror}. {_FIXES[exc.errno]}{then}.") from exc


def run_state(graph: str, run_dir: str | os.PathLike[str], order: Iterable[str], critical_path: Iterable[str],
              keys: dict[str, str], started: float) -> dict[str, Any]:
    """``run.json`` at a run's start, before any node's record: one layout for a run that trains
    (``runner.run_graph``) and a no-change rerun replayed from its kept record (``taskgraph.rerun``)."""
    return {"graph": graph, "run_dir": str(run_dir), "status": "running", "started_at": started, "ended_at": None,
            "order": list(order), "critical_path": list(critical_path), "keys": keys, "nodes": {}}


def write_node(
    node_dir: str | os.PathLike[str], state: dict[str, np.ndarray], metrics: dict[str, Any]
) -> dict[str, Digest]:
    """Write one node's artifacts: parameters, the manifest, metrics last (the completion marker).
    Returns the manifest (digests of the bytes written, hashed while writing, not read back).
    The parameters stream from the arrays' own memory through one 8 MB buffer: no copy of the module is made."""
    from taskgraph.artifacts.tensorfile import write_params

    metrics_data = store.json_bytes(metrics)
    with disk_errors(node_dir):
        manifest = {PARAMS: write_params(store.join(node_dir, PARAMS), state), METRICS: digest(metrics_data)}
        store.write_json(store.join(node_dir, MANIFEST), manifest)
        store.write_bytes(store.join(node_dir, METRICS), metrics_data)
    return manifest


@dataclass(frozen=True)
class RunDir:
    path: Path | str  # a Path locally, a URL string on a remote store (store.normalize)

    @classmethod
    def create(cls, root: str | os.PathLike[str], graph_name: str) -> RunDir:
        """A fresh, uniquely named folder for one run (timestamp, then -1, -2 ... on a clash)."""
        base = store.join(root, graph_name)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for i in range(1000):
            path = store.join(base, stamp if i == 0 else f"{stamp}-{i}")
            try:
                if isinstance(path, str) and store.exists(path):  # object stores: no atomic mkdir
                    continue
                with disk_errors(path):
                    store.makedirs(path, exist_ok=False)
                return cls(path)
            except FileExistsError:
                continue
        raise ArtifactError(f"cannot create a run folder under {base}.")

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunDir:
        path = store.normalize(path)
        if not store.exists(store.join(path, RUN)):
            raise ArtifactError(f"{path} is not a run directory (no {RUN}). Pass the folder `taskgraph run` printed.")
        return cls(path)

    def node_dir(self, name: str) -> Path | str:
        return store.join(self.path, name)

    def write_graph(self, text: str) -> None:
        """The first write of a run, before Ray starts: a read-only or full ``--run-dir`` fails here."""
        with disk_errors(store.join(self.path, GRAPH)):
            atomic_write_text(store.join(self.path, GRAPH), text)

    def write_run(self, run: dict[str, Any]) -> None:
        self.write_run_bytes(store.json_bytes(run))

    def write_run_bytes(self, data: bytes) -> None:
        """``run.json`` from bytes serialised already (``runrecord.RunRecorder``, off the driver's loop)."""
        with disk_errors(store.join(self.path, RUN), self.path):
            store.write_bytes(store.join(self.path, RUN), data)

    def write_error(self, name: str, text: str) -> None:
        """A failed node's error and traceback, beside its (absent) artifacts: ``<node>/error.txt``."""
        with disk_errors(store.join(self.path, name, "error.txt"), self.path):
            store.write_text(store.join(self.path, name, "error.txt"), text)

    def read_run(self) -> dict[str, Any]:
        return read_json(store.join(self.path, RUN))

    def node_complete(self, name: str) -> bool:
        return store.exists(store.join(self.path, name, METRICS)) and store.exists(store.join(self.path, name, PARAMS))

    def manifest(self, name: str) -> dict[str, Digest] | None:
        """The node's manifest, or None for a node written before manifests existed."""
        if not store.exists(store.join(self.path, name, MANIFEST)):
            return None
        return read_manifest(self.node_dir(name), NODE_FILES)

    def verify_node(self, name: str) -> dict[str, Digest]:
        """Check a finished node's files in full against its manifest (``DamagedArtifact`` if not)."""
        manifest = read_manifest(self.node_dir(name), NODE_FILES)
        check_sizes(self.node_dir(name), manifest, NODE_FILES)
        for file in NODE_FILES:
            read_verified(store.join(self.path, name, file), manifest[file])
        return manifest

    def _read(self, name: str, file: str) -> bytes:
        path = store.join(self.path, name, file)
        if not store.exists(path):
            raise ArtifactError(f"node '{name}' has no {file} in {self.path}: it did not finish.")
        manifest = self.manifest(name)
        return store.read_bytes(path) if manifest is None else read_verified(path, manifest[file])

    def read_metrics(self, name: str) -> dict[str, Any]:
        import json

        try:
            return json.loads(self._read(name, METRICS))
        except ValueError:
            raise ArtifactError(f"{store.join(self.path, name, METRICS)} is damaged: not valid JSON.") from None

    def read_params(self, name: str) -> dict[str, np.ndarray]:
        data = self._read(name, PARAMS)
        try:
            return params_from_bytes(data)
        except Exception as exc:  # noqa: BLE001 - safetensors' own error type
            raise ArtifactError(f"{store.join(self.path, name, PARAMS)} is damaged: {exc}") from None

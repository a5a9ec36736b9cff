"""The run directory: ``<run-dir>/<graph>/<timestamp>/`` with the graph, ``run.json`` and a folder per node.

Per node: ``params.safetensors`` then ``metrics.json``. Metrics go last, so a node folder with
``metrics.json`` is complete; anything else is an interrupted write and is never trusted.
``<run-dir>`` is a local path or an fsspec URL (``artifacts.store``): on a cluster, a store every
Ray node reaches.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from taskgraph.artifacts import store
from taskgraph.artifacts.files import atomic_write_json, atomic_write_text, load_params, read_json, save_params
from taskgraph.errors import ArtifactError

__all__ = ["RunDir", "write_node", "PARAMS", "METRICS", "RUN", "GRAPH"]

PARAMS, METRICS, RUN, GRAPH = "params.safetensors", "metrics.json", "run.json", "graph.yaml"


def write_node(node_dir: str | os.PathLike[str], state: dict[str, np.ndarray], metrics: dict[str, Any]) -> None:
    """Write one node's artifacts: parameters first, metrics last (the completion marker)."""
    save_params(store.join(node_dir, PARAMS), state)
    atomic_write_json(store.join(node_dir, METRICS), metrics)


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
        atomic_write_text(store.join(self.path, GRAPH), text)

    def write_run(self, run: dict[str, Any]) -> None:
        atomic_write_json(store.join(self.path, RUN), run)

    def write_error(self, name: str, text: str) -> None:
        """A failed node's error and traceback, beside its (absent) artifacts: ``<node>/error.txt``."""
        store.write_text(store.join(self.path, name, "error.txt"), text)

    def read_run(self) -> dict[str, Any]:
        return read_json(store.join(self.path, RUN))

    def node_complete(self, name: str) -> bool:
        return store.exists(store.join(self.path, name, METRICS)) and store.exists(store.join(self.path, name, PARAMS))

    def read_metrics(self, name: str) -> dict[str, Any]:
        path = store.join(self.path, name, METRICS)
        if not store.exists(path):
            raise ArtifactError(f"node '{name}' has no {METRICS} in {self.path}: it did not finish.")
        return read_json(path)

    def read_params(self, name: str) -> dict[str, np.ndarray]:
        path = store.join(self.path, name, PARAMS)
        if not store.exists(path):
            raise ArtifactError(f"node '{name}' has no {PARAMS} in {self.path}: it did not finish.")
        return load_params(path)

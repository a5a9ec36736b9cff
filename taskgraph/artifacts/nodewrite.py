"""The files that make a trained node durable, written after its state has gone to its children."""

from __future__ import annotations

import socket
import time
from typing import Any

from taskgraph.artifacts.cache import NodeCache
from taskgraph.artifacts.rundir import disk_errors, write_node
from taskgraph.artifacts.tbevents import write_scalars

__all__ = ["write_trained_node"]


def write_trained_node(
    state: dict[str, Any], name: str, node_dir: str, cache_root: str | None, key: str,
    metrics: dict[str, Any], summary: dict[str, Any], notes: dict[str, Any] | None,
    scalars: tuple[str, list[tuple[str, float, int, float]]] | None = None,
) -> dict[str, Any]:
    """Make a trained node durable: the safetensors file (streamed from the state's arrays, hashed as
    written), the manifest, metrics, then the cache entry, all synced. Returns the node's meta for the
    run record. It runs in the writer process of the machine that trained the node (the runner hands
    it to ``execute.writer``), so it imports only this layer: a writer starts in a blink. ``scalars``: a
    short node's TensorBoard folder and scalars, never written by the node (``artifacts.tbevents``)."""
    if scalars is not None:
        with disk_errors(node_dir):
            write_scalars(*scalars)
    files = write_node(node_dir, state, {"node": name, **metrics, **summary, **({"tracking": notes} if notes else {})})
    meta = {"final": metrics["final"], **summary, "resumed_from_step": metrics.get("resumed_from_step"),
            **{k: metrics[k] for k in ("test", "selected_epoch") if metrics.get(k) is not None}}
    if cache_root is not None:  # published as soon as the node is done: a killed driver loses nothing
        with disk_errors(cache_root):
            NodeCache(cache_root).store(key, node_dir, {**meta, "node": name, "host": socket.gethostname(),
                                                       "trained_at": time.time()}, files)
    return meta

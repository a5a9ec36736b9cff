"""What the driver sends a worker to train one node: plain frozen records, no torch.

Kept apart from ``train.loop`` so the driver can plan and submit a run without importing torch
(about 1.5 s of every cold run): only the workers, which train, import it. Pickled by reference
to this module, so a worker unpickling a request does not pull in anything the driver lacks.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from taskgraph.spec.models import Task

__all__ = ["Inheritance", "NodeRequest", "node_seed"]


@dataclass(frozen=True)
class Inheritance:
    """One shared module: this node's ``local`` module takes ``upstream``'s ``remote`` module."""

    local: str
    upstream: str
    remote: str
    mode: str  # init | freeze | finetune
    lr_scale: float = 1.0


@dataclass(frozen=True)
class NodeRequest:
    """Everything a worker needs to train one node (frozen configs: pickles cheaply)."""

    name: str
    task: Task
    data: Any
    seed: int
    inherits: tuple[Inheritance, ...] = ()
    #: A joint node's data sources by name (``data`` is its own one); empty for single-task nodes.
    sources: tuple[tuple[str, Any], ...] = ()
    checkpoint_dir: str | None = None  # where checkpoints go (kept across retries and reruns)
    #: Where loaded data sources are shared by the run's workers (``<run-dir>/.cache/data``); None: per process.
    data_cache: str | None = None


def node_seed(graph_seed: int, name: str) -> int:
    """A per-node seed, stable across runs and machines (crc32, not Python's salted hash)."""
    return (graph_seed * 1_000_003 + zlib.crc32(name.encode())) % (2**31)

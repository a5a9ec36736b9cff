"""What happened to each node of a run: the record ``run.json`` is made of (no Ray import)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["NodeRecord"]


@dataclass
class NodeRecord:
    """What happened to one node; serialised into ``run.json``."""

    name: str
    status: str = "pending"  # pending | running | done | failed | skipped
    submitted_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    host: str | None = None
    node_id: str | None = None
    worker_id: str | None = None
    pid: int | None = None
    gpu_ids: list[Any] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

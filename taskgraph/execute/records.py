"""A node to run (``NodeJob``: what the scheduler is given) and what happened to it (``NodeRecord``: what
``run.json`` is made of). No Ray import."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["NodeJob", "NodeRecord", "attempt_history"]


@dataclass(frozen=True)
class NodeJob:
    """One node to run: what it waits for, what it receives, what it asks Ray for."""

    name: str
    upstream: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()  # the upstream nodes whose state this node receives
    cpus: float = 1.0
    gpus: float = 0.0
    memory: int | None = None  # bytes
    custom: dict[str, float] = field(default_factory=dict)  # Ray custom resources
    accelerator_type: str | None = None
    labels: dict[str, str] = field(default_factory=dict)  # Ray node labels that must match
    workers: int | None = None  # data-parallel (Ray Train): the task coordinates, the workers hold resources
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    priority: float = 0.0  # larger first: the remaining critical-path cost
    payload: Any = None


@dataclass
class NodeRecord:
    """What happened to one node; serialised into ``run.json``."""

    name: str
    status: str = "pending"  # pending | running | done | failed | skipped
    submitted_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    #: When its state went to its children: they start from it while its files are written and
    #: synced; ``ended_at`` (and ``done``) come once they are durable.
    handed_at: float | None = None
    host: str | None = None
    node_id: str | None = None
    worker_id: str | None = None
    pid: int | None = None
    gpu_ids: list[Any] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)  # attempt_history(...), oldest first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def attempt_history(
    markers: Iterable[Mapping[str, Any]],
    record: NodeRecord,
    last_heard: Mapping[int, float] | None = None,
    alive_nodes: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Each try of one node: where (host, Ray node, pid), when (start, end) and how it ended.

    ``markers`` are what each try wrote when it started (``<node>/attempts/*.json``). Ray retries a
    node only when its worker process dies (a killed process, a lost machine), so every try but the
    last ended that way; it ended when the driver last heard from it (``last_heard``: progress
    events by pid), else at the latest when the next try started (``ended_at_is_bound``). A try
    whose Ray node is no longer in ``alive_nodes`` lost its machine. The last try ended as the
    node did (``record``).
    """
    tries = sorted((dict(m) for m in markers), key=lambda m: m.get("started_at") or 0.0)
    heard, alive = dict(last_heard or {}), set(alive_nodes) if alive_nodes is not None else None
    out = []
    for i, marker in enumerate(tries, start=1):
        entry = {"attempt": i, **{k: marker.get(k) for k in ("host", "node_id", "pid", "started_at")}}
        if i < len(tries):
            next_start = tries[i].get("started_at")
            last = heard.get(marker.get("pid"))
            bound = last is None or (next_start is not None and last > next_start)
            entry["ended_at"] = next_start if bound else last
            entry["ended_at_is_bound"] = bound
            lost = alive is not None and marker.get("node_id") is not None and marker["node_id"] not in alive
            entry["ended"] = "retried"
            entry["why"] = (f"its Ray node {str(marker.get('node_id'))[:12]} on {marker.get('host')} was lost"
                            if lost else "its worker process died (killed, out of memory or crashed)")
        else:
            entry["ended_at"] = record.ended_at
            entry["ended"] = record.status
            entry["why"] = record.error or ""
        out.append(entry)
    return out

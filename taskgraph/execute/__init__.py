"""Execution layer (Ray): connect to a cluster and run a graph's nodes with a ready-set scheduler.

Exports load lazily, so ray-free parts (``execute.records``) import without starting Ray's import.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RaySession", "connect", "NodeJob", "NodeRecord", "run_jobs"]

_WHERE = {
    "RaySession": "taskgraph.execute.cluster",
    "connect": "taskgraph.execute.cluster",
    "NodeJob": "taskgraph.execute.scheduler",
    "run_jobs": "taskgraph.execute.scheduler",
    "NodeRecord": "taskgraph.execute.records",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(name)

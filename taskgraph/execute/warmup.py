"""Idle workers import, at the start of a run, what a fresh worker pays before a node's first step."""

from __future__ import annotations

import importlib
from typing import Any

import ray

from taskgraph.execute.stream import discard, stop

__all__ = ["warm_targets", "warm_up", "settle", "import_targets"]


def import_targets(targets: list[str]) -> None:
    """Import each target's module; for ``module:function``, call the function too."""
    for target in targets:
        module, _, function = target.partition(":")
        try:
            loaded = importlib.import_module(module)
            if function:
                getattr(loaded, function)()
        except Exception:  # noqa: BLE001 -- only a head start: the node itself reports a broken import
            pass


_remote_import = ray.remote(num_cpus=1, max_retries=0)(import_targets)


def warm_targets(node_fn: Any, warm: str | None) -> list[str]:
    """What a fresh worker imports before its first node can start: the node function's own module
    (unpickling the function imports it: for the runner's, the spec models, the plan and the
    artifacts, about a second on a busy machine) and ``warm``. Nothing without ``warm``."""
    if not warm:
        return []
    module = getattr(getattr(node_fn, "func", node_fn), "__module__", None)  # through functools.partial
    return [m for m in (module,) if m and m != "__main__"] + [warm]


def warm_up(targets: list[str], free_cpus: int, nodes_left: int) -> list[Any]:
    """Import ``targets`` on as many idle workers as there are free CPUs and nodes still to run; returns
    their results for ``settle``. A child that starts while its parent writes its files lands on
    another worker than its parent's; a cold one would pay these imports (seconds) on the critical path."""
    return [_remote_import.options(name="taskgraph:warm-up").remote(targets)
            for _ in range(min(free_cpus, nodes_left) if targets else 0)]


def settle(warming: list[Any], timeout: float = 5.0) -> None:
    """At the end of a run (finished, failed or interrupted): stop the warm-ups still running and read
    every result. A warm-up still importing when the run's driver left was ended with the driver's
    job, and Ray printed "Unhandled error ... The worker died unexpectedly" for it under the one line
    an interrupted run promises."""
    stop(warming)
    discard(warming, timeout)

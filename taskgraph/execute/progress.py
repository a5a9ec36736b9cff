"""Live progress from workers to the driver through a Ray actor, not through files.

Workers push small dicts to a ``ProgressHub`` actor, fire and forget: training never waits for
the driver. The driver drains the hub when its ``ray.wait`` times out (every ``DRAIN_EVERY_S``)
and when a node ends, so a node's completion is never delayed by progress. The hub is a plain
(single-threaded) actor on purpose: Ray runs one caller's calls to it in submission order, so
events arrive in the order the node sent them (an async actor reorders them).

Node code reports through ``report(event)``, a no-op outside a run with progress, the way
``ray.train.report`` finds its session: the scheduler's ``node_fn(name, payload, inputs)``
contract stays the same, and execute never imports the code that trains.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

__all__ = [
    "ProgressHub", "Reporter", "report", "reporting", "start_hub", "forget_hub", "STEP_INTERVAL_S", "DRAIN_EVERY_S",
]

#: At most one ``step`` event per node per this many seconds: bars move inside an epoch,
#: and a fast node cannot flood the driver. Epoch, start and end events are never dropped.
STEP_INTERVAL_S = 0.25

#: How often the driver collects events while no node finishes: the live view's refresh period.
DRAIN_EVERY_S = 0.25

_current: ContextVar[Reporter | None] = ContextVar("taskgraph_progress_reporter", default=None)


class ProgressHub:
    """The mailbox between workers and the driver."""

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []

    def push(self, event: dict[str, Any]) -> None:
        self._events.append(event)

    def drain(self) -> list[dict[str, Any]]:
        """Every event since the last drain, oldest first."""
        events, self._events = self._events, []
        return events


_hub: tuple[str, Any] | None = None  # (Ray job id, handle): one hub per driver process and Ray session


def start_hub() -> Any:
    """The hub actor of this driver, started once per Ray session (starting an actor costs a worker
    process, ~0.5 s: runs in one process share it). It asks for no CPU, so it never takes a node's slot."""
    import ray

    global _hub
    job = ray.get_runtime_context().get_job_id()
    if _hub is None or _hub[0] != job:
        _hub = (job, ray.remote(num_cpus=0, max_restarts=0)(ProgressHub).remote())
    else:
        _hub[1].drain.remote()  # drop stragglers of an earlier run (a cancelled node's last words)
    return _hub[1]


def forget_hub() -> None:
    """Drop the cached hub (it died): the next run starts a fresh one."""
    global _hub
    _hub = None


class Reporter:
    """Worker side: stamps events with the node and the time, throttles ``step`` events, pushes."""

    def __init__(self, hub: Any, node: str, step_interval_s: float = STEP_INTERVAL_S):
        self.hub, self.node, self.step_interval_s = hub, node, step_interval_s
        self._last_step = float("-inf")

    def __call__(self, event: dict[str, Any]) -> None:
        now = time.time()
        if event.get("kind") == "step":
            if now - self._last_step < self.step_interval_s:
                return
            self._last_step = now
        self.hub.push.remote({"node": self.node, "time": now, **event})

    def finish(self, event: dict[str, Any]) -> None:
        """The node's last event, pushed *and waited for*: the hub then holds every event of this
        node (one caller's calls run in order) before the node's result reaches the driver."""
        import ray

        try:
            ray.get(self.hub.push.remote({"node": self.node, "time": time.time(), **event}))
        except ray.exceptions.RayError:
            pass  # progress is best effort: a lost hub must never fail the node that reports to it


@contextlib.contextmanager
def reporting(reporter: Reporter | None) -> Iterator[None]:
    """Make ``report`` send to ``reporter`` while a node runs (None: progress is off)."""
    token = _current.set(reporter)
    try:
        yield
    finally:
        _current.reset(token)


def report(event: dict[str, Any]) -> None:
    """Send one progress event for the node running here; does nothing when no driver listens."""
    reporter = _current.get()
    if reporter is not None:
        reporter(event)

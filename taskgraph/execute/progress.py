"""Live progress from workers to the driver through a Ray actor, not through files.

Workers push small dicts to a ``ProgressHub`` actor, fire and forget: training never waits for
the driver. The driver keeps one ``hub.drain`` call in flight beside the node futures in its
``ray.wait``, so it wakes when a node ends *or* progress arrives: no polling interval, and no
latency added to a node's completion.

Node code reports through ``report(event)``, a no-op outside a run with progress, the way
``ray.train.report`` finds its session: the scheduler's ``node_fn(name, payload, inputs)``
contract stays the same, and execute never imports the code that trains.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

__all__ = ["ProgressHub", "Reporter", "report", "reporting", "start_hub", "STEP_INTERVAL_S"]

#: At most one ``step`` event per node per this many seconds: bars move inside an epoch,
#: and a fast node cannot flood the driver. Epoch, start and end events are never dropped.
STEP_INTERVAL_S = 0.25

_current: ContextVar[Reporter | None] = ContextVar("taskgraph_progress_reporter", default=None)


class ProgressHub:
    """The mailbox between workers and the driver (an async actor: ``push`` and ``drain`` interleave)."""

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._closed = False

    async def push(self, event: dict[str, Any]) -> None:
        self._events.append(event)
        self._arrived.set()

    async def drain(self, wait_s: float = 0.0) -> list[dict[str, Any]]:
        """Every event so far, waiting up to ``wait_s`` for the first one (a long poll)."""
        if not self._events and wait_s > 0 and not self._closed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), wait_s)
        events, self._events = self._events, []
        self._arrived.clear()
        return events

    async def close(self) -> None:
        """Wake a waiting ``drain`` now: the driver is collecting the last events."""
        self._closed = True
        self._arrived.set()


def start_hub() -> Any:
    """A fresh hub actor on the connected Ray. It asks for no CPU, so it never takes a node's slot."""
    import ray

    return ray.remote(num_cpus=0, max_restarts=0)(ProgressHub).remote()


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
        node (one caller's actor calls start in order) before the node's result reaches the driver."""
        import ray

        ray.get(self.hub.push.remote({"node": self.node, "time": time.time(), **event}))


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

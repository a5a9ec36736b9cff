"""Live progress from workers to the driver through a Ray actor, not through files.

Workers push small dicts to a ``ProgressHub`` actor, fire and forget: training never waits for
the driver. The driver drains the hub when its ``ray.wait`` times out (every ``DRAIN_EVERY_S``)
and when a node ends, so a node's completion is never delayed by progress. The hub is a plain
(single-threaded) actor on purpose: Ray runs one caller's calls to it in submission order, so
events arrive in the order the node sent them (an async actor reorders them).

Node code reports through ``report(event)``, a no-op outside a run with progress, the way
``ray.train.report`` finds its session: the scheduler's ``node_fn(name, payload, inputs)``
contract stays the same, and execute never imports the code that trains.

The hub lives on the driver's own Ray node (``NodeAffinitySchedulingStrategy``), never on a worker
whose loss would take live progress with it; it asks for no CPU, so a head started with
``--num-cpus=0`` holds it. It is a named actor: if it dies anyway (killed, its process OOM-killed),
the driver starts a new one under the same name at its next drain, and each running node's
``Reporter``, seeing its last push fail, looks the name up again, so progress goes on; only the
events sent to the dead hub are lost.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextvars import ContextVar
from typing import Any

__all__ = [
    "ProgressHub", "HubLink", "Reporter", "EventOrder", "report", "reporting", "start_hub", "restart_hub", "forget_hub",
    "hub_name", "STEP_INTERVAL_S", "DRAIN_EVERY_S", "MAX_HUB_RESTARTS",
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

#: How often a worker whose hub died looks for the driver's new one (a GCS round trip each).
RELOOKUP_EVERY_S = 0.5


def hub_name() -> str:
    """The hub's actor name: one per driver process (runs in one process share it)."""
    import ray

    return f"taskgraph-progress-{ray.get_runtime_context().get_job_id()}-{os.getpid()}"


def _placement() -> dict[str, Any]:
    """Pin the hub to the driver's Ray node: it lives exactly as long as the driver's machine."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    try:
        node = ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 -- no node id here (a client without one): the head, by its resource
        return {"resources": {"node:__internal_head__": 0.001}}
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node, soft=False)}


def _new_hub() -> Any:
    import ray

    return ray.remote(ProgressHub).options(
        name=hub_name(), num_cpus=0, max_restarts=0, **_placement()
    ).remote()


def start_hub() -> Any:
    """The hub actor of this driver, started once per Ray session (starting an actor costs a worker
    process, ~0.5 s: runs in one process share it). It asks for no CPU, so it never takes a node's slot."""
    import ray

    global _hub
    job = ray.get_runtime_context().get_job_id()
    if _hub is None or _hub[0] != job:
        _hub = (job, _new_hub())
    else:
        _hub[1].drain.remote()  # drop stragglers of an earlier run (a cancelled node's last words)
    return _hub[1]


def restart_hub() -> Any:
    """A new hub under the same name, after the old one died; running nodes find it by that name."""
    import ray

    global _hub
    if _hub is not None:
        try:
            ray.kill(_hub[1])  # already dead as a rule; never two hubs under one name
        except Exception:  # noqa: BLE001
            pass
    deadline = time.time() + 5.0
    while True:  # the dead actor's name is released a moment after its death is known
        try:
            _hub = (ray.get_runtime_context().get_job_id(), _new_hub())
            return _hub[1]
        except ValueError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def forget_hub() -> None:
    """Drop the cached hub (it died): the next run starts a fresh one."""
    global _hub
    _hub = None


#: How many times one run replaces a dead progress hub before it goes on without live progress.
MAX_HUB_RESTARTS = 5


class HubLink:
    """The driver's side of the hub for one run: what nodes get (``link``: the handle and its actor name),
    draining, and a new hub under the same name when this one died (running nodes find it by the name).
    After ``MAX_HUB_RESTARTS`` the run goes on without live progress (``link`` is None): it must never
    fail a run."""

    def __init__(self, on_progress: Callable[[dict[str, Any]], None]):
        self.on_progress = on_progress
        hub = start_hub()
        self.link: tuple[Any, str] | None = (hub, hub_name())
        self.restarts = 0
        self.last_drain = time.time()

    def drain(self, deliver: Callable[[dict[str, Any]], None]) -> None:
        """Hand every event the hub holds to ``deliver``, oldest first; nothing once given up."""
        import ray

        if self.link is None:
            return
        self.last_drain = time.time()
        try:
            events = ray.get(self.link[0].drain.remote())
        except ray.exceptions.RayError:  # the hub died: a new one under its name
            self.restarts += 1
            try:
                if self.restarts > MAX_HUB_RESTARTS:
                    raise RuntimeError("the progress hub keeps dying")
                self.link = (restart_hub(), hub_name())
                self.on_progress({"kind": "hub_restarted", "time": time.time(), "restarts": self.restarts})
            except Exception:  # noqa: BLE001 -- go on without live progress
                forget_hub()
                self.link = None
            return
        for event in events:
            deliver(event)


class Reporter:
    """Worker side: stamps events with the node and the time, throttles ``step`` events, pushes.

    With the hub's ``name``, a push that failed because the hub died makes the next one look the
    name up again (at most every ``RELOOKUP_EVERY_S``): the driver's replacement gets the rest.
    It never calls ``ray.get`` or ``ray.wait``: either tells Ray the node's task is blocked, and Ray
    lends its CPU to a queued node on a new worker process (a cold start) while the node goes on.
    """

    def __init__(self, hub: Any, node: str, step_interval_s: float = STEP_INTERVAL_S, name: str | None = None):
        self.hub, self.node, self.step_interval_s, self.name = hub, node, step_interval_s, name
        self._last_step = float("-inf")
        self._last_push: Any = None
        self.sent = 0  # events pushed so far: the hand-on marker tells the driver (``EventOrder``)
        self._last_lookup = float("-inf")

    def __call__(self, event: dict[str, Any]) -> None:
        now = time.time()
        if event.get("kind") == "step":
            if now - self._last_step < self.step_interval_s:
                return
            self._last_step = now
        if self.name is not None and self._last_push is not None and self._hub_died(self._last_push):
            self._relookup(now)
        self._last_push = self.hub.push.remote({"node": self.node, "time": now, **event}).future()
        self.sent += 1

    def last(self, event: dict[str, Any], patience_s: float = 3.0) -> dict[str, Any]:
        """The node's last event, stamped but not pushed: it goes to the driver with the node's record,
        and the driver passes it on after the hub's. Waits until the hub holds every earlier event
        (one caller's calls run in order: the last push answered means all were): most often already
        so, where pushing this one and waiting for it was a round trip on each link of a chain.
        A dead hub is given up on (progress is best effort)."""
        if self._last_push is not None:
            # A future, not ray.get: a task blocked in ray.get or ray.wait lends its CPU to a queued
            # node, which Ray starts on a fresh worker process (torch imported anew: seconds, 88 s
            # at load 17) while this one is still alive; in a fan-out that was a new worker every
            # few nodes.
            with contextlib.suppress(Exception):
                self._last_push.result(timeout=patience_s)
        return {"node": self.node, "time": time.time(), **event}

    @staticmethod
    def _hub_died(push: Future) -> bool:
        import ray

        return push.done() and isinstance(push.exception(), ray.exceptions.RayActorError)

    def _relookup(self, now: float) -> bool:
        """Point at the hub now registered under ``name``; False when there is none (yet)."""
        import ray

        if now - self._last_lookup < RELOOKUP_EVERY_S:
            return False
        self._last_lookup = now
        try:
            self.hub = ray.get_actor(self.name)
        except ValueError:  # the driver has not started the new one yet
            return False
        return True


class EventOrder:
    """Driver side: passes events on with every parent's reports before its children's, without
    making any node wait for the hub.

    A child starts from its parent's state in another process and reports from there, while the
    parent's last pushes may still be on their way to the hub (one caller's calls to the hub keep
    their order; two callers' do not). Rather than having each node wait for the hub before
    handing its state on (an actor round trip on every link of a chain, tens of ms on a busy
    machine), the node's hand-on marker says how many events it sent (``Reporter.sent``): the
    children's events are held here until that many of the parent's have come, or until the
    parent's record arrives (events sent to a hub that died never come).
    """

    def __init__(self, deliver: Callable[[dict[str, Any]], None]):
        self.deliver = deliver
        self.heard: Counter[str] = Counter()
        self._gates: dict[str, dict[str, int]] = {}  # child -> {parent: events of the parent to hear first}
        self._held: dict[str, list[dict[str, Any]]] = {}

    def gate(self, child: str, parent: str, sent: int) -> None:
        """Hold ``child``'s events until ``sent`` events of ``parent`` have been passed on."""
        if self.heard[parent] < sent:
            self._gates.setdefault(child, {})[parent] = sent

    def push(self, event: dict[str, Any]) -> None:
        node = event.get("node")
        if node is not None and (node in self._held or not self._open(node)):
            self._held.setdefault(node, []).append(event)  # after its own held ones, whatever the gates say now
            self._flush_held()
            return
        self._pass(event)

    def release(self, parent: str) -> None:
        """``parent`` has ended: nothing more of it will come; its children's events may go."""
        for gates in self._gates.values():
            gates.pop(parent, None)
        self._flush_held()

    def release_all(self) -> None:
        self._gates.clear()
        self._flush_held()

    def _open(self, node: str) -> bool:
        gates = self._gates.get(node)
        if gates:
            for parent, need in list(gates.items()):
                if self.heard[parent] >= need:
                    del gates[parent]
        return not gates

    def _pass(self, event: dict[str, Any]) -> None:
        self.deliver(event)
        node = event.get("node")
        if node is not None:
            self.heard[node] += 1
            if self._held:
                self._flush_held()

    def _flush_held(self) -> None:
        for node in [n for n in self._held if self._open(n)]:
            for event in self._held.pop(node, []):
                self._pass(event)


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

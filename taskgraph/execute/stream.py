"""A node on Ray as a stream of three results, and what the driver does with a stream it gives up on.

``execute`` runs on a worker: the node's state first (its children start from it while its files
are written), then a small marker, then its record. The driver reads the stream as results come
(``scheduler.run_jobs``); ``drain``/``cancel`` read and drop what is left of failed or cancelled
nodes, so Ray logs nothing about them, and never fetch a state already handed on.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray

from taskgraph.execute.progress import Reporter, reporting
from taskgraph.execute.writer import lowest_priority

__all__ = ["execute", "execute_chain", "remote_execute", "remote_chain", "behind_the_children",
           "Flight", "discard", "drain", "stop", "cancel", "error_in"]


def execute(
    node_fn: Callable[[str, Any, dict[str, Any]], tuple[Any, Any]], name: str, payload: Any,
    input_names: tuple[str, ...], hub: Any, *input_values: Any,
):
    """Runs on a Ray worker, as a streaming generator: call the node function, hand its state on
    the moment it exists, then let the node make its artifacts durable and say where it ran.

    Yields three objects: the state (children start from it: one serialisation into the object
    store, read in place by children on this machine), a small marker (so the driver knows the
    first object is a state, not an error, without fetching it; it also says how many progress
    events the node sent, which the driver passes on before any of its children's), then the
    record. A node function may return ``(state, finish)``: ``finish()`` runs after the state has been
    handed on and returns the meta, or a ``writer.Durable``: the writes the scheduler runs on the
    machine's writer once this task has ended (its CPU and worker then go to the children at once).
    With a progress ``hub`` (its handle and actor name), the node's
    ``progress.report`` calls reach the driver live, through the driver's replacement hub too if
    that one dies.
    """
    yield from _one(node_fn, name, payload, dict(zip(input_names, input_values)), hub, keep=False)


def execute_chain(
    node_fn: Callable[[str, Any, dict[str, Any]], tuple[Any, Any]], names: tuple[str, ...],
    payloads: tuple[Any, ...], inputs: tuple[tuple[str, ...], ...], hub: Any, *input_values: Any,
):
    """Runs a chain of nodes in one Ray task, one after the other, as ``execute`` runs one: each
    node's three objects in turn. ``names[i + 1]``'s only upstream node is ``names[i]``, whose only
    child it is (``chains.linear_chains``): the next node takes the state in this process, with no
    trip through the driver, no task to schedule and no worker to find (on a 2-core machine a link of
    a chain took 27 ms as separate tasks, against plain Ray's 12 ms). ``inputs[i]``: the upstream
    nodes whose state ``names[i]`` receives; the first node's come as ``input_values``.

    A node's ``finish`` runs before the next node starts (in line, at the task's priority: it is the
    chain's critical path), so a chain suits node functions whose ``finish`` is short, as the runner's
    is (it closes loggers and hands its writes to the writer process).

    States of any size stay in the task: a 400 MB module goes to the next node with no copy into
    another worker (in a traced run, 0.13 s from the parent's end to the child's start: the state's
    one serialisation into the object store). Its arrays here are the only copy besides the object
    store's, and ``_one`` gives the next node the only reference to them: a node function that
    empties its ``inputs`` once it has loaded them (the runner's does) frees them before it trains,
    so no process holds more copies than a separate task would.
    """
    given = dict(zip(inputs[0], input_values))
    for i, name in enumerate(names):
        kept, state = yield from _one(node_fn, name, payloads[i], given, hub, keep=i + 1 < len(names), announced=i > 0)
        if not kept:  # the chain's last node
            return
        given = {name: state} if name in inputs[i + 1] else {}
        del state  # ``_one`` empties ``given`` as the next node takes it


def _one(node_fn: Callable[..., tuple[Any, Any]], name: str, payload: Any, inputs: dict[str, Any], hub: Any,
         keep: bool, announced: bool = False):
    """One node's three objects (``execute``); returns whether it kept its state for the next node of a
    chain (asked to ``keep`` it), and that state. ``inputs`` is emptied before the node function gets
    its own dict of them: that dict then holds the only reference here to a chained parent's arrays,
    which the node function may drop once loaded. ``announced``: the driver sends this node's start
    event, from the marker of the node before it in this task (where it runs is the same): one hub
    round trip fewer on each link of a chain."""
    ctx = ray.get_runtime_context()
    started = time.time()
    reporter = Reporter(hub[0], name, name=hub[1]) if hub is not None else None
    here = {"host": socket.gethostname(), "pid": os.getpid(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}
    if reporter and announced:
        reporter.sent = 1  # the start event, which the driver passes on as one of this node's
    elif reporter:
        reporter({"kind": "start", **here})
    with reporting(reporter):
        given = dict(inputs)
        inputs.clear()
        state, meta = node_fn(name, payload, given)
        del given
        yield state
        if not keep:
            state = None  # ``finish`` keeps what it still has to write
        handed = time.time()
        yield {"handed_at": handed, "sent": reporter.sent if reporter else 0, "last": not keep, **here}
        if callable(meta):  # behind the children; in a chain's task the next node waits for it
            meta = behind_the_children(meta) if not keep else meta()
    end = reporter.last({"kind": "end"}) if reporter else None
    where = {
        "started_at": started,
        "handed_at": handed,
        "ended_at": time.time(),
        **here,
        "node_id": ctx.get_node_id(),
        "worker_id": ctx.get_worker_id(),
    }
    yield {"where": where, "meta": meta, "end": end}
    return keep, state


remote_execute = ray.remote(num_returns="streaming")(execute)
remote_chain = ray.remote(num_returns="streaming")(execute_chain)


def behind_the_children(finish: Callable[[], Any]) -> Any:
    """Run ``finish`` (what the node does after its state went to its children: with the runner's, close
    its loggers and wait for its inherited digests) on a thread at the lowest CPU priority, and wait for
    it. Where cores are few, work after the hand-on competed with the children's training, which is the
    run's critical path (a chain's child trained 2.5x slower than in plain Ray, on 2 cores, when the
    files were written here). Linux sets a nice value per thread; elsewhere ``finish`` runs at the
    worker's own priority."""
    box: dict[str, Any] = {}

    def run() -> None:
        lowest_priority()
        try:
            box["meta"] = finish()
        except BaseException as exc:  # noqa: BLE001 -- raised again on the task's own thread
            box["error"] = exc

    thread = threading.Thread(target=run, name="taskgraph-durable-writes")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["meta"]


@dataclass
class Flight:
    """A submitted node: its stream of results and what has come of it so far."""

    name: str
    stream: Any  # ray.ObjectRefGenerator
    state: ray.ObjectRef | None = None  # its first object: the state (or the error, if it failed first)
    handed: bool = False
    rest: tuple[str, ...] = ()  # the nodes of its chain that run after it in the same task
    chained: bool = False  # its task runs a chain (``execute_chain``): Ray does not retry it
    last: bool = True  # its task ends after it: a chain's last node (the marker says so)

    @property
    def holds_slot(self) -> bool:
        """Its task still holds the CPUs/GPUs budgeted for it: until its hand-on, or to the end of a
        chain's task that goes on."""
        return not (self.handed and self.last)


def discard(refs: list[Any], timeout: float = 10.0) -> None:
    """Read, and drop, results nobody else will read: failed or cancelled nodes' returns.

    Ray's core worker logs "Unhandled error" with the worker's whole traceback for every failed
    object freed without a ``ray.get`` (``ray._private.worker.raise_errors``): dozens of lines per
    failed node on the terminal, where the promise is one line (the traceback is in ``error.txt``).
    """
    refs = [r for r in refs if r is not None]
    if not refs:
        return
    ready, _late = ray.wait(refs, num_returns=len(refs), timeout=timeout, fetch_local=False)
    for ref in ready:
        try:
            ray.get(ref)
        except Exception:  # noqa: BLE001 -- the failure is already recorded; reading it marks it handled
            pass


def drain(flight: Flight, timeout: float = 10.0, deadline: float | None = None) -> None:
    """Read what is left of a failed or cancelled node's stream, so Ray reports nothing about it.
    A state already handed on is real: it is never fetched here."""
    refs = [] if flight.state is None else [flight.state]
    deadline = deadline if deadline is not None else time.time() + timeout
    while time.time() < deadline:
        ready, _ = ray.wait([flight.stream], timeout=max(0.0, deadline - time.time()), fetch_local=False)
        if not ready:
            break
        try:
            refs.append(next(flight.stream))
        except StopIteration:
            break
    discard(refs[1:] if flight.handed else refs, max(0.0, deadline - time.time()))


def stop(tasks: list[Any]) -> None:
    """Force-cancel each task (a node's stream or a plain task's result), killing its worker; one that
    finished in the meantime is left as it is."""
    for task in tasks:
        with contextlib.suppress(Exception):
            ray.cancel(task, force=True)


def cancel(pending: dict[Any, Flight]) -> list[str]:
    """Cancel every in-flight node (killing its worker) and empty ``pending``; returns their names.

    On a cluster the driver does not own, a node left running would keep its CPUs/GPUs busy for
    nothing; the cancelled results are read (and dropped) so Ray reports nothing about them.
    """
    names = sorted(flight.name for flight in pending.values())
    stop(list(pending))
    deadline = time.time() + 10.0  # one wait for all of them, as a Ctrl-C must not hang
    for flight in pending.values():
        drain(flight, deadline=deadline)
    pending.clear()
    return names


def error_in(ref: Any) -> BaseException:
    """The exception a failed node's first (and only) object holds."""
    try:
        ray.get(ref)
    except Exception as exc:  # noqa: BLE001 -- what the node raised, wrapped by Ray
        return exc
    return RuntimeError("the node ended without handing on a state")

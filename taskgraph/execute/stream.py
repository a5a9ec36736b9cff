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

__all__ = ["execute", "remote_execute", "behind_the_children", "Flight", "discard", "drain", "stop", "cancel",
           "error_in"]


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
    ctx = ray.get_runtime_context()
    started = time.time()
    reporter = Reporter(hub[0], name, name=hub[1]) if hub is not None else None
    if reporter:
        reporter({"kind": "start", "host": socket.gethostname(), "pid": os.getpid(),
                  "gpu_ids": [str(g) for g in ray.get_gpu_ids()]})
    with reporting(reporter):
        state, meta = node_fn(name, payload, dict(zip(input_names, input_values)))
        yield state
        del state  # ``finish`` keeps what it still has to write
        handed = time.time()
        yield {"handed_at": handed, "sent": reporter.sent if reporter else 0}
        if callable(meta):
            meta = behind_the_children(meta)
    if reporter:
        reporter.finish({"kind": "end"})
    where = {
        "started_at": started,
        "handed_at": handed,
        "ended_at": time.time(),
        "host": socket.gethostname(),
        "node_id": ctx.get_node_id(),
        "worker_id": ctx.get_worker_id(),
        "pid": os.getpid(),
        "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
    }
    yield {"where": where, "meta": meta}


remote_execute = ray.remote(num_returns="streaming")(execute)


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

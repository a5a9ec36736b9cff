"""Make a node's files durable in a writer process on its machine, after its Ray task has ended.

A node's Ray task holds its CPU (and worker process) until it returns: while it wrote and synced its
files after handing its state on, a child on a 2-core machine waited for that slot, and landed on
another worker (measured on a 100-node chain: 15 ms of a 40 ms link was that wait). A node function
may therefore return a ``Durable``: its task ends once the state is handed on, and the scheduler runs
``Durable.fn(state, *args)`` in the writer actor of the Ray node that trained it, reading the state
in place from that node's object store (no copy, no second serialisation). The node still counts as
done only when the writer returns.

One writer per Ray node and driver (Ray session): the driver's own at the run's start, any other at the
first node that needs it; it asks for no CPU and writes at the lowest CPU priority, so it never slows
the training that is the run's critical path.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Durable", "NodeWriter", "Writers", "WRITES_NICE", "lowest_priority"]

#: The nice value writes run at (the lowest CPU priority).
WRITES_NICE = 19

#: Writes one writer runs at once (threads): nodes finishing together are made durable together.
WRITER_THREADS = 8


@dataclass(frozen=True)
class Durable:
    """What makes a node durable, run after its task has ended: ``fn(state, *args)`` returns its meta.
    ``fn`` is a module-level function (pickled by reference); ``args`` are small (paths, metrics)."""

    fn: Callable[..., dict[str, Any]]
    args: tuple[Any, ...] = ()


def lowest_priority() -> None:
    """Drop the calling thread to the lowest CPU priority (Linux sets nice per thread; elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITES_NICE)


class NodeWriter:
    """The writer actor: runs ``Durable`` writes, several at once, each at the lowest CPU priority."""

    def run(self, durable: Durable, state: Any) -> dict[str, Any]:
        lowest_priority()
        meta = durable.fn(state, *durable.args)
        return {"meta": meta, "ended_at": time.time()}


_POOL: dict[tuple[str, str], Any] = {}  # (Ray job id, node id) -> the writer actor's handle


class Writers:
    """The driver's writer per Ray node: created on first use, pinned to that node, replaced if it dies.
    Kept for the driver's Ray session (starting one costs a process): runs in one process share them."""

    def __init__(self) -> None:
        import ray

        self.job = ray.get_runtime_context().get_job_id()

    def get(self, node_id: str) -> Any:
        handle = _POOL.get((self.job, node_id))
        if handle is None:
            import ray
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            handle = ray.remote(NodeWriter).options(
                num_cpus=0, max_concurrency=WRITER_THREADS, max_restarts=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
            ).remote()
            _POOL[(self.job, node_id)] = handle
        return handle

    def start_local(self) -> None:
        """Start the writer of the driver's own Ray node now, so the first node's writes do not wait for
        its process to start; nothing where the driver has no node (a Ray client)."""
        import ray

        with contextlib.suppress(Exception):
            node_id = ray.get_runtime_context().get_node_id()
            if node_id:
                self.get(node_id)

    def forget(self, node_id: str) -> None:
        """The writer on ``node_id`` died: the next ``get`` starts a new one."""
        _POOL.pop((self.job, node_id), None)

    def submit(self, node_id: str, durable: Durable, state: Any) -> Any:
        """Run ``durable`` with ``state`` (an object ref: read in place) on ``node_id``'s writer."""
        return self.get(node_id).run.options(name="taskgraph:write").remote(durable, state)

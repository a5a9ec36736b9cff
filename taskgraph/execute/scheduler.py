"""The ready-set scheduler: submit each node to Ray the moment its last dependency finishes.

Among ready nodes, those with the longest remaining path go first, and nodes are submitted only
while they fit in the free CPUs/GPUs, so Ray never queues a short node ahead of a critical one.
The scheduler is generic: it runs a ``node_fn(name, payload, inputs) -> (state, meta)`` per node,
where ``inputs`` are the states of the upstream nodes, passed as Ray object references (zero
copy on one machine). What training or artifacts mean is the caller's business.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import ray

from taskgraph.errors import ExecutionError, TaskgraphError
from taskgraph.execute.autoscale import autoscaling
from taskgraph.execute.chains import linear_chains
from taskgraph.execute.progress import DRAIN_EVERY_S, EventOrder, HubLink
from taskgraph.execute.records import NodeJob, NodeRecord
from taskgraph.execute.resources import check_feasible, ray_options, usage
from taskgraph.execute.stream import Flight, cancel, discard, drain, error_in, remote_chain, remote_execute
from taskgraph.execute.warmup import settle, warm_targets, warm_up
from taskgraph.execute.writer import Durable, Writers

__all__ = ["NodeJob", "NodeRecord", "run_jobs", "NodeFn"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

NodeFn = Callable[[str, Any, dict[str, Any]], tuple[Any, dict[str, Any]]]


def _check_feasible(jobs: list[NodeJob]) -> dict[str, str]:
    """Refuse at submit time a node no Ray node can hold: Ray itself would wait forever. On a cluster
    that can grow, such a node is refused only when no node type of its autoscaler can hold it either;
    returns the nodes that wait for a scale-up, with a line saying so."""
    try:
        return check_feasible(jobs, ray.nodes())
    except ExecutionError:
        scaling = autoscaling()
        if not scaling.can_grow:
            raise
        return check_feasible(jobs, ray.nodes(), scaling)


def _alive_nodes() -> set[str]:
    return {n["NodeID"] for n in ray.nodes() if n.get("Alive")}


def _worker_died(exc: BaseException) -> bool:
    """The task's worker process or its machine died (what Ray itself retries a task after)."""
    return isinstance(exc, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                            ray.exceptions.LocalRayletDiedError))


def _descendants(name: str, children: dict[str, list[str]]) -> set[str]:
    out, stack = set(), list(children.get(name, []))
    while stack:
        node = stack.pop()
        if node not in out:
            out.add(node)
            stack.extend(children.get(node, []))
    return out


def run_jobs(
    jobs: list[NodeJob],
    node_fn: NodeFn,
    *,
    keep_going: bool = True,
    max_retries: int = 3,
    on_update: Callable[[NodeRecord], None] | None = None,
    given: dict[str, Any] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    warm: str | None = None,
    fuse: bool = True,
) -> dict[str, NodeRecord]:
    """Run every job on the connected Ray, in dependency order; returns a record per node.

    ``given`` maps names of nodes that are already done (cached) to their state: they are
    not run, and their state is handed to their children. A failed node's descendants are
    skipped; with ``keep_going`` independent branches still finish, else everything stops.
    ``on_progress`` receives, on the driver, the events nodes send with ``progress.report``
    (each with ``node``, ``time`` and ``kind``), plus ``{"kind": "resources", ...}`` whenever
    the CPUs/GPUs in use change. Without it no progress actor is started. ``warm``: what a fresh
    worker pays before the node function's first step (``module`` to import, or ``module:function``
    to call; the runner's imports torch's training loop and takes one optimizer step): idle CPU
    slots run it at the start, so the worker a child lands on while its parent still writes is not
    a cold one. ``fuse``: run each chain of nodes (``chains.linear_chains``: each node's only child,
    asking for the same resources) in one task; their worker dying is retried from the node it ran.
    """
    given = dict(given or {})
    by_name = {job.name: job for job in jobs}
    children: dict[str, list[str]] = {}
    for job in jobs:
        for up in job.upstream:
            children.setdefault(up, []).append(job.name)
    records = {job.name: NodeRecord(job.name) for job in jobs}
    scale_up = _check_feasible([j for j in jobs if j.name not in given])  # name -> "waits for a scale-up" line

    cluster = ray.cluster_resources()
    totals = {"CPU": float(cluster.get("CPU", 0.0)), "GPU": float(cluster.get("GPU", 0.0))}
    in_use = {"CPU": 0.0, "GPU": 0.0}
    states: dict[str, Any] = {}  # name -> ObjectRef (or value) of a finished node's state
    for name, value in given.items():
        states[name] = value if isinstance(value, ray.ObjectRef) else ray.put(value)
        if name in records:
            records[name].status = "cached"
    waiting = {j.name for j in jobs if j.name not in given}
    # Kahn's counters: a node is ready when its count of unfinished upstream nodes reaches zero,
    # so each completion costs O(children), not a scan of every waiting node.
    missing = {n: sum(1 for u in by_name[n].upstream if u not in given) for n in waiting}
    ready_set = {n for n, count in missing.items() if count == 0}

    def same_task(parent: NodeJob, child: NodeJob) -> bool:
        return (parent.workers is None and child.workers is None and parent.name not in scale_up
                and child.name not in scale_up and ray_options(parent) == ray_options(child))

    # The chain each ready node starts (itself alone, unless fused); the rest of a chain rides with it.
    chain_of = linear_chains([by_name[n] for n in sorted(waiting)], same_task) if fuse else {}
    riding: set[str] = set()  # submitted in a chain's task, not started yet
    chain_retries: dict[str, int] = {}  # a chain's node tried again after its worker died (Ray does not)
    pending: dict[Any, Flight] = {}  # stream -> the node in flight
    # Nodes whose task has ended and whose ``Durable`` writes run on their machine's writer:
    # the writes' result -> (the node, its task's record, writes tried so far).
    writing: dict[Any, tuple[Flight, dict[str, Any], int]] = {}
    abandoned: list[Any] = []  # writes of nodes given up on (skipped, interrupted): read at the end
    writers = Writers()
    # Children yet to receive each state; cached (given) nodes that are not jobs count too.
    children_left = {name: len(kids) for name, kids in children.items()}
    # Finished nodes whose upstream's files are not durable yet: reported done after it.
    parked: set[str] = set()

    hub = HubLink(on_progress) if on_progress else None
    order = EventOrder(on_progress) if on_progress else None  # parents' events before their children's

    def notify(record: NodeRecord) -> None:
        if on_update:
            on_update(record)

    def resources_changed() -> None:
        if scale_up:  # the cluster grows while the run goes on: budget what it has now
            grown = ray.cluster_resources()
            totals.update(CPU=float(grown.get("CPU", 0.0)), GPU=float(grown.get("GPU", 0.0)))
        if on_progress:
            on_progress({"kind": "resources", "time": time.time(), "in_use": dict(in_use), "total": dict(totals)})

    def fits(job: NodeJob) -> bool:
        if not pending or job.name in scale_up:
            return True  # never stall: a lone node goes even if accounting is off; a waiting one asks for a scale-up
        cpus, gpus = usage(job)
        return (in_use["CPU"] + cpus <= totals["CPU"] + 1e-9) and (in_use["GPU"] + gpus <= totals["GPU"] + 1e-9)

    def take_slot(job: NodeJob, sign: float) -> None:
        cpus, gpus = usage(job)
        in_use["CPU"] += sign * cpus
        in_use["GPU"] += sign * gpus
        resources_changed()

    def submit_ready() -> None:
        ready = [by_name[n] for n in ready_set if n in waiting]
        for job in sorted(ready, key=lambda j: (-j.priority, j.name)):
            if not fits(job):
                continue
            chain = chain_of.get(job.name, (job.name,))
            inputs = (states[i] for i in job.inputs)
            if len(chain) == 1:
                stream = remote_execute.options(
                    **ray_options(job), max_retries=max_retries, retry_exceptions=False,
                    name=f"taskgraph:{job.name}",
                ).remote(node_fn, job.name, job.payload, job.inputs, hub.link if hub else None, *inputs)
            else:  # Ray would run the whole chain again: the scheduler retries from the node that died
                stream = remote_chain.options(
                    **ray_options(job), max_retries=0, retry_exceptions=False,
                    name=f"taskgraph:{job.name}+{len(chain) - 1}",
                ).remote(node_fn, chain, tuple(by_name[n].payload for n in chain),
                         tuple(by_name[n].inputs for n in chain), hub.link if hub else None, *inputs)
            pending[stream] = Flight(job.name, stream, rest=chain[1:], chained=len(chain) > 1)
            waiting.difference_update(chain)
            riding.update(chain[1:])
            ready_set.discard(job.name)
            record = records[job.name]
            record.status = "running"
            if job.name not in chain_retries:  # a retry's try 1 waited since the first submission, as Ray's do
                record.submitted_at = time.time()
            notify(record)
            take_slot(job, +1)

    def release_inputs(job: NodeJob) -> None:
        """Drop our reference to an upstream state once no child still needs it (frees the object store)."""
        for up in job.upstream:
            children_left[up] -= 1
            if children_left[up] <= 0:
                states.pop(up, None)

    def skip_descendants(name: str, why: str) -> None:
        """Skip the descendants not started; stop those already running from its state."""
        for node in sorted(_descendants(name, children)):
            flights = [s for s, f in pending.items() if f.name == node]
            for stream in flights:
                flight = pending.pop(stream)
                cancel({stream: flight})
                if flight.holds_slot:
                    take_slot(by_name[node], -1)
            writes = [ref for ref, (f, _, _) in writing.items() if f.name == node]
            for ref in writes:
                writing.pop(ref)
                abandoned.append(ref)
            if node in waiting or node in riding or flights or writes or node in parked:
                waiting.discard(node)
                riding.discard(node)
                parked.discard(node)
                records[node].status, records[node].error = "skipped", why
                notify(records[node])

    def upstream_done(name: str) -> bool:
        return all(u in given or records[u].status == "done" for u in by_name[name].upstream)

    def hand_on(flight: Flight, marker: dict[str, Any]) -> None:
        """The node's state exists: its children may start while its files are made durable (their
        progress events wait for the events the node reported before, ``marker["sent"]``). In a chain's
        task the next node has already started from it, unless it is the chain's last (``marker["last"]``)."""
        job, sent = by_name[flight.name], int(marker.get("sent", 0))
        flight.handed, flight.last = True, bool(marker.get("last", True))
        records[flight.name].handed_at = time.time()
        if flight.last:
            take_slot(job, -1)  # its task's slot is free for whatever is ready now
        for child in children.get(flight.name, ()):
            if order is not None:
                order.gate(child, flight.name, sent)
            if child in missing:  # cached children (given) wait for nothing
                missing[child] -= 1
                if missing[child] == 0:
                    ready_set.add(child)
        if children_left.get(flight.name, 0) > 0:
            states[flight.name] = flight.state
        release_inputs(job)
        if flight.rest:
            follow_on(flight, marker)
        submit_ready()

    def follow_on(flight: Flight, marker: dict[str, Any]) -> None:
        """The next node of the chain has started in the same task."""
        nxt = flight.rest[0]
        riding.discard(nxt)
        record = records[nxt]
        record.status, record.submitted_at = "running", float(marker.get("handed_at") or time.time())
        notify(record)
        if order is not None:  # its start event, which it does not send (``stream._one``): after its parent's
            order.push({"node": nxt, "time": record.submitted_at, "kind": "start",
                        **{k: marker.get(k) for k in ("host", "pid", "gpu_ids")}})

    def requeue(chain: tuple[str, ...]) -> None:
        """Submit ``chain`` (the rest of one) as a new task when its first node is ready."""
        riding.difference_update(chain)
        waiting.update(chain)
        chain_of[chain[0]] = chain
        if missing.get(chain[0], 0) == 0:
            ready_set.add(chain[0])

    def retried(flight: Flight, exc: BaseException) -> bool:
        """A chain's worker died while its node trained: run the chain again from that node (Ray would
        run it all again; the nodes before are done), up to ``max_retries`` times per node."""
        name = flight.name
        if not flight.chained or flight.handed or not _worker_died(exc) or chain_retries.get(name, 0) >= max_retries:
            return False
        chain_retries[name] = chain_retries.get(name, 0) + 1
        take_slot(by_name[name], -1)
        requeue((name, *flight.rest))
        submit_ready()
        return True

    def complete(name: str) -> None:
        """Done: its artifacts are durable and so are its upstream nodes'."""
        records[name].status = "done"
        notify(records[name])
        for child in children.get(name, ()):
            if child in parked and upstream_done(child):
                parked.discard(child)
                complete(child)

    def write(flight: Flight, result: dict[str, Any], tries: int = 0) -> None:
        """The node's task has ended and handed back ``Durable`` writes: run them on its machine's writer."""
        node_id = result["where"]["node_id"]
        writing[writers.submit(node_id, result["meta"], flight.state)] = (flight, result, tries)

    def written(ref: Any) -> None:
        """A node's writes came back: done, failed, or (their writer died) tried again on a new one."""
        flight, result, tries = writing.pop(ref)
        try:
            out = ray.get(ref)
        except ray.exceptions.RayActorError as exc:  # the writer process died (killed, out of memory)
            writers.forget(result["where"]["node_id"])
            if tries < max_retries and result["where"]["node_id"] in _alive_nodes():
                write(flight, result, tries + 1)
                return
            failed(flight, ExecutionError(
                f"node '{flight.name}': its files could not be written, the writer on its machine died "
                f"({type(exc).__name__}); `taskgraph resume` trains it again.", node=flight.name))
            return
        except Exception as exc:  # noqa: BLE001 -- what the writes raised (a full disk), wrapped by Ray
            failed(flight, exc)
            return
        finished(flight, {**result, "meta": out["meta"], "where": {**result["where"], "ended_at": out["ended_at"]}})
        submit_ready()

    def finished(flight: Flight, result: dict[str, Any]) -> None:
        where, record = result["where"], records[flight.name]
        record.started_at, record.ended_at = where["started_at"], where["ended_at"]
        record.handed_at = where.get("handed_at", record.handed_at)
        record.host, record.node_id, record.worker_id = where["host"], where["node_id"], where["worker_id"]
        record.pid, record.gpu_ids, record.meta = where["pid"], where["gpu_ids"], result["meta"]
        if order is not None:
            order.release(flight.name)
        if upstream_done(flight.name):
            complete(flight.name)
        else:
            parked.add(flight.name)

    def failed(flight: Flight, exc: BaseException) -> None:
        name = flight.name
        if retried(flight, exc):
            return
        job, record = by_name[name], records[name]
        if flight.holds_slot:
            take_slot(job, -1)
        record.status, record.ended_at = "failed", time.time()
        if order is not None:
            order.release(name)
        cause = getattr(exc, "cause", None) or exc
        record.error = str(cause) if isinstance(cause, TaskgraphError) else f"{type(cause).__name__}: {cause}"
        # the worker's traceback, causes included, without Ray's terminal colours: <node>/error.txt
        record.traceback = _ANSI.sub("", getattr(exc, "traceback_str", None) or str(exc))
        notify(record)
        skip_descendants(name, f"upstream node '{name}' failed")
        if not keep_going:
            why = f"stopped after '{name}' failed (--fail-fast)"
            for other in cancel(pending):
                records[other].status, records[other].error = "skipped", why
                notify(records[other])
            for other in sorted(waiting | parked | riding):
                records[other].status, records[other].error = "skipped", why
                notify(records[other])
            waiting.clear()
            parked.clear()
            riding.clear()
        if not flight.handed:
            release_inputs(job)
        submit_ready()  # its resources are free again for nodes that were waiting for room

    def drain_progress() -> None:
        if hub is not None:
            hub.drain(order.push)  # type: ignore[union-attr]

    if on_progress:
        for name, line in sorted(scale_up.items()):
            on_progress({"kind": "scale_up", "node": name, "time": time.time(), "text": line})
    warming: list[Any] = []  # the warm-ups' results: settled however the run ends
    try:
        submit_ready()
        writers.start_local()  # this machine's writer starts while the first nodes train
        # nodes riding in a chain's task do not count: they run in its worker, already warm (a warm-up for
        # them takes a core from the chain's first node: a 400 MB producer trained in 3.6-3.8 s beside one,
        # 2.7-3.5 s without, on 2 cores)
        warming = warm_up(warm_targets(node_fn, warm), int(totals["CPU"] - in_use["CPU"]), len(waiting))
        while pending or writing:
            ready, _ = ray.wait([*pending, *writing], num_returns=1,
                                timeout=DRAIN_EVERY_S if hub is not None and hub.link else None, fetch_local=False)
            # Drained when the wait times out, before a node's end or failure, and at most every
            # DRAIN_EVERY_S after a hand-on: never between a state and its children's submission
            # (an actor round trip, three a node before, on the critical path of a chain).
            if not ready:
                drain_progress()
            if ready and ready[0] in writing:
                written(ready[0])
                continue
            if not ready or ready[0] not in pending:
                continue
            stream = ready[0]
            flight = pending[stream]
            try:
                ref = next(stream)
            except StopIteration:  # it failed before handing anything on: its first object is the error
                del pending[stream]
                drain_progress()
                failed(flight, error_in(flight.state))
                continue
            if flight.state is None:
                flight.state = ref  # the state, or the error: the marker that follows says which
                continue
            try:
                value = ray.get(ref)  # small: the marker or the record
            except Exception as exc:  # the node's own exception, wrapped by Ray
                del pending[stream]
                drain(flight)
                drain_progress()
                failed(flight, exc)
                continue
            if not flight.handed:
                hand_on(flight, value)
                if hub is not None and time.time() - hub.last_drain >= DRAIN_EVERY_S:  # a busy run's live view
                    drain_progress()
            else:
                del pending[stream]
                if flight.rest and not flight.last:  # the chain's next node runs in the same task
                    pending[stream] = Flight(flight.rest[0], stream, rest=flight.rest[1:], chained=True)
                drain_progress()  # its events (the hub held them all before its record was sent)
                if order is not None and value.get("end"):
                    order.push(value["end"])  # and its last, which came with the record
                if isinstance(value.get("meta"), Durable):
                    write(flight, value)
                    continue
                finished(flight, value)
                submit_ready()
    except BaseException as exc:  # Ctrl-C, SIGTERM, or the driver's own failure (a full disk): stop what runs
        stopped = cancel(pending) + sorted(f.name for f, _, _ in writing.values())
        abandoned.extend(writing)
        writing.clear()
        if isinstance(exc, KeyboardInterrupt):
            for other in stopped:
                records[other].status, records[other].ended_at = "interrupted", time.time()
                records[other].error = "interrupted (Ctrl-C or SIGTERM) while running"
                notify(records[other])
            for other in sorted(parked):  # finished, files durable: only an upstream's were not
                records[other].status = "done"
                notify(records[other])
        raise
    finally:
        settle(warming)
        discard(abandoned, timeout=2.0)
    drain_progress()
    if order is not None:
        order.release_all()
    return records

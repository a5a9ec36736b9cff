"""Wires the layers into one run: spec -> plan -> execute (Ray) -> train -> artifacts.

This is the only module (with the CLI) that imports every layer; the layers below it do not
know each other: the scheduler receives ``node_job`` as a plain callable, as Kedro's runner does.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskgraph.artifacts import store
from taskgraph.artifacts.cache import NodeCache
from taskgraph.artifacts.nodewrite import write_trained_node
from taskgraph.artifacts.rundir import RunDir, disk_errors, run_state
from taskgraph.artifacts.runrecord import RunRecorder
from taskgraph.errors import ExecutionError, Interrupted
from taskgraph.execute.writer import Durable
from taskgraph.observers import RunObservers
from taskgraph.plan.graph import Plan, make_plan, remaining_path_costs
from taskgraph.spec.loader import SourceMap
from taskgraph.spec.models import Graph, Resources
from taskgraph.spec.yamldump import dump_yaml

__all__ = ["RunResult", "run_graph", "node_job", "build_jobs"]


@dataclass
class RunResult:
    """What a run produced: where its artifacts are, and a record per node."""

    run_dir: Path | str  # a URL string when --run-dir is an fsspec URL
    records: dict[str, Any]
    wall_seconds: float

    @property
    def ok(self) -> bool:
        return all(r.status in ("done", "cached") for r in self.records.values())

    def metrics(self, node: str) -> dict[str, float]:
        return dict(self.records[node].meta.get("final", {}))


def node_job(
    name: str, payload: tuple[Any, str, str | None, str], inputs: dict[str, Any], tracking: Any = None
) -> tuple[Any, Callable[[], dict[str, Any]]]:
    """Runs on a Ray worker: train the node; return its state and the function that makes it durable.

    The scheduler hands the state to the children first, then calls ``finish``: the safetensors
    file (streamed from the arrays, hashed as written), the manifest, metrics, the cache entry and
    the loggers' files, all synced; only then does the node count as done. Epoch (and throttled
    step) reports go to the driver's live view (``execute.progress``) and to the loggers
    ``tracking`` asks for (TensorBoard under ``<node>/tb``, MLflow).
    """
    from taskgraph.execute.progress import report as progress_report
    from taskgraph.train.tracking import fan_out, open_loggers
    from taskgraph.train.loop import train_node

    request, node_dir, cache_root, key = payload
    with disk_errors(node_dir):
        _mark_attempt(node_dir)
    loggers, notes = open_loggers(tracking, name, str(node_dir), _logged_params(request))
    report = fan_out(progress_report, *loggers)
    try:
        if request.task.resources is not None and request.task.resources.workers:
            from taskgraph.train.distributed import train_node_distributed

            out = train_node_distributed(request, inputs)
        else:
            out = train_node(request, inputs, report=report)
    except BaseException:
        for logger in loggers:
            logger.close(False)
        raise

    def finish() -> Durable:
        """In the node's task, after the hand-on: close the loggers and take the inherited digests;
        the files themselves are written by the machine's writer once the task has ended."""
        later = [logger.close_later() for logger in loggers]
        scalars = next((rows for rows in later if rows), None)  # a short node's TensorBoard scalars
        summary = {"inherited": out.inherited, "device": out.device, "steps": out.steps}
        return Durable(write_trained_node, (name, node_dir, cache_root, key, out.metrics, summary, notes, scalars))

    return out.state, finish


def _logged_params(request: Any) -> dict[str, Any]:
    """The node's training settings, as MLflow parameters."""
    task = request.task
    params = {f"train.{k}": v for k, v in (task.train.model_dump() if task.train else {}).items()}
    params.update({"seed": request.seed, "data": task.data,
                   "inherits": ", ".join(f"{i.local}<-{i.upstream}.{i.remote}:{i.mode}" for i in request.inherits)})
    return params


ATTEMPTS = "attempts"

#: What idle workers run at the start of a run (``run_jobs``' ``warm``): everything a fresh worker
#: process pays before its first node's first step.
WARM_UP = "taskgraph.train.warm:warm_up"


def _mark_attempt(node_dir: str) -> None:
    """Record where this try of the node runs, before it starts: a node retried after its Ray node
    died leaves one marker per try, which ``run.json`` lists under ``attempts``."""
    import ray

    ctx = ray.get_runtime_context()
    started = time.time()
    where = {"started_at": started, "host": socket.gethostname(), "node_id": ctx.get_node_id(), "pid": os.getpid()}
    # not synced: a marker lost in a power cut costs nothing, a sync costs ~1-20 ms before every node
    store.write_json(store.join(node_dir, ATTEMPTS, f"{int(started * 1000)}-{os.getpid()}.json"), where, sync=False)


def read_attempts(node_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The tries of one node, oldest first (empty for a node that never started)."""
    folder = store.join(node_dir, ATTEMPTS)
    return [store.read_json(store.join(folder, name)) for name in store.listdir(folder) if name.endswith(".json")]


def _alive_ray_nodes() -> set[str] | None:
    """Ray node ids alive now (None when Ray cannot say): a retried try's node missing here was lost."""
    try:
        import ray

        return {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
    except Exception:  # noqa: BLE001 -- only the wording of "why it ended" depends on it
        return None


def cpu_only(spec: Graph) -> Graph:
    """The same graph with every GPU request dropped (``--cpu-only``)."""
    tasks = {
        name: task.model_copy(
            update={
                "resources": task.resources.model_copy(
                    update={"gpus": 0.0, "accelerator_type": None,
                            "gpus_per_worker": 0.0 if task.resources.workers else None}
                )
            }
        )
        for name, task in spec.tasks.items()
    }
    return spec.model_copy(update={"tasks": tasks})


def build_jobs(
    spec: Graph, plan: Plan, run_dir: RunDir, cache: NodeCache | None = None,
    keys: dict[str, str] | None = None, names: set[str] | None = None,
) -> list[Any]:
    """One ``NodeJob`` per task to run (``names``; default all), prioritised by remaining critical path."""
    from taskgraph.execute.scheduler import NodeJob
    from taskgraph.train.request import Inheritance, NodeRequest, node_seed

    priority = remaining_path_costs(plan.order, {n: p.cost for n, p in plan.nodes.items()},
                                    {n: p.downstream for n, p in plan.nodes.items()})
    jobs = []
    keys = keys or {}
    for name in plan.order:
        if names is not None and name not in names:
            continue
        task = spec.tasks[name]
        inherits = tuple(
            Inheritance(local, up, remote, dep.mode, dep.lr_scale)
            for up, dep in sorted(task.depends_on.items())
            for local, remote in dep.share.items()
        )
        sources = tuple((d, spec.data[d]) for d in task.data_sources()) if task.kind == "multitask" else ()
        key = keys.get(name, "")
        request = NodeRequest(name, task, spec.data[task.data], node_seed(task.seed or 0, name), inherits,
                              sources=sources,
                              checkpoint_dir=_checkpoints(cache, key), data_cache=_data_cache(cache))
        jobs.append(
            NodeJob(
                name=name,
                upstream=plan.nodes[name].upstream,
                inputs=tuple(sorted({i.upstream for i in inherits})),
                **_resource_fields(task.resources),
                priority=priority[name],
                payload=(request, _for_workers(run_dir.node_dir(name)), _for_workers(cache.root if cache else None),
                         key),
            )
        )
    return jobs


def _for_workers(location: str | os.PathLike[str] | None) -> str | None:
    """A location as a worker must be given it: a local path made absolute, since the workers of a Ray
    this driver joined (a cluster, or one started before an ``os.chdir``) have another working directory."""
    if location is None:
        return None
    return location if store.is_remote(location) else os.path.abspath(store.normalize(location))


def _checkpoints(cache: NodeCache | None, key: str) -> str | None:
    """Where the node's mid-node checkpoints go: the cache's ``partial`` folder (none on object stores)."""
    return _for_workers(cache.partial(key) if cache is not None and key else None)


def _data_cache(cache: NodeCache | None) -> str | None:
    """Where workers share loaded data sources: the cache's ``data`` folder (none on object stores)."""
    return _for_workers(cache.data_folder() if cache is not None else None)


def _resource_fields(res: Resources) -> dict[str, Any]:
    """A task's ``resources`` as ``NodeJob`` fields (the execute layer does not read specs)."""
    return {
        "cpus": res.cpus, "gpus": res.gpus, "memory": res.memory, "custom": dict(res.custom),
        "accelerator_type": res.accelerator_type, "labels": dict(res.labels), "workers": res.workers,
        "cpus_per_worker": 1.0 if res.cpus_per_worker is None else res.cpus_per_worker,
        "gpus_per_worker": 0.0 if res.gpus_per_worker is None else res.gpus_per_worker,
    }


def dump_graph(spec: Graph) -> str:
    """The resolved graph as YAML: what actually ran, defaults merged in (libyaml's emitter where it
    writes the same bytes as PyYAML's: ``spec.yamldump``)."""
    return dump_yaml(spec.model_dump(mode="json", by_alias=True, exclude_none=True))


def run_graph(
    spec: Graph,
    source: SourceMap | None = None,
    *,
    run_root: str | os.PathLike[str] = "runs",
    address: str | None = None,
    use_cpu_only: bool = False,
    keep_going: bool = True,
    num_cpus: int | None = None,
    on_update: Callable[[Any], None] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    tensorboard: bool = True,
    mlflow_uri: str | None = None,
    only: str | None = None,
    from_: str | None = None,
    until: str | None = None,
    force: str | None = None,
    use_cache: bool = True,
    resume_dir: str | os.PathLike[str] | None = None,
    plan: Plan | None = None,
    warm: Any = None,
) -> RunResult:
    """Plan and train a graph on Ray; artifacts land in a fresh run directory (or ``resume_dir``).

    Nodes whose cache key has a stored result are not trained: their artifacts are linked in.
    When every selected node is cached, Ray is not even started. ``plan``: the caller's
    ``make_plan(spec, source)`` (the CLI has one), so a large graph is not planned twice; plans do
    not read ``resources``, so it stays valid under ``use_cpu_only``. ``warm``: a
    ``execute.warmray.WarmRequest`` to run on taskgraph's warm local Ray (``--warm``).
    """
    from taskgraph.execute.records import NodeRecord, attempt_history
    from taskgraph.incremental import decide_and_load

    if use_cpu_only:
        spec = cpu_only(spec)
    plan = plan or make_plan(spec, source)
    cache = NodeCache.for_run_root(run_root) if use_cache else None
    if resume_dir and cache is not None:  # the folder's finished nodes count even if the cache was deleted
        _adopt_finished(spec, plan, RunDir.open(resume_dir), cache)
    selection, loaded = decide_and_load(spec, plan, cache, {n: _inputs_of(spec, n) for n in plan.order},
                                        only=only, from_=from_, until=until, force=force)
    run_dir = RunDir.open(resume_dir) if resume_dir else RunDir.create(run_root, spec.name)
    observers = RunObservers(run_dir, spec.name, {n: plan.nodes[n].upstream for n in plan.order}, on_progress,
                             tensorboard=tensorboard, mlflow_uri=mlflow_uri)
    run_dir.write_graph(dump_graph(spec))
    started = time.time()
    state = run_state(spec.name, run_dir.path, plan.order, plan.critical_path, selection.keys, started)
    recorder: RunRecorder | None = None  # while nodes run: run.json off the driver's loop

    def entry(record: Any) -> dict[str, Any]:
        if record.status in ("done", "failed", "interrupted"):
            markers = read_attempts(run_dir.node_dir(record.name))
            record.attempts = attempt_history(markers, record, observers.last_heard.get(record.name),
                                              _alive_ray_nodes() if len(markers) > 1 else None)
        return record.to_dict()

    def record_update(record: Any) -> None:
        # run.json at most a few times a second, on the recorder's thread, always the latest state
        # (a 1,000-node graph would rewrite it per node); a kill in between loses nothing: finished
        # nodes are already in the cache. Failures are written at once.
        node = entry(record)
        with recorder.lock:  # type: ignore[union-attr]
            state["nodes"][record.name] = node
        if on_update:  # first: the terminal shows the node's line even when the disk is full
            on_update(record)
        if record.status == "failed":
            run_dir.write_error(record.name, f"{record.error}\n\n{record.traceback or ''}")
        if record.status in ("failed", "skipped"):
            recorder.now()  # type: ignore[union-attr]
        else:
            recorder.changed()  # type: ignore[union-attr]

    records: dict[str, Any] = {}
    given: dict[str, Any] = {}
    waited_on = {up for name in selection.to_run for up in plan.nodes[name].upstream}
    for name in plan.order:
        if name in selection.cached:
            meta = cache.restore(selection.keys[name], run_dir.node_dir(name))
            records[name] = NodeRecord(name, status="cached", host=meta.get("host"), meta=meta)
            state["nodes"][name] = entry(records[name])
            if name in waited_on:
                given[name] = loaded.get(name)  # None: an order-only edge, nothing inherited
            if on_update:
                on_update(records[name])
    run_dir.write_run(state)
    if cache is not None:
        cache.remember(spec.name, {n: selection.keys[n] for n in plan.order if n not in selection.excluded})

    if selection.to_run:
        from taskgraph.execute.cluster import connect
        from taskgraph.execute.scheduler import run_jobs

        jobs = build_jobs(spec, plan, run_dir, cache, selection.keys, selection.to_run)
        session = None
        try:
            session = connect(address, num_cpus=num_cpus, warm=warm)
            import ray

            state["ray"] = {"address": session.address or "local", "nodes": len([n for n in ray.nodes() if n["Alive"]])}
            if session.warm:
                state["ray"]["warm"] = session.warm
            recorder = RunRecorder(run_dir.write_run_bytes, state)
            try:
                records.update(run_jobs(jobs, observers.node_fn(node_job), keep_going=keep_going,
                                        on_update=record_update, on_progress=observers.progress, given=given,
                                        warm=WARM_UP))
            finally:
                recorder.close()  # what follows (the end, an error, an interrupt) is written here
        except ExecutionError:
            state["status"] = "error"
            run_dir.write_run(state)
            observers.finish(state, ok=False)
            raise
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the scheduler cancelled what was running
            total = len(selection.to_run | selection.cached)
            raise _interrupted(state, run_dir, observers, exc, address, total) from None
        finally:
            if session is not None:
                session.close()
    state["ended_at"] = time.time()
    state["status"] = "done" if all(r.status in ("done", "cached") for r in records.values()) else "failed"
    # every record's last update is already in state (attempt markers read then); plan order here
    state["nodes"] = {name: state["nodes"].get(name) or entry(records[name]) for name in plan.order if name in records}
    run_dir.write_run(state)
    observers.finish(state, ok=state["status"] == "done")
    return RunResult(run_dir.path, records, state["ended_at"] - started)


def _adopt_finished(spec: Graph, plan: Plan, run_dir: RunDir, cache: NodeCache) -> None:
    """Put the run folder's verified finished nodes (same key as when they ran) back in the cache."""
    from taskgraph.plan.keys import node_keys

    before = run_dir.read_run().get("keys") or {}
    for name, key in node_keys(spec, plan).items():
        if before.get(name) == key:
            cache.adopt(key, run_dir, name)


def _interrupted(state: dict[str, Any], run_dir: RunDir, observers: RunObservers, exc: KeyboardInterrupt,
                 address: str | None, total: int) -> Interrupted:
    """Mark the run ``interrupted`` in ``run.json`` (its running nodes already are; finished ones stay
    done and cached) and say, in one line, what stopped and how to go on."""
    state["status"], state["ended_at"] = "interrupted", time.time()
    run_dir.write_run(state)
    observers.finish(state, ok=False)
    nodes = state["nodes"]
    stopped = [n for n in state["order"] if nodes.get(n, {}).get("status") == "interrupted"]
    finished = [n for n in state["order"] if nodes.get(n, {}).get("status") in ("done", "cached")]
    from taskgraph.execute.cluster import stop_signal

    signum = stop_signal(exc)
    how = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    what = f"stopped {', '.join(stopped)}" if stopped else "no node was running yet"
    command = (f"taskgraph resume {run_dir.path}" + (f" --address {address}" if address else "")
               + (" --warm" if (state.get("ray") or {}).get("warm") else ""))  # on the warm Ray it ran on
    return Interrupted(
        f"interrupted ({how}): {what}; {len(finished)} of {total} nodes finished and are kept. "
        f"Resume with: {command}",
        signum=signum, run_dir=run_dir.path,
    )


def _inputs_of(spec: Graph, name: str) -> set[str]:
    """Upstream nodes whose learned state this node receives (not order-only edges)."""
    return {up for up, dep in spec.tasks[name].depends_on.items() if dep.share}

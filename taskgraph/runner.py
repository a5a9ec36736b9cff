"""Wires the layers into one run: spec -> plan -> execute (Ray) -> train -> artifacts.

This is the only module (with the CLI) that imports every layer; the layers below it do not
know each other: the scheduler receives ``node_job`` as a plain callable, as Kedro's runner does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from taskgraph.artifacts.rundir import RunDir, write_node
from taskgraph.errors import ExecutionError
from taskgraph.plan.graph import Plan, build_graph, make_plan, remaining_path_costs
from taskgraph.spec.loader import SourceMap
from taskgraph.spec.models import Graph, Resources

__all__ = ["RunResult", "run_graph", "node_job", "build_jobs"]


@dataclass
class RunResult:
    """What a run produced: where its artifacts are, and a record per node."""

    run_dir: Path
    records: dict[str, Any]
    wall_seconds: float

    @property
    def ok(self) -> bool:
        return all(r.status in ("done", "cached") for r in self.records.values())

    def metrics(self, node: str) -> dict[str, float]:
        return dict(self.records[node].meta.get("final", {}))


def node_job(name: str, payload: tuple[Any, str], inputs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Runs on a Ray worker: train the node, write its artifacts, return its state for its children."""
    from taskgraph.train.loop import train_node

    request, node_dir = payload
    out = train_node(request, inputs)
    write_node(
        node_dir,
        out.state,
        {"node": name, **out.metrics, "inherited": out.inherited, "device": out.device, "steps": out.steps},
    )
    return out.state, {"final": out.metrics["final"], "inherited": out.inherited, "device": out.device, "steps": out.steps}


def cpu_only(spec: Graph) -> Graph:
    """The same graph with every GPU request dropped (``--cpu-only``)."""
    tasks = {
        name: task.model_copy(update={"resources": Resources(cpus=task.resources.cpus, gpus=0.0)})
        for name, task in spec.tasks.items()
    }
    return spec.model_copy(update={"tasks": tasks})


def build_jobs(spec: Graph, plan: Plan, run_dir: RunDir) -> list[Any]:
    """One ``NodeJob`` per task, in plan order, prioritised by remaining critical-path cost."""
    from taskgraph.execute.scheduler import NodeJob
    from taskgraph.train.loop import Inheritance, NodeRequest, node_seed

    priority = remaining_path_costs(build_graph(spec))
    jobs = []
    for name in plan.order:
        task = spec.tasks[name]
        inherits = tuple(
            Inheritance(local, up, remote, dep.mode, dep.lr_scale)
            for up, dep in sorted(task.depends_on.items())
            for local, remote in dep.share.items()
        )
        sources = tuple((d, spec.data[d]) for d in task.data_sources()) if task.kind == "multitask" else ()
        request = NodeRequest(name, task, spec.data[task.data], node_seed(task.seed or 0, name), inherits,
                              sources=sources)
        jobs.append(
            NodeJob(
                name=name,
                upstream=plan.nodes[name].upstream,
                inputs=tuple(sorted({i.upstream for i in inherits})),
                cpus=task.resources.cpus,
                gpus=task.resources.gpus,
                priority=priority[name],
                payload=(request, str(run_dir.node_dir(name))),
            )
        )
    return jobs


def dump_graph(spec: Graph) -> str:
    """The resolved graph as YAML: what actually ran, defaults merged in."""
    data = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False)


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
) -> RunResult:
    """Plan and train a whole graph on Ray; artifacts land in a fresh run directory."""
    from taskgraph.execute.cluster import connect
    from taskgraph.execute.scheduler import run_jobs

    if use_cpu_only:
        spec = cpu_only(spec)
    plan = make_plan(spec, source)
    run_dir = RunDir.create(run_root, spec.name)
    run_dir.write_graph(dump_graph(spec))
    started = time.time()
    state: dict[str, Any] = {
        "graph": spec.name,
        "run_dir": str(run_dir.path),
        "status": "running",
        "started_at": started,
        "ended_at": None,
        "order": list(plan.order),
        "critical_path": list(plan.critical_path),
        "nodes": {},
    }

    def record_update(record: Any) -> None:
        state["nodes"][record.name] = record.to_dict()
        run_dir.write_run(state)
        if on_update:
            on_update(record)

    run_dir.write_run(state)
    jobs = build_jobs(spec, plan, run_dir)
    session = connect(address, num_cpus=num_cpus)
    try:
        import ray

        state["ray"] = {"address": session.address or "local", "nodes": len([n for n in ray.nodes() if n["Alive"]])}
        records = run_jobs(jobs, node_job, keep_going=keep_going, on_update=record_update)
    except ExecutionError:
        state["status"] = "error"
        run_dir.write_run(state)
        raise
    finally:
        session.close()
    state["ended_at"] = time.time()
    state["status"] = "done" if all(r.status == "done" for r in records.values()) else "failed"
    state["nodes"] = {name: records[name].to_dict() for name in plan.order}
    run_dir.write_run(state)
    return RunResult(run_dir.path, records, state["ended_at"] - started)

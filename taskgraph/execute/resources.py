"""What a node asks Ray for, and whether any Ray node can give it.

A job's request becomes Ray task options (``num_cpus``, ``num_gpus``, ``memory``, custom
``resources``, ``accelerator_type``, ``label_selector``). A data-parallel job (``workers``) is a
coordinator task that holds nothing itself plus ``workers`` equal bundles, one per Ray Train worker.
Ray waits forever for a request no node can hold, so ``check_feasible`` refuses it at submit time.
"""

from __future__ import annotations

from typing import Any

from taskgraph.errors import ExecutionError

__all__ = ["ray_options", "worker_bundle", "usage", "check_feasible", "describe"]

#: Ray's accelerator_type option is a tiny demand on this resource, which GPU nodes advertise.
ACCELERATOR_PREFIX = "accelerator_type:"


def _bundle(job: Any, cpus: float, gpus: float) -> dict[str, float]:
    need = {"CPU": float(cpus), "GPU": float(gpus)}
    if job.memory:
        need["memory"] = float(job.memory)
    need.update({k: float(v) for k, v in job.custom.items()})
    if job.accelerator_type:
        need[ACCELERATOR_PREFIX + job.accelerator_type] = 0.001
    return {k: v for k, v in need.items() if v > 0 or k in ("CPU", "GPU")}


def worker_bundle(job: Any) -> dict[str, float]:
    """What one unit of the job needs on one Ray node: the node itself, or one Train worker."""
    if job.workers:
        return _bundle(job, job.cpus_per_worker, job.gpus_per_worker)
    return _bundle(job, job.cpus, job.gpus)


def usage(job: Any) -> tuple[float, float]:
    """CPUs and GPUs the job holds while it runs, summed over its workers (for the scheduler's budget)."""
    if job.workers:
        return job.workers * job.cpus_per_worker, job.workers * job.gpus_per_worker
    return job.cpus, job.gpus


def ray_options(job: Any) -> dict[str, Any]:
    """Ray task options for the job's own task. A data-parallel job's task only coordinates: it holds
    no CPU (Ray Train's workers hold the resources), so it never blocks the workers it waits for."""
    if job.workers:
        return {"num_cpus": 0, "num_gpus": 0}
    options: dict[str, Any] = {"num_cpus": job.cpus, "num_gpus": job.gpus}
    if job.memory:
        options["memory"] = job.memory
    if job.custom:
        options["resources"] = dict(job.custom)
    if job.accelerator_type:
        options["accelerator_type"] = job.accelerator_type
    if job.labels:
        options["label_selector"] = dict(job.labels)
    return options


def describe(need: dict[str, float], labels: dict[str, str] | None = None) -> str:
    """``2 CPUs and 1 GPUs, 4.0 GB memory, special=1, labels zone=a`` for error messages."""
    parts = [f"{need.get('CPU', 0.0):g} CPUs and {need.get('GPU', 0.0):g} GPUs"]
    for key, value in need.items():
        if key == "memory":
            parts.append(f"{value / 1e9:.1f} GB memory")
        elif key.startswith(ACCELERATOR_PREFIX):
            parts.append(f"accelerator {key[len(ACCELERATOR_PREFIX):]}")
        elif key not in ("CPU", "GPU"):
            parts.append(f"{key}={value:g}")
    if labels:
        parts.append("labels " + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())))
    return ", ".join(parts)


def _shortfall(need: dict[str, float], labels: dict[str, str], node: dict[str, Any]) -> list[str]:
    have, node_labels = node.get("Resources", {}), node.get("Labels", {})
    missing = [f"{key} {have.get(key, 0.0):g}/{value:g}" for key, value in need.items() if have.get(key, 0.0) + 1e-9 < value]
    missing += [f"label {k}={v} (has {node_labels.get(k, 'none')})" for k, v in labels.items() if node_labels.get(k) != v]
    return missing


def check_feasible(jobs: list[Any], nodes: list[dict[str, Any]], scaling: Any = None) -> dict[str, str]:
    """Refuse, before anything runs, a job that no alive Ray node (``ray.nodes()`` entries) can hold.

    A request must fit on one node, not on the cluster's sum; a data-parallel job's workers must
    each fit on a node and together fit in the cluster. The error names the closest node and
    what it lacks. On a cluster that can grow (``scaling``: ``execute.autoscale.Autoscaling``), a
    job that fits one of its node types, or any job when the autoscaler's types are unknown, is not
    refused: it waits for a scale-up. Returns those jobs' names with a line saying so.
    """
    alive = [n for n in nodes if n.get("Alive", True)]
    waits: dict[str, str] = {}
    for job in jobs:
        need, labels = worker_bundle(job), dict(job.labels)
        gaps = [(_shortfall(need, labels, node), node) for node in alive]
        fitting = [node for gap, node in gaps if not gap]
        what = f"{job.workers} workers of " if job.workers else ""
        if not fitting:
            note = _scale_up(job, need, labels, what, len(alive), scaling)
            if note:
                waits[job.name] = note
                continue
            gap, node = min(gaps, key=lambda g: len(g[0])) if gaps else ([], {})
            closest = f" The closest, {node.get('NodeID', '?')[:12]}, lacks: {'; '.join(gap)}." if gaps else ""
            hint = " Run with --cpu-only to train GPU nodes on the CPU." if need.get("GPU") else ""
            types = getattr(scaling, "node_types", ())
            grow = (" nor can its autoscaler add one (node types: " + ", ".join(t.describe() for t in types) + ")."
                    if types else ".")
            raise ExecutionError(
                f"node '{job.name}' asks for {what}{describe(need, labels)}, but none of the cluster's "
                f"{len(alive)} Ray node(s) has that{',' if types else ''}{grow}{closest} Lower its `resources` or "
                f"add a Ray node that has them (ray start --num-gpus/--resources/--labels).{hint}",
                node=job.name,
            )
        if job.workers:
            positive = {k: v for k, v in need.items() if v > 0}
            slots = sum(
                int(min((node["Resources"].get(k, 0.0) + 1e-9) // v for k, v in positive.items()))
                if positive else job.workers
                for node in fitting
            )
            if slots < job.workers:
                note = _scale_up(job, need, labels, what, len(alive), scaling)
                if note:
                    waits[job.name] = note
                    continue
                raise ExecutionError(
                    f"node '{job.name}' asks for {job.workers} workers of {describe(need)}, but the cluster "
                    f"holds only {slots} such workers at once. Lower `resources.workers` or its per-worker "
                    "resources, or add Ray nodes.",
                    node=job.name,
                )
    return waits


def _scale_up(job: Any, need: dict[str, float], labels: dict[str, str], what: str, alive: int,
              scaling: Any) -> str | None:
    """The line for a job the live nodes cannot hold but the autoscaler may add one for; None: refuse it."""
    if scaling is None or not scaling.can_grow:
        return None
    from taskgraph.execute.autoscale import fitting_types

    asked = f"node '{job.name}' asks for {what}{describe(need, labels)}, which none of the {alive} running Ray node(s) has"
    if scaling.node_types:
        types = fitting_types(need, scaling)
        if not types:
            return None
        return f"{asked}: it waits for a scale-up of {types[0].name}" + (
            f" (or {', '.join(t.name for t in types[1:])})" if types[1:] else "")
    return (f"{asked}: it waits for the cluster's autoscaler to add one (Ray does not say which node types it "
            "can launch, so this is not checked: if none has that, the node waits until you stop the run)")

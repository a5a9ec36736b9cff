"""``taskgraph ablate``: is each dependency worth having? Train every edge's target with and without it.

For each edge ``u -> v`` that shares modules, ``v`` is trained as declared (with the edge) and
with that one dependency removed (its modules from scratch; every other dependency, the data,
the seed and the label subsample unchanged), over N seeds and label fractions. The upstream
nodes are trained once and their states are handed to every variant through Ray (or read from
an earlier run with ``from_run``), so nothing upstream is retrained per variant. All variants are
independent Ray tasks: they run in parallel as CPUs allow.

Like ``runner``, this module wires execute + train + artifacts + report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from taskgraph.artifacts.files import atomic_write_json
from taskgraph.artifacts.rundir import RunDir
from taskgraph.errors import ExecutionError, TaskgraphError
from taskgraph.plan.graph import Plan, make_plan
from taskgraph.plan.select import ancestors
from taskgraph.report.ablation import LOWER_IS_BETTER, EdgeGain, format_table, plot_gains, summarize
from taskgraph.spec.loader import SourceMap
from taskgraph.spec.models import Graph

__all__ = ["AblationResult", "ablation_edges", "primary_metric", "ablate_graph", "variant_job"]


@dataclass
class AblationResult:
    out_dir: Path
    rows: list[dict[str, Any]]
    gains: list[EdgeGain]
    skipped: list[str]

    def table(self) -> str:
        return format_table(self.gains)


def ablation_edges(spec: Graph, only: list[str] | None = None) -> tuple[list[tuple[str, str]], list[str]]:
    """The edges to ablate (sorted) and notes on edges left out (order-only edges change nothing)."""
    edges, notes = [], []
    for down in sorted(spec.tasks):
        for up, dep in sorted(spec.tasks[down].depends_on.items()):
            if not dep.share:
                notes.append(f"{up} -> {down}: order only (shares no module), nothing to ablate")
                continue
            edges.append((up, down))
    if only:
        wanted = set()
        for text in only:
            parts = [p.strip() for p in text.replace("->", " ").split()]
            if len(parts) != 2 or tuple(parts) not in edges:
                known = ", ".join(f"{u}->{d}" for u, d in edges) or "(none)"
                raise TaskgraphError(f"--edge '{text}': not an edge that shares modules. Edges: {known}.")
            wanted.add(tuple(parts))
        edges = [e for e in edges if e in wanted]
    return edges, notes


def primary_metric(spec: Graph, task_name: str, override: str | None = None) -> str:
    """The metric an ablation compares: ``override``, else the task's first listed metric, else its loss."""
    task = spec.tasks[task_name]
    if getattr(task, "kind", "single") == "multitask":  # a joint node reports "<head>.<metric>"
        known = [f"{h}.{m}" for h, head in task.heads.items() for m in head.metrics if m != "loss"]
        known += [f"{h}.loss" for h in task.heads]
    else:
        known = [m for m in task.metrics if m != "loss"] + ["loss"]
    if override:
        if override not in known:
            raise TaskgraphError(
                f"--metric {override}: node '{task_name}' does not compute it. Its metrics: {', '.join(known)}. "
                "Add it to the task's `metrics:`."
            )
        return override
    return known[0]


def variant_job(name: str, payload: Any, inputs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Runs on a Ray worker: train one variant and return its metrics only (no state, no files)."""
    from taskgraph.train.loop import train_node

    out = train_node(payload, inputs)
    return {}, {"final": out.metrics["final"], "train_examples": out.metrics.get("train_examples"), "steps": out.steps,
                **({"test": out.metrics["test"]} if out.metrics.get("test") else {})}


def _variant_request(spec: Graph, up: str, down: str, with_edge: bool, seed: int, fraction: float) -> Any:
    from taskgraph.train.request import Inheritance, NodeRequest, node_seed

    task = spec.tasks[down]
    deps = {u: d for u, d in task.depends_on.items() if with_edge or u != up}
    train = task.train.model_copy(update={"label_fraction": task.train.label_fraction * fraction})
    task = task.model_copy(update={"depends_on": deps, "train": train})
    inherits = tuple(
        Inheritance(local, u, remote, dep.mode, dep.lr_scale)
        for u, dep in sorted(deps.items())
        for local, remote in dep.share.items()
    )
    sources = tuple((d, spec.data[d]) for d in task.data_sources()) if task.kind == "multitask" else ()
    return NodeRequest(down, task, spec.data[task.data], node_seed(seed, down), inherits, sources=sources)


def _cache(spec: Graph, plan: Any, run_root: str | os.PathLike[str]) -> tuple[Any, dict[str, str]]:
    """The result cache of ``taskgraph run`` under the same run root, and every node's key."""
    from taskgraph.artifacts import store
    from taskgraph.artifacts.cache import NodeCache
    from taskgraph.plan.keys import node_keys

    if store.is_remote(run_root):
        return None, {}
    return NodeCache.for_run_root(run_root), node_keys(spec, plan)


def _load_states(run: Path, names: set[str]) -> dict[str, Any]:
    run_dir = RunDir.open(run)
    missing = sorted(n for n in names if not run_dir.node_complete(n))
    if missing:
        raise TaskgraphError(
            f"--from-run {run}: node(s) {', '.join(missing)} did not finish there. Run the graph again, "
            "or drop --from-run to train the upstream nodes now."
        )
    return {n: run_dir.read_params(n) for n in sorted(names)}


def ablate_graph(
    spec: Graph,
    source: SourceMap | None = None,
    *,
    seeds: int = 3,
    fractions: tuple[float, ...] = (1.0,),
    edges: list[str] | None = None,
    metric: str | None = None,
    run_root: str | os.PathLike[str] = "runs",
    from_run: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    address: str | None = None,
    num_cpus: int | None = None,
    on_update: Callable[[Any], None] | None = None,
    plan: Plan | None = None,
    warm: Any = None,
) -> AblationResult:
    """Ablate every module-sharing edge (or ``edges``): returns the rows, the gains and the output folder.

    Upstream states come from ``from_run``, else from the result cache under ``run_root`` (what
    ``taskgraph run`` stored), else they are trained here once (and stored in that cache).
    ``plan``: the caller's ``make_plan(spec, source)``, if it has one (see ``run_graph``); ``warm``: as
    ``run_graph``'s.
    """
    from taskgraph.execute.cluster import connect
    from taskgraph.execute.scheduler import NodeJob, run_jobs
    from taskgraph.runner import build_jobs, dump_graph

    if seeds < 1:
        raise TaskgraphError("--seeds must be at least 1 (3 or more for a significance test).")
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise TaskgraphError(f"--fractions {list(fractions)}: each must be in (0, 1], e.g. 0.1,0.3,1.0.")
    plan = plan or make_plan(spec, source)
    chosen, skipped = ablation_edges(spec, edges)
    if not chosen:
        raise TaskgraphError(f"graph '{spec.name}' has no dependency that shares a module: nothing to ablate.")
    metrics = {down: primary_metric(spec, down, metric) for _up, down in chosen}

    out = RunDir.create(run_root, f"{spec.name}-ablate")
    out.write_graph(dump_graph(spec))
    direct = {u for _u, d in chosen for u in plan.nodes[d].upstream}  # every edge's upstream is among them
    upstream_needed = direct | ancestors(plan, direct)
    base_dir = RunDir(out.path / "upstream")
    given: dict[str, Any] = {}
    cache, keys = _cache(spec, plan, run_root) if use_cache else (None, {})
    base_jobs = build_jobs(spec, plan, base_dir, cache, keys, upstream_needed)
    if from_run is not None:
        given = _load_states(Path(from_run), upstream_needed)
    elif cache is not None:  # upstream results of an earlier `taskgraph run` or ablation, by cache key
        states = {n: cache.usable_state(keys[n], n) for n in sorted(upstream_needed)}  # a damaged one: retrained
        given = {n: state for n, state in states.items() if state is not None}
    variants: list[tuple[str, dict[str, Any]]] = []
    variant_jobs: dict[str, NodeJob] = {}  # "as declared" is one job per node, seed and fraction, shared by its edges
    for (up, down), fraction, i, with_edge in (
        (e, f, i, w) for e in chosen for f in fractions for i in range(seeds) for w in (True, False)
    ):
        seed = spec.seed + i
        request = _variant_request(spec, up, down, with_edge, seed, fraction)
        inputs = tuple(sorted({inh.upstream for inh in request.inherits}))
        task = spec.tasks[down]
        what = "as declared" if with_edge else f"without {up}"
        name = f"{down}[{what}, f={fraction:g}, seed={seed}]"
        variant_jobs[name] = NodeJob(
            name=name, upstream=tuple(sorted(request.task.depends_on)), inputs=inputs,
            cpus=task.resources.cpus, gpus=task.resources.gpus, priority=0.0, payload=request,
        )
        variants.append((name, {"upstream": up, "downstream": down, "fraction": fraction, "seed": seed,
                                "with_edge": with_edge, "metric": metrics[down]}))
    # Base nodes first (their children wait on them); given (cached) ones are marked cached, not run.
    jobs = [replace(j, priority=1e9 + j.priority) for j in base_jobs] + list(variant_jobs.values())

    started = time.time()
    session = connect(address, num_cpus=num_cpus, warm=warm)
    try:
        records = run_jobs(jobs, _dispatch, on_update=on_update, given=given)
    finally:
        session.close()
    trained = sorted(j.name for j in base_jobs if records[j.name].status == "done")
    if trained:  # the upstream folder is a run directory of its own: reusable with --from-run
        base_dir.write_run({"graph": spec.name, "status": "done", "nodes": {n: records[n].to_dict() for n in trained}})
    failed = {n: r.error for n, r in records.items() if r.status in ("failed", "skipped")}
    if failed:
        first = next(iter(failed.items()))
        raise ExecutionError(f"{len(failed)} ablation job(s) failed, e.g. {first[0]}: {first[1]}", node=first[0])

    rows = []
    for name, row in variants:
        record = records[name]
        test = record.meta.get("test") or {}
        rows.append({**row, "value": record.meta.get("final", {})[row["metric"]], "job": name,
                     "seconds": (record.ended_at or 0) - (record.started_at or 0),
                     **({"test_value": test[row["metric"]]} if row["metric"] in test else {})})
    # Validation values decide nothing here, but the data's test split (when it has one) is the honest
    # score: its gains are listed apart, as metric "test <name>".
    gains = summarize(rows) + summarize([{**r, "metric": f"test {r['metric']}", "value": r["test_value"]}
                                         for r in rows if "test_value" in r])
    upstream = {n: records[n].meta.get("final", {}) for n in trained}
    atomic_write_json(out.path / "ablation.json", {
        "graph": spec.name, "seeds": [spec.seed + i for i in range(seeds)], "fractions": list(fractions),
        "metrics": metrics, "lower_is_better": sorted(LOWER_IS_BETTER),
        "from_run": str(from_run) if from_run else None, "reused_upstream": sorted(given), "upstream": upstream, "skipped_edges": skipped, "wall_seconds": time.time() - started,
        "gains": [g.to_dict() for g in gains], "rows": rows,
    })
    plot_gains(gains, out.path / "ablation.png", title=f"{spec.name}: transfer gain per edge")
    return AblationResult(out.path, rows, gains, skipped)


def _dispatch(name: str, payload: Any, inputs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Upstream nodes (``runner.build_jobs`` payload tuples) are trained and saved; variants only report metrics."""
    if isinstance(payload, tuple):
        from taskgraph.runner import node_job

        return node_job(name, payload, inputs)
    return variant_job(name, payload, inputs)

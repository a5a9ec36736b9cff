"""Pure planning: the task graph's checks, stages, order and critical path.

No I/O, no clock, no Ray or torch: ties are sorted by name so plans (and the cache keys
built on them) are the same on every machine and every run. ``make_plan`` walks the dependency
dicts itself (Kahn's algorithm, stdlib ``graphlib`` to detect a cycle): importing networkx costs
~0.3 s, a large share of a no-change rerun, so it is imported only to name a cycle
(``nx.find_cycle``, the path the error message shows) and by ``build_graph`` (the graph as a
``nx.DiGraph``, for callers that want one).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskgraph.errors import PlanError, SpecIssue

if TYPE_CHECKING:
    import networkx as nx

    from taskgraph.spec.loader import SourceMap
    from taskgraph.spec.models import Graph, Task

__all__ = ["Plan", "NodePlan", "build_graph", "check_graph", "make_plan", "module_dims", "node_modules", "node_cost"]

Loc = tuple[str, ...]


@dataclass(frozen=True)
class NodePlan:
    """What the plan knows about one node."""

    name: str
    stage: int
    cost: float
    upstream: tuple[str, ...]
    downstream: tuple[str, ...]
    on_critical_path: bool


@dataclass(frozen=True)
class Plan:
    """The order to run a graph in: stages, a topological order and the critical path."""

    graph_name: str
    order: tuple[str, ...]
    stages: tuple[tuple[str, ...], ...]
    critical_path: tuple[str, ...]
    critical_cost: float
    total_cost: float
    nodes: dict[str, NodePlan] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "graph": self.graph_name,
            "order": list(self.order),
            "stages": [list(s) for s in self.stages],
            "critical_path": list(self.critical_path),
            "critical_cost": self.critical_cost,
            "total_cost": self.total_cost,
            "nodes": {
                n: {
                    "stage": p.stage,
                    "cost": p.cost,
                    "upstream": list(p.upstream),
                    "downstream": list(p.downstream),
                    "on_critical_path": p.on_critical_path,
                }
                for n, p in self.nodes.items()
            },
        }


def node_cost(task: Task) -> float:
    """Estimated cost: the declared ``cost`` (seconds), else epochs as a relative unit."""
    if task.cost is not None:
        return float(task.cost)
    return float(task.train.epochs if task.train else 1)


def build_graph(spec: Graph) -> nx.DiGraph:
    """One node per task, one edge per dependency (upstream -> downstream), with the configs attached."""
    import networkx as nx

    graph = nx.DiGraph(name=spec.name)
    for name in sorted(spec.tasks):
        task = spec.tasks[name]
        graph.add_node(name, task=task, cost=node_cost(task))
    for name in sorted(spec.tasks):
        for upstream, dep in sorted(spec.tasks[name].depends_on.items()):
            if upstream in spec.tasks:
                graph.add_edge(upstream, name, dependency=dep)
    return graph


# --------------------------------------------------------------------------- checks


def _upstream(spec: Graph) -> dict[str, tuple[str, ...]]:
    """Each task's upstream tasks (dependencies on unknown names are the spec's errors, not edges)."""
    return {name: tuple(sorted(up for up in spec.tasks[name].depends_on if up in spec.tasks))
            for name in sorted(spec.tasks)}


def _check_cycle(spec: Graph, graph: nx.DiGraph | None) -> list[tuple[Loc, str]]:
    from graphlib import CycleError, TopologicalSorter

    try:
        TopologicalSorter(_upstream(spec)).prepare()
    except CycleError:
        import networkx as nx

        edges = nx.find_cycle(graph if graph is not None else build_graph(spec))
    else:
        return []
    path = [u for u, _ in edges] + [edges[0][0]]
    last_u, last_v = edges[-1]
    return [
        (
            ("tasks", last_v, "depends_on", last_u),
            f"dependency cycle {' -> '.join(path)}. Remove one depends_on entry on this path.",
        )
    ]


def node_modules(task: Any) -> dict[str, Any]:
    """Every named module of a node: a single-task node's chain, or a joint node's trunk then heads."""
    return dict(getattr(task, "all_modules", None) or task.modules)


def module_dims(spec: Graph, task: Task) -> dict[str, int | None]:
    """Input width of each module of a node, inferred along the chain (None where unknown).

    For a joint node, a head's input is the concatenation of the outputs it reads (default: the
    trunk's last module), so its width is their sum.
    """
    data = spec.data.get(task.data)
    width = data.field_widths().get(task.input) if data is not None else None
    dims: dict[str, int | None] = {}
    outs: dict[str, int | None] = {}
    for name, module in task.modules.items():
        in_dim = module.resolved_in(width)
        dims[name] = in_dim
        width = outs[name] = module.output_dim(in_dim)
    mixed = _mixture_widths(task, width, dims)
    last = list(task.modules)[-1] if task.modules else None
    for name, head in getattr(task, "heads", {}).items():
        summed = _head_width(task, name, head, outs, last, mixed)
        dims[name] = head.module.resolved_in(summed)
        outs[name] = head.module.output_dim(dims[name])
    return dims


def _mixture_widths(task: Any, width: int | None, dims: dict[str, int | None]) -> int | None:
    """Fill ``dims`` with the input widths of a mixture's parts; return the width of its mixed features."""
    mixture = getattr(task, "mixture", None)
    if mixture is None:
        return None
    from taskgraph.spec.mixture import mixture_tasks, mixture_widths

    part_dims, mixed = mixture_widths(mixture, mixture_tasks(mixture, task.heads), width)
    dims.update(part_dims)
    return mixed


def _head_width(task: Any, name: str, head: Any, outs: dict[str, int | None], last: str | None,
                mixed: int | None) -> int | None:
    """What feeds a head: its ``input`` outputs side by side, its task's mixed features, or the trunk."""
    if head.input is None and getattr(task, "mixture", None) is not None:
        return mixed
    widths = [outs.get(src) for src in (head.input or (last,))]
    return None if any(w is None for w in widths) else sum(widths)  # type: ignore[arg-type]


def _check_shared_modules(spec: Graph, graph: nx.DiGraph | None) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    for name in sorted(spec.tasks):
        task = spec.tasks[name]
        for upstream, dep in sorted(task.depends_on.items()):
            if upstream not in spec.tasks:
                continue
            source = spec.tasks[upstream]
            for local, remote in dep.share.items():
                loc = ("tasks", name, "depends_on", upstream, "share", local)
                if local not in node_modules(task):
                    problems.append(
                        (loc, f"task '{name}' has no module '{local}' to receive '{upstream}.{remote}'. "
                              f"Its modules: {', '.join(node_modules(task))}.")
                    )
                    continue
                if remote not in node_modules(source):
                    problems.append(
                        (loc, f"upstream task '{upstream}' has no module '{remote}' to share. "
                              f"Its modules: {', '.join(node_modules(source))}.")
                    )
                    continue
                mismatch = _shape_mismatch(spec, upstream, remote, name, local)
                if mismatch:
                    problems.append((loc, mismatch))
    return problems


def _shape_mismatch(spec: Graph, upstream: str, remote: str, name: str, local: str) -> str | None:
    up_task, down_task = spec.tasks[upstream], spec.tasks[name]
    up_mod, down_mod = node_modules(up_task)[remote], node_modules(down_task)[local]
    if up_mod.type != down_mod.type:
        return (f"'{upstream}.{remote}' is a {up_mod.type} but '{name}.{local}' is a {down_mod.type}. "
                "Declare the same module on both sides.")
    up_shapes = up_mod.param_shapes(module_dims(spec, up_task)[remote])
    down_shapes = down_mod.param_shapes(module_dims(spec, down_task)[local])
    if up_shapes is None or down_shapes is None:
        return None  # unknown until built; the trainer checks before any training
    if set(up_shapes) != set(down_shapes):
        only_up = sorted(set(up_shapes) - set(down_shapes))
        only_down = sorted(set(down_shapes) - set(up_shapes))
        return (f"'{upstream}.{remote}' and '{name}.{local}' have different parameters "
                f"(only upstream: {only_up or '-'}; only here: {only_down or '-'}). Declare the same module.")
    for key in up_shapes:  # module order: weights before biases, as the module declares them
        if up_shapes[key] != down_shapes[key]:
            return (f"shape mismatch for '{local}.{key}': upstream '{upstream}.{remote}' has "
                    f"{list(up_shapes[key])}, this task has {list(down_shapes[key])}. "
                    "Make the module configs (and their input widths) match.")
    return None


def _check_input_widths(spec: Graph, graph: nx.DiGraph | None) -> list[tuple[Loc, str]]:
    """A declared ``in:`` that differs from what feeds the module (the data field's width, known from
    the loader config, or the previous module's output) fails at the first batch with torch's
    "mat1 and mat2 shapes cannot be multiplied": say so now, with the width to write."""
    problems: list[tuple[Loc, str]] = []
    for name in sorted(spec.tasks):
        task = spec.tasks[name]
        data = spec.data.get(task.data)
        width = data.field_widths().get(task.input) if data is not None else None
        feeds = f"data source '{task.data}' gives field '{task.input}'"
        outs: dict[str, int | None] = {}
        for module_name, module in task.modules.items():
            problem = _width_problem(module, width, feeds)
            if problem:
                problems.append((("tasks", name, "modules", module_name, problem[0]), problem[1]))
            width = outs[module_name] = module.output_dim(module.resolved_in(width))
            feeds = f"module '{module_name}' outputs"
        mixed = _mixture_widths(task, width, {})
        if getattr(task, "mixture", None) is not None:
            problems += _mixture_input_problems(task, name, width, feeds)
        last = list(task.modules)[-1] if task.modules else None
        for head_name, head in getattr(task, "heads", {}).items():
            summed = _head_width(task, head_name, head, outs, last, mixed)
            if head.input is None and getattr(task, "mixture", None) is not None:
                feeds = f"the mixture's features of task '{head.gate or head_name}' are"
            else:
                sources = head.input or (str(last),)
                feeds = f"{' + '.join(sources)} output{'s' if len(sources) == 1 else ''}"
            problem = _width_problem(head.module, summed, feeds)
            if problem:
                problems.append((("tasks", name, "heads", head_name, "module", problem[0]), problem[1]))
            outs[head_name] = head.module.output_dim(head.module.resolved_in(summed))
    return problems


def _mixture_input_problems(task: Any, name: str, width: int | None, feeds: str) -> list[tuple[Loc, str]]:
    """Experts, columns and gates whose declared ``in:`` differs from the path that feeds them."""
    from taskgraph.spec.mixture import mixture_parts, mixture_tasks

    mixture = task.mixture
    tasks = mixture_tasks(mixture, task.heads)
    problems: list[tuple[Loc, str]] = []
    path, level_out, level = width, None, 0
    for part in mixture_parts(mixture, tasks):
        if part.level != level:
            path, level_out, level = level_out, None, part.level
            feeds = f"level {level} of the mixture outputs" if mixture.type != "cross_stitch" else \
                "the previous layer outputs"
        if part.role in ("expert", "column"):
            problem = _width_problem(part.config, path, feeds)
            if problem:
                problems.append((("tasks", name, "mixture", *part.loc, problem[0]), problem[1]))
            if level_out is None:
                level_out = part.config.output_dim(part.config.resolved_in(path))
    return problems


#: Module types whose input is ids (their `in:` is not a feature width).
_READS_IDS = frozenset({"embedding", "token_embedding"})


def _width_problem(module: Any, width: int | None, feeds: str) -> tuple[str, str] | None:
    """(key, message) when ``module`` cannot read input ``width`` wide; None when it can or nobody knows."""
    if width is None or getattr(module, "type", None) in _READS_IDS:
        return None
    declared = getattr(module, "in_features", None)
    if getattr(module, "type", None) == "conv2d" and declared is None:
        declared = module.resolved_in(None)
        if declared != width:
            return "shape", (f"`shape: {list(module.shape)}` reads {declared} values per example, but {feeds} {width} "
                             "values wide. Give the image's real [channels, height, width].")
    if declared is not None and declared != width:
        return "in", (f"`in: {declared}`, but {feeds} {width} values wide. Write `in: {width}`, or leave "
                      "`in:` out to infer it.")
    columns = getattr(module, "columns", None)
    if columns is not None and columns[1] > width:
        return "columns", (f"reads columns up to {columns[1]}, but {feeds} {width} values wide. "
                           f"Keep `columns` within [0, {width}].")
    return None


def _check_fields(spec: Graph, graph: nx.DiGraph | None) -> list[tuple[Loc, str]]:
    """A task's ``input`` or loss ``target`` that its data source does not give fails in the worker,
    after Ray started: say so now, listing the fields there are. Only for sources whose config alone
    fixes their fields (``field_names()``: the generic ``table``/``conll``/``arrays`` loaders).
    ``infonce`` targets may name a module, and user losses read what they like: not checked."""
    from taskgraph.spec.models import suggest

    problems: list[tuple[Loc, str]] = []
    for name in sorted(spec.tasks):
        task = spec.tasks[name]
        reads: list[tuple[Loc, str, Any]] = [(("tasks", name, "input"), task.data, task.input)]
        heads = getattr(task, "heads", None)
        losses = ([(("tasks", name, "heads", h, "loss", "target"), head.data or task.data, head.loss)
                   for h, head in heads.items()] if heads else [(("tasks", name, "loss", "target"), task.data, task.loss)])
        reads += [(loc, source, loss.target) for loc, source, loss in losses
                  if loss.type != "infonce" and ":" not in loss.type]
        for loc, source, field in reads:
            data = spec.data.get(source)
            known = getattr(data, "field_names", lambda: None)() if data is not None else None
            if known is not None and field not in known:
                problems.append((loc, f"data source '{source}' ({data.loader}) has no field '{field}'."
                                      f"{suggest(field, known)}"))
    return problems


def _check_monitor(spec: Graph, graph: nx.DiGraph | None) -> list[tuple[Loc, str]]:
    """``train.monitor`` must name a validation value the node reports (``loss``, one of its metrics,
    ``head.metric`` on a joint node); else the node would fail after Ray started."""
    from taskgraph.spec.models import suggest

    problems: list[tuple[Loc, str]] = []
    for name in sorted(spec.tasks):
        task = spec.tasks[name]
        monitor = task.train.monitor if task.train is not None else None
        if monitor is not None and monitor not in task.validation_names():
            problems.append((("tasks", name, "train", "monitor"),
                             f"node '{name}' reports no validation value '{monitor}'."
                             f"{suggest(monitor, task.validation_names())}"))
    return problems


#: Checks run in order; each returns (location, message) pairs. Add a check by appending here.
CHECKS = (_check_cycle, _check_input_widths, _check_fields, _check_shared_modules, _check_monitor)


def check_graph(spec: Graph, graph: nx.DiGraph | None = None) -> list[tuple[Loc, str]]:
    """Every plan-level problem of a valid spec (cycle, shared modules, shapes), in one pass.
    ``graph``: ``build_graph(spec)`` when the caller has it (built here only to name a cycle)."""
    problems: list[tuple[Loc, str]] = []
    for check in CHECKS:
        problems += check(spec, graph)
    return problems


def _raise(problems: list[tuple[Loc, str]], source: SourceMap | None, spec: Graph) -> None:
    issues = [
        source.issue(loc, msg, at_key=True) if source else SpecIssue(message=msg, path=".".join(loc), file=f"<{spec.name}>")
        for loc, msg in problems
    ]
    cycle = None
    for _loc, msg in problems:
        if msg.startswith("dependency cycle "):
            cycle = tuple(msg.removeprefix("dependency cycle ").split(".")[0].split(" -> "))
    raise PlanError(issues, cycle=cycle)


# --------------------------------------------------------------------------- plan


def make_plan(spec: Graph, source: SourceMap | None = None) -> Plan:
    """Check the graph and compute stages and the critical path. Raises ``PlanError`` with positions."""
    problems = check_graph(spec)
    if problems:
        _raise(problems, source, spec)

    upstream = _upstream(spec)
    downstream: dict[str, list[str]] = {name: [] for name in upstream}
    for name, ups in upstream.items():
        for up in ups:
            downstream[up].append(name)  # names in sorted order: each list is sorted
    cost = {name: node_cost(spec.tasks[name]) for name in upstream}
    order = _lexicographic_order(upstream, downstream)
    stages = _stages(upstream, order)
    stage_of = {n: i for i, stage in enumerate(stages) for n in stage}
    path, length = _critical_path(cost, upstream, order)
    on_path = set(path)
    nodes = {
        n: NodePlan(
            name=n,
            stage=stage_of[n],
            cost=cost[n],
            upstream=upstream[n],
            downstream=tuple(downstream[n]),
            on_critical_path=n in on_path,
        )
        for n in order
    }
    total = sum(cost[n] for n in upstream)  # sorted by name, as before: the same float sum
    return Plan(spec.name, order, stages, path, length, total, nodes)


def _stages(upstream: Mapping[str, Sequence[str]], order: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """Stages (``nx.topological_generations``, each sorted by name): a task's stage is one past its
    latest upstream's, read off any topological ``order``."""
    stage_of: dict[str, int] = {}
    for node in order:
        stage_of[node] = max((stage_of[up] + 1 for up in upstream[node]), default=0)
    stages: list[list[str]] = [[] for _ in range(max(stage_of.values(), default=-1) + 1)]
    for node in sorted(stage_of):
        stages[stage_of[node]].append(node)
    return tuple(tuple(stage) for stage in stages)


def _lexicographic_order(upstream: Mapping[str, Sequence[str]], downstream: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """The topological order that always takes the smallest ready name next
    (``nx.lexicographical_topological_sort``): the same order on every machine."""
    waiting = {n: len(ups) for n, ups in upstream.items()}
    ready = [n for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for child in downstream[node]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    return tuple(order)


def _critical_path(
    cost: Mapping[str, float], upstream: Mapping[str, Sequence[str]], order: tuple[str, ...]
) -> tuple[tuple[str, ...], float]:
    """Longest path by summed node cost (ties broken by name, so the result is stable)."""
    best: dict[str, tuple[float, tuple[str, ...]]] = {}
    for node in order:
        preds = upstream[node]  # sorted by name (``_upstream``)
        if preds:
            prev = max(preds, key=lambda p: best[p][0])  # first of equals: sorted by name
            best[node] = (best[prev][0] + cost[node], (*best[prev][1], node))
        else:
            best[node] = (cost[node], (node,))
    if not best:
        return (), 0.0
    end = max(sorted(best), key=lambda n: best[n][0])
    return best[end][1], best[end][0]


def remaining_path_costs(
    order: Sequence[str], cost: Mapping[str, float], downstream: Mapping[str, Iterable[str]]
) -> dict[str, float]:
    """For each node, the longest cost path from it to a sink: the priority of a ready node.
    ``order`` is any topological order (``plan.order``); the benchmark calls it on its own DAGs."""
    remaining: dict[str, float] = {}
    for node in reversed(order):
        remaining[node] = cost[node] + max((remaining[s] for s in downstream[node]), default=0.0)
    return remaining

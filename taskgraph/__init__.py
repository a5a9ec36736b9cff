"""taskgraph: train a graph of interdependent ML tasks on Ray, passing learned modules downstream.

The Python API mirrors the CLI: ``spec = taskgraph.load(path)``, ``plan = taskgraph.plan_graph(spec)``,
``result = taskgraph.run(spec)``; what a run trained comes back with ``taskgraph.load_node(run_dir, node)``
and ``taskgraph.load_graph(run_dir)``. Heavy layers (Ray, torch) load only when a run starts.

The planner is ``plan_graph``, not ``plan``: ``taskgraph.plan`` is the planning subpackage, and
importing it (which ``load`` does) sets the package attribute ``plan`` to the module, so a
function of that name would be replaced by a module the moment anything planned.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from taskgraph.errors import ExecutionError, PlanError, SpecError, TaskgraphError

if TYPE_CHECKING:
    from taskgraph.plan.graph import Plan
    from taskgraph.runner import RunResult
    from taskgraph.trained import TrainedGraph, TrainedNode
    from taskgraph.spec.models import Graph

__all__ = ["load", "plan_graph", "run", "load_node", "load_graph", "TaskgraphError", "SpecError", "PlanError", "ExecutionError"]
__version__ = "0.1.0"


def load(path: str | os.PathLike[str], overrides: list[str] | tuple[str, ...] = ()) -> Graph:
    """Read, validate and plan-check a graph file; errors name the file, line and column."""
    from taskgraph.plan.graph import make_plan
    from taskgraph.spec.loader import load_spec

    spec, source = load_spec(path, overrides)
    make_plan(spec, source)  # cycles and shared-module shapes are part of "valid"
    return spec


def plan_graph(spec: Graph) -> Plan:
    """Stages, topological order and critical path of a graph."""
    from taskgraph.plan.graph import make_plan

    return make_plan(spec)


def run(spec: Graph | str | os.PathLike[str], **options: Any) -> RunResult:
    """Train the graph on Ray (embedded local Ray unless ``address`` is given). See ``run_graph``."""
    from taskgraph.runner import run_graph

    if not hasattr(spec, "tasks"):
        spec = load(spec)  # type: ignore[arg-type]
    return run_graph(spec, **options)  # type: ignore[arg-type]


def load_node(run_dir: str | os.PathLike[str], node: str, *, device: Any = "cpu") -> TrainedNode:
    """A finished node's torch module (eval mode, trained and inherited weights) and its config.
    Its files are checked against their manifest; nothing is unpickled. See ``taskgraph.trained``."""
    from taskgraph.trained import load_node as _load_node

    return _load_node(run_dir, node, device=device)


def load_graph(run_dir: str | os.PathLike[str], *, device: Any = "cpu") -> TrainedGraph:
    """Every finished node of a run, as ``load_node`` gives them, in plan order."""
    from taskgraph.trained import load_graph as _load_graph

    return _load_graph(run_dir, device=device)

"""Node selection for ``--only``, ``--from``, ``--until`` and ``--force`` (pure, on the plan).

Syntax (comma-separated, like dbt's): ``name`` one node; ``name+`` the node and its descendants;
``+name`` the node and its ancestors; ``+name+`` both; shell patterns (``enc*``) match names;
``all`` or ``*`` every node.
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING

from taskgraph.errors import TaskgraphError
from taskgraph.spec.models import suggest

if TYPE_CHECKING:
    from taskgraph.plan.graph import Plan

__all__ = ["select", "ancestors", "descendants", "SelectionError"]


class SelectionError(TaskgraphError):
    """A selection names no node."""


def _closure(plan: Plan, start: set[str], direction: str) -> set[str]:
    out, stack = set(), list(start)
    while stack:
        node = stack.pop()
        for nxt in getattr(plan.nodes[node], direction):
            if nxt not in out:
                out.add(nxt)
                stack.append(nxt)
    return out


def ancestors(plan: Plan, nodes: set[str]) -> set[str]:
    return _closure(plan, nodes, "upstream")


def descendants(plan: Plan, nodes: set[str]) -> set[str]:
    return _closure(plan, nodes, "downstream")


def select(plan: Plan, expression: str | None, option: str = "--only") -> set[str]:
    """The set of node names an expression selects; an unknown name is an error with a suggestion."""
    if expression is None:
        return set()
    chosen: set[str] = set()
    for raw in (part.strip() for part in expression.split(",")):
        if not raw:
            continue
        if raw in ("all", "*"):
            chosen |= set(plan.order)
            continue
        up, down = raw.startswith("+"), raw.endswith("+")
        pattern = raw.strip("+")
        matched = {n for n in plan.order if fnmatch.fnmatchcase(n, pattern)}
        if not matched:
            raise SelectionError(f"{option} '{raw}': no node named '{pattern}'.{suggest(pattern, plan.order)}")
        chosen |= matched
        if up:
            chosen |= ancestors(plan, matched)
        if down:
            chosen |= descendants(plan, matched)
    return chosen

"""Which nodes a run must train and which it takes from the cache, and why.

Used by ``taskgraph run`` (to skip cached nodes), ``taskgraph status`` (to show what would run)
and ``taskgraph resume``. Reads the cache's index and checks each entry it counts as cached (a
damaged one is reported and evicted: ``artifacts.cache``); never imports Ray or torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskgraph.errors import TaskgraphError
from taskgraph.plan.keys import node_keys
from taskgraph.plan.select import ancestors, descendants, select

if TYPE_CHECKING:
    from taskgraph.artifacts.cache import NodeCache
    from taskgraph.plan.graph import Plan
    from taskgraph.spec.models import Graph

__all__ = ["Selection", "decide", "decide_and_load"]


@dataclass
class Selection:
    """The decision for every node: ``run``, ``cached`` or ``excluded`` (outside --only/--until)."""

    keys: dict[str, str]
    to_run: set[str] = field(default_factory=set)
    cached: set[str] = field(default_factory=set)
    excluded: set[str] = field(default_factory=set)
    reasons: dict[str, str] = field(default_factory=dict)

    def action(self, node: str) -> str:
        if node in self.to_run:
            return "run"
        return "cached" if node in self.cached else "excluded"


def decide(
    spec: Graph,
    plan: Plan,
    cache: NodeCache | None,
    *,
    only: str | None = None,
    from_: str | None = None,
    until: str | None = None,
    force: str | None = None,
) -> Selection:
    """Decide per node; a node to run whose upstream is neither run nor cached is an error."""
    keys = node_keys(spec, plan)
    selection = Selection(keys)
    targets = set(plan.order)
    if only:
        targets = select(plan, only, "--only")
    if until:
        chosen = select(plan, until, "--until")
        targets &= chosen | ancestors(plan, chosen)
    forced = select(plan, force, "--force")
    if from_:
        chosen = select(plan, from_, "--from")
        forced |= chosen | descendants(plan, chosen)
    last = cache.last_keys(spec.name) if cache is not None else {}
    sound: dict[str, bool] = {}

    def cached(name: str) -> bool:
        """A sound entry for the node's key; a damaged one is reported and evicted (once)."""
        key = keys[name]
        if key not in sound:
            damage = cache.check(key) if cache is not None and cache.present(key) else None
            if damage is not None:
                cache.evict(key, name, damage)  # type: ignore[union-attr]
            sound[key] = cache is not None and damage is None and cache.present(key)
        return sound[key]

    for name in plan.order:
        if name not in targets:
            selection.excluded.add(name)
            selection.reasons[name] = "not selected"
            continue
        key = keys[name]
        if name in forced:
            selection.to_run.add(name)
            selection.reasons[name] = "forced"
        elif cached(name):
            selection.cached.add(name)
            selection.reasons[name] = "cached"
        else:
            selection.to_run.add(name)
            if cache is not None and key in cache.evicted:
                selection.reasons[name] = "cached result damaged: evicted"
            elif name not in last:
                selection.reasons[name] = "never run" if cache is not None else "cache off"
            elif last[name] == key:
                selection.reasons[name] = "not finished"  # same key, no result: interrupted or failed
            else:
                changed = [up for up in plan.nodes[name].upstream if up in selection.to_run]
                selection.reasons[name] = f"upstream {', '.join(changed)} reruns" if changed else "config, data or code changed"
    # Upstream of a selected node but not selected itself: usable when cached (e.g. --only c).
    for name in reversed(plan.order):
        if name in selection.excluded and cached(name):
            if any(c in selection.to_run or c in selection.cached for c in plan.nodes[name].downstream):
                selection.excluded.discard(name)
                selection.cached.add(name)
                selection.reasons[name] = "cached (upstream of a selected node)"
    for name in sorted(selection.to_run):
        for up in plan.nodes[name].upstream:
            if up not in selection.to_run and up not in selection.cached:
                raise TaskgraphError(
                    f"node '{name}' needs upstream '{up}', which is not selected and has no cached result. "
                    f"Select it too (e.g. --only +{name}) or run the whole graph once."
                )
    return selection


def decide_and_load(
    spec: Graph, plan: Plan, cache: NodeCache | None, inputs: dict[str, set[str]], **select: str | None
) -> tuple[Selection, dict[str, Any]]:
    """``decide``, then read the cached states that the nodes to run inherit (``inputs``: node ->
    upstream nodes whose parameters it takes), each checked against its digest as it is read.

    A damaged one is evicted and the decision made again, so that node is recomputed and no node
    ever receives damaged weights. Returns the selection and ``{cached upstream: state}``.
    """
    from taskgraph.artifacts.manifest import DamagedArtifact

    while True:
        selection = decide(spec, plan, cache, **select)
        given: dict[str, Any] = {}
        for name in sorted({up for n in selection.to_run for up in inputs[n]} & selection.cached):
            try:
                given[name] = cache.load_state(selection.keys[name])  # type: ignore[union-attr]
            except DamagedArtifact as damage:
                cache.evict(selection.keys[name], name, damage)  # type: ignore[union-attr]
                break  # decide again: the evicted node now runs
        else:
            return selection, given

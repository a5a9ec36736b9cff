"""Planning is pure and stable: stages, order and critical path from the spec alone."""

from __future__ import annotations

import json

from taskgraph.plan import make_plan
from taskgraph.spec import parse_spec

DIAMOND = """
name: diamond
data:
  shapes: {loader: synthetic_shapes, n: 100, dim: 8}
defaults:
  train: {epochs: 1}
tasks:
  root: {data: shapes, cost: 2, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 4}}, loss: {type: cross_entropy, target: label}}
  left: {data: shapes, cost: 10, depends_on: {root: {share: [encoder]}}, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 4}}, loss: {type: cross_entropy, target: label}}
  right: {data: shapes, cost: 3, depends_on: [root], modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 1}}, loss: {type: mse, target: parity}}
  join: {data: shapes, cost: 1, depends_on: [left, right], modules: {head: {type: linear, in: 8, out: 1}}, loss: {type: mse, target: parity}}
  lone: {data: shapes, cost: 4, modules: {head: {type: linear, in: 8, out: 1}}, loss: {type: mse, target: parity}}
"""


def plan_of(text: str):
    spec, source = parse_spec(text, file="diamond.yaml")
    return make_plan(spec, source)


def test_stages_are_topological_generations_sorted_by_name():
    plan = plan_of(DIAMOND)
    assert plan.stages == (("lone", "root"), ("left", "right"), ("join",))
    assert plan.order.index("root") < plan.order.index("left") < plan.order.index("join")
    assert plan.nodes["join"].upstream == ("left", "right")


def test_critical_path_follows_declared_costs():
    plan = plan_of(DIAMOND)
    assert plan.critical_path == ("root", "left", "join")
    assert plan.critical_cost == 13.0
    assert plan.total_cost == 20.0
    assert plan.nodes["left"].on_critical_path and not plan.nodes["right"].on_critical_path
    # make the right branch heavier: the path moves
    plan = plan_of(DIAMOND.replace("cost: 3,", "cost: 30,"))
    assert plan.critical_path == ("root", "right", "join")


def test_plan_is_reproducible_and_json_serialisable():
    a, b = plan_of(DIAMOND).to_dict(), plan_of(DIAMOND).to_dict()
    assert a == b
    assert json.loads(json.dumps(a))["critical_path"] == ["root", "left", "join"]


def test_cost_defaults_to_epochs():
    plan = plan_of(DIAMOND.replace(" cost: 4,", "").replace("defaults:\n  train: {epochs: 1}", "defaults:\n  train: {epochs: 7}"))
    assert plan.nodes["lone"].cost == 7.0


def test_order_and_stages_are_networkxs_on_random_dags():
    """make_plan orders without networkx (it cost ~0.3 s of every command): the lexicographic order
    and the stages are networkx's own on random DAGs, empty and single-node ones included."""
    import random

    import networkx as nx

    from taskgraph.plan.graph import _lexicographic_order, _stages

    for seed in range(200):
        rng = random.Random(seed)
        names = [f"t{rng.randint(0, 999):03d}_{i}" for i in range(rng.randint(0, 30))]
        upstream = {name: tuple(sorted(set(rng.sample(names[:i], min(i, rng.randint(0, 3))))))
                    for i, name in enumerate(names)}
        upstream = dict(sorted(upstream.items()))
        downstream: dict[str, list[str]] = {name: [] for name in upstream}
        for name, ups in upstream.items():
            for up in ups:
                downstream[up].append(name)
        graph = nx.DiGraph()
        graph.add_nodes_from(upstream)
        graph.add_edges_from((up, name) for name, ups in upstream.items() for up in ups)
        order = _lexicographic_order(upstream, downstream)
        assert order == tuple(nx.lexicographical_topological_sort(graph)), seed
        assert _stages(upstream, order) == tuple(tuple(sorted(g)) for g in nx.topological_generations(graph)), seed

"""Planning layer: no Ray or torch; networkx only to name a cycle and for `build_graph` (imported lazily)."""

from taskgraph.plan.graph import Plan, NodePlan, build_graph, check_graph, make_plan, module_dims, node_cost

__all__ = ["Plan", "NodePlan", "build_graph", "check_graph", "make_plan", "module_dims", "node_cost"]

"""Planning layer: networkx only (imported lazily), no Ray or torch."""

from taskgraph.plan.graph import Plan, NodePlan, build_graph, check_graph, make_plan, module_dims, node_cost

__all__ = ["Plan", "NodePlan", "build_graph", "check_graph", "make_plan", "module_dims", "node_cost"]

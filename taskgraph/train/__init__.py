"""Training layer (torch): module/loss/metric/loader registries and the loop that trains one node."""

from taskgraph.train.loop import Inheritance, NodeOutput, NodeRequest, node_seed, train_node

__all__ = ["Inheritance", "NodeOutput", "NodeRequest", "node_seed", "train_node"]

"""``taskgraph serve``: a finished run's nodes behind one HTTP endpoint on Ray Serve.

- ``options``: which nodes, how many replicas, GPUs and batch sizes (command line over the graph
  file's ``serve:`` section over built-in defaults). Pure: no Ray or torch.
- ``codec``: JSON requests to arrays and answers back to JSON, with one-line errors (HTTP 400).
- ``deployments``: the Ray Serve deployments: one per node (dynamic batching with ``@serve.batch``)
  and the ingress router that fans a request out to the nodes it names (model composition).
- ``app``: start, address and stop the application on the embedded local Ray or a cluster.
"""

from taskgraph.serve.options import DEFAULTS, NodeDeployment, node_deployments

__all__ = ["DEFAULTS", "NodeDeployment", "node_deployments"]

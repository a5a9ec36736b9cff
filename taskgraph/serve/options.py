"""What each node's deployment gets: the command line over the graph file's ``serve:`` section.

Precedence, field by field: a command-line flag (applies to every served node), the node's entry
under ``serve.nodes``, the section's own value, ``DEFAULTS``. Pure: no Ray, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskgraph.spec.serving import Deployment

__all__ = ["NodeDeployment", "DEFAULTS", "node_deployments"]

#: Built-in values: one replica per node on one CPU, batches of up to 32 examples gathered for 5 ms
#: (long enough to merge concurrent requests, short beside a request's own latency over HTTP).
DEFAULTS = Deployment(replicas=1, cpus=1.0, gpus=0.0, max_batch_size=32, batch_wait_ms=5.0)
_FIELDS = ("replicas", "cpus", "gpus", "max_batch_size", "batch_wait_ms")


@dataclass(frozen=True)
class NodeDeployment:
    """One served node: Ray Serve replicas, resources per replica and its dynamic batching."""

    node: str
    replicas: int
    cpus: float
    gpus: float
    max_batch_size: int
    batch_wait_ms: float

    def ray_actor_options(self) -> dict[str, Any]:
        return {"num_cpus": self.cpus, "num_gpus": self.gpus}


def node_deployments(nodes: list[str], section: Any = None, flags: Deployment | None = None) -> dict[str, NodeDeployment]:
    """The deployment of each node in ``nodes`` (``section``: the graph's ``serve:``, or None)."""
    flags = flags or Deployment()
    out = {}
    for node in nodes:
        layers = [flags, (section.nodes.get(node) if section else None), section, DEFAULTS]
        values = {f: next(getattr(layer, f) for layer in layers if layer is not None and getattr(layer, f) is not None)
                  for f in _FIELDS}
        out[node] = NodeDeployment(node, **values)
    return out

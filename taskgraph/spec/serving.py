"""The graph file's optional ``serve:`` section: how ``taskgraph serve`` deploys the trained nodes.

```yaml
serve:
  replicas: 1            # per node deployment (Ray Serve replicas)
  cpus: 1                # per replica
  gpus: 0                # per replica; fractions pack several replicas on one GPU
  max_batch_size: 32     # examples per forward pass (dynamic batching)
  batch_wait_ms: 5       # how long a replica waits to fill a batch
  nodes:                 # per-node overrides of the values above
    chunk: {replicas: 2, gpus: 0.5}
```

Serving settings change where a node runs, never what it learned: they are not in any cache key
(the section is graph-level, not part of a task), and command-line flags override them.
"""

from __future__ import annotations

from pydantic import Field

from taskgraph.spec.base import Frozen

__all__ = ["Deployment", "ServeSection"]


class Deployment(Frozen):
    """One node's deployment; unset values come from the section's own (then the built-in defaults)."""

    replicas: int | None = Field(None, ge=1, description="Ray Serve replicas of the node.")
    cpus: float | None = Field(None, ge=0.0, description="CPUs each replica reserves.")
    gpus: float | None = Field(None, ge=0.0, description="GPUs each replica reserves (fractions share one).")
    max_batch_size: int | None = Field(None, ge=1, description="Most examples in one batched forward pass.")
    batch_wait_ms: float | None = Field(None, ge=0.0, description="Milliseconds a replica waits to fill a batch.")


class ServeSection(Deployment):
    """Defaults for every node deployment, and per-node overrides under ``nodes`` (names checked
    against ``tasks`` by the graph)."""

    nodes: dict[str, Deployment] = Field(default_factory=dict)

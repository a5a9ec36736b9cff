"""What an autoscaling cluster could add: the node types Ray records, and whether an autoscaler runs.

A GPU worker group that scales from zero has no Ray node until something asks for a GPU, so a
check against the live nodes alone would refuse every GPU node of such a cluster. Two things
Ray 2.60 says about the autoscaler:

- its node types (``ray._private.state.state.get_cluster_config()``: the ``ClusterConfig`` an
  autoscaler reports to the GCS, with each node group's resources and max count; Ray Data reads
  the same record to know what a cluster can grow to). With them, a node that fits a type waits
  for a scale-up of that type, and one that fits none is refused at once;
- that one runs at all: v2 reports its state to the GCS (``GetClusterStatus``), v1 writes its
  status to the internal KV (``__autoscaling_status``); both name each node's type, and only the
  read-only monitor every plain cluster runs names them ``node_<id>``. An autoscaler that did not
  publish its types (Ray's own v1 and v2 do not) gets the benefit of the doubt: the node waits.

Everything here is best effort: a cluster Ray cannot describe is checked against its live nodes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NodeType", "Autoscaling", "autoscaling"]


@dataclass(frozen=True)
class NodeType:
    """One node group the autoscaler can launch."""

    name: str
    resources: dict[str, float] = field(default_factory=dict)
    max_count: int = -1  # -1: no limit

    def describe(self) -> str:
        res = ", ".join(f"{k} {v:g}" for k, v in sorted(self.resources.items()) if k in ("CPU", "GPU") or v)
        most = "no limit" if self.max_count < 0 else f"up to {self.max_count}"
        return f"{self.name} ({res}; {most})"


@dataclass(frozen=True)
class Autoscaling:
    """What the live cluster says about growing: its launchable node types, and whether it can grow."""

    node_types: tuple[NodeType, ...] = ()
    running: bool = False  # an autoscaler reports to this cluster (with or without its node types)

    @property
    def can_grow(self) -> bool:
        return self.running or any(t.max_count != 0 for t in self.node_types)


def _node_types() -> tuple[NodeType, ...]:
    import ray._private.state

    config = ray._private.state.state.get_cluster_config()
    if config is None:
        return ()
    return tuple(
        NodeType(g.name, {k: float(v) for k, v in g.resources.items()}, int(g.max_count))
        for g in config.node_group_configs if g.max_count != 0
    )


#: The node type Ray's read-only "autoscaler" gives each node of a cluster nobody scales (every
#: plain ``ray start``/``ray.init`` cluster runs one): ``node_<node id>`` (``format_readonly_node_type``).
_READ_ONLY_TYPE = re.compile(r"node_[0-9a-f]+")


def _autoscaler_running() -> bool:
    """True when a real autoscaler reports to this cluster: node types with names of their own."""
    import json

    import ray
    from ray.core.generated.autoscaler_pb2 import GetClusterStatusReply
    from ray.experimental.internal_kv import _internal_kv_get

    names: set[str] = set()
    try:  # autoscaler v1 writes its status here every update
        status = json.loads(_internal_kv_get("__autoscaling_status") or b"{}")
        report = status.get("autoscaler_report") or {}
        names |= set(report.get("active_nodes") or {}) | set(report.get("idle_nodes") or {})
        names |= set(report.get("pending_launches") or {})
    except Exception:  # noqa: BLE001
        pass
    try:  # v2 reports its state to the GCS
        reply = GetClusterStatusReply()
        reply.ParseFromString(ray._private.worker.global_worker.gcs_client.get_cluster_status(timeout_s=5))
        names |= {n.ray_node_type_name for n in reply.cluster_resource_state.node_states}
        names |= {p.ray_node_type_name for p in reply.autoscaling_state.pending_instances}
    except Exception:  # noqa: BLE001
        pass
    return any(name and not _READ_ONLY_TYPE.fullmatch(name) for name in names)


def autoscaling() -> Autoscaling:
    """Ask the connected Ray; a cluster that cannot say is one that does not grow."""
    try:
        types = _node_types()
    except Exception:  # noqa: BLE001 -- an older GCS, Ray Client: no types known
        types = ()
    try:
        running = _autoscaler_running()
    except Exception:  # noqa: BLE001
        running = False
    return Autoscaling(types, running)


def fitting_types(need: dict[str, float], scaling: Any) -> list[NodeType]:
    """The node types one unit of ``need`` fits on, largest limit first."""
    fits = [t for t in scaling.node_types
            if all(t.resources.get(k, 0.0) + 1e-9 >= v for k, v in need.items() if v > 0)]
    return sorted(fits, key=lambda t: (t.max_count >= 0, -t.max_count, t.name))

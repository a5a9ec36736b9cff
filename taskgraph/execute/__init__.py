"""Execution layer (Ray): connect to a cluster and run a graph's nodes with a ready-set scheduler."""

from taskgraph.execute.cluster import RaySession, connect
from taskgraph.execute.scheduler import NodeJob, NodeRecord, run_jobs

__all__ = ["RaySession", "connect", "NodeJob", "NodeRecord", "run_jobs"]

"""Chains of nodes that run in one Ray task: each node's only child, whose only upstream it is.

In such a chain a child can start only when its parent hands its state on, and nothing else waits
for that state, so separate tasks buy no parallelism: they cost a trip through the driver, a task to
schedule and a worker to find on every link (27 ms a link on a 2-core machine, against 12 ms for
plain Ray tasks passing refs; the training itself took 7). One task runs the chain instead
(``stream.execute_chain``) and hands each state on in process, the way Dask fuses linear chains of
its task graphs (``dask.optimization.fuse_linear``). Each node keeps its own record, files, progress
and retries; only nodes that ask Ray for the same resources are chained.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

__all__ = ["linear_chains"]


class _Job(Protocol):
    name: str
    upstream: tuple[str, ...]


def linear_chains(
    jobs: Iterable[_Job], same_task: Callable[[_Job, _Job], bool] = lambda a, b: True,
) -> dict[str, tuple[str, ...]]:
    """Every job's chain, keyed by the chain's first job: the jobs that follow it, each the only child
    of the one before and with no other upstream job, and ``same_task(parent, child)`` (they ask for the
    same resources). A job in no longer chain is a chain of one. Upstream nodes that are not jobs
    (cached: their state is given) do not count."""
    jobs = list(jobs)
    by_name = {job.name: job for job in jobs}
    children: dict[str, list[str]] = {}
    for job in jobs:
        for up in job.upstream:
            children.setdefault(up, []).append(job.name)

    def follower(name: str) -> str | None:
        kids = children.get(name, [])
        if len(kids) != 1:
            return None
        child = by_name[kids[0]]
        return child.name if child.upstream == (name,) and same_task(by_name[name], child) else None

    followers = {f for f in map(follower, by_name) if f is not None}
    chains: dict[str, tuple[str, ...]] = {}
    for job in jobs:
        if job.name in followers:
            continue
        chain, name = [job.name], follower(job.name)
        while name is not None:
            chain.append(name)
            name = follower(name)
        chains[job.name] = tuple(chain)
    return chains

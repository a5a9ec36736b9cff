"""Shared fixtures. One real local Ray per test session: ``ray.init`` costs seconds, so share it."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "token")  # as taskgraph's embedded Ray: token auth, no warning
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def warm_workers(n: int = 2) -> None:
    """Start ``n`` worker processes with torch and the trainer imported (seconds on a busy machine),
    so tests that compare timings measure scheduling, not a cold worker's imports."""
    import ray

    @ray.remote(num_cpus=1)
    def warm() -> None:
        import time

        import taskgraph.train.loop  # noqa: F401

        time.sleep(0.3)

    ray.get([warm.remote() for _ in range(n)])


@pytest.fixture
def ray_warm(ray_local):
    """The shared Ray, with warm workers (an earlier test may have killed one)."""
    warm_workers()
    return ray_local


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray with 2 CPUs (as CI has), shared by every test that needs one."""
    import logging

    import ray

    if not ray.is_initialized():
        from taskgraph.execute.cluster import start_with_retry

        start_with_retry(  # a busy CI machine can miss Ray's fixed 30 s startup window once
            lambda: ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False),
            cleanup=ray.shutdown,
        )

        warm_workers()
    yield ray
    ray.shutdown()


@pytest.fixture
def ray_address(ray_local) -> str:
    """The shared Ray's GCS address, for a child driver that joins it with ``--address`` (seconds
    instead of a Ray of its own; the child inherits RAY_AUTH_MODE and the token file from here)."""
    return ray_local.get_runtime_context().gcs_address


@pytest.fixture
def write_graph(tmp_path: Path):
    """Write a graph file from an indented YAML string; returns its path."""

    def write(text: str, name: str = "graph.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


#: A small, fast graph used by many tests: 400 synthetic examples, one epoch per node.
TINY_DATA = "shapes: {loader: synthetic_shapes, n: 400, dim: 16, classes: 4}"


@pytest.fixture(scope="session")
def served_run(ray_local, tmp_path_factory) -> Path:
    """tests/served_graph.py's tiny graph, trained once for the export and serve tests."""
    from tests.served_graph import train_served

    return train_served(tmp_path_factory.mktemp("served"))

"""The cluster tests' shared loopback cluster (tests/execute/loopback.py says why there is one)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.execute.loopback import local_cluster, start_readme_cluster, stop_readme_cluster


@pytest.fixture(scope="session")
def readme_cluster(tmp_path_factory):
    """A user's project folder and the cluster README's start line started in it (stopped by its
    stop line at the end, or earlier by test_cluster_node_loss.py, its last user)."""
    project = start_readme_cluster(tmp_path_factory.mktemp("project"), tmp_path_factory.mktemp("home"))
    try:
        yield project
    finally:
        stop_readme_cluster(project)


@pytest.fixture(scope="session")
def cluster(request):
    """The shared cluster as tests/execute/test_cluster.py drives it: its state (address, dashboard,
    nodes with their ids) and a driver environment with the token file."""
    if shutil.which("ray") is None and not Path(sys.executable).with_name("ray").exists():
        pytest.skip("the `ray` command is not installed")
    project = request.getfixturevalue("readme_cluster")
    state = project["state"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(local_cluster.client_env(state), RAY_USAGE_STATS_ENABLED="0")
    return {**state, "env": env, "state_dir": project["dir"] / ".cluster"}

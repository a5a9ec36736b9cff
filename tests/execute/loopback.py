"""The loopback cluster the cluster tests share: started and stopped by README's own lines (section
"A multi-node cluster on one machine"), in a clean environment, once per test session.

A cluster start costs half a minute on 2 cores, so tests/execute/test_cluster.py,
test_cluster_client.py and test_cluster_node_loss.py (which takes a node away, so it runs last,
and stops the cluster when it is done) use this one. Every command runs in a child process whose
environment is PATH, PYTHONPATH and a scratch HOME (so no ``~/.ray/auth_token`` of this machine is
found) plus what the test names.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_block(heading: str) -> list[str]:
    """The lines of the first ```bash block after ``heading`` in README (comments kept: bash skips them)."""
    after = README[README.index(heading):]
    block = re.search(r"```bash\n(.*?)```", after, re.S)
    assert block, f"no bash block after {heading!r}"
    return [line for line in block.group(1).splitlines() if line.strip()]


LOOPBACK = readme_block("### A multi-node cluster on one machine (no Docker)")


def _load_local_cluster():
    spec = importlib.util.spec_from_file_location("local_cluster_loopback", ROOT / "scripts" / "local_cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


local_cluster = _load_local_cluster()


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """What a fresh shell has: the Python that has taskgraph and Ray on PATH, this checkout first."""
    return {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(home),
            **extra}


def sh(script: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """``script`` in bash with errexit; a hang becomes a failure (TimeoutExpired), never a long wait."""
    return subprocess.run(["bash", "-c", "set -eo pipefail\n" + script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def start_readme_cluster(folder: Path, home: Path) -> dict:
    """A user's project folder (the repository's scripts and graphs) and a cluster started in it by
    README's start line: {"dir", "home", "env", "state"}."""
    start, stop = LOOPBACK[0], LOOPBACK[-1]
    assert start.startswith("scripts/local_cluster.sh start") and stop.strip() == "scripts/local_cluster.sh stop"
    (folder / "scripts").symlink_to(ROOT / "scripts")
    shutil.copytree(ROOT / "graphs", folder / "graphs")  # shipped with `submit`: a real folder, as in a clone
    env = clean_env(home)
    project = {"dir": folder, "home": home, "env": env}
    try:
        up = sh(start, folder, env, timeout=900)  # retries on a busy machine take minutes
        assert up.returncode == 0, up.stdout + up.stderr
        return {**project, "state": json.loads((folder / ".cluster" / "cluster.json").read_text())}
    except BaseException:  # a start that failed or hung: end what it started
        stop_readme_cluster(project)
        raise


def stop_readme_cluster(project: dict) -> None:
    """README's stop line; nothing to do when it has run already (``stop`` without a cluster is a no-op)."""
    sh(LOOPBACK[-1], project["dir"], project["env"], timeout=120)


def current_state(project: dict) -> dict:
    """cluster.json as it is now (``join`` adds nodes to it)."""
    return json.loads((project["dir"] / ".cluster" / "cluster.json").read_text())

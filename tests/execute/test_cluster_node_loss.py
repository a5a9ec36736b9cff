"""A worker node killed mid-run (SIGKILL of its raylet and all it started, as a machine that dies):
the node it ran is retried on another node and the run finishes.

It takes a node away, so it runs after every other test of the session's loopback cluster (this
file sorts after test_cluster.py and test_cluster_client.py) and stops the cluster when done.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.execute.loopback import current_state, local_cluster, stop_readme_cluster
from tests.execute.test_cluster import ROOT, only_run, write

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def last_use(cluster, readme_cluster):
    """The shared cluster, stopped after this module: nothing uses it later, so it frees the machine."""
    yield cluster
    stop_readme_cluster(readme_cluster)


#: ``long`` trains until the file HOLD is removed (tests/faults.py ``HoldWhile``): killed mid-training
#: for sure, then its retry runs at full speed.
LONG = """
name: long
defaults: {train: {epochs: 2, batch_size: 16}}
data:
  shapes: {loader: synthetic_shapes, n: 2000, dim: 32, classes: 4}
tasks:
  long:
    data: shapes
    modules:
      encoder: {type: mlp, in: 32, hidden: [64, 64]}
      wait: {type: "tests.faults:HoldWhile", path: HOLD, out: 64}
      head: {type: linear, out: 4}
    loss: {type: cross_entropy, target: label}
"""


def test_worker_killed_mid_run_is_retried_on_another_node(last_use, readme_cluster, tmp_path):
    cluster = last_use
    hold = tmp_path / "hold-long"
    hold.write_text("")
    graph = write(tmp_path / "long.yaml", LONG.replace("HOLD", str(hold)))
    runs = tmp_path / "runs"
    driver = subprocess.Popen(  # from the checkout: its workers import tests.faults
        [sys.executable, "-m", "taskgraph", "run", str(graph), "--address", cluster["address"], "--run-dir", str(runs)],
        env=cluster["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )
    try:
        deadline, marker = time.time() + 120, None
        while time.time() < deadline and marker is None and driver.poll() is None:
            found = sorted(runs.glob("long/*/long/attempts/*.json"))
            marker = json.loads(found[0].read_text()) if found and Path(f"{hold}.reached").exists() else None
            time.sleep(0.1)
        assert marker, "the node never started training: " + ("" if driver.poll() is None else driver.stdout.read())
        state = current_state(readme_cluster)  # gpu0, cpu0 and any host that joined meanwhile
        victim = next(name for name in state["nodes"] if name != "head"
                      and marker["pid"] in local_cluster.cluster_pids(state, name))
        assert local_cluster.kill_node(state, victim)
        hold.unlink()  # the retry trains at full speed
        output, _ = driver.communicate(timeout=240)
    finally:
        driver.kill()
        hold.unlink(missing_ok=True)
    assert driver.returncode == 0, output
    run = json.loads((only_run(runs) / "run.json").read_text())
    node = run["nodes"]["long"]
    dead = state["nodes"][victim]["node_id"]
    assert node["status"] == "done" and node["node_id"] != dead
    tries = [a["node_id"] for a in node["attempts"]]
    assert tries[0] == dead and tries[-1] == node["node_id"] and len(tries) >= 2

"""The warm local Ray (``taskgraph run --warm``, ``taskgraph warm ...``): started once, reused by later
runs, never joined by accident, stopped when idle or asked, and runs give the same artifacts on it.

Each test has its own warm folder (``TASKGRAPH_WARM_DIR``), so the user's own warm Ray and other test
sessions are never touched; the end-to-end test starts two warm Rays, one per folder, the second
once the first is up (their ports are picked free by Ray and the OS, as an embedded Ray's: never in
the loopback cluster's port blocks).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import pytest

from taskgraph.cli import main
from taskgraph.execute.warmray import state
from tests.test_incremental import hold_b

ROOT = Path(__file__).resolve().parents[2]

TINY = """
name: tiny
data:
  shapes: {loader: synthetic_shapes, n: 200, dim: 8, classes: 4}
defaults:
  train: {epochs: 1, batch_size: 64}
tasks:
  a: {data: shapes, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 4}}, loss: {type: cross_entropy, target: label}}
  b: {data: shapes, depends_on: {a: {share: [encoder]}}, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 1}}, loss: {type: mse, target: parity}}
"""

#: TINY plus a node that fails and one that says where its worker runs: a second run on the warm Ray
#: (one run, not two: each run on it pays its own workers' start).
BOOM = TINY + """
  boom: {data: shapes, modules: {boom: {type: "tests.faults:Explode", in: 8, out: 8}, head: {type: linear, out: 4}}, loss: {type: cross_entropy, target: label}}
  where: {data: shapes, modules: {where: {type: "cwdprobe:Where", in: 8, out: 8}, head: {type: linear, out: 4}}, loss: {type: cross_entropy, target: label}}
"""

#: A user module in the run's working directory that writes, from a worker's training step, where that
#: worker runs: a relative path in user code must mean the same with and without --warm.
CWDPROBE = """
import os
from pathlib import Path

from torch import nn


class Where(nn.Module):
    def __init__(self, in_features=None, out=None):
        super().__init__()

    def forward(self, x):
        Path("worker-cwd.txt").write_text(os.getcwd())
        return x
"""


def record(folder: Path, **changes) -> state.WarmRay:
    """A warm record as the keeper writes it, with ``changes``."""
    now = time.time()
    ray = state.WarmRay(address="127.0.0.1:9", session_dir="/tmp/none", temp_dir="/tmp/none", pid=1,
                        pid_started="0", job_id="01000000", num_cpus=2.0, num_gpus=0.0, idle_s=900.0, started_at=now,
                        idle_since=now, python=sys.executable, ray_version="2.60.0", cuda_visible_devices=None)
    ray = state.WarmRay(**{**asdict(ray), **changes})
    state.write(folder, ray)
    return ray


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def warm_env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "TASKGRAPH_WARM")}
    env.update(TASKGRAPH_WARM_DIR=str(folder), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    return env


def cli(folder: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "taskgraph", *args], capture_output=True, text=True, cwd=cwd,
                          env=warm_env(folder), timeout=900)


def run_json(runs: Path, graph: str) -> dict:
    return json.loads(sorted((runs / graph).glob("*/run.json"))[-1].read_text())


def same(ray: state.WarmRay | None, other: state.WarmRay) -> bool:
    """The same head (its idle clock aside, which runs move)."""
    return ray is not None and (ray.pid, ray.address, ray.session_dir) == (other.pid, other.address, other.session_dir)


def alive(ray: state.WarmRay) -> bool:
    return state.process_start(ray.pid) == ray.pid_started


# --- no Ray needed ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["--address", "RAY_ADDRESS", "TASKGRAPH_WARM"])
def test_warm_with_a_cluster_address_is_one_line_and_joins_nothing(how, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TASKGRAPH_WARM_DIR", str(tmp_path / "warm"))
    args = ["run", str(ROOT / "graphs" / "quickstart.yaml"), "--run-dir", str(tmp_path / "runs")]
    if how == "--address":
        args += ["--warm", "--address", "127.0.0.1:6379"]
    elif how == "RAY_ADDRESS":
        monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
        args += ["--warm"]
    else:
        monkeypatch.setenv("TASKGRAPH_WARM", "1")
        args += ["--address", "127.0.0.1:6379"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    given = "RAY_ADDRESS" if how == "RAY_ADDRESS" else "--address"
    assert err == (f"error: --warm (or TASKGRAPH_WARM) runs on taskgraph's warm local Ray, and {given} names a "
                   "cluster (127.0.0.1:6379): drop one of them (--no-warm runs on the cluster).")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "warm" / state.STATE).exists()


def test_a_stale_record_is_said_and_removed_and_only_its_own_keeper_is_ended(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "warm"
    folder.mkdir()
    monkeypatch.setenv("TASKGRAPH_WARM_DIR", str(folder))
    gone = record(folder, pid=dead_pid())
    assert main(["warm", "status"]) == 0
    out = capsys.readouterr().out
    assert f"the warm Ray recorded in {folder} was gone (its keeper (pid {gone.pid}) is no longer running)" in out
    assert "no warm Ray is up" in out and not (folder / state.STATE).exists()
    # A keeper that runs but whose head no longer answers is ended: it is ours (same pid and start time).
    keeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record(folder, pid=keeper.pid, pid_started=state.process_start(keeper.pid), address="127.0.0.1:9")
        assert main(["warm", "stop"]) == 0
        assert "no warm Ray was up (its record was stale: nothing answers at 127.0.0.1:9" in capsys.readouterr().out
        assert keeper.wait(timeout=10) == -signal.SIGTERM
        # The same pid with another start time is another process: left alone.
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        record(folder, pid=other.pid, pid_started="1")
        assert main(["warm", "status"]) == 0
        assert f"its keeper (pid {other.pid}) is no longer running" in capsys.readouterr().out
        assert other.poll() is None
        other.kill()
    finally:
        keeper.kill()


def test_durations():
    assert [state.parse_duration(t) for t in ("90", "90s", "15m", "1.5h", "2d")] == [90, 90, 900, 5400, 172800]
    with pytest.raises(Exception, match=r"--idle 'soon': expected a duration such as 90s, 15m or 2h"):
        state.parse_duration("soon")
    with pytest.raises(Exception, match="at least 1 s"):
        state.parse_duration("0s")


# --- a real warm Ray ----------------------------------------------------------------------------


def digests(run_dir: Path) -> dict[str, str]:
    return {node.name: json.loads((node / "manifest.json").read_text())["params.safetensors"]["sha256"]
            for node in sorted(run_dir.iterdir()) if (node / "manifest.json").exists()}


def _stop_left(folder: Path) -> None:
    left = state.read(folder)
    if left is not None and alive(left):
        os.kill(left.pid, signal.SIGTERM)  # its Ray's processes end with it


@pytest.fixture
def folder(tmp_path):
    """This test's warm folder; whatever warm Ray is left in it at the end is stopped (by its pid)."""
    folder = tmp_path / "warm"
    folder.mkdir()
    yield folder
    _stop_left(folder)


@pytest.fixture
def beside(tmp_path):
    """Another warm folder and a thread that drives it while the test goes on: a warm Ray's start is
    seconds of Ray's own start, so two of them overlap instead of adding up. At the end the thread is
    waited for and whatever warm Ray is left in that folder is stopped (by its pid)."""
    other = tmp_path / "warm-beside"
    other.mkdir()
    pool = ThreadPoolExecutor(1)
    try:
        yield other, pool
    finally:
        pool.shutdown(wait=True)
        _stop_left(other)


@pytest.mark.slow
def test_runs_share_one_warm_ray_until_it_is_idle(ray_local, folder, beside, write_graph, tmp_path):
    """Stale record -> a fresh head; a second run reuses it (same session, not started again) with
    the same artifacts as an embedded run; other resources, a failed run, Ctrl-C-free idle: a run in
    progress outlives a 1 s idle time, then the unused head stops itself. Meanwhile, in another
    folder, `warm start`, `status` and `stop` drive a warm Ray of their own (``start_status_stop``)."""
    runs = tmp_path / "runs"
    tiny, boom = write_graph(TINY), write_graph(BOOM, "boom.yaml")
    gone = record(folder, pid=dead_pid())

    first = cli(folder, "run", str(tiny), "--warm", "--run-dir", "runs", "--plain", cwd=tmp_path)  # relative
    assert first.returncode == 0, first.stdout + first.stderr
    assert (f"the warm Ray recorded in {folder} is gone (its keeper (pid {gone.pid}) is no longer running): "
            "starting a fresh one") in first.stderr
    assert "started a warm Ray at " in first.stderr
    warm = state.read(folder)
    assert warm is not None and alive(warm) and warm.num_cpus >= 1
    ray1 = run_json(runs, "tiny")["ray"]  # the workers wrote under the run's working directory, not the keeper's
    assert ray1 == {"address": warm.address, "nodes": 1, "warm": {
        "session_dir": warm.session_dir, "keeper_pid": warm.pid, "started_by_this_run": True}}
    other, pool = beside  # started once this warm Ray is up: two Ray starts at once could pick the same free port
    (tmp_path / "beside").mkdir()
    commands = pool.submit(start_status_stop, other, tmp_path / "beside")

    # The second run: TINY again (retrained: --no-cache) beside a node that fails and one that probes its cwd.
    (tmp_path / "cwdprobe.py").write_text(CWDPROBE)
    second = cli(folder, "run", str(boom), "--warm", "--run-dir", "runs", "--plain", "--no-cache", cwd=tmp_path)
    assert second.returncode == 2 and "1 node(s) failed: boom" in second.stderr, second.stdout + second.stderr
    assert "warm Ray" not in second.stderr  # nothing started, nothing stale
    ray2 = run_json(runs, "tiny")
    assert ray2["ray"] == {**ray1, "warm": {**ray1["warm"], "started_by_this_run": False}}
    assert {n: ray2["nodes"][n]["status"] for n in ("a", "b", "boom", "where")} == {
        "a": "done", "b": "done", "boom": "failed", "where": "done"}
    assert (tmp_path / "worker-cwd.txt").read_text() == str(tmp_path)  # not the keeper's folder
    assert same(state.read(folder), warm) and alive(warm)  # a failed run leaves it up too
    assert main(["run", str(tiny), "--run-dir", str(tmp_path / "embedded"), "--no-cache"]) == 0  # the suite's Ray
    embedded = sorted((tmp_path / "embedded" / "tiny").iterdir())[-1]
    on_warm = digests(tmp_path / ray2["run_dir"])
    assert {n: on_warm[n] for n in ("a", "b")} == digests(embedded) and len(digests(embedded)) == 2

    other = cli(folder, "run", str(tiny), "--warm", "--num-cpus", "7", "--run-dir", "runs", "--no-cache", cwd=tmp_path)
    assert other.returncode == 2
    assert other.stderr.strip() == (
        f"error: the warm Ray at {warm.address} has {warm.num_cpus:g} CPUs and this run asks for --num-cpus 7: run "
        f"without --num-cpus (to use its {warm.num_cpus:g}), or `taskgraph warm stop`, then run again with --warm to "
        "start a fresh one with 7")
    status = cli(folder, "warm", "status", cwd=tmp_path)
    assert f"warm Ray at {warm.describe()}, up " in status.stdout and "no run connected: stops in " in status.stdout

    (path, hold) = hold_b(write_graph, tmp_path)
    driver = subprocess.Popen([sys.executable, "-m", "taskgraph", "run", str(path), "--warm", "--run-dir", str(runs),
                               "--plain"], cwd=ROOT, env=warm_env(folder), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 600
        while not Path(f"{hold}.reached").exists():  # b is inside a training step
            assert driver.poll() is None and time.time() < deadline, driver.communicate()
            time.sleep(0.1)
        refused = cli(folder, "warm", "stop", cwd=tmp_path)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.returncode == 2 and f"has 1 run(s) connected (pid {driver.pid})" in refused.stderr
        assert cli(folder, "warm", "start", "--idle", "1s", cwd=tmp_path).returncode == 0
        time.sleep(4)  # four idle times and more, while the run trains
        assert alive(warm) and f"runs connected: pid {driver.pid}" in cli(folder, "warm", "status", cwd=tmp_path).stdout
    except BaseException:
        driver.kill()
        raise
    finally:
        hold.unlink(missing_ok=True)
    out, err = driver.communicate(timeout=600)
    assert driver.returncode == 0, out + err
    assert run_json(runs, "slow")["ray"]["warm"]["keeper_pid"] == warm.pid
    deadline = time.time() + 120
    while time.time() < deadline and alive(warm):
        time.sleep(0.2)
    assert not alive(warm) and not (folder / state.STATE).exists() and not Path(warm.temp_dir).exists()
    assert "stopping: no run for 1 s" in (folder / state.LOG).read_text()
    assert not [p for p in Path("/proc").glob("[0-9]*/cmdline") if warm.session_dir.encode() in _read(p)]
    commands.result()  # its assertions, raised here


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def start_status_stop(folder: Path, tmp_path: Path) -> None:
    """`warm start` with --num-cpus and --idle, again (says it is up), `warm stop` (every process of it
    gone), `warm status` (none up): run beside the lifecycle test, on a warm Ray of its own."""
    started = cli(folder, "warm", "start", "--num-cpus", "1", "--idle", "10m", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    warm = state.read(folder)
    assert warm is not None and warm.num_cpus == 1 and warm.idle_s == 600
    assert f"started a warm Ray at {warm.describe()}" in started.stderr
    again = cli(folder, "warm", "start", cwd=tmp_path)
    assert again.stdout.strip() == f"the warm Ray is up at {warm.describe()}; it stops after 10 min without a run"
    assert same(state.read(folder), warm)
    stopped = cli(folder, "warm", "stop", cwd=tmp_path)
    assert stopped.stdout.strip() == f"stopped the warm Ray at {warm.describe()}"
    assert not alive(warm) and not (folder / state.STATE).exists() and not Path(warm.temp_dir).exists()
    assert not [p for p in Path("/proc").glob("[0-9]*/cmdline") if warm.session_dir.encode() in _read(p)]
    assert cli(folder, "warm", "status", cwd=tmp_path).stdout.strip() == (
        "no warm Ray is up (`taskgraph run --warm` or `taskgraph warm start` starts one)")


def test_an_interrupted_warm_run_says_to_resume_with_warm(tmp_path):
    """The one line after Ctrl-C names the resume command; a run on the warm Ray resumes on it."""
    from taskgraph.artifacts.rundir import RunDir
    from taskgraph.runner import _interrupted

    class Watchers:
        def finish(self, state, ok):
            pass

    def said(ray: dict) -> str:
        run_dir = RunDir.create(tmp_path / str(len(ray)), "g")
        state = {"order": ["a", "b"], "nodes": {"a": {"status": "done"}, "b": {"status": "interrupted"}}, "ray": ray}
        return str(_interrupted(state, run_dir, Watchers(), KeyboardInterrupt(), None, 2)).split("Resume with: ")[1]

    warm = {"address": "127.0.0.1:6379", "nodes": 1, "warm": {"session_dir": "/tmp/s", "keeper_pid": 1,
                                                               "started_by_this_run": False}}
    assert said(warm).endswith(" --warm")
    assert not said({"address": "local", "nodes": 1}).endswith(" --warm")

"""The client's side of a cluster, as a user meets it: README's cluster commands run literally in a
clean environment (no ``RAY_AUTH_MODE``: only what README says to set), plus what goes wrong first
(a dead address, no token), `jobs`/`stop`, a bad run directory in a job, and a second "host".

The cluster is the session's loopback one, started and stopped by README's own lines
(tests/execute/loopback.py). Every command runs in a child process whose environment is PATH,
PYTHONPATH and a scratch HOME (so no ``~/.ray/auth_token`` of this machine is found) plus what the
test names.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.execute.loopback import LOOPBACK, clean_env, local_cluster, readme_block, sh

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def project(readme_cluster):
    """A user's project folder (the repository's scripts and graphs), a cluster started by README's line."""
    return readme_cluster


def with_token(project) -> dict[str, str]:
    """README's client setup: the cluster's address and token file, nothing else."""
    return clean_env(project["home"], **local_cluster.client_env(project["state"]))


def taskgraph(project, *args, env=None, cwd=None, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run(["taskgraph", *map(str, args)], env=env or with_token(project), cwd=cwd or project["dir"],
                          capture_output=True, text=True, timeout=timeout)


def test_readme_loopback_commands_work_as_written(project, tmp_path):
    """README's block line by line (between its start and stop lines), nothing else set. Meanwhile
    ``unwritable_run_dir_in_a_job_is_one_line`` runs in a thread, in its own folder (its job fails at
    once; its start overlaps the block's)."""
    assert "RAY_AUTH_MODE" not in "\n".join(LOOPBACK)
    with ThreadPoolExecutor(1) as pool:
        unwritable = pool.submit(unwritable_run_dir_in_a_job_is_one_line, project, tmp_path)
        out = sh("\n".join(LOOPBACK[1:-1]), project["dir"], project["env"], timeout=400)
        unwritable.result()  # its assertions, raised here
    assert out.returncode == 0, out.stdout + out.stderr
    assert "authentication token" not in out.stdout + out.stderr
    runs = [json.loads(p.read_text()) for p in (project["dir"] / "runs" / "quickstart").glob("*/run.json")]
    assert len(runs) == 2 and all(r["status"] == "done" for r in runs)  # `run --address`, then the job
    assert re.search(r"raysubmit_\w+\s+SUCCEEDED\s+quickstart.yaml", out.stdout), out.stdout  # `taskgraph jobs`


def test_readme_docker_client_step_works_as_written(project, tmp_path):
    """Step 3 of README's Docker section against the loopback cluster: the token file at
    secrets/ray_auth_token, `export RAY_AUTH_TOKEN_PATH` and nothing else (only the head's address
    and the job id are put in). Meanwhile ``jobs_lists_and_stop_stops`` runs in a thread, in its own
    folder: both mostly wait on their jobs' starts, so they overlap instead of adding up."""
    (tmp_path / "jobs").mkdir()
    with ThreadPoolExecutor(1) as pool:
        listed_and_stopped = pool.submit(jobs_lists_and_stop_stops, project, tmp_path / "jobs")
        _docker_client_step(project)
        listed_and_stopped.result()  # its assertions, raised here


def _docker_client_step(project) -> None:
    docker = readme_block("### From a bare machine with Docker")
    step = docker[docker.index(next(l for l in docker if l.startswith("# 3."))) + 1:
                  docker.index(next(l for l in docker if l.startswith("# 4.")))]
    step = [line for line in step if not line.startswith("pip install")]  # this machine has taskgraph
    (project["dir"] / "secrets").mkdir(exist_ok=True)
    (project["dir"] / "secrets" / "ray_auth_token").write_text(Path(project["state"]["token_path"]).read_text())
    script = "\n".join(step).replace("http://localhost:8265", project["state"]["dashboard"])
    assert "taskgraph submit graphs/quickstart.yaml --address" in script and "raysubmit_..." in script
    take_id = r'OUT=$(\1); echo "$OUT"; [[ $OUT =~ (raysubmit_[A-Za-z0-9]+) ]]; JOB=${BASH_REMATCH[1]}'
    script = re.sub(r"^(taskgraph submit .*)$", take_id, script, count=1, flags=re.M).replace("raysubmit_...", "$JOB")
    out = sh(script, project["dir"], project["env"], timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCEEDED" in out.stdout and "done     finetune" in out.stdout, out.stdout
    # no --run-dir: the cluster's TASKGRAPH_RUN_DIR (compose: /shared/runs; here .cluster/runs)
    assert list((project["dir"] / ".cluster" / "runs" / "quickstart").glob("*/run.json"))


def test_dead_address_fails_at_once_in_one_line(project, tmp_path):
    port = free_port()  # nothing listens there
    env = with_token(project)
    out = taskgraph(project, "run", "graphs/quickstart.yaml", "--address", f"127.0.0.1:{port}", "--run-dir",
                    tmp_path / "runs", env=env, timeout=60)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0, out.stderr
    assert f"nothing answers at 127.0.0.1:{port}" in out.stderr and "port 6379 open" in out.stderr
    assert not (tmp_path / "runs").exists()  # refused before a run folder is made
    out = taskgraph(project, "submit", "graphs/quickstart.yaml", "--address", f"http://127.0.0.1:{port}", env=env,
                    timeout=60)
    assert out.returncode == 2 and f"nothing answers at http://127.0.0.1:{port}" in out.stderr, out.stderr


def test_live_cluster_without_a_token_is_one_line(project, tmp_path):
    env = clean_env(project["home"], RAY_ADDRESS=project["state"]["address"],
                    RAY_API_SERVER_ADDRESS=project["state"]["dashboard"])  # no token anywhere
    out = taskgraph(project, "run", "graphs/quickstart.yaml", "--run-dir", tmp_path / "runs", env=env, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.strip().splitlines() == [
        f"error: the cluster at {project['state']['address']} wants a token: set RAY_AUTH_TOKEN_PATH=FILE (the "
        "cluster's token file, secrets/ray_auth_token on the head) or pass --token-file FILE."]
    out = taskgraph(project, "jobs", env=env, timeout=60)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "wants a token" in out.stderr
    wrong = project["home"] / "wrong_token"
    wrong.write_text("0" * 64)
    out = taskgraph(project, "jobs", "--token-file", wrong, env=env, timeout=60)
    assert out.returncode == 2 and f"refused the token from RAY_AUTH_TOKEN_PATH={wrong}" in out.stderr, out.stderr
    good = taskgraph(project, "jobs", "--token-file", project["state"]["token_path"], env=env, timeout=60)
    assert good.returncode == 0, good.stderr


LONG = """
name: long
defaults: {train: {epochs: 400, batch_size: 16}}
data:
  shapes: {loader: synthetic_shapes, n: 2000, dim: 32, classes: 4}
tasks:
  long:
    data: shapes
    modules: {encoder: {type: mlp, in: 32, hidden: [64, 64]}, head: {type: linear, out: 4}}
    loss: {type: cross_entropy, target: label}
"""


def _submitted(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 0, out.stdout + out.stderr
    return re.search(r"raysubmit_\w+", out.stdout).group(0)


def jobs_lists_and_stop_stops(project, tmp_path: Path) -> None:
    """A long job is listed RUNNING by `taskgraph jobs`, `stop` ends it (its run marked interrupted,
    resumable), `jobs` then says STOPPED, a second `stop` says so, an unknown id is one line. Run
    beside test_readme_docker_client_step_works_as_written."""
    (tmp_path / "long.yaml").write_text(textwrap.dedent(LONG))
    runs = tmp_path / "runs"
    job = _submitted(taskgraph(project, "submit", "long.yaml", "--run-dir", runs, cwd=tmp_path))
    deadline = time.time() + 180
    while time.time() < deadline and not list(runs.glob("long/*/long/attempts/*.json")):
        time.sleep(0.5)  # until the node trains on a worker
    listed = taskgraph(project, "jobs", timeout=60)
    assert re.search(rf"{job}\s+RUNNING\s+long.yaml", listed.stdout), listed.stdout + listed.stderr
    stopped = taskgraph(project, "stop", job, timeout=120)
    assert stopped.returncode == 0 and f"job {job}: STOPPED" in stopped.stdout, stopped.stdout + stopped.stderr
    (run_json,) = runs.glob("long/*/run.json")
    run = json.loads(run_json.read_text())  # the driver had time to say so: resumable, as after Ctrl-C
    assert run["status"] == "interrupted" and run["nodes"]["long"]["status"] == "interrupted", run
    listed = taskgraph(project, "jobs", timeout=60)
    assert re.search(rf"{job}\s+STOPPED\s+long.yaml", listed.stdout), listed.stdout
    again = taskgraph(project, "stop", job, timeout=60)  # already ended: says so, no error
    assert again.returncode == 0 and "STOPPED" in again.stdout
    unknown = taskgraph(project, "stop", "raysubmit_nosuchjob", timeout=60)
    assert unknown.returncode == 2 and "taskgraph jobs" in unknown.stderr


def unwritable_run_dir_in_a_job_is_one_line(project, tmp_path: Path) -> None:
    """A job whose --run-dir cannot be made fails in one line, followed to its end. Run beside
    test_readme_loopback_commands_work_as_written."""
    (tmp_path / "long.yaml").write_text(textwrap.dedent(LONG))
    out = taskgraph(project, "submit", "long.yaml", "--run-dir", "/proc/taskgraph-runs", "--follow", cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert "error: cannot write /proc/taskgraph-runs: No such file or directory. Pass --run-dir a folder that" \
        in out.stdout  # the job's own log, followed
    last = out.stderr.strip().splitlines()[-1]  # (above it: Ray's own lines about the upload)
    assert last.startswith("error: job raysubmit_") and "FAILED" in last and "exit code 2 (its log is above)" in last


PLACED = """
name: placed
defaults: {train: {epochs: 1, batch_size: 64}}
data:
  shapes: {loader: synthetic_shapes, n: 200, dim: 8, classes: 4}
tasks:
  anywhere:
    data: shapes
    modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 4}}
    loss: {type: cross_entropy, target: label}
    resources: {labels: {name: cpu0}}
  there:
    data: shapes
    depends_on: {anywhere: {share: [encoder], mode: freeze}}
    modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 4}}
    loss: {type: cross_entropy, target: label}
    resources: {labels: {host: host2}}
"""


def test_second_host_joins_and_takes_a_node(project, tmp_path):
    """`join` starts a worker as another machine would (own temp dir and IP, the head's address and
    the token file only); a node labelled for it runs there, its input crossing from the first host."""
    state = local_cluster.join(project["dir"] / ".cluster", "host2")
    host2 = state["nodes"]["host2"]["node_id"]
    (tmp_path / "placed.yaml").write_text(textwrap.dedent(PLACED))
    out = taskgraph(project, "run", tmp_path / "placed.yaml", "--address", state["address"], "--run-dir",
                    tmp_path / "runs")
    assert out.returncode == 0, out.stdout + out.stderr
    (run_json,) = (tmp_path / "runs" / "placed").glob("*/run.json")
    nodes = json.loads(run_json.read_text())["nodes"]
    assert nodes["there"]["node_id"] == host2 and nodes["anywhere"]["node_id"] != host2

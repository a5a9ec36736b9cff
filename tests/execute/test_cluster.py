"""A real multi-node Ray cluster on loopback: a head (no CPUs) plus a fake-GPU worker and a CPU worker,
each a separate `ray start`, with token authentication on: the session's one cluster, started by
README's own line (tests/execute/loopback.py, fixture ``cluster``).

Drivers run in subprocesses (`python -m taskgraph ...`), as a user's would: this pytest process
may already be connected to the session's local Ray (``ray_local``), and a process joins one Ray.
Losing a worker mid-run is tested last, in test_cluster_node_loss.py: it takes a node away.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from taskgraph.artifacts.files import load_params
from taskgraph.train.model import digest, module_state

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def taskgraph(cluster, *args, timeout=240, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "taskgraph", *map(str, args)], env=env or cluster["env"], cwd=cwd,
        capture_output=True, text=True, timeout=timeout,
    )


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def only_run(runs: Path) -> Path:
    (folder,) = [p for p in runs.glob("*/*") if (p / "run.json").is_file()]
    return folder


ACROSS = """
name: across
defaults: {resources: {cpus: 1}, train: {epochs: 2, batch_size: 64}}
data:
  shapes: {loader: synthetic_shapes, n: 600, dim: 16, classes: 4}
tasks:
  pre:
    data: shapes
    modules: {encoder: {type: mlp, in: 16, hidden: [32]}, head: {type: linear, out: 4}}
    loss: {type: cross_entropy, target: label}
    resources: {labels: {tier: cpu}}
  gpu_a:
    data: shapes
    depends_on: {pre: {share: [encoder], mode: freeze}}
    modules: {encoder: {type: mlp, in: 16, hidden: [32]}, head: {type: linear, out: 1}}
    loss: {type: binary_cross_entropy, target: parity}
    resources: {gpus: 0.5, custom: {special: 1}, memory: 50MB}
  gpu_b:
    data: shapes
    depends_on: {pre: {share: [encoder], mode: init}}
    modules: {encoder: {type: mlp, in: 16, hidden: [32]}, head: {type: linear, out: 1}}
    loss: {type: binary_cross_entropy, target: coarse}
    resources: {gpus: 0.5}
  after:
    data: shapes
    depends_on: {gpu_a: {share: [encoder], mode: freeze}}
    modules: {encoder: {type: mlp, in: 16, hidden: [32]}, head: {type: linear, out: 4}}
    loss: {type: cross_entropy, target: label}
    resources: {labels: {tier: cpu}}
"""


#: ACROSS plus a data-parallel node: ``wide`` trains on two Ray Train workers (TorchTrainer) from
#: ``pre``'s frozen encoder and hands rank 0's result to ``post``. One driver runs both parts: a second
#: driver would only add its start, and Ray Train's worker group starts while the GPU nodes train.
WITH_DATA_PARALLEL = ACROSS + """
  wide:
    data: shapes
    depends_on: {pre: {share: [encoder], mode: freeze}}
    modules: {encoder: {type: mlp, in: 16, hidden: [32]}, head: {type: linear, out: 1}}
    loss: {type: binary_cross_entropy, target: parity}
    metrics: [accuracy]
    train: {batch_size: 32}
    resources: {workers: 2, cpus_per_worker: 1}
  post:
    data: shapes
    depends_on: {wide: {share: [encoder, head], mode: freeze}}
    modules: {encoder: {type: mlp, in: 16, hidden: [32]}, head: {type: linear, out: 1}, extra: {type: linear, out: 1}}
    loss: {type: binary_cross_entropy, target: parity}
"""


def test_graph_runs_across_nodes_and_parameters_cross_them(cluster, tmp_path):
    """Placement by GPUs and labels, parameters crossing nodes through the object store, and a
    TorchTrainer node with two CPU workers (each on half the examples, rank 0's result downstream).
    Meanwhile the same placement graph goes through the Jobs API (``submit_through_jobs_api_and_status``,
    in a thread): a job spends most of its time starting, so the two overlap instead of adding up."""
    (tmp_path / "job").mkdir()
    with ThreadPoolExecutor(1) as pool:
        submitted = pool.submit(submit_through_jobs_api_and_status, cluster, tmp_path / "job")
        graph = write(tmp_path / "across.yaml", WITH_DATA_PARALLEL)
        out = taskgraph(cluster, "run", graph, "--address", cluster["address"], "--run-dir", tmp_path / "runs")
        submitted.result()  # its assertions, raised here
    assert out.returncode == 0, out.stdout + out.stderr
    folder = only_run(tmp_path / "runs")
    run = json.loads((folder / "run.json").read_text())
    nodes, ids = run["nodes"], {name: n["node_id"] for name, n in cluster["nodes"].items()}
    assert run["status"] == "done" and run["ray"]["nodes"] == 3
    assert set(nodes) == {"pre", "gpu_a", "gpu_b", "after", "wide", "post"}
    for name in ("gpu_a", "gpu_b"):  # only the GPU worker has GPUs
        assert nodes[name]["node_id"] == ids["gpu0"] and nodes[name]["gpu_ids"] == ["0"]
    for name in ("pre", "after"):  # labels tier=cpu
        assert nodes[name]["node_id"] == ids["cpu0"] and nodes[name]["gpu_ids"] == []
    for name, node in nodes.items():
        assert node["status"] == "done" and [a["node_id"] for a in node["attempts"]] == [node["node_id"]]
        assert (folder / name / "params.safetensors").is_file() and (folder / name / "metrics.json").is_file()
    # cpu0 -> gpu0 -> cpu0 through the object store: frozen encoders arrive bit-identical
    pre = module_state(load_params(folder / "pre" / "params.safetensors"), "encoder")
    for name in ("gpu_a", "after"):
        got = module_state(load_params(folder / name / "params.safetensors"), "encoder")
        assert digest(got) == digest(pre)
    assert nodes["gpu_a"]["meta"]["inherited"][0]["sha256"] == digest(pre)
    gpu_b = module_state(load_params(folder / "gpu_b" / "params.safetensors"), "encoder")
    assert digest(gpu_b) != digest(pre)  # mode init: it trained on from pre's values
    _torchtrainer_node_with_two_cpu_workers(folder)


def _torchtrainer_node_with_two_cpu_workers(folder: Path) -> None:
    wide = json.loads((folder / "wide" / "metrics.json").read_text())
    pre_metrics = json.loads((folder / "pre" / "metrics.json").read_text())
    assert wide["workers"] == 2
    assert wide["train_examples"] == pre_metrics["train_examples"] // 2  # each worker trains on its half
    pre = load_params(folder / "pre" / "params.safetensors")
    wide_params = load_params(folder / "wide" / "params.safetensors")
    assert set(wide_params) == {k for k in wide_params if k.startswith(("encoder.", "head."))}  # no DDP 'module.'
    assert digest(module_state(wide_params, "encoder")) == digest(module_state(pre, "encoder"))  # loaded on workers
    post = load_params(folder / "post" / "params.safetensors")  # rank 0's result went downstream
    for module in ("encoder", "head"):
        assert digest(module_state(post, module)) == digest(module_state(wide_params, module))


def test_node_larger_than_any_machine_fails_at_submit_time(cluster, tmp_path):
    graph = write(tmp_path / "big.yaml", ACROSS.replace("resources: {gpus: 0.5}", "resources: {gpus: 2}"))
    out = taskgraph(cluster, "run", graph, "--address", cluster["address"], "--run-dir", tmp_path / "runs", timeout=120)
    assert out.returncode == 2
    assert "node 'gpu_b' asks for 1 CPUs and 2 GPUs" in out.stderr and "--cpu-only" in out.stderr
    run = json.loads((only_run(tmp_path / "runs") / "run.json").read_text())
    assert not any(n.get("status") == "done" for n in run["nodes"].values())  # nothing ran


def submit_through_jobs_api_and_status(cluster, tmp_path: Path) -> None:
    """`taskgraph submit` (the project folder shipped, less runs/; --run-dir and --set passed on),
    `logs --follow` until the job ends, `status`, `logs` after the end; the job's nodes placed as a
    driver's are. Run beside test_graph_runs_across_nodes_and_parameters_cross_them."""
    project = tmp_path / "project"
    project.mkdir()
    write(project / "graph.yaml", ACROSS.replace("name: across", "name: submitted"))
    (project / "runs").mkdir()
    (project / "runs" / "huge.bin").write_bytes(b"0" * 1024)  # excluded from the upload
    runs = tmp_path / "shared-runs"
    out = taskgraph(cluster, "submit", "graph.yaml", "--address", cluster["dashboard"], "--run-dir", runs,
                    "--set", "tasks.pre.train.epochs=1", cwd=project)
    assert out.returncode == 0, out.stdout + out.stderr
    job_id = next(w for w in out.stdout.split() if w.startswith("raysubmit_"))
    # one child process that waits for the job's end (not a `status` process every 2 s meanwhile)
    logs = taskgraph(cluster, "logs", job_id, "--follow", "--address", cluster["dashboard"], timeout=180)
    assert "run directory:" in logs.stdout and "done     gpu_a" in logs.stdout, logs.stdout + logs.stderr
    status = taskgraph(cluster, "status", job_id, "--address", cluster["dashboard"], timeout=60)
    assert status.returncode == 0 and f"job {job_id}: SUCCEEDED" in status.stdout, status.stdout + status.stderr
    assert "graph.yaml" in status.stdout
    logs = taskgraph(cluster, "logs", job_id, "--address", cluster["dashboard"], timeout=60)  # after the end too
    assert "run directory:" in logs.stdout and "done     gpu_a" in logs.stdout
    folder = only_run(runs)
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "done" and run["nodes"]["gpu_a"]["node_id"] == cluster["nodes"]["gpu0"]["node_id"]
    assert json.loads((folder / "pre" / "metrics.json").read_text())["history"][-1]["epoch"] == 1  # --set passed


def test_cluster_refuses_a_wrong_token(cluster, tmp_path):
    env = {k: v for k, v in cluster["env"].items() if k != "RAY_AUTH_TOKEN_PATH"}
    env["RAY_AUTH_TOKEN"] = "0" * 64
    out = taskgraph(cluster, "status", "raysubmit_x", "--address", cluster["dashboard"], env=env, timeout=60)
    assert out.returncode == 2 and "token" in out.stderr.lower()

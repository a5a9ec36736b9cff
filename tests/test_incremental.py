"""Caching, selections, resume and faults, on a real local Ray (no mocks)."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import taskgraph
from taskgraph.artifacts import load_params
from taskgraph.cli import main
from taskgraph.errors import TaskgraphError
from taskgraph.train.model import digest

ROOT = Path(__file__).resolve().parents[1]

GRAPH = """
name: inc
data:
  shapes: {loader: synthetic_shapes, n: 400, dim: 8, classes: 4}
defaults:
  train: {epochs: 2, batch_size: 64}
tasks:
  a: {data: shapes, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 4}}, loss: {type: cross_entropy, target: label}}
  b: {data: shapes, depends_on: {a: {share: [encoder]}}, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 1}}, loss: {type: mse, target: parity}}
  c: {data: shapes, depends_on: [b], modules: {head: {type: linear, in: 8, out: 1}}, loss: {type: mse, target: parity}}
  d: {data: shapes, modules: {head: {type: linear, in: 8, out: 1}}, loss: {type: mse, target: coarse}}
"""


def statuses(result):
    return {name: record.status for name, record in result.records.items()}


@pytest.mark.slow
def test_rerun_reuses_cache_and_a_change_reruns_exactly_the_descendants(ray_local, write_graph, tmp_path):
    path, runs = write_graph(GRAPH), tmp_path / "runs"
    first = taskgraph.run(taskgraph.load(path), run_root=runs)
    assert statuses(first) == dict.fromkeys("abcd", "done")
    second = taskgraph.run(taskgraph.load(path), run_root=runs)
    assert statuses(second) == dict.fromkeys("abcd", "cached")
    # cached artifacts are the same bytes, linked into the new run folder
    assert (second.run_dir / "a" / "params.safetensors").read_bytes() == (first.run_dir / "a" / "params.safetensors").read_bytes()
    assert second.metrics("b") == first.metrics("b")
    changed = taskgraph.run(taskgraph.load(path, ["tasks.b.train.lr=0.01"]), run_root=runs)
    assert statuses(changed) == {"a": "cached", "b": "done", "c": "done", "d": "cached"}
    # b inherited a's encoder from the cache, exactly as in the first run
    inherited = changed.records["b"].meta["inherited"][0]
    assert inherited["sha256"] == first.records["b"].meta["inherited"][0]["sha256"]


@pytest.mark.slow
def test_force_only_and_until(ray_local, write_graph, tmp_path):
    path, runs = write_graph(GRAPH), tmp_path / "runs"
    spec = taskgraph.load(path)
    with pytest.raises(TaskgraphError, match="node 'c' needs upstream 'b', which is not selected and has no cached result"):
        taskgraph.run(spec, run_root=runs, only="c")
    until = taskgraph.run(spec, run_root=runs, until="b")
    assert statuses(until) == {"a": "done", "b": "done"}
    only = taskgraph.run(spec, run_root=runs, only="c")
    assert statuses(only) == {"a": "cached", "b": "cached", "c": "done"}
    forced = taskgraph.run(spec, run_root=runs, force="a")
    assert statuses(forced) == {"a": "done", "b": "cached", "c": "cached", "d": "done"}
    from_b = taskgraph.run(spec, run_root=runs, from_="b")
    assert statuses(from_b) == {"a": "cached", "b": "done", "c": "done", "d": "cached"}


def cli(*args, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "taskgraph", *args], capture_output=True, text=True, cwd=ROOT, env=env, **kw)


@pytest.mark.slow
def test_cli_rerun_needs_no_ray_and_status_explains(ray_address, write_graph, tmp_path):
    path, runs = write_graph(GRAPH), tmp_path / "runs"
    # A cold run's driver plans, submits and collects without importing torch (only workers train);
    # a fresh driver process, joined to the session's Ray (a Ray of its own would add seconds, not checks).
    cold = (
        "import sys; from taskgraph.cli import main;"
        f"rc = main(['run', {str(path)!r}, '--run-dir', {str(runs)!r}, '--address', {ray_address!r}]);"
        "print('DRIVER_RAY', 'ray' in sys.modules, 'DRIVER_TORCH', 'torch' in sys.modules, 'RC', rc)"
    )
    out = subprocess.run([sys.executable, "-c", cold], capture_output=True, text=True, cwd=ROOT)
    assert "DRIVER_RAY True DRIVER_TORCH False RC 0" in out.stdout, out.stdout + out.stderr
    code = (
        "import sys, time; from taskgraph.cli import main; t = time.perf_counter();"
        f"rc = main(['run', {str(path)!r}, '--run-dir', {str(runs)!r}]);"
        "print('RAY_IMPORTED', 'ray' in sys.modules, 'TORCH_IMPORTED', 'torch' in sys.modules, 'RC', rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "RAY_IMPORTED False TORCH_IMPORTED False RC 0" in out.stdout, out.stdout + out.stderr
    assert out.stdout.count("cached") >= 4
    status = cli("status", str(path), "--run-dir", str(runs), "--set", "tasks.d.train.epochs=5")
    assert status.returncode == 0
    lines = {line.split()[0]: line for line in status.stdout.splitlines() if line[:2] in ("a ", "b ", "c ", "d ")}
    assert "cached" in lines["a"] and "run" in lines["d"] and "config, data or code changed" in lines["d"]
    assert "1 to train, 3 cached" in status.stdout


FAULTY = """
name: faulty
data:
  shapes: {loader: synthetic_shapes, n: 400, dim: 8, classes: 4}
defaults:
  train: {epochs: 3, batch_size: 32, checkpoint_every: 5}
tasks:
  a:
    data: shapes
    modules:
      encoder: {type: mlp, in: 8, hidden: [8], dropout: 0.1}
      bomb: {type: "tests.faults:KillOnce", marker: MARKER, after: 23, out: 8}
      head: {type: linear, out: 4}
    loss: {type: cross_entropy, target: label}
  b: {data: shapes, depends_on: {a: {share: [encoder]}}, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 1}}, loss: {type: mse, target: parity}}
  d: {data: shapes, modules: {head: {type: linear, in: 8, out: 1}}, loss: {type: mse, target: coarse}}
"""


@pytest.mark.slow
def test_killed_worker_is_retried_and_resumes_from_its_checkpoint(ray_local, write_graph, tmp_path):
    from taskgraph.report.live import PlainView

    marker = tmp_path / "killed-once"
    spec = taskgraph.load(write_graph(FAULTY.replace("MARKER", str(marker))))
    lines: list[str] = []
    view = PlainView(["a", "b", "d"], write=lines.append)
    result = taskgraph.run(spec, run_root=tmp_path / "runs", on_update=view.on_update, on_progress=view.on_progress)
    assert marker.exists(), "the worker was killed once"
    assert statuses(result) == dict.fromkeys("abd", "done")
    run = json.loads((result.run_dir / "run.json").read_text())
    assert len(run["nodes"]["a"]["attempts"]) == 2, "Ray retried the node after its worker died"
    assert len(run["nodes"]["b"]["attempts"]) == 1 and len(run["nodes"]["d"]["attempts"]) == 1
    assert result.records["a"].meta["resumed_from_step"] == 20  # 23rd forward call: after step 20's checkpoint
    _retry_is_visible(result.run_dir, run, lines)
    # the same graph never interrupted (marker already there) ends with bit-identical parameters
    clean = taskgraph.run(spec, run_root=tmp_path / "clean")
    assert clean.records["a"].meta["resumed_from_step"] is None
    assert digest(load_params(clean.run_dir / "a" / "params.safetensors")) == digest(
        load_params(result.run_dir / "a" / "params.safetensors")
    )


def _retry_is_visible(run_dir: Path, run: dict, lines: list[str]) -> None:
    """Issue 16 item 6: each try in run.json, the run output, trace.json, the report; monotonic curves."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from taskgraph.report.html import build_report
    from taskgraph.report.rundata import load_run

    first, second = run["nodes"]["a"]["attempts"]
    assert first["ended"] == "retried" and "worker process died" in first["why"] and first["pid"] != second["pid"]
    assert first["started_at"] <= first["ended_at"] <= second["started_at"] and not first["ended_at_is_bound"]
    assert second["ended"] == "done" and second["ended_at"] == run["nodes"]["a"]["ended_at"]
    retry = [line for line in lines if line.startswith("  retry    a: try 1 on ")]
    assert len(retry) == 1 and f"pid {first['pid']} ended (its worker died)" in retry[0], lines
    assert f"try 2 on {second['host']} pid {second['pid']}" in retry[0]
    assert any(line.startswith("  done     a ") and "(try 2: Ray ran it again" in line for line in lines), lines
    trace = json.loads((run_dir / "trace.json").read_text())["traceEvents"]
    slices = [e for e in trace if e["ph"] == "X"]
    assert all(e["dur"] >= 0 for e in slices), [e for e in slices if e["dur"] < 0]
    tries = {e["name"]: e for e in slices if e["name"].startswith("a (try")}
    assert set(tries) == {"a (try 1)", "a (try 2)"} and tries["a (try 1)"]["cat"] == "retried"
    epochs = [e for e in slices if e["cat"] == "epoch" and e["args"]["node"] == "a"]
    assert {e["args"]["try"] for e in epochs} == {1, 2}  # epochs before the kill, and after the resume
    for epoch in epochs:  # each inside the try that sent it
        host = tries[f"a (try {epoch['args']['try']})"]
        assert host["tid"] == epoch["tid"] and host["ts"] <= epoch["ts"]
        assert epoch["ts"] + epoch["dur"] <= host["ts"] + host["dur"] + 1
    view = load_run(run_dir)
    assert view.nodes["a"].queued_seconds == pytest.approx(first["started_at"] - run["nodes"]["a"]["submitted_at"])
    html = build_report(view)
    assert "Retried nodes" in html and 'data-node="a" data-attempt="1"' in html and "worker process died" in html
    events = EventAccumulator(str(run_dir / "a" / "tb"))
    events.Reload()
    for tag in events.Tags()["scalars"]:  # TensorBoard's own reading: no step twice, none going back
        steps = [s.step for s in events.Scalars(tag)]
        assert steps == sorted(set(steps)), (tag, steps)


#: ``b`` trains until the file HOLD is removed (``hold_b``): interrupted while mid-training, then quick.
SLOW = """
name: slow
data:
  shapes: {loader: synthetic_shapes, n: 400, dim: 8, classes: 4}
defaults:
  train: {epochs: 1, batch_size: 64}
tasks:
  a: {data: shapes, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 4}}, loss: {type: cross_entropy, target: label}}
  b:
    data: shapes
    depends_on: {a: {share: [encoder]}}
    modules:
      encoder: {type: mlp, in: 8, hidden: [8]}
      wait: {type: "tests.faults:HoldWhile", path: HOLD, out: 8}
      head: {type: linear, out: 1}
    loss: {type: mse, target: parity}
    train: {epochs: 10}
  c: {data: shapes, depends_on: [b], modules: {head: {type: linear, in: 8, out: 1}}, loss: {type: mse, target: parity}}
"""


def hold_b(write_graph, tmp_path: Path) -> tuple[Path, Path]:
    """SLOW written with a hold file in place: (graph, hold file). ``b`` waits in its first forward
    call, having written ``HOLD.reached``, until the test removes the file."""
    hold = tmp_path / "hold-b"
    hold.write_text("")
    return write_graph(SLOW.replace("HOLD", str(hold))), hold


def _status(run_json: Path, node: str) -> str | None:
    try:
        return json.loads(run_json.read_text())["nodes"][node]["status"]
    except (OSError, ValueError, KeyError):  # not written yet or mid-replace
        return None


def until_b_trains(runs: Path, hold: Path, driver: subprocess.Popen, timeout: float) -> Path:
    """Wait until the driver has ``a`` done (in run.json: its files, cache entry and record are
    durable) and ``b`` is inside a training step; returns the run folder. ``b`` starts from ``a``'s
    state while ``a`` still writes its files, so ``a``'s metrics.json alone is too early."""
    deadline = time.time() + timeout
    while time.time() < deadline and driver.poll() is None:
        run_jsons = list((runs / "slow").glob("*/run.json"))
        if run_jsons and Path(f"{hold}.reached").exists() and _status(run_jsons[0], "a") == "done":
            return run_jsons[0].parent
        time.sleep(0.1)
    if driver.poll() is None:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started
    hold.unlink(missing_ok=True)
    pytest.fail("b never started training: " + "\n".join(s or "" for s in driver.communicate()))


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_driver_killed_mid_run_then_resume_trains_only_unfinished(ray_address, write_graph, tmp_path, capfd):
    """The driver process joins the session's Ray (RAY_ADDRESS: no Ray start of its own) and is
    killed as a crash of its machine would; the Ray lives on and ends the dead driver's workers."""
    (path, hold), runs = hold_b(write_graph, tmp_path), tmp_path / "runs"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_ADDRESS": ray_address}
    driver = subprocess.Popen([sys.executable, "-m", "taskgraph", "run", str(path), "--run-dir", str(runs)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    run_dir = until_b_trains(runs, hold, driver, timeout=120)
    held = int(Path(f"{hold}.reached").read_text())  # the worker training b
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and everything it started
    driver.wait(timeout=30)
    assert _gone(held, 60), "Ray kept the dead driver's worker"  # b must not train on once the hold is removed
    a_metrics = json.loads((run_dir / "a" / "metrics.json").read_text())  # intact, complete JSON
    assert not (run_dir / "b" / "metrics.json").exists()
    hold.unlink()
    capfd.readouterr()
    code = main(["resume", str(run_dir)])  # the CLI's entry point, on the session's Ray (not a third one)
    resumed = capfd.readouterr()
    assert code == 0, resumed.out + resumed.err
    assert "cached   a" in resumed.out and "done     b" in resumed.out and "done     c" in resumed.out
    assert json.loads((run_dir / "a" / "metrics.json").read_text()) == a_metrics
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "done" and run["nodes"]["a"]["status"] == "cached"


EXPLODES = GRAPH.replace(
    "  c: {data: shapes, depends_on: [b], modules: {head: {type: linear, in: 8, out: 1}}",
    "  c: {data: shapes, depends_on: [b], modules: {boom: {type: 'tests.faults:Explode', in: 8, out: 8}, head: {type: linear, in: 8, out: 1}}",
).replace("  d: {data: shapes,", "  e: {data: shapes, depends_on: [c], modules: {head: {type: linear, in: 8, out: 1}}, loss: {type: mse, target: coarse}}\n  d: {data: shapes,")


@pytest.mark.slow
def test_a_raising_node_reports_its_traceback_and_exit_code(ray_local, write_graph, tmp_path, capfd):
    """The CLI's own entry point on the session's Ray (a child process would start a Ray of its own)."""
    path, runs = write_graph(EXPLODES), tmp_path / "runs"
    code = main(["run", str(path), "--run-dir", str(runs)])
    gc.collect()  # Ray reports an unread failed result when its reference is freed (a child's exit did too)
    time.sleep(1.0)
    out = capfd.readouterr()
    assert code == 2
    assert "failed   c: RuntimeError: boom from user code" in out.out
    assert "skipped  e: upstream node 'c' failed" in out.out
    assert "taskgraph resume" in out.err and "Traceback" not in out.err
    run_dir = next((runs / "inc").iterdir())
    error = (run_dir / "c" / "error.txt").read_text()
    assert "boom from user code" in error and "faults.py" in error  # the user's traceback, for debugging
    run = json.loads((run_dir / "run.json").read_text())
    assert {n: run["nodes"][n]["status"] for n in "abcde"} == {"a": "done", "b": "done", "c": "failed", "d": "done", "e": "skipped"}


SELECTED = FAULTY.replace(
    "train: {epochs: 3, batch_size: 32, checkpoint_every: 5}",
    # mode max on the loss: the worst epoch (the first, the loss falls) is the one kept; never the last
    "train: {epochs: 3, batch_size: 32, checkpoint_every: 5, select: best, monitor: loss, mode: max}",
).replace("    loss: {type: cross_entropy, target: label}\n  b:", "    loss: {type: cross_entropy, target: label}\n"
          "    metrics: [accuracy]\n  b:")


@pytest.mark.slow
def test_a_resumed_node_keeps_and_serves_the_epoch_it_selected_before_the_interruption(ray_local, write_graph,
                                                                                       tmp_path):
    """select: best across a kill: epoch 1 is chosen, then the worker dies in epoch 3 and the node
    resumes from step 20's checkpoint; the kept weights, metrics.json and what load_node serves
    are epoch 1's, as in a run never interrupted."""
    from taskgraph.apply import evaluate_run

    marker = tmp_path / "killed-once"
    spec = taskgraph.load(write_graph(SELECTED.replace("MARKER", str(marker))))
    result = taskgraph.run(spec, run_root=tmp_path / "runs", only="a")
    assert marker.exists() and result.records["a"].status == "done"
    assert result.records["a"].meta["resumed_from_step"] == 20  # the choice of epoch 1 came from the checkpoint
    metrics = json.loads((result.run_dir / "a" / "metrics.json").read_text())
    losses = [row["val_loss"] for row in metrics["history"]]
    assert len(losses) == 3 and metrics["selected_epoch"] == losses.index(max(losses)) + 1 == 1
    first = metrics["history"][0]
    assert metrics["final"] == {"loss": first["val_loss"], "accuracy": first["val_accuracy"]}
    served = evaluate_run(result.run_dir, ["a"])[0]  # load_node's weights, scored on validation again
    assert served.metrics == pytest.approx(metrics["final"], abs=1e-6)
    clean = taskgraph.run(spec, run_root=tmp_path / "clean", only="a")  # the marker is there: no kill
    assert clean.records["a"].meta["resumed_from_step"] is None
    assert json.loads((clean.run_dir / "a" / "metrics.json").read_text())["selected_epoch"] == 1
    assert digest(load_params(clean.run_dir / "a" / "params.safetensors")) == digest(
        load_params(result.run_dir / "a" / "params.safetensors"))

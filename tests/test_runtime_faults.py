"""Runtime faults end in one line and the right exit code, never a traceback (issue 13 items 7, 8, 9).

Unwritable outputs and run directories, user code that raises on import, failing nodes (Ray must
not print their tracebacks: they belong in ``<node>/error.txt``), a disk that fills mid-run, and
Ctrl-C / SIGTERM (run.json says "interrupted", the message gives the resume command).
Read-only and full disks are real tmpfs mounts (root only; skipped elsewhere).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskgraph.cli import main
from tests.test_incremental import hold_b, until_b_trains
from taskgraph.errors import TrainError

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "graphs" / "quickstart.yaml"


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(name, size, read_only)``: a real small or read-only file system under tmp_path."""
    mounted: list[Path] = []

    def mount(name: str, size: str = "64k", read_only: bool = False) -> Path:
        path = tmp_path / name
        path.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback (most recent" not in err
    return lines[0]


# --- item 7: outputs and run directories that cannot be written -------------------------------


def test_viz_into_a_folder_in_the_way_or_read_only(tmp_path, tmpfs, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    assert main(["viz", str(QUICKSTART), "-o", str(blocker / "order.svg")]) == 2
    assert one_error_line(capsys.readouterr().err).startswith(f"error: cannot write {blocker / 'order.svg'}: ")
    read_only = tmpfs("ro", read_only=True)
    for name in ("order.svg", "order.dot", "sub/order.mmd"):
        assert main(["viz", str(QUICKSTART), "-o", str(read_only / name)]) == 2
        line = one_error_line(capsys.readouterr().err)
        assert f"cannot write {read_only / name}: Read-only file system" in line and "Pass -o a path" in line


def test_report_into_a_read_only_folder(tmp_path, tmpfs, capsys):
    from tests.report.fake_run import make_run

    run_dir = make_run(tmp_path / "runs", {"finetune": "interrupted"})  # an interrupted run reports too
    read_only = tmpfs("ro", read_only=True)
    assert main(["report", str(run_dir), "-o", str(read_only / "report.html")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line == f"error: cannot write {read_only / 'report.html'}: Read-only file system. Pass -o a path in a folder you can write to."
    assert main(["report", str(run_dir), "-o", str(tmp_path / "report.html")]) == 0


def test_affinity_output_that_cannot_be_written_fails_before_measuring(tmpfs, capsys):
    full = tmpfs("full", size="8k")
    _fill(full / "filler")
    cases = {tmpfs("ro", read_only=True) / "aff": "Read-only file system. Pass -o",
             full / "aff": "No space left on device. Free space there or pass -o"}
    for output, said in cases.items():
        assert main(["affinity", str(QUICKSTART), "-o", str(output), "--epochs", "1"]) == 2
        out, err = capsys.readouterr()
        assert one_error_line(err) == f"error: cannot write {output}: {said} a path in a folder you can write to."
        assert out == ""  # nothing measured


def test_viz_text_format_makes_its_folder(tmp_path):
    out = tmp_path / "new" / "order.dot"
    assert main(["viz", str(QUICKSTART), "-o", str(out)]) == 0 and "digraph" in out.read_text()


def test_run_dir_that_cannot_be_written_fails_before_ray(tmp_path, tmpfs, capsys):
    """Read-only, full, or a file in the way: one line at start, exit 2 (Ray never starts: no node line)."""
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    full = tmpfs("full", size="8k")
    _fill(full / "filler")
    cases = {
        str(blocker): "Not a directory. A file is in the way",
        str(tmpfs("ro", read_only=True)): "Read-only file system. Pass --run-dir a folder you can write to",
        str(full): "No space left on device. Free space on that disk or pass --run-dir on another one",
    }
    for run_dir, said in cases.items():
        code = main(["run", str(QUICKSTART), "--run-dir", run_dir, "--plain", "--no-tensorboard"])
        out, err = capsys.readouterr()
        assert code == 2, err
        line = one_error_line(err)
        assert line.startswith(f"error: cannot write {run_dir}/quickstart") and said in line, line
        assert "start " not in out  # no node was started


def test_run_dir_that_cannot_be_made_fails_before_ray(capsys):
    """A folder the system refuses to create (here under /proc; a vanished mount alike): one line."""
    code = main(["run", str(QUICKSTART), "--run-dir", "/proc/taskgraph-runs", "--plain", "--no-tensorboard"])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert one_error_line(err) == ("error: cannot write /proc/taskgraph-runs: No such file or directory. Pass --run-dir "
                                   "a folder that exists or can be made (on a cluster: one every node mounts).")
    assert "start " not in out


def _fill(path: Path) -> None:
    try:
        with open(path, "wb") as handle:
            while True:
                handle.write(b"\0" * 1024)
                handle.flush()
    except OSError:
        pass


# --- item 7: user code that raises while being imported -----------------------------------------


def test_user_module_raising_on_import_is_one_line_naming_ref_file_and_exception():
    from taskgraph.train.registry import import_ref

    with pytest.raises(TrainError) as caught:
        import_ref("tests.broken_import:Thing")
    text = str(caught.value)
    assert text.startswith("importing 'tests.broken_import' for 'tests.broken_import:Thing' raised ValueError: "
                           f"BROKEN_SETTING must be a number (at {ROOT / 'tests' / 'broken_import.py'}:6). Fix that")
    assert "\n" not in text


# --- item 8: failing nodes: one line each on the terminal, the traceback in error.txt -----------

FAILING = """
name: failing
data:
  shapes: {loader: synthetic_shapes, n: 200, dim: 8, classes: 4}
  narrow: {loader: "tests.faults:narrow_data"}
  sequences: {loader: "tests.faults:sequence_data"}
  ragged: {loader: "tests.faults:ragged_data"}
  empty: {loader: "tests.faults:empty_data"}
defaults:
  train: {epochs: 1, batch_size: 32}
tasks:
  fine: {data: shapes, modules: {head: {type: linear, in: 8, out: 4}}, loss: {type: cross_entropy, target: label}}
  boom: {data: shapes, modules: {boom: {type: "tests.faults:Explode", in: 8, out: 8}, head: {type: linear, out: 4}}, loss: {type: cross_entropy, target: label}}
  after_boom: {data: shapes, depends_on: [boom], modules: {head: {type: linear, in: 8, out: 4}}, loss: {type: cross_entropy, target: label}}
  broken: {data: shapes, modules: {thing: {type: "tests.broken_import:Thing", in: 8, out: 8}, head: {type: linear, out: 4}}, loss: {type: cross_entropy, target: label}}
  wide: {data: narrow, modules: {encoder: {type: mlp, in: 16, hidden: [8]}, head: {type: linear, out: 4}}, loss: {type: cross_entropy, target: label}}
  threed: {data: sequences, modules: {encoder: {type: mlp, hidden: [8]}, head: {type: linear, out: 4}}, loss: {type: cross_entropy, target: label}}
  jagged: {data: ragged, modules: {head: {type: linear, out: 4}}, loss: {type: cross_entropy, target: label}}
  nothing: {data: empty, modules: {head: {type: linear, out: 4}}, loss: {type: cross_entropy, target: label}}
"""

SAID = {
    "boom": "RuntimeError: boom from user code",
    "broken": "importing 'tests.broken_import' for 'tests.broken_import:Thing' raised ValueError: BROKEN_SETTING",
    "wide": "tasks.wide: field 'x' is [51, 8] (float32): 8 wide, but modules.encoder (mlp, in: 16) expects [batch, 16]",
    "threed": "tasks.threed: field 'x' is [51, 5, 8] (float32) (3-D), but modules.encoder (mlp) reads [batch, in]",
    "jagged": "tasks.jagged (data 'ragged'): loader 'tests.faults:ragged_data': field 'x' cannot become a tensor",
    "nothing": "tasks.nothing: the data has no training examples",
}


@pytest.mark.slow
def test_failing_nodes_print_one_line_each_and_keep_tracebacks_in_error_txt(ray_local, write_graph, tmp_path, capfd):
    import gc

    runs = tmp_path / "runs"
    code = main(["run", str(write_graph(FAILING)), "--run-dir", str(runs), "--plain", "--no-tensorboard"])
    gc.collect()  # Ray reports an unread failed result when its reference is freed
    time.sleep(1.0)
    out, err = capfd.readouterr()
    assert code == 2, out + err
    assert "Unhandled error" not in err and "Traceback (most recent" not in err + out
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err  # the summary line only
    assert err.startswith("error: 6 node(s) failed: ")
    run_dir = next((runs / "failing").iterdir())
    for node, said in SAID.items():
        lines = [line for line in out.splitlines() if line.startswith(f"  failed   {node}: ")]
        assert len(lines) == 1 and said in lines[0], (node, out)
        error = (run_dir / node / "error.txt").read_text()
        assert said in error and 'File "' in error and "\x1b[" not in error, (node, error)  # frames, no colours
    assert "skipped  after_boom: upstream node 'boom' failed" in out
    run = json.loads((run_dir / "run.json").read_text())
    assert run["nodes"]["fine"]["status"] == "done"


# --- item 7: a disk that fills up mid-run ------------------------------------------------------

FILLS = """
name: fills
data:
  shapes: {loader: synthetic_shapes, n: 200, dim: 8, classes: 4}
defaults:
  train: {epochs: 1, batch_size: 64}
tasks:
  small: {data: shapes, modules: {head: {type: linear, in: 8, out: 4}}, loss: {type: cross_entropy, target: label}}
  filler: {data: shapes, depends_on: [small], modules: {fill: {type: "tests.faults:FillDisk", path: FILL, after: AFTER, out: 8}, head: {type: linear, in: 8, out: 4}}, loss: {type: cross_entropy, target: label}}
"""


@pytest.mark.slow
def test_disk_full_mid_run_ends_in_one_line_with_the_resume_command(ray_local, write_graph, tmpfs, capfd):
    disk = tmpfs("disk", size="256k")
    # the disk fills up once small's files are durable: mid-run, with a finished node to keep
    graph = FILLS.replace("FILL", str(disk / "filler")).replace("AFTER", str(disk / "fills" / "*" / "small" / "metrics.json"))
    code = main(["run", str(write_graph(graph)), "--run-dir", str(disk),
                 "--plain", "--no-tensorboard"])
    out, err = capfd.readouterr()
    assert code == 2, out + err
    line = one_error_line(err)
    run_dir = next((disk / "fills").iterdir())
    assert line.startswith(f"error: cannot write {run_dir}/filler/") and "No space left on device" in line
    assert f"`taskgraph resume {run_dir}` trains the rest" in line
    assert "done     small" in out and (run_dir / "small" / "metrics.json").is_file()


# --- item 9: Ctrl-C and SIGTERM ------------------------------------------------------------------



@pytest.mark.slow
def test_interrupt_marks_the_run_and_names_the_resume_command(ray_address, write_graph, tmp_path, capfd):
    """Ctrl-C and SIGTERM, each to its own driver process joined to the session's Ray through
    RAY_ADDRESS (a Ray of its own would only add its start; the interrupt cancels b's task, as it does
    on an embedded Ray). The two drivers run at once: each start is seconds of imports, and their two
    held nodes fit the Ray's 2 CPUs."""
    drivers = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        folder = tmp_path / signum.name
        folder.mkdir()
        path, hold = hold_b(lambda text, name=f"{signum.name}.yaml": write_graph(text, name), folder)
        driver = subprocess.Popen(
            [sys.executable, "-m", "taskgraph", "run", str(path), "--run-dir", str(folder / "runs"), "--plain"],
            cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", "RAY_ADDRESS": ray_address}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        drivers[signum] = (driver, hold, folder / "runs")
    try:
        for signum, (driver, hold, runs) in drivers.items():
            run_dir = until_b_trains(runs, hold, driver, timeout=600)  # a busy CI machine takes minutes to start Ray
            os.kill(driver.pid, signum)  # the driver only, as `kill` would; Ctrl-C on a terminal reaches it the same way
            _interrupted_as_said(driver, hold, run_dir, signum)
    finally:
        for driver, hold, _runs in drivers.values():
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
            hold.unlink(missing_ok=True)
    run_dir = next((tmp_path / signal.SIGINT.name / "runs" / "slow").iterdir())
    a_metrics = (run_dir / "a" / "metrics.json").read_text()
    capfd.readouterr()
    code = main(["resume", str(run_dir)])  # the CLI's entry point, on the session's Ray (not a third one)
    resumed = capfd.readouterr()
    assert code == 0, resumed.out + resumed.err
    assert "cached   a" in resumed.out and "done     b" in resumed.out and "done     c" in resumed.out
    assert (run_dir / "a" / "metrics.json").read_text() == a_metrics
    assert json.loads((run_dir / "run.json").read_text())["status"] == "done"


def _interrupted_as_said(driver: subprocess.Popen, hold: Path, run_dir: Path, signum: int) -> None:
    """The driver ends with 128 + signum, one line naming the resume command; run.json says interrupted."""
    try:
        out, err = driver.communicate(timeout=120)
    finally:
        hold.unlink()  # b trains at full speed from now on (on resume)
    assert driver.returncode == 128 + signum, out + err
    line = one_error_line(err)
    how = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    assert line == (f"interrupted ({how}): stopped b; 1 of 3 nodes finished and are kept. "
                    f"Resume with: taskgraph resume {run_dir}")
    assert "stopped  b: interrupted" in out
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "interrupted" and run["ended_at"]
    assert run["nodes"]["a"]["status"] == "done" and run["nodes"]["b"]["status"] == "interrupted"
    assert "c" not in run["nodes"] or run["nodes"]["c"]["status"] == "pending"

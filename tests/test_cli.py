"""The CLI: exit codes, one-message errors without tracebacks, machine-readable outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from taskgraph.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "graphs" / "quickstart.yaml"


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "taskgraph", *args], capture_output=True, text=True, cwd=cwd)


def test_validate_ok_and_bad_exit_codes(write_graph):
    ok = cli("validate", str(QUICKSTART))
    assert ok.returncode == 0 and "ok (3 tasks" in ok.stdout
    bad = write_graph("name: g\ntasks:\n  a: {data: nowhere, modules: {m: {type: linear, in: 2, out: 1}}, loss: {type: mse, target: y}}\n")
    out = cli("validate", str(bad))
    assert out.returncode == 2
    assert f"{bad}:3:13: tasks.a.data: unknown data source 'nowhere'" in out.stderr
    assert "Traceback" not in out.stderr and "1 problem found." in out.stderr


def test_plan_json_and_text(capsys):
    assert main(["plan", str(QUICKSTART), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["stages"] == [["pretrain", "scratch"], ["finetune"]]
    assert data["critical_path"] == ["pretrain", "finetune"]
    assert main(["plan", str(QUICKSTART)]) == 0
    text = capsys.readouterr().out
    assert "critical path: pretrain -> finetune" in text and "<- pretrain: encoder (finetune x0.1)" in text


def test_set_reaches_the_spec(capsys):
    assert main(["plan", str(QUICKSTART), "-f", "json", "--set", "tasks.scratch.cost=100"]) == 0
    assert json.loads(capsys.readouterr().out)["critical_path"] == ["scratch"]


def test_viz_text_formats(tmp_path, capsys):
    for suffix, marker in (("mmd", "flowchart LR"), ("dot", "digraph")):
        out = tmp_path / f"order.{suffix}"
        assert main(["viz", str(QUICKSTART), "-o", str(out)]) == 0
        assert marker in out.read_text()
    assert main(["viz", str(QUICKSTART), "--format", "ascii"]) == 0
    assert "stage 0" in capsys.readouterr().out


def test_viz_picture(tmp_path):
    out = tmp_path / "order.svg"
    assert main(["viz", str(QUICKSTART), "-o", str(out)]) == 0
    assert out.read_text().lstrip().startswith("<?xml") and "pretrain" in out.read_text()


def test_schema_is_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "Graph" and "tasks" in schema["properties"]


def test_list_names(capsys):
    assert main(["list", "losses"]) == 0
    out = capsys.readouterr().out
    assert "cross_entropy" in out and "binary_cross_entropy" in out
    assert main(["list"]) == 0
    assert "synthetic_shapes" in capsys.readouterr().out


def test_usage_errors_exit_2():
    out = cli("plan", "--format", "xml", str(QUICKSTART))
    assert out.returncode == 2
    assert cli("run").returncode == 2


@pytest.mark.slow
def test_run_quickstart_end_to_end(ray_local, tmp_path, capsys):
    """The README's main command, shrunk: both task metrics printed, run dir named at the end. The
    CLI's entry point on the session's Ray (a child process would start a Ray and cold workers of
    its own; `python -m taskgraph` itself is run by the tests above)."""
    code = main(["run", str(QUICKSTART), "--run-dir", str(tmp_path), "--num-cpus", "2",
                 "--set", "tasks.pretrain.train.epochs=2", "--set", "tasks.finetune.train.epochs=3",
                 "--set", "tasks.scratch.train.epochs=3"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "pretrain" in out.out and "finetune" in out.out and "accuracy=" in out.out
    run_dir = Path(out.out.strip().splitlines()[-1].split("run directory: ")[1])
    assert (run_dir / "run.json").is_file() and run_dir.parent == tmp_path / "quickstart"

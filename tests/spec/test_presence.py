"""A data set that is not on this machine stops `taskgraph run` before Ray starts, at its line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from taskgraph.cli import main
from taskgraph.spec import parse_spec
from taskgraph.spec.presence import missing_data

ROOT = Path(__file__).resolve().parents[2]

GRAPH = """\
name: g
data:
  shapes: {loader: synthetic_shapes, n: 100, dim: 8}
  digits: {loader: mnist, max_train: 10, root: MISSING}
  mine: {loader: "mypkg.data:load", path: /not/here}
tasks:
  a:
    data: digits
    modules: {m: {type: linear, out: 10}}
    loss: {type: cross_entropy, target: digit}
  b:
    data: shapes
    modules: {m: {type: linear, out: 1}}
    loss: {type: mse, target: parity}
"""


def test_missing_data_names_the_source_line_and_the_fixes(tmp_path):
    missing = tmp_path / "mnist"
    spec, source = parse_spec(GRAPH.replace("MISSING", str(missing)), file="g.yaml")
    (issue,) = missing_data(spec, source)  # synthetic data needs no files; user loaders are not guessed at
    assert str(issue).startswith(f"g.yaml:4:48: data.digits.root: data set 'mnist' not found: {missing} does not exist.")
    assert "--set data.digits.root=/path" in str(issue) and "TASKGRAPH_DATA" in str(issue)
    missing.mkdir()
    assert missing_data(spec, source) == []


def test_run_stops_before_ray_starts(tmp_path):
    graph = tmp_path / "g.yaml"
    graph.write_text(GRAPH.replace("MISSING", str(tmp_path / "mnist")))
    runs = tmp_path / "runs"
    code = ("import sys\nfrom taskgraph.cli import main\n"
            f"rc = main(['run', {str(graph)!r}, '--run-dir', {str(runs)!r}])\n"
            "print('ray imported' if 'ray' in sys.modules else 'no ray')\nsys.exit(rc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"{graph}:4:" in out.stderr and "data set 'mnist' not found" in out.stderr
    assert "Traceback" not in out.stderr and out.stdout.strip().endswith("no ray") and not runs.exists()


def test_validate_passes_but_notes_the_missing_data(tmp_path, capsys):
    graph = tmp_path / "g.yaml"
    graph.write_text(GRAPH.replace("MISSING", str(tmp_path / "mnist")))
    assert main(["validate", str(graph)]) == 0
    captured = capsys.readouterr()
    assert "ok (2 tasks" in captured.out and "note: " in captured.err and "data set 'mnist' not found" in captured.err

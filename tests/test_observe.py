"""One real run of the quickstart, then everything that looks at it: progress lines, trace.json,
TensorBoard files, `taskgraph viz RUN_DIR` and `taskgraph report`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from taskgraph.cli import main

QUICKSTART = Path(__file__).resolve().parents[1] / "graphs" / "quickstart.yaml"
SMALL = ["--set", "data.shapes.n=1000", "--set", "tasks.pretrain.train.epochs=3",
         "--set", "tasks.finetune.train.epochs=2", "--set", "tasks.scratch.train.epochs=2"]


@pytest.fixture(scope="module")
def quickstart_run(ray_local, tmp_path_factory):
    import contextlib
    import io

    root = tmp_path_factory.mktemp("runs")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(QUICKSTART), "--run-dir", str(root), "--no-cache", "--plain", *SMALL])
    text = out.getvalue()
    assert code == 0, text
    run_dir = Path(text.strip().splitlines()[-1].split("run directory: ")[1])
    return run_dir, text


@pytest.mark.slow
def test_plain_progress_lines_come_from_the_workers(quickstart_run):
    _run_dir, text = quickstart_run
    for name in ("pretrain", "finetune", "scratch"):
        assert f"  start    {name} on " in text
        assert f"  done     {name} in " in text
    assert "  epoch    pretrain 3/3 train_loss=" in text  # the last epoch is always printed


@pytest.mark.slow
def test_trace_json_has_every_node_and_its_epochs(quickstart_run):
    run_dir, _ = quickstart_run
    trace = json.loads((run_dir / "trace.json").read_text())
    slices = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert {e["name"] for e in slices if e["cat"] == "done"} == {"pretrain", "finetune", "scratch"}
    assert len([e for e in slices if e["cat"] == "epoch"]) == 3 + 2 + 2
    assert any(e["ph"] == "s" for e in trace["traceEvents"])  # pretrain -> finetune flow


@pytest.mark.slow
def test_tensorboard_files_per_node(quickstart_run):
    run_dir, _ = quickstart_run
    for name in ("pretrain", "finetune", "scratch"):
        assert list((run_dir / name / "tb").glob("events.out.tfevents.*")), name


@pytest.mark.slow
def test_viz_and_report_of_the_run(quickstart_run, capsys, tmp_path):
    run_dir, _ = quickstart_run
    capsys.readouterr()
    assert main(["viz", str(run_dir), "--format", "ascii"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"\* pretrain \[cpu\] done \d+\.\ds", text), text
    assert re.search(r"\* finetune \[cpu\] done \d+\.\ds +<- pretrain: encoder \(finetune x0\.1\)", text), text
    assert main(["viz", str(run_dir), "-o", str(tmp_path / "run.svg")]) == 0
    assert "done" in (tmp_path / "run.svg").read_text()
    assert main(["report", str(run_dir), "-o", str(tmp_path / "report.html")]) == 0
    html = (tmp_path / "report.html").read_text()
    assert all(f'<tr data-node="{n}">' in html for n in ("pretrain", "finetune", "scratch"))
    assert html.count("<figure data-node=") == 3 and "trace.json" in html and "tensorboard --logdir" in html


@pytest.mark.slow
def test_mlflow_logs_a_run_per_graph_and_per_node(ray_local, tmp_path):
    pytest.importorskip("mlflow", reason="mlflow is optional (--mlflow); not installed here")
    from mlflow.tracking import MlflowClient

    pytest.importorskip("sqlalchemy", reason="MLflow's local sqlite store needs sqlalchemy (full mlflow has it)")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["run", str(QUICKSTART), "--run-dir", str(tmp_path / "runs"), "--no-cache", "--plain",
                 "--mlflow", uri, *SMALL]) == 0
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id}
    assert len(parent) == 1 and set(children) == {"pretrain", "finetune", "scratch"}
    history = client.get_metric_history(children["pretrain"].info.run_id, "val_accuracy")
    assert len(history) == 3 and all(r.info.status == "FINISHED" for r in runs)


def test_mlflow_missing_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    code = main(["run", str(QUICKSTART), "--run-dir", str(tmp_path), "--mlflow", "sqlite:///x.db", *SMALL])
    assert code == 2
    assert "mlflow is not installed. pip install mlflow-skinny" in capsys.readouterr().err


FAILING = """
name: failing
data:
  shapes: {loader: synthetic_shapes, n: 400, dim: 8, classes: 3}
defaults:
  train: {epochs: 1, batch_size: 64}
tasks:
  good:
    data: shapes
    modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 3}}
    loss: {type: cross_entropy, target: label}
  bad:
    data: shapes
    modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 3}}
    loss: {type: cross_entropy, target: colour}
  after:
    data: shapes
    depends_on: {bad: {share: [encoder]}}
    modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 3}}
    loss: {type: cross_entropy, target: label}
"""


@pytest.mark.slow
def test_a_failed_run_still_gets_its_trace_and_report(ray_local, write_graph, tmp_path):
    import taskgraph
    from taskgraph.report.html import write_report

    result = taskgraph.run(taskgraph.load(write_graph(FAILING)), run_root=tmp_path, use_cache=False)
    assert not result.ok
    trace = json.loads((result.run_dir / "trace.json").read_text())
    cats = {e["name"]: e["cat"] for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] != "queue"}
    assert cats == {"good": "done", "bad": "failed"}  # `after` was skipped: it never ran
    html = write_report(result.run_dir).read_text()
    assert all(f'<tr data-node="{n}">' in html for n in ("good", "bad", "after"))
    assert ">skipped<" in html and "colour" in html

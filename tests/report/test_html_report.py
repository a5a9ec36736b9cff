"""The HTML report: self-contained, every node in it, statuses, cache hits and the ablation table."""

from __future__ import annotations

import json
import re

import pytest

from taskgraph.errors import ArtifactError
from taskgraph.report.html import build_report, write_report
from taskgraph.report.rundata import load_run
from tests.report.fake_run import make_run

GAINS = {"graph": "quickstart", "from_run": None, "gains": [
    {"upstream": "pretrain", "downstream": "finetune", "fraction": 1.0, "metric": "accuracy",
     "with_edge": [0.8, 0.82, 0.84], "without_edge": [0.6, 0.61, 0.59], "gain_mean": 0.22, "gain_std": 0.02,
     "p_value": 0.003, "test": "paired t", "negative": False, "verdict": "helps"},
    {"upstream": "pretrain", "downstream": "scratch", "fraction": 1.0, "metric": "accuracy",
     "with_edge": [0.5, 0.5, 0.5], "without_edge": [0.6, 0.6, 0.6], "gain_mean": -0.1, "gain_std": 0.0,
     "p_value": 0.25, "test": "sign-flip", "negative": True, "verdict": "NEGATIVE TRANSFER (not significant)"},
], "rows": [{"upstream": "pretrain", "downstream": "finetune", "seed": 0, "value": 0.8}]}


def test_report_is_self_contained_and_shows_every_node(tmp_path):
    run_dir = make_run(tmp_path, {"finetune": "cached", "scratch": "failed"})
    out = write_report(run_dir)
    assert out == run_dir / "report.html"
    html = out.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the report must not load anything"
    assert "<script" not in html and "<link" not in html
    for name in ("pretrain", "finetune", "scratch"):
        assert f'<tr data-node="{name}">' in html
    assert html.count("<figure data-node=") == 2  # curves for the nodes with a metrics.json
    row = lambda name: html[html.index(f'<tr data-node="{name}">'):].split("</tr>")[0]  # noqa: E731
    assert ">cached<" in row("finetune") and "<td>hit</td>" in row("finetune")
    assert "encoder ← pretrain.encoder (finetune)" in row("finetune")
    assert ">failed<" in row("scratch") and "ValueError: boom" in row("scratch")
    assert "pretrain → finetune" in html  # the critical path of the run, in words
    assert "Ablation" not in html


def test_ablation_table_from_taskgraph_ablate_output(tmp_path):
    view = load_run(make_run(tmp_path, ablation=GAINS))
    html = build_report(view)
    table = html[html.index('<table class="ablation">'):].split("</table>")[0]
    assert table.count("<tr>") == 3  # header + one row per edge, not the per-seed rows
    assert "pretrain -&gt; finetune" in table and "0.82" in table  # the mean of with_edge
    assert '<td class="neg">yes</td>' in table and "NEGATIVE TRANSFER" in table


def test_ablation_found_beside_the_run_prefers_the_one_made_from_it(tmp_path):
    run_dir = make_run(tmp_path)
    for stamp, from_run in (("20250102-000000", str(run_dir)), ("20250103-000000", None)):
        folder = tmp_path / "quickstart" / ".." / "quickstart-ablate" / stamp
        folder.mkdir(parents=True)
        (folder / "ablation.json").write_text(json.dumps({**GAINS, "from_run": from_run}))
    view = load_run(run_dir)
    assert view.ablation_file is not None and view.ablation_file.parent.name == "20250102-000000"
    assert len(view.ablation) == 2


def test_ready_made_rows_are_read_as_they_are(tmp_path):
    rows = [{"edge": "pretrain->finetune", "metric": "accuracy", "with_mean": 0.8, "with_std": 0.01,
             "without_mean": 0.6, "without_std": 0.02, "gain_mean": 0.2, "gain_std": 0.02, "p_value": 0.01,
             "negative_transfer": False}]
    view = load_run(make_run(tmp_path, ablation={"rows": rows}))
    assert view.ablation == rows


def test_not_a_run_directory_says_what_to_pass(tmp_path):
    with pytest.raises(ArtifactError, match="no run.json.*`taskgraph run` printed"):
        load_run(tmp_path)


def test_cache_column_says_hit_or_miss_when_the_run_used_the_cache(tmp_path):
    run_dir = make_run(tmp_path, {"finetune": "cached"})
    run = json.loads((run_dir / "run.json").read_text())
    run["keys"] = {"pretrain": "k1", "finetune": "k2"}  # scratch: no key (not cached)
    (run_dir / "run.json").write_text(json.dumps(run))
    html = build_report(load_run(run_dir))
    cell = lambda name: html[html.index(f'<tr data-node="{name}">'):].split("</tr>")[0].split("<td>")[-2]  # noqa: E731
    assert (cell("pretrain"), cell("finetune"), cell("scratch")) == ("miss</td>", "hit</td>", "–</td>")


def test_metrics_changed_since_they_were_written_are_not_shown(tmp_path):
    """A node folder's manifest records the metrics' digest: edited numbers are a problem, not a result."""
    from taskgraph.artifacts.rundir import write_node

    run_dir = make_run(tmp_path)
    metrics = json.loads((run_dir / "pretrain" / "metrics.json").read_text())
    write_node(run_dir / "pretrain", {}, metrics)
    assert load_run(run_dir).metrics["pretrain"] == metrics
    path = run_dir / "pretrain" / "metrics.json"
    path.write_text(path.read_text().replace('"accuracy": 0.8', '"accuracy": 0.9'))
    view = load_run(run_dir)
    assert "pretrain" not in view.metrics and "finetune" in view.metrics
    assert any("pretrain/metrics.json is damaged" in p for p in view.problems)

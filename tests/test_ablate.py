"""``taskgraph ablate`` end to end on a real local Ray: variants, reuse of upstream states, outputs."""

from __future__ import annotations

import json

import pytest

from taskgraph.ablate import ablate_graph, ablation_edges
from taskgraph.cli import main
from taskgraph.errors import TaskgraphError
from taskgraph.spec.loader import load_spec

CHAIN = """
name: chain
data:
  shapes: {loader: synthetic_shapes, n: 1200, dim: 16, classes: 4}
defaults:
  train: {epochs: 2, batch_size: 64}
tasks:
  pretrain:
    data: shapes
    modules: {encoder: {type: mlp, in: 16, hidden: [32]}, head: {type: linear, out: 4}}
    loss: {type: cross_entropy, target: label}
    metrics: [accuracy]
  target:
    data: shapes
    depends_on: {pretrain: {share: [encoder], mode: freeze}}
    modules: {encoder: {type: mlp, in: 16, hidden: [32]}, head: {type: linear, out: 1}}
    loss: {type: binary_cross_entropy, target: parity}
    metrics: [accuracy]
  after:
    data: shapes
    depends_on: [target]
    modules: {encoder: {type: mlp, in: 16, hidden: [32]}, head: {type: linear, out: 1}}
    loss: {type: binary_cross_entropy, target: coarse}
"""


def test_edges_skip_order_only_dependencies_and_check_names(write_graph):
    spec, _ = load_spec(write_graph(CHAIN))
    edges, notes = ablation_edges(spec)
    assert edges == [("pretrain", "target")]
    assert any("target -> after: order only" in n for n in notes)
    with pytest.raises(TaskgraphError, match="Edges: pretrain->target"):
        ablation_edges(spec, ["target->after"])


@pytest.mark.slow
def test_ablate_trains_upstream_once_and_pairs_seeds(ray_local, write_graph, tmp_path):
    spec, source = load_spec(write_graph(CHAIN))
    result = ablate_graph(spec, source, seeds=2, fractions=(0.5, 1.0), run_root=tmp_path)
    assert len(result.rows) == 2 * 2 * 2  # fractions x seeds x (with, without)
    report = json.loads((result.out_dir / "ablation.json").read_text())
    assert report["metrics"] == {"target": "accuracy"}
    assert list(report["upstream"]) == ["pretrain"]  # trained once, shared by every variant
    assert (result.out_dir / "upstream" / "pretrain" / "metrics.json").is_file()
    assert (result.out_dir / "ablation.png").stat().st_size > 0
    assert {(g.fraction, len(g.with_edge)) for g in result.gains} == {(0.5, 2), (1.0, 2)}
    # a frozen encoder from a 4-class task versus a random one: the edge must change the result
    full = next(g for g in result.gains if g.fraction == 1.0)
    assert full.with_edge != full.without_edge
    assert all(0.0 <= r["value"] <= 1.0 for r in result.rows)

    # reuse: upstream states from the finished ablation's folder, nothing upstream retrained
    again = ablate_graph(spec, source, seeds=1, run_root=tmp_path, from_run=result.out_dir / "upstream")
    assert json.loads((again.out_dir / "ablation.json").read_text())["upstream"] == {}
    first = [r["value"] for r in result.rows if r["seed"] == 0 and r["fraction"] == 1.0 and r["with_edge"]]
    assert [r["value"] for r in again.rows if r["with_edge"]] == pytest.approx(first)

    # and without --from-run: the result cache under the same run root has the upstream node
    cached = ablate_graph(spec, source, seeds=1, run_root=tmp_path)
    report = json.loads((cached.out_dir / "ablation.json").read_text())
    assert report["upstream"] == {} and report["reused_upstream"] == ["pretrain"]
    assert [r["value"] for r in cached.rows if r["with_edge"]] == pytest.approx(first)


@pytest.mark.slow
def test_ablate_cli_prints_the_table(ray_local, write_graph, tmp_path, capsys):
    path = write_graph(CHAIN)
    code = main(["ablate", str(path), "--seeds", "2", "--run-dir", str(tmp_path), "--set", "defaults.train.epochs=1",
                 "--set", "data.shapes.test_fraction=0.2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "pretrain -> target" in out and "gain" in out and "ablation.png" in out
    # the data has a test split: each variant's test scores, and their gains, apart from validation (issue 14)
    done = [line for line in out.splitlines() if line.startswith("  done     target[")]
    assert len(done) == 2 * 2 and all(" | test loss=" in line and line.count("accuracy=") == 2 for line in done), done
    table = out[out.index("edge "):].splitlines()
    heading = next(i for i, line in enumerate(table) if line.startswith("test split"))
    assert " accuracy " in table[2] and " test accuracy " in table[heading + 1]
    report = json.loads(next(tmp_path.glob("**/ablation.json")).read_text())
    assert all("test_value" in row for row in report["rows"])
    assert [g["metric"] for g in report["gains"]] == ["accuracy", "test accuracy"]
    assert main(["ablate", str(path), "--fractions", "0,2"]) == 2


JOINT = """
name: joint
data:
  shapes: {loader: synthetic_shapes, n: 400, dim: 16, classes: 4}
tasks:
  up:
    data: shapes
    modules: {encoder: {type: mlp, in: 16, hidden: [8]}, head: {type: linear, out: 4}}
    loss: {type: cross_entropy, target: label}
  both:
    kind: multitask
    data: shapes
    depends_on: {up: {share: [encoder]}}
    modules: {encoder: {type: mlp, in: 16, hidden: [8]}}
    heads:
      parity: {module: {type: linear, out: 1}, loss: {type: binary_cross_entropy, target: parity}, metrics: [accuracy]}
      coarse: {module: {type: linear, out: 1}, loss: {type: binary_cross_entropy, target: coarse}}
"""


def test_edges_into_joint_nodes_compare_a_head_metric(write_graph):
    from taskgraph.ablate import _variant_request, primary_metric

    spec, _ = load_spec(write_graph(JOINT))
    assert primary_metric(spec, "both") == "parity.accuracy"
    assert primary_metric(spec, "both", "coarse.loss") == "coarse.loss"
    with pytest.raises(TaskgraphError, match="parity.accuracy, parity.loss, coarse.loss"):
        primary_metric(spec, "both", "accuracy")
    without = _variant_request(spec, "up", "both", False, 0, 0.5)
    assert without.inherits == () and without.sources == (("shapes", spec.data["shapes"]),)
    assert without.task.train.label_fraction == 0.5 and not without.task.depends_on

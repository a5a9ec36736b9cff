"""The example graphs in graphs/ validate, and run end to end on small slices of the real data."""

from __future__ import annotations

from pathlib import Path

import pytest

import taskgraph
from taskgraph.train.datasets.paths import DEFAULT_DATA

GRAPHS = Path(__file__).resolve().parents[1] / "graphs"
needs_data = pytest.mark.skipif(not DEFAULT_DATA.is_dir(), reason="shared/data is not staged")

#: Small slices: a few utterances / clips / images, one epoch. Enough to exercise every edge.
SLICES = {
    "speech.yaml": ["data.timit.max_utterances=16", "defaults.train.epochs=1",
                    "tasks.acoustic_model.train.epochs=1"],
    "digits.yaml": ["data.fsdd.max_index=7", "data.pairs.max_index=7", "data.positives.max_index=7",
                    "data.mnist.max_train=500",
                    "data.mnist.max_val=200", "defaults.train.epochs=1", "tasks.spoken_digit.train.epochs=1",
                    "tasks.written_digit.train.epochs=1"],
    "text.yaml": ["data.conll.max_sentences=64", "data.conll.max_val_sentences=32", "defaults.train.epochs=1"],
}


@pytest.mark.parametrize("name", sorted(SLICES))
def test_example_graph_validates(name):
    spec = taskgraph.load(GRAPHS / name)
    assert any(t.depends_on for t in spec.tasks.values())


def test_fsdd_experts_puts_three_trunks_side_by_side():
    spec = taskgraph.load(GRAPHS / "fsdd_experts.yaml")
    kinds = {name: (task.mixture.type if task.mixture else "hard") for name, task in spec.tasks.items()}
    assert kinds == {"hard": "hard", "mmoe": "mmoe", "mmoe_mlp": "mmoe", "cgc": "cgc"}
    assert set(spec.tasks["mmoe"].all_modules) == {"wide", "deep", "cnn", "gate_digit", "gate_speaker", "digit", "speaker"}


def test_digits_is_a_diamond_whose_branches_run_in_parallel():
    """One root; two branches with no path between them (so the scheduler runs them side by side)
    that each hand one encoder on; a join that needs both."""
    import networkx as nx

    from taskgraph.plan.graph import build_graph

    spec = taskgraph.load(GRAPHS / "digits.yaml")
    g = build_graph(spec)
    assert [n for n in g if g.in_degree(n) == 0] == ["align"]
    assert set(g.predecessors("digit_match")) == {"spoken_digit", "written_digit"}
    assert not nx.has_path(g, "spoken_digit", "written_digit") and not nx.has_path(g, "written_digit", "spoken_digit")
    for branch, module in (("spoken_digit", "audio_encoder"), ("written_digit", "image_encoder")):
        assert module in spec.tasks[branch].depends_on["align"].share
        assert module in spec.tasks["digit_match"].depends_on[branch].share


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLICES))
def test_example_graph_runs_on_a_slice(ray_local, tmp_path, name):
    spec = taskgraph.load(GRAPHS / name, SLICES[name])
    result = taskgraph.run(spec, run_root=tmp_path)
    assert result.ok, {n: r.error for n, r in result.records.items()}
    for node in spec.tasks:
        final = result.metrics(node)
        assert final, node
        assert all(0.0 <= v <= 1.0 for k, v in final.items() if not k.endswith("loss")), (node, final)
    if name == "digits.yaml":
        _use_the_trained_digits(spec, Path(result.run_dir), tmp_path)


def _use_the_trained_digits(spec, run_dir: Path, tmp_path: Path) -> None:
    """Issue 14 on the digits graph (the quickstart and text shapes are in test_trained/test_export):
    evaluate gives the nodes' own validation metrics, predictions reproduce the accuracies, and an
    exported node (two column-split encoders side by side, inherited from two branches) equals eager.
    The nodes on MNIST and the pairs only: featurising FSDD's clips again for `align`, `spoken_digit`
    and `speaker_id` would cost the suite ~20 s more (they evaluate equal too, by hand)."""
    import numpy as np

    from taskgraph.apply import evaluate_run, predict_node
    from taskgraph.export import export_node, run_file
    from taskgraph.train.data import load_data

    scores = evaluate_run(run_dir, ["written_digit", "digit_match"])
    for scored in scores:
        assert scored.split == "val" and scored.metrics == pytest.approx(scored.recorded, abs=1e-6), scored.node
    for node, source, target in (("written_digit", "mnist", "digit"), ("digit_match", "pairs", "same")):
        columns, _words, _split = predict_node(run_dir, node)
        labels = load_data(spec.data[source]).val[target].numpy()
        accuracy = float((columns[f"{node}.class"] == labels).mean())
        assert accuracy == pytest.approx(taskgraph.load_node(run_dir, node).metrics["final"]["accuracy"], abs=1e-6)
    trained = taskgraph.load_node(run_dir, "digit_match")
    done = export_node(trained, tmp_path / "digit_match.pt2")
    x = load_data(spec.data["pairs"]).val["x"][:64]
    got = run_file(done.path, x, done.outputs, joint=False)["digit_match"]
    np.testing.assert_allclose(got, trained.outputs(x)["digit_match"].numpy(), rtol=0, atol=1e-5)

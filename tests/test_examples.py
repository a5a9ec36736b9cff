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

"""A joint node end to end on real Ray: the CoNLL-2000 graph runs, hands its trunk downstream, writes artifacts."""

from __future__ import annotations

import json

import pytest

from taskgraph.spec.loader import load_spec
from taskgraph.train.datasets.conll2000 import resolve_root


@pytest.mark.slow
@pytest.mark.skipif(not (resolve_root("../shared/data/conll2000") / "train.txt").exists(), reason="no CoNLL-2000")
def test_conll_joint_graph_runs_on_ray(ray_local, tmp_path):
    from taskgraph.runner import run_graph

    spec, source = load_spec("graphs/conll_joint.yaml", [
        "data.conll.max_sentences=64", "data.conll.max_val_sentences=16",
        "defaults.train.epochs=1", "tasks.chunker.train.epochs=1",
    ])
    result = run_graph(spec, source, run_root=tmp_path)
    assert result.ok, {n: r.error for n, r in result.records.items()}
    tagger = json.loads((result.run_dir / "tagger" / "metrics.json").read_text())
    assert {"pos.accuracy", "chunk.span_f1"} <= set(tagger["final"]) and tagger["weighting"] == "upgrad"
    chunker = json.loads((result.run_dir / "chunker" / "metrics.json").read_text())
    assert [i["module"] for i in chunker["inherited"]] == ["embed", "trunk"]

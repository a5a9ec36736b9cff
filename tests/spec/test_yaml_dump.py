"""graph.yaml is written by libyaml's emitter where it writes PyYAML's bytes: the file stays the same."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from taskgraph.runner import dump_graph
from taskgraph.spec import load_spec
from taskgraph.spec.yamldump import c_emitter_agrees, dump_yaml

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = sorted((ROOT / "graphs").glob("*.yaml"))


def _bench_graphs() -> list[str]:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from bench_peers import dag_graph, one_step_graph
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return [dag_graph()[0], one_step_graph("chain", 20)]


@pytest.mark.parametrize("path", GRAPHS, ids=[p.name for p in GRAPHS])
def test_every_example_graph_is_written_byte_for_byte_as_pythons_emitter_writes_it(path):
    spec, _ = load_spec(path)
    data = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert c_emitter_agrees(data)  # the fast path is the one taken: the comparison is not vacuous
    assert dump_graph(spec) == yaml.safe_dump(data, sort_keys=False)


def test_benchmark_graphs_too(tmp_path):
    for i, text in enumerate(_bench_graphs()):
        (tmp_path / f"g{i}.yaml").write_text(text)
        spec, _ = load_spec(tmp_path / f"g{i}.yaml")
        data = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        assert c_emitter_agrees(data) and dump_graph(spec) == yaml.safe_dump(data, sort_keys=False)


@pytest.mark.parametrize("data", [
    {"note": "ünïcode"}, {"note": "two\nlines"}, {"note": "tab\there"}, {"": 1}, {"k" * 127: 1},
    {"bell": "\x07" * 90}, {"x": ("wrap " * 40) + "é"},
])
def test_text_the_emitters_lay_out_differently_goes_through_python(data):
    assert not c_emitter_agrees(data)
    assert dump_yaml(data) == yaml.safe_dump(data, sort_keys=False)
    assert yaml.safe_load(dump_yaml(data)) == data

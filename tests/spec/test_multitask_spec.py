"""Joint nodes in graph files: parsed, defaulted, and every mistake reported at its line with a fix."""

from __future__ import annotations

import pytest

from taskgraph.cli import main
from taskgraph.errors import SpecError
from taskgraph.spec.loader import parse_spec
from taskgraph.spec.models import MultiTaskNode, Task

GRAPH = """\
name: joint
data:
  conll: {loader: conll2000}
tasks:
  single:
    data: conll
    modules: {embed: {type: embedding, vocab: 100, dim: 8}, head: {type: linear, out: 4}}
    loss: {type: cross_entropy, target: pos}
  tagger:
    kind: multitask
    data: conll
    modules:
      embed: {type: embedding, vocab: 100, dim: 8}
      trunk: {type: bilstm, hidden: 4}
    heads:
      pos: {module: {type: linear, out: 44}, loss: {type: cross_entropy, target: pos}}
      chunk: {module: {type: linear, out: 23}, loss: {type: cross_entropy, target: chunk}, input: [trunk, pos]}
    WEIGHTING
"""


def parse(weighting: str = "", replace: tuple[str, str] = ("", "")):
    return parse_spec(GRAPH.replace("WEIGHTING", weighting).replace(*replace), file="g.yaml")[0]


def error(weighting: str = "", replace: tuple[str, str] = ("", "")) -> str:
    with pytest.raises(SpecError) as err:
        parse(weighting, replace)
    return str(err.value)


def test_kind_selects_the_node_type_and_weighting_defaults_to_equal():
    spec = parse()
    assert isinstance(spec.tasks["single"], Task) and isinstance(spec.tasks["tagger"], MultiTaskNode)
    node = spec.tasks["tagger"]
    assert node.weighting.method == "equal" and node.train is not None  # defaults merged in
    assert list(node.all_modules) == ["embed", "trunk", "pos", "chunk"]
    assert parse("weighting: {method: mgda, level: representation}").tasks["tagger"].weighting.level == "representation"


def test_unknown_method_names_the_line_and_the_close_match():
    text = error("weighting: {method: upgrd}")
    assert "g.yaml:18:" in text and "unknown method 'upgrd'. Did you mean 'upgrad'?" in text


def test_option_of_another_method_is_refused_for_the_chosen_one():
    text = error("weighting: {method: pcgrad, c: 0.4}")
    assert "g.yaml:18:" in text and "'c'" in text


def test_unknown_head_input_is_reported_with_the_known_names():
    text = error(replace=("input: [trunk, pos]", "input: [trunk, poss]"))
    assert "g.yaml:17:" in text and "unknown module or head 'poss'. Did you mean 'pos'?" in text


def test_a_head_must_be_declared_after_the_heads_it_reads():
    text = error(replace=("input: [trunk, pos]", "input: [trunk, chunk2]")
                 ).replace("\n", " ") if False else None
    swapped = GRAPH.replace("WEIGHTING", "").replace(
        "      pos: {module: {type: linear, out: 44}, loss: {type: cross_entropy, target: pos}}\n", ""
    ).replace("input: [trunk, pos]}\n", "input: [trunk, pos]}\n      pos: {module: {type: linear, out: 44}, "
              "loss: {type: cross_entropy, target: pos}}\n")
    with pytest.raises(SpecError, match="List 'pos' first under `heads`"):
        parse_spec(swapped, file="g.yaml")
    assert text is None


def test_representation_level_needs_heads_on_the_trunk_output():
    text = error("weighting: {method: upgrad, level: representation}", ("input: [trunk, pos]", "input: [embed, pos]"))
    assert "g.yaml:17:" in text and "Read 'trunk' or a head, or use `level: parameters`" in text


def test_unknown_kind_and_head_data_source():
    assert "unknown kind 'multi'. Did you mean 'multitask'?" in error(replace=("kind: multitask", "kind: multi"))
    text = error(replace=("input: [trunk, pos]}", "input: [trunk, pos], data: conl}"))
    assert "g.yaml:17:" in text and "unknown data source 'conl'. Did you mean 'conll'?" in text


def test_fixed_weights_name_existing_tasks():
    assert "unknown task 'chunks'" in error("weighting: {method: fixed, weights: {pos: 1.0, chunks: 2.0}}")


def test_cli_lists_the_weightings(capsys):
    assert main(["list", "weightings"]) == 0
    out = capsys.readouterr().out
    for name in ("equal", "uncertainty", "gradnorm", "famo", "mgda", "upgrad", "nash_mtl", "accumulate"):
        assert f"  {name} " in out


def test_a_head_reads_only_heads_on_its_own_data_source():
    text = error(replace=("input: [trunk, pos]}", "input: [trunk, pos], data: other}"))
    assert "a head can only read heads on the same batches" in text or "unknown data source 'other'" in text
    two = GRAPH.replace("WEIGHTING", "").replace("  conll: {loader: conll2000}",
                                                 "  conll: {loader: conll2000}\n  other: {loader: conll2000}")
    two = two.replace("input: [trunk, pos]}", "input: [trunk, pos], data: other}")
    with pytest.raises(SpecError, match="a head can only read heads on the same batches"):
        parse_spec(two, file="g.yaml")

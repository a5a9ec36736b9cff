"""A declared `in:` that cannot be what feeds the module is refused at validate time, with the width
to write, instead of torch's "mat1 and mat2 shapes cannot be multiplied" after Ray started."""

from __future__ import annotations

import pytest

from taskgraph.errors import PlanError
from taskgraph.plan import make_plan
from taskgraph.spec import parse_spec

GRAPH = """\
name: g
data:
  shapes: {loader: synthetic_shapes, n: 100, dim: 64}
  digits: {loader: mnist, max_train: 10, root: /anywhere}
  pairs: {loader: digit_pairs, n_mels: 8, frames: 4, root: /anywhere}
  speech: {loader: timit_sample, n_mels: 10, context: 2, root: /anywhere}
tasks:
  a:
    data: shapes
    modules:
      encoder: {type: mlp, in: 64, hidden: [16]}
      head: {type: linear, in: 16, out: 4}
    loss: {type: cross_entropy, target: label}
"""


def plan_error(text: str) -> str:
    spec, source = parse_spec(text, file="g.yaml")
    with pytest.raises(PlanError) as info:
        make_plan(spec, source)
    return str(info.value)


def test_matching_widths_plan():
    spec, source = parse_spec(GRAPH)
    make_plan(spec, source)


def test_first_module_in_must_match_the_data_width():
    text = plan_error(GRAPH.replace("in: 64,", "in: 32,"))
    assert ("g.yaml:11:28: tasks.a.modules.encoder.in: `in: 32`, but data source 'shapes' gives field 'x' 64 "
            "values wide. Write `in: 64`, or leave `in:` out to infer it.") in text


def test_later_module_in_must_match_the_previous_output():
    text = plan_error(GRAPH.replace("in: 16,", "in: 8,"))
    assert "g.yaml:12:28: tasks.a.modules.head.in: `in: 8`, but module 'encoder' outputs 16 values wide." in text


@pytest.mark.parametrize("source, width", [("digits", 784), ("pairs", 8 * 4 + 784), ("speech", 5 * 10)])
def test_registered_loaders_declare_their_width(source, width):
    text = plan_error(GRAPH.replace("data: shapes", f"data: {source}"))
    assert f"data source '{source}' gives field 'x' {width} values wide. Write `in: {width}`" in text


def test_columns_beyond_the_input_are_refused():
    text = plan_error(GRAPH.replace("in: 64, hidden: [16]", "hidden: [16], columns: [0, 100]"))
    assert "tasks.a.modules.encoder.columns: reads columns up to 100, but data source 'shapes'" in text


def test_joint_heads_are_checked_against_what_they_read():
    joint = GRAPH + """\
  j:
    kind: multitask
    data: shapes
    modules: {trunk: {type: mlp, hidden: [16]}}
    heads:
      p: {module: {type: linear, in: 16, out: 4}, loss: {type: cross_entropy, target: label}}
      q: {module: {type: linear, in: 16, out: 1}, loss: {type: mse, target: parity}, input: [trunk, p]}
"""
    text = plan_error(joint)
    assert "tasks.j.heads.q.module.in: `in: 16`, but trunk + p output 20 values wide. Write `in: 20`" in text
    assert "tasks.j.heads.p" not in text


def test_other_fields_and_user_loaders_are_not_guessed():
    spec, source = parse_spec(GRAPH.replace("data: shapes", "data: shapes\n    input: other")
                              .replace("in: 64,", "in: 3,"))
    make_plan(spec, source)  # only 'x' has a known width

"""User-data mistakes meet the model in words: node, field, shape expected and found, what to do (issue 13 item 8).

Each case trains one node directly (no Ray): before the fix each ended in torch's own text
("mat1 and mat2 shapes cannot be multiplied", "torch.cat(): expected a non-empty list", ...).
"""

from __future__ import annotations

import pytest

import taskgraph
from taskgraph.errors import TrainError
from taskgraph.train.loop import NodeRequest, train_node

GRAPH = """
name: shapes
data:
  d: {{loader: "tests.faults:{loader}"}}
tasks:
  t:
    data: d
    modules: {modules}
    loss: {{type: cross_entropy, target: label}}
    train: {{epochs: 1, batch_size: 16}}
"""
ROWS = "{encoder: {type: mlp, hidden: [8]}, head: {type: linear, out: 4}}"


def train(write_graph, loader: str, modules: str = ROWS) -> TrainError:
    spec = taskgraph.load(write_graph(GRAPH.format(loader=loader, modules=modules)))
    with pytest.raises(TrainError) as caught:
        train_node(NodeRequest("t", spec.tasks["t"], spec.data["d"], 0), {})
    return caught.value


def test_wrong_input_width_names_field_both_widths_and_the_fix(write_graph):
    err = train(write_graph, "narrow_data", "{encoder: {type: mlp, in: 16, hidden: [8]}, head: {type: linear, out: 4}}")
    text = str(err)
    assert text.startswith("tasks.t: field 'x' is [51, 8] (float32): 8 wide")
    assert "modules.encoder (mlp, in: 16) expects [batch, 16]" in text and "Set `in: 8` on modules.encoder" in text
    assert err.node == "t" and "\n" not in text


def test_3d_input_where_rows_are_expected(write_graph):
    text = str(train(write_graph, "sequence_data"))
    assert "field 'x' is [51, 5, 8] (float32) (3-D)" in text and "reads [batch, in]" in text
    assert "target 'label' is [51] (int64)" in text and "Flatten 'x' to [examples, 40]" in text


def test_sequence_module_given_rows(write_graph):
    text = str(train(write_graph, "narrow_data", "{trunk: {type: bilstm, hidden: 4}, head: {type: linear, out: 4}}"))
    assert "field 'x' is [51, 8] (float32), but modules.trunk (bilstm) reads sequences [batch, time, in]" in text


def test_ragged_rows_are_refused_in_words(write_graph):
    text = str(train(write_graph, "ragged_data"))
    assert text.startswith("tasks.t (data 'd'): loader 'tests.faults:ragged_data': field 'x' cannot become a tensor")
    assert "pad ragged rows to one length" in text


def test_fields_of_different_lengths(write_graph):
    text = str(train(write_graph, "uneven_data"))
    assert "fields have different numbers of examples ('label' 54, 'x' 64)" in text and text.startswith("tasks.t")


def test_empty_data(write_graph):
    text = str(train(write_graph, "empty_data"))
    assert text.startswith("tasks.t: the data has no training examples (field 'x' is [0, 8] (float32)")


def test_targets_that_do_not_fit_the_loss_name_the_node(write_graph):
    text = str(train(write_graph, "wide_targets"))
    assert text.startswith("tasks.t: cross_entropy: the head gives shape (16, 4); 'label' of shape (16, 3)")


def test_torch_shape_errors_at_the_first_batch_are_said_in_words(write_graph):
    """A head whose width does not fit the data's classes fails inside torch: translated, torch's text kept."""
    text = str(train(write_graph, "index_targets"))
    assert text.startswith("tasks.t: the first training batch does not fit the model: field 'x' is [16, 8]")
    assert "target 'label' is [16] (int64)" in text and "(torch: " in text


def test_a_user_module_raising_keeps_its_own_error(write_graph):
    """Only torch's shape errors are translated: a bug in user code is not blamed on the data."""
    spec = taskgraph.load(write_graph(GRAPH.format(
        loader="narrow_data", modules="{boom: {type: 'tests.faults:Explode', out: 8}, head: {type: linear, out: 4}}")))
    with pytest.raises(RuntimeError, match="boom from user code"):
        train_node(NodeRequest("t", spec.tasks["t"], spec.data["d"], 0), {})


JOINT = """
name: joint
data:
  d: {loader: "tests.faults:narrow_data"}
tasks:
  j:
    kind: multitask
    data: d
    modules: {encoder: {type: mlp, in: 16, hidden: [8]}}
    heads:
      a: {module: {type: linear, out: 4}, loss: {type: cross_entropy, target: label}}
      b: {module: {type: linear, out: 4}, loss: {type: cross_entropy, target: label}}
    train: {epochs: 1, batch_size: 16}
"""


def test_joint_node_trunk_checks_its_input_too(write_graph):
    spec = taskgraph.load(write_graph(JOINT))
    with pytest.raises(TrainError) as caught:
        train_node(NodeRequest("j", spec.tasks["j"], spec.data["d"], 0, sources=(("d", spec.data["d"]),)), {})
    assert str(caught.value).startswith("tasks.j: field 'x' is [51, 8] (float32): 8 wide, but modules.encoder (mlp, in: 16)")

"""Every kind of bad graph file gets an error naming the file, line, column, field and the fix."""

from __future__ import annotations

import pytest

from taskgraph.errors import PlanError, SpecError
from taskgraph.plan import make_plan
from taskgraph.spec import load_spec

GOOD = """
name: g
data:
  shapes: {loader: synthetic_shapes, n: 100, dim: 8}
tasks:
  up:
    data: shapes
    modules:
      encoder: {type: mlp, in: 8, hidden: [16]}
      head: {type: linear, out: 4}
    loss: {type: cross_entropy, target: label}
  down:
    data: shapes
    depends_on:
      up: {share: {encoder: encoder}, mode: freeze}
    modules:
      encoder: {type: mlp, in: 8, hidden: [16]}
      head: {type: linear, out: 1}
    loss: {type: binary_cross_entropy, target: parity}
"""


def problems(path, overrides=()):
    with pytest.raises(SpecError) as info:
        spec, source = load_spec(path, overrides)
        make_plan(spec, source)
    return info.value


def test_good_graph_loads(write_graph):
    spec, _ = load_spec(write_graph(GOOD))
    assert spec.tasks["down"].depends_on["up"].share == {"encoder": "encoder"}
    assert spec.tasks["down"].train.epochs == 3  # defaults merged in


def test_unknown_key_names_line_column_and_suggests(write_graph):
    path = write_graph(GOOD.replace("hidden: [16]}\n      head: {type: linear, out: 4}", "hiden: [16]}\n      head: {type: linear, out: 4}"))
    err = problems(path)
    text = str(err)
    assert f"{path}:8:35: tasks.up.modules.encoder.hiden: unknown key 'hiden'. Did you mean 'hidden'?" in text


def test_key_at_wrong_level_says_where_it_belongs(write_graph):
    path = write_graph(GOOD.replace("    loss: {type: cross_entropy, target: label}", "    loss: {type: cross_entropy, target: label}\n    epochs: 3"))
    text = str(problems(path))
    assert ":11:5: tasks.up.epochs: unknown key 'epochs'. 'epochs' belongs under `train:`." in text


def test_wrong_type_reports_value_and_position(write_graph):
    path = write_graph(GOOD.replace("n: 100", 'n: "lots"'))
    text = str(problems(path))
    assert ":3:41: data.shapes.n:" in text and "valid integer" in text and "'lots'" in text


def test_unknown_registry_name_suggests_and_lists(write_graph):
    path = write_graph(GOOD.replace("head: {type: linear, out: 4}", "head: {type: linaer, out: 4}"))
    text = str(problems(path))
    assert ":9:20: tasks.up.modules.head.type: unknown type 'linaer'. Did you mean 'linear'?" in text
    assert "taskgraph list" in text


def test_unknown_dependency(write_graph):
    path = write_graph(GOOD.replace("      up: {share", "      upp: {share"))
    text = str(problems(path))
    assert ":14:7: tasks.down.depends_on.upp: unknown task 'upp'. Did you mean 'up'? Known: down, up." in text


def test_shared_module_missing_downstream(write_graph):
    path = write_graph(GOOD.replace("share: {encoder: encoder}", "share: {trunk: encoder}"))
    err = problems(path)
    assert isinstance(err, PlanError)
    assert ":14:20: tasks.down.depends_on.up.share.trunk: task 'down' has no module 'trunk'" in str(err)


def test_shared_module_missing_upstream(write_graph):
    path = write_graph(GOOD.replace("share: {encoder: encoder}", "share: {encoder: body}"))
    text = str(problems(path))
    assert "tasks.down.depends_on.up.share.encoder: upstream task 'up' has no module 'body'" in text


def test_shape_mismatch_refused_at_plan_time(write_graph):
    # the downstream encoder is wider: refused from the configs alone, before any training
    path = write_graph(GOOD.replace("      encoder: {type: mlp, in: 8, hidden: [16]}\n      head: {type: linear, out: 1}",
                                    "      encoder: {type: mlp, in: 8, hidden: [32]}\n      head: {type: linear, out: 1}"))
    text = str(problems(path))
    assert "shape mismatch for 'encoder.layers.0.weight': upstream 'up.encoder' has [16, 8], this task has [32, 8]" in text
    assert ":14:20: tasks.down.depends_on.up.share.encoder:" in text


def test_cycle_printed_as_path(write_graph):
    path = write_graph(GOOD.replace("    data: shapes\n    modules:\n      encoder: {type: mlp, in: 8, hidden: [16]}\n      head: {type: linear, out: 4}",
                                    "    data: shapes\n    depends_on: [down]\n    modules:\n      encoder: {type: mlp, in: 8, hidden: [16]}\n      head: {type: linear, out: 4}"))
    err = problems(path)
    assert isinstance(err, PlanError)
    assert err.cycle in (("down", "up", "down"), ("up", "down", "up"))
    assert "dependency cycle" in str(err) and "Remove one depends_on entry" in str(err)


def test_duplicate_keys(write_graph):
    path = write_graph(GOOD + "  up:\n    data: shapes\n")
    text = str(problems(path))
    assert ":19:3: tasks.up: duplicate key 'up' (first defined on line 5). Keep one of them." in text


def test_empty_graph_and_empty_file(write_graph):
    assert "no tasks" in str(problems(write_graph("name: g\ntasks: {}\n")))
    assert "the file is empty" in str(problems(write_graph("", name="empty.yaml")))


def test_all_errors_in_one_pass(write_graph):
    bad = GOOD.replace("n: 100", "n: -1").replace("hidden: [16]}\n      head: {type: linear, out: 4}", "hidden: [16], colour: red}\n      head: {type: linear, out: 4}")
    bad = bad.replace("      up: {share", "      nope: {share")
    err = problems(write_graph(bad))
    assert len(err.issues) == 3
    lines = [i.line for i in err.issues]
    assert lines == sorted(lines)


def test_invalid_yaml_syntax(write_graph):
    text = str(problems(write_graph("name: g\ntasks: {a: [\n")))
    assert "not valid YAML" in text and ":3:" in text


def test_missing_file():
    with pytest.raises(SpecError, match="no such file"):
        load_spec("does/not/exist.yaml")


def test_set_overrides_and_their_errors(write_graph):
    path = write_graph(GOOD)
    spec, _ = load_spec(path, ["tasks.up.train.epochs=1", "data.shapes.n=50"])
    assert spec.tasks["up"].train.epochs == 1 and spec.data["shapes"].n == 50
    assert "(from --set tasks.up.train.epochs=0)" in str(problems(path, ["tasks.up.train.epochs=0"]))
    assert "no task 'upp'" in str(problems(path, ["tasks.upp.train.epochs=1"]))
    assert "needs the form" in str(problems(path, ["tasks.up.train.epochs"]))


def test_order_only_dependency_and_list_share(write_graph):
    text = GOOD.replace("up: {share: {encoder: encoder}, mode: freeze}", "up: {share: [encoder, head]}")
    text = text.replace("head: {type: linear, out: 1}", "head: {type: linear, out: 4}")
    spec, _ = load_spec(write_graph(text))
    assert spec.tasks["down"].depends_on["up"].share == {"encoder": "encoder", "head": "head"}
    spec, _ = load_spec(write_graph(GOOD.replace("      up: {share: {encoder: encoder}, mode: freeze}", "      - up"), "o.yaml"))
    assert spec.tasks["down"].depends_on["up"].share == {}

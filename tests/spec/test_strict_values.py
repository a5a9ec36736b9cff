"""Values YAML reads loosely are refused where the schema wants something exact: names that become
folders, numbers that are booleans or infinite; and every message says what is allowed, in words."""

from __future__ import annotations

import pytest

from taskgraph.errors import SpecError
from taskgraph.spec import parse_spec

GRAPH = """\
name: g
data:
  shapes: {loader: synthetic_shapes, n: 100, dim: 8}
tasks:
  up:
    data: shapes
    modules: {encoder: {type: mlp, in: 8, hidden: [16]}, head: {type: linear, out: 4}}
    loss: {type: cross_entropy, target: label}
    train: {epochs: 2, lr: 0.001}
    resources: {cpus: 1}
  joint:
    kind: multitask
    data: shapes
    modules: {trunk: {type: mlp, in: 8, hidden: [16]}}
    heads:
      a: {module: {type: linear, out: 1}, loss: {type: mse, target: parity}}
    weighting: {method: nash_mtl}
"""


def errors(text: str, *overrides: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(text, file="g.yaml", overrides=overrides)
    return str(info.value)


# --------------------------------------------------------------------------- names (folder names)


def test_long_graph_name_is_refused_with_the_limit_and_why():
    text = errors(GRAPH.replace("name: g", "name: " + "g" * 300))
    assert "g.yaml:1:7: name: the name 'gggg" in text
    assert "is 300 characters long; names are at most 100" in text and "filesystems cap at 255 bytes" in text


def test_long_task_name_is_refused_at_its_line():
    long = "t" * 300
    text = errors(GRAPH.replace("  up:", f"  {long}:"))
    assert "g.yaml:5:3: tasks.tttttttttt" in text and "is 300 characters long; names are at most 100" in text


@pytest.mark.parametrize("reserved", ["con", "NUL", "Com1", "lpt9"])
def test_windows_device_names_are_refused_for_tasks_and_graphs(reserved):
    text = errors(GRAPH.replace("  up:", f"  {reserved}:"))
    assert f"g.yaml:5:3: tasks.{reserved}" in text and "reserved device name on Windows" in text and "Rename it" in text
    text = errors(GRAPH.replace("name: g", f"name: {reserved}"))
    assert "g.yaml:1:" in text and "reserved device name" in text


def test_names_that_only_start_like_device_names_are_fine():
    spec, _ = parse_spec(GRAPH.replace("  up:", "  console:").replace("name: g", "name: com10"))
    assert "console" in spec.tasks and spec.name == "com10"


def test_a_name_of_the_longest_length_is_fine():
    spec, _ = parse_spec(GRAPH.replace("  up:", "  " + "t" * 100 + ":").replace("name: g", "name: " + "g" * 100))
    assert len(spec.name) == 100


@pytest.mark.parametrize("bad", ["a/b", "../up", "a b", "ä", "1up", "-up", ".hidden"])
def test_names_that_are_unsafe_as_folders_say_what_is_allowed(bad):
    text = errors(GRAPH.replace("  up:", f"  '{bad}':"))
    assert "is not a valid name: start with a letter or _, then use only letters, digits, _ and -" in text
    assert "pattern" not in text and "^[" not in text


def test_task_names_differing_only_in_case_are_refused():
    text = errors(GRAPH + GRAPH.split("tasks:\n")[1].split("  joint:")[0].replace("  up:", "  UP:"))
    assert "tasks 'up' and 'UP' differ only in case" in text


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("override, field", [
    ("tasks.up.train.lr=.inf", "tasks.up.train.lr"),
    ("tasks.up.train.lr=.nan", "tasks.up.train.lr"),
    ("tasks.up.resources.cpus=.inf", "tasks.up.resources.cpus"),
    ("tasks.up.cost=-.inf", "tasks.up.cost"),
    ("data.shapes.noise=.nan", "data.shapes.noise"),
])
def test_non_finite_numbers_are_refused(override, field):
    text = errors(GRAPH, override)
    assert f"g.yaml: {field} (from --set {override}): must be a finite number" in text


@pytest.mark.parametrize("override, field", [
    ("tasks.up.train.epochs=true", "tasks.up.train.epochs"),
    ("tasks.up.train.batch_size=yes", "tasks.up.train.batch_size"),
    ("tasks.up.train.lr=on", "tasks.up.train.lr"),
    ("tasks.up.resources.gpus=true", "tasks.up.resources.gpus"),
    ("tasks.up.seed=false", "tasks.up.seed"),
    ("tasks.up.modules.encoder.hidden=[16, true]", "tasks.up.modules.encoder.hidden.1"),
    ("tasks.up.resources.custom={hw: true}", "tasks.up.resources.custom.hw"),
    ("data.shapes.n=true", "data.shapes.n"),
])
def test_booleans_are_not_numbers(override, field):
    text = errors(GRAPH, override)
    assert f"g.yaml: {field} (from --set {override}): a number is needed, not the boolean" in text
    assert "Write a number." in text


def test_booleans_where_booleans_belong_still_work():
    spec, _ = parse_spec(GRAPH, overrides=("tasks.up.modules.head.bias=false",))
    assert spec.tasks["up"].modules["head"].bias is False


def test_every_bad_value_of_a_task_is_reported_in_one_pass():
    text = errors(GRAPH, "tasks.up.train.epochs=true", "tasks.up.train.lr=.inf", "tasks.up.seed=yes")
    assert len(text.splitlines()) == 3


# --------------------------------------------------------------------------- messages


@pytest.mark.parametrize("section, key, hint", [
    ("tasks.up.train", "epoch", "Did you mean 'epochs'?"),
    ("tasks.up.resources", "cpu", "Did you mean 'cpus'?"),
    ("tasks.joint.weighting", "update_every", "Did you mean 'update_weights_every'?"),
    ("tasks.joint.train", "bach_size", "Did you mean 'batch_size'?"),
    ("tasks.joint.sampling", "rul", "Did you mean 'rule'?"),
])
def test_unknown_keys_in_optional_sections_get_a_suggestion(section, key, hint):
    text = errors(GRAPH, f"{section}.{key}=1")
    assert f"unknown key '{key}'. {hint} Valid keys:" in text


def test_unknown_key_in_defaults_is_located_and_suggested():
    text = errors(GRAPH.replace("data:\n", "defaults:\n  train: {lrr: 1}\ndata:\n", 1))
    assert "g.yaml:3:11: defaults.train.lrr: unknown key 'lrr'. Did you mean 'lr'?" in text


@pytest.mark.parametrize("override, expected", [
    ("tasks.up.train.optimizer=adm", "unknown value 'adm'. Did you mean 'adam'? Known: adam, adamw, sgd."),
    ("tasks.up.depends_on={joint: {mode: frozen}}", "unknown value 'frozen'. Did you mean 'freeze'? Known: finetune, freeze, init."),
    ("data.mine={loader: 'not a ref'}", None),
])
def test_messages_name_the_choices_not_a_regex(override, expected):
    text = errors(GRAPH, override)
    assert "pattern" not in text and "^(" not in text
    if expected:
        assert expected in text


def test_long_values_are_shortened_in_messages():
    text = errors(GRAPH, "tasks.up.train.epochs=" + "x" * 5000)
    assert len(text) < 400 and "..." in text

"""Hostile or unusual YAML: bombs, deep nesting, merge keys, encodings and bad --set values.

Each is answered with one located line (``SpecError``, exit 2) or read correctly, and both parser
paths (PyYAML, yaml-rs past ``FAST_PARSE_MIN_BYTES``) give the same answer.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from taskgraph.cli import main
from taskgraph.errors import SpecError
from taskgraph.spec import load_spec, parse_spec, yamltext

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
name: g
x-train: &train {epochs: 2, batch_size: 32, lr: 0.001}
data:
  shapes: {loader: synthetic_shapes, n: 100, dim: 8}
tasks:
  a:
    data: shapes
    modules: {m: {type: linear, in: 8, out: 1}}
    loss: {type: mse, target: parity}
    train:
      <<: *train
      lr: 0.01
  b:
    data: shapes
    modules: {m: {type: linear, in: 8, out: 1}}
    loss: {type: mse, target: parity}
    train: *train
"""

BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
) + "name: g\ntasks: {}\n"


def padded(text: str) -> str:
    """The same content past the fast-path threshold (comments change no data)."""
    pad = ("# " + "padding " * 12 + "\n") * (yamltext.FAST_PARSE_MIN_BYTES // 90 + 10)
    return text + pad


def error_of(text: str, overrides: tuple[str, ...] = (), file: str = "g.yaml") -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(text, file=file, overrides=overrides)
    return str(info.value)


# --------------------------------------------------------------------------- aliases


@pytest.mark.timeout(20)
@pytest.mark.parametrize("pad", [False, True], ids=["small", "past-fast-threshold"])
def test_alias_bomb_is_refused_fast_with_its_line(pad):
    assert len(BOMB) < 700
    text = padded(BOMB) if pad else BOMB
    message = error_of(text)
    assert message.startswith("g.yaml:8:4: aliases repeat the value anchored here 9 times")
    assert "alias bomb" in message and "\n" not in message


def test_self_referencing_alias():
    assert "g.yaml:2:8: an alias refers to the value it is inside of" in error_of("name: g\ntasks: &a {x: *a}\n")


def test_moderate_aliases_are_fine():
    spec, _ = parse_spec(BASE)
    assert spec.tasks["b"].train.batch_size == 32


# --------------------------------------------------------------------------- merge keys


@pytest.mark.parametrize("pad", [False, True], ids=["small", "past-fast-threshold"])
def test_merge_key_with_an_override(pad):
    spec, _ = parse_spec(padded(BASE) if pad else BASE, file="g.yaml")
    assert spec.tasks["a"].train.lr == 0.01 and spec.tasks["a"].train.batch_size == 32
    assert spec.tasks["b"].train.lr == 0.001


def test_both_paths_build_the_same_spec_from_merge_keys(monkeypatch):
    careful, _ = parse_spec(BASE)
    monkeypatch.setattr(yamltext, "FAST_PARSE_MIN_BYTES", 0)
    assert parse_spec(BASE)[0] == careful == parse_spec(padded(BASE))[0]


def test_top_level_x_keys_hold_anchors_and_the_schema_allows_them():
    from taskgraph.spec.models import Graph

    assert parse_spec(BASE)[0].name == "g"  # x-train is not a graph field, and not an error
    assert Graph.model_json_schema(by_alias=True)["patternProperties"] == {"^x-": {}}
    assert "unknown key 'y-train'" in error_of(BASE.replace("x-train", "y-train"))


def test_duplicate_keys_next_to_a_merge_are_still_refused():
    text = BASE.replace("      lr: 0.01\n", "      lr: 0.01\n      lr: 0.02\n")
    assert "g.yaml:13:7: tasks.a.train.lr: duplicate key 'lr' (first defined on line 12)" in error_of(text)
    text = BASE.replace("      lr: 0.01\n", "      <<: *train\n")
    assert "duplicate key '<<'" in error_of(text) and "<<: [*a, *b]" in error_of(text)


def test_set_changes_only_the_place_it_names_even_through_an_alias():
    for text in (BASE, padded(BASE)):
        spec, _ = parse_spec(text, overrides=("tasks.b.train.epochs=5",))
        assert spec.tasks["b"].train.epochs == 5 and spec.tasks["a"].train.epochs == 2


@pytest.mark.parametrize("scalar", [
    "1.0e3", "1.5e3", "1.0e-3", "1.0E+3", ".5e3", ".5e-3", "+.5", "-.5", "=", "!foo bar", "<<", "1e3", "0b101", "1_000", "0x1F", ".inf", "~",
    "2026-13-45", "yes", "1:30", "017", "'a''b'", "!!str 1", "!!binary aGk=",
])
def test_fast_path_never_reads_a_scalar_differently(scalar, monkeypatch):
    monkeypatch.setattr(yamltext, "FAST_PARSE_MIN_BYTES", 0)
    text = f"name: g\nk: {scalar}\nl: [{scalar}]\n"
    fast = yamltext.fast_load(text)
    if fast is not None:
        assert fast == yaml.load(text, Loader=yaml.SafeLoader)


# --------------------------------------------------------------------------- nesting


def test_deep_flow_nesting_is_refused_without_a_crash(tmp_path):
    """100,000 nested brackets crash libyaml's composer (SIGSEGV): run it in a child process."""
    path = tmp_path / "deep.yaml"
    path.write_text("name: g\ntasks: " + "[" * 100_000 + "]" * 100_000 + "\n")
    out = subprocess.run([sys.executable, "-m", "taskgraph", "validate", str(path)], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"{path}:2:" in out.stderr and "nested more than 100 levels deep" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("style", ["flow", "block"])
def test_deep_nesting_with_a_set_is_one_error(style, write_graph, capsys):
    levels = 400
    if style == "flow":
        body = "name: g\ntasks: " + "[" * levels + "]" * levels + "\n"
    else:
        body = "name: g\ntasks:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(levels)) + " " * (levels + 1) + "x: 1\n"
    path = write_graph(body)
    assert main(["validate", str(path), "--set", "name=h"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:" in err and "nested more than 100 levels deep" in err


# --------------------------------------------------------------------------- encodings


GOOD = "name: g\ndata:\n  s: {loader: synthetic_shapes, n: 100, dim: 8}\ntasks:\n  a: {data: s, modules: {m: {type: linear, out: 1}}, loss: {type: mse, target: parity}}\n"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-8-sig"])
def test_unicode_with_a_byte_order_mark_is_read(encoding, tmp_path):
    path = tmp_path / "g.yaml"
    path.write_bytes(GOOD.encode(encoding))
    assert load_spec(path)[0] == parse_spec(GOOD)[0]


@pytest.mark.parametrize("raw, expected", [
    ("name: caf\xe9\ntasks: {}\n".encode("latin-1"), ":1:10: is not UTF-8 text (byte 0xe9). Save the file as UTF-8."),
    (GOOD.encode("utf-16-le"), ":1: holds a NUL byte"),
    (b"name: g\ntasks: {}\x00\n", ":2: holds a NUL byte"),
    (bytes(range(256)) * 4, ":1: holds a NUL byte"),
    (b"name: g\x07\ntasks: {}\n", ":1:8: holds a control character (0x07)"),
    (b"\xff\xfe\x00\xd8", ": starts with a UTF-16-LE byte-order mark but is not UTF-16-LE text"),
])
def test_binary_and_foreign_encodings_are_one_error(raw, expected, tmp_path, capsys):
    path = tmp_path / "g.yaml"
    path.write_bytes(raw)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}{expected}" in err and "Traceback" not in err


def test_a_folder_is_not_a_graph_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path)]) == 2
    assert f"{tmp_path}: is a folder" in capsys.readouterr().err


def test_impossible_date_names_its_line():
    assert "g.yaml:2:7: not valid YAML: cannot read '2026-13-45' (month must be in 1..12)" in error_of(
        "name: g\nseed: 2026-13-45\ntasks: {}\n")


# --------------------------------------------------------------------------- --set values


@pytest.mark.parametrize("value, expected", [
    ("[1", "the value is not valid YAML (did not find expected ',' or ']')"),
    ("*a", "the value is not valid YAML (found undefined alias)"),
    ("\tx", "the value is not valid YAML"),
    ("!!python/object:os.system {}", "could not determine a constructor for the tag"),
    ("&a [*a]", "an alias refers to the value it is inside of"),
    ("{a: 1, a: 2}", "duplicate key 'a'"),
    ("[" * 500 + "]" * 500, "nested more than 100 levels deep"),
    (BOMB.split("name:")[0].replace("\n", ", ").join("{}"), "alias bomb"),
])
def test_bad_set_values_are_one_error_naming_the_file(value, expected, capsys):
    graph = str(ROOT / "graphs" / "quickstart.yaml")
    assert main(["validate", graph, "--set", f"tasks.pretrain.train.lr={value}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{graph}: --set 'tasks.pretrain.train.lr=") and expected in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2  # the problem, then the count


def test_brackets_inside_strings_do_not_hide_deep_nesting(tmp_path):
    """Closing brackets in quoted text must not lower the depth estimate: 60,000 real levels, each
    with a quoted ']', are still refused (they would crash libyaml's composer)."""
    path = tmp_path / "deep.yaml"
    path.write_text("name: g\ntasks: " + "['],'," * 60_000 + "]" * 60_000 + "\n")
    out = subprocess.run([sys.executable, "-m", "taskgraph", "validate", str(path)], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "nested more than 100 levels deep" in out.stderr and "Traceback" not in out.stderr

"""Large graph files take the yaml-rs fast path; it must build exactly what PyYAML builds."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from taskgraph.errors import SpecError
from taskgraph.spec import yamltext
from taskgraph.spec.loader import parse_spec
from taskgraph.spec.yamltext import fast_load as _fast_load

pytest.importorskip("yaml_rs")
GRAPHS = sorted((Path(__file__).resolve().parents[2] / "graphs").glob("*.yaml"))


def big(n: int = 3000, extra: str = "") -> str:
    lines = ["name: big", "data:", "  shapes: {loader: synthetic_shapes, n: 100, dim: 8}", "tasks:"]
    for i in range(n):
        deps = f", depends_on: [t{i - 1:05d}]" if i else ""
        lines.append(f"  t{i:05d}: {{data: shapes{deps}, modules: {{head: {{type: linear, in: 8, out: 1}}}}, "
                     f"loss: {{type: mse, target: parity}}, train: {{lr: 0.001, epochs: 2}}{extra}}}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def always_fast(monkeypatch):
    monkeypatch.setattr(yamltext, "FAST_PARSE_MIN_BYTES", 0)


@pytest.mark.parametrize("path", GRAPHS, ids=lambda p: p.name)
def test_fast_and_careful_paths_agree_on_every_example(path, always_fast):
    text = "\n".join(line.split(" # ")[0] for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
    fast = _fast_load(text)
    if fast is None:
        pytest.skip(f"{path.name} uses YAML 1.1-only scalars (or comments that look like them): careful path")
    assert fast == yaml.load(text, Loader=yaml.SafeLoader)


def test_large_file_takes_the_fast_path_and_validates_the_same():
    text = big()
    assert len(text) >= yamltext.FAST_PARSE_MIN_BYTES and _fast_load(text) is not None
    fast_spec, source = parse_spec(text)
    assert source.tree is None  # no node tree composed: no error needed positions
    assert fast_spec == parse_spec(text.replace("name: big", "name: big  # on"))[0].model_copy()


@pytest.mark.parametrize("scalar", ["yes", "No", "off", "010", "0o17", "1:30", "1e-3", "2026-01-01"])
def test_yaml11_only_scalars_keep_the_careful_path(scalar, always_fast):
    assert _fast_load(f"name: g\nx: {scalar}\n") is None


def test_errors_in_a_fast_parsed_file_still_name_line_and_column():
    text = big().replace("t00042: {data: shapes", "t00042: {data: shapez", 1)
    with pytest.raises(SpecError) as info:
        parse_spec(text, file="big.yaml")
    assert "big.yaml:47:18: tasks.t00042.data: unknown data source 'shapez'. Did you mean 'shapes'?" in str(info.value)


def test_duplicate_keys_in_a_large_file_are_reported_with_positions():
    text = big() + "  t00007: {data: shapes, modules: {head: {type: linear, in: 8, out: 1}}, loss: {type: mse, target: parity}}\n"
    with pytest.raises(SpecError, match=r"big.yaml:3005:3: tasks.t00007: duplicate key 't00007' \(first defined on line 12\)"):
        parse_spec(text, file="big.yaml")

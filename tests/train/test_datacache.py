"""Load once per run: a data source is loaded by one worker, stored in ``<run-dir>/.cache/data`` and
read back by every other worker, run and ablation variant; a damaged entry is never served."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import TypeAdapter

import taskgraph
from taskgraph.spec.components import DataConfig
from taskgraph.train import data as data_module
from taskgraph.train.data import load_data


def _table(tmp_path: Path, rows: int = 60) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, 4, generator=g)
    lines = ["a,b,c,d,y"] + [",".join(f"{v:.4f}" for v in r) + f",{int(r[0] > 0)}" for r in x.tolist()]
    (folder / "t.csv").write_text("\n".join(lines) + "\n")
    return folder / "t.csv"


def _calls(tmp_path: Path) -> int:
    calls = tmp_path / "calls"
    return len(list(calls.iterdir())) if calls.exists() else 0


def _config(table: Path):
    return TypeAdapter(DataConfig).validate_python({"loader": "tests.userdata:counted_csv", "table": str(table)})


def test_a_fresh_process_reads_the_stored_source_and_a_damaged_entry_is_loaded_again(tmp_path):
    table, cache = _table(tmp_path), str(tmp_path / "cache")
    config = _config(table)
    first = load_data(config, cache)
    data_module._load_data.cache_clear()  # as a new worker process: nothing in memory
    again = load_data(config, cache)
    assert _calls(tmp_path) == 1
    for split in ("train", "val"):
        for key, value in getattr(first, split).items():
            assert torch.equal(getattr(again, split)[key], value)

    stored = next((tmp_path / "cache").glob("*.safetensors"))
    stored.write_bytes(stored.read_bytes()[:-9])  # truncated: never served
    data_module._load_data.cache_clear()
    healed = load_data(config, cache)
    assert _calls(tmp_path) == 2 and torch.equal(healed.train["x"], first.train["x"])

    table.write_text(table.read_text().replace("\n", "\n", 1) + "0.1,0.2,0.3,0.4,1\n")  # new content: new entry
    data_module._load_data.cache_clear()
    assert len(load_data(config, cache).train["x"]) + len(load_data(config, cache).val["x"]) == 61
    assert _calls(tmp_path) == 3


SHARED = """
name: shared
data:
  t: {{loader: "tests.userdata:counted_csv", table: "{table}"}}
defaults:
  train: {{epochs: 1, batch_size: 16}}
tasks:
  a: {{data: t, modules: {{head: {{type: linear, in: 4, out: 1}}}}, loss: {{type: binary_cross_entropy, target: y}}}}
  b: {{data: t, modules: {{head: {{type: linear, in: 4, out: 1}}}}, loss: {{type: mse, target: y}}}}
  c: {{data: t, modules: {{head: {{type: linear, in: 4, out: 1}}}}, loss: {{type: l1, target: y}}}}
"""


@pytest.mark.slow
def test_three_nodes_on_two_workers_load_their_source_once(ray_warm, write_graph, tmp_path):
    """Three nodes share one source; two run at once on two workers. Before: each worker loaded it."""
    graph = write_graph(SHARED.format(table=_table(tmp_path)))
    result = taskgraph.run(taskgraph.load(graph), run_root=tmp_path / "runs")
    assert result.ok and _calls(tmp_path) == 1
    assert len(list((tmp_path / "runs" / ".cache" / "data").glob("*.safetensors"))) == 1

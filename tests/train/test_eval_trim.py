"""Evaluation cuts sequence batches to their longest sentence (shortest first, a token budget per
batch), as training does, and gives the same metrics as evaluating at the split's full width."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from taskgraph.spec.loader import parse_spec
from taskgraph.train.data import evaluate_batches, load_data
from taskgraph.train.loop import NodeRequest, evaluate, train_node
from taskgraph.train.model import NodeModel


class WidthSpy(nn.Module):
    """Passes its input on and records the time width of every batch it sees in eval mode."""

    seen: list[int] = []

    def __init__(self, **_: object):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            WidthSpy.seen.append(x.shape[1])
        return x


LONG = 300


def _conll(tmp_path: Path, n_val: int) -> dict[str, str]:
    """Short sentences (2-5 tokens), and one LONG-token sentence in each split (CoNLL-2002 style)."""
    def sentences(n: int, offset: int) -> str:
        rows = []
        for i in range(n):
            words = [f"w{(i + offset + k) % 7} N {'B-PER' if k == 0 else 'O'}" for k in range(2 + (i % 4))]
            rows.append("\n".join(words))
        rows.insert(n // 2, "\n".join(f"w{k % 7} N O" for k in range(LONG)))
        return "\n\n".join(rows) + "\n"

    (tmp_path / "train.txt").write_text(sentences(40, 0))
    (tmp_path / "val.txt").write_text(sentences(n_val, 3))
    return {"train": str(tmp_path / "train.txt"), "val": str(tmp_path / "val.txt")}


def _graph(files: dict[str, str], spy: bool) -> str:
    spy_line = "      spy: {type: \"tests.train.test_eval_trim:WidthSpy\", out: 8}\n" if spy else ""
    return f"""
name: trim
data:
  ner: {{loader: conll, train: {files['train']}, val: {files['val']}, labels: {{ner: -1}}}}
tasks:
  tagger:
    data: ner
    train: {{epochs: 1, batch_size: 8}}
    modules:
      embed: {{type: embedding, vocab: 20, dim: 8}}
{spy_line}      head: {{type: linear, out: 3}}
    loss: {{type: cross_entropy, target: ner}}
    metrics: [accuracy, span_f1]
"""


def test_evaluation_batches_are_cut_to_their_longest_sentence(tmp_path):
    """1,100 validation sentences (more than one 1,024-row evaluation batch) and one LONG one: every
    batch but the one holding it is at most 5 wide. Before, every batch was LONG wide."""
    spec, _ = parse_spec(_graph(_conll(tmp_path, 1100), spy=True))
    WidthSpy.seen.clear()
    out = train_node(NodeRequest("tagger", spec.tasks["tagger"], spec.data["ner"], seed=0), {})
    assert math.isfinite(out.metrics["final"]["accuracy"]) and len(WidthSpy.seen) >= 2
    assert WidthSpy.seen.count(LONG) == 1 and max(w for w in WidthSpy.seen if w != LONG) <= 5


def test_trimmed_evaluation_gives_the_full_width_metrics(tmp_path):
    """A per-token model (no recurrence): cut, sorted batches give the same loss and metrics as one
    full-width pass over the split, and the outputs come back in the split's order."""
    spec, _ = parse_spec(_graph(_conll(tmp_path, 30), spy=False))
    task = spec.tasks["tagger"]
    val = load_data(spec.data["ner"]).val
    torch.manual_seed(0)
    model = NodeModel(dict(task.modules), in_dim=val["x"].shape[-1], where="t")
    full = evaluate(model, task, val["x"], val["ner"], batch_size=1024)
    cut = evaluate(model, task, val["x"], val["ner"], batch_size=4, lengths=val["length"])
    assert full.keys() == cut.keys()
    for key in full:
        assert cut[key] == pytest.approx(full[key], rel=1e-5, abs=1e-6), key


def test_batches_respect_rows_and_token_budget_and_keep_order():
    lengths = torch.tensor([3, 9, 1, 2, 9, 4])
    x = torch.arange(6 * 9).reshape(6, 9)
    for i, n in enumerate(lengths.tolist()):
        x[i, n:] = 0
    widths: list[tuple[int, int]] = []

    def forward(batch):
        widths.append(tuple(batch["x"].shape))
        return {"y": batch["x"] * 2}

    out = evaluate_batches({"x": x, "length": lengths}, ["x"], batch_size=3, forward=forward, tokens=12)
    assert torch.equal(out["y"], x * 2)  # the split's order, padded back to its width
    # sorted 1 2 3 | 4 (4 rows of 9 would exceed 12 slots) | 9 | 9
    assert widths == [(3, 3), (1, 4), (1, 9), (1, 9)]


def test_joint_node_evaluation_is_cut_too(tmp_path):
    files = _conll(tmp_path, 1100)
    spec, _ = parse_spec(f"""
name: trim
data:
  ner: {{loader: conll, train: {files['train']}, val: {files['val']}, labels: {{ner: -1, pos: 1}}}}
tasks:
  joint:
    kind: multitask
    data: ner
    train: {{epochs: 1, batch_size: 8}}
    modules:
      embed: {{type: embedding, vocab: 20, dim: 8}}
      spy: {{type: "tests.train.test_eval_trim:WidthSpy", out: 8}}
    heads:
      ner: {{module: {{type: linear, out: 3}}, loss: {{type: cross_entropy, target: ner}}, metrics: [span_f1]}}
      pos: {{module: {{type: linear, out: 2}}, loss: {{type: cross_entropy, target: pos}}, metrics: [accuracy]}}
    weighting: {{method: equal}}
""")
    WidthSpy.seen.clear()
    node = spec.tasks["joint"]
    out = train_node(NodeRequest("joint", node, spec.data["ner"], 0, sources=(("ner", spec.data["ner"]),)), {})
    assert math.isfinite(out.metrics["final"]["ner.span_f1"]) and len(WidthSpy.seen) >= 2
    assert WidthSpy.seen.count(LONG) == 1 and max(w for w in WidthSpy.seen if w != LONG) <= 5

"""Modules that take ``length`` get each sequence's length; the ``bilstm`` packs by it, so a sentence
reads the same whatever it is padded to (training cuts a batch to its longest sentence, evaluation
pads to the split's longest)."""

from __future__ import annotations

import torch
from pydantic import TypeAdapter
from torch import nn

from taskgraph.spec.components import ModuleConfig
from taskgraph.spec.loader import parse_spec
from taskgraph.train.model import NodeModel, takes_length
from taskgraph.train.multitask import JointModel


class LengthProbe(nn.Module):
    """A user module that takes ``length``: it remembers what it was handed and adds nothing."""

    def __init__(self, in_features: int, out: int | None = None):
        super().__init__()
        self.seen: list[torch.Tensor | None] = []

    def forward(self, x: torch.Tensor, length: torch.Tensor | None = None) -> torch.Tensor:
        self.seen.append(length)
        return x


class NoLength(LengthProbe):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        self.seen.append(None)
        return x


def _configs(**modules: dict) -> dict:
    return {name: TypeAdapter(ModuleConfig).validate_python(c) for name, c in modules.items()}


def _padded(ids: torch.Tensor, time: int) -> torch.Tensor:
    return torch.cat([ids, torch.zeros(ids.shape[0], time - ids.shape[1], dtype=ids.dtype)], dim=1)


def _sentences() -> tuple[torch.Tensor, torch.Tensor]:
    """Three sentences of lengths 7, 3 and 0 (an empty one), padded with id 0 to 7 positions."""
    ids = torch.randint(1, 30, (3, 7), generator=torch.Generator().manual_seed(0))
    length = torch.tensor([7, 3, 0])
    return ids * (torch.arange(7)[None, :] < length[:, None]), length


def test_a_sentence_reads_the_same_padded_to_10_or_50():
    torch.manual_seed(0)
    model = NodeModel(_configs(embed={"type": "embedding", "vocab": 30, "dim": 6, "padding_idx": 0},
                               trunk={"type": "bilstm", "hidden": 5, "layers": 2, "dropout": 0.3}),
                      in_dim=1, where="tasks.t").eval()
    ids, length = _sentences()
    short, long = model(_padded(ids, 10), length), model(_padded(ids, 50), length)
    inside = (torch.arange(7)[None, :] < length[:, None])[..., None]
    assert torch.equal(short[:, :7] * inside, long[:, :7] * inside)
    assert (short[:, 7:] == 0).all() and (long[:, 7:] == 0).all() and (short[2] == 0).all()  # padding: zeros
    # the backward direction without lengths starts on padding: the same sentence reads differently
    assert not torch.allclose(model(_padded(ids, 10))[0, :7], model(_padded(ids, 50))[0, :7])
    # a batch of one unpadded sentence is what the packed batch gives it
    assert torch.allclose(model(ids[1:2, :3])[0], short[1, :3], atol=1e-6)


def test_the_exportable_bilstm_equals_the_packed_one():
    """``BiLSTM.by_mask`` (what torch.export traces: packing cannot be) gives the packed outputs:
    two layers, lengths of every kind (full, short, empty, past the padded end)."""
    from taskgraph.train.modules import BiLSTM

    torch.manual_seed(0)
    lstm = BiLSTM(4, 5, layers=2, dropout=0.0).eval()
    x, length = torch.randn(5, 8, 4), torch.tensor([8, 3, 0, 1, 11])
    with torch.no_grad():
        packed, masked = lstm(x, length), lstm.by_mask(x, length)
    assert torch.allclose(masked, packed, rtol=0, atol=1e-6)
    assert (masked[2] == 0).all() and (masked[1, 3:] == 0).all()
    assert not torch.allclose(lstm(x)[1, :3], packed[1, :3], atol=1e-3)  # unpacked reads the padding


def test_gradients_do_not_reach_padding_through_the_packed_lstm():
    model = NodeModel(_configs(trunk={"type": "bilstm", "hidden": 4}), in_dim=3, where="tasks.t")
    x = torch.randn(2, 6, 3, requires_grad=True)
    model(x, torch.tensor([6, 2])).sum().backward()
    assert (x.grad[1, 2:] == 0).all() and (x.grad[1, :2] != 0).any()


def test_only_modules_that_take_length_are_handed_it():
    probe = "tests.train.test_sequence_lengths:LengthProbe"
    plain = "tests.train.test_sequence_lengths:NoLength"
    model = NodeModel(_configs(a={"type": probe, "in": 4}, b={"type": plain, "in": 4}), in_dim=4, where="tasks.t")
    assert takes_length(model["a"]) and not takes_length(model["b"]) and not takes_length(nn.Linear(2, 2))
    length = torch.tensor([3, 1])
    model(torch.zeros(2, 3, 4), length)
    model(torch.zeros(2, 3, 4))  # data without a `length` field: nothing is passed
    assert model["a"].seen == [length, None] and model["b"].seen == [None, None]


def test_joint_trunk_and_heads_are_handed_length():
    spec, _ = parse_spec("""
name: j
data:
  d: {loader: arrays, path: unused.npz}
tasks:
  j:
    kind: multitask
    data: d
    modules:
      embed: {type: embedding, vocab: 30, dim: 6}
      trunk: {type: bilstm, hidden: 5}
    heads:
      a: {module: {type: "tests.train.test_sequence_lengths:LengthProbe"}, loss: {type: mse, target: y}}
""")
    model = JointModel(spec.tasks["j"], in_dim=1, where="tasks.j").eval()
    ids, length = _sentences()
    short, long = model.run_trunk(_padded(ids, 10), length), model.run_trunk(_padded(ids, 50), length)
    assert torch.equal(short["trunk"][:1, :7], long["trunk"][:1, :7])
    model.run_head("a", short["trunk"], length)
    assert model["a"].seen == [length]


def test_a_loaded_node_hands_length_on_as_training_did():
    from types import SimpleNamespace

    from taskgraph.trained import HeadInfo, InputInfo, TrainedNode

    torch.manual_seed(0)
    model = NodeModel(_configs(embed={"type": "embedding", "vocab": 30, "dim": 6, "padding_idx": 0},
                               trunk={"type": "bilstm", "hidden": 5}), in_dim=1, where="tasks.t").eval()
    node = TrainedNode("t", model, SimpleNamespace(kind="single"), InputInfo("ids", None, None),
                       {"t": HeadInfo("t", "y", "mse", "values", 10, ())})
    ids, length = _sentences()
    short = node.predict({"ids": _padded(ids, 10), "length": length})["t"]["value"]
    long = node.predict({"ids": _padded(ids, 50), "length": length})["t"]["value"]
    assert torch.equal(short[:1, :7], long[:1, :7])

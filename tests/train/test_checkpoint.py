"""Checkpoints hold data only: a planted pickle never runs, a damaged file restarts the node cleanly,
and a valid one resumes to bit-identical results (the training function itself, no Ray)."""

from __future__ import annotations

import os
import warnings

import pytest
import torch

from taskgraph.spec import parse_spec
from taskgraph.train import NodeRequest, train_node
from taskgraph.train.checkpoint import FILE, CheckpointWarning, Checkpointer, flatten, unflatten
from taskgraph.train.model import digest

GRAPH = """
name: ckpt
data:
  shapes: {loader: synthetic_shapes, n: 400, dim: 8, classes: 4}
tasks:
  a:
    data: shapes
    modules:
      encoder: {type: mlp, in: 8, hidden: [8], dropout: 0.1}
      head: {type: linear, out: 4}
    loss: {type: cross_entropy, target: label}
    train: {epochs: 3, batch_size: 32, checkpoint_every: 7}
"""


class Planted:
    """Unpickling this creates a folder: proof that a loader ran code from the file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture(scope="module")
def spec():
    return parse_spec(GRAPH)[0]


def train(spec, checkpoint_dir=None):
    task = spec.tasks["a"]
    return train_node(NodeRequest("a", task, spec.data["shapes"], seed=3, checkpoint_dir=checkpoint_dir), {})


@pytest.fixture(scope="module")
def clean(spec):
    """The node trained once without checkpoints: what every restart must reproduce."""
    return train(spec)


def test_flatten_keeps_optimizer_structure_and_types():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    state = {"optimizer": opt.state_dict(), "history": [{"epoch": 1, "loss": float("nan")}], "step": 4}
    tensors, text = flatten(state)
    back = unflatten(tensors, text)
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)  # a tuple again
    assert list(back["optimizer"]["state"]) == [0, 1]  # int parameter ids again
    assert torch.equal(back["optimizer"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert back["step"] == 4 and back["history"][0]["epoch"] == 1
    opt.load_state_dict(back["optimizer"])


def test_planted_pickle_never_runs_and_the_node_restarts(spec, clean, tmp_path):
    marker = tmp_path / "code-ran"
    folder = tmp_path / "partial"
    folder.mkdir()
    torch.save({"model": Planted(str(marker))}, folder / "checkpoint.pt")  # the old file name
    torch.save({"model": Planted(str(marker))}, folder / FILE)  # and under the new one
    with pytest.warns(CheckpointWarning, match=rf"checkpoint .*{FILE} of node 'a' is unreadable"):
        out = train(spec, str(folder))
    assert not marker.exists(), "a pickle from the run directory was executed"
    assert not (folder / "checkpoint.pt").exists()
    assert out.metrics["resumed_from_step"] is None and "unreadable" in out.metrics["checkpoint_discarded"]
    assert digest(out.state) == digest(clean.state)


def test_truncated_checkpoint_restarts_from_scratch(spec, clean, tmp_path):
    folder = tmp_path / "partial"
    first = train(spec, str(folder))
    assert first.metrics["resumed_from_step"] is None and (folder / FILE).is_file()
    data = (folder / FILE).read_bytes()
    (folder / FILE).write_bytes(data[: len(data) // 2])
    with pytest.warns(CheckpointWarning, match="node 'a'"):
        out = train(spec, str(folder))
    assert out.metrics["resumed_from_step"] is None
    assert digest(out.state) == digest(clean.state)
    assert (folder / FILE).is_file()  # the restarted node saved fresh checkpoints


def test_checkpoint_of_another_shape_is_discarded(tmp_path):
    saver = Checkpointer(tmp_path, 1, "n")
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    saver.save({"model": torch.nn.Linear(4, 2).state_dict(), "optimizer": opt.state_dict(),
                "epoch_generator": torch.Generator().get_state(), "torch_rng": torch.get_rng_state(),
                "epoch": 1, "batch": 1, "step": 1, "history": [], "batches": 1, "total": 0.0})
    before = digest({k: v.numpy() for k, v in model.state_dict().items()})
    with pytest.warns(CheckpointWarning, match="do not match"):
        assert saver.restore(model, opt, torch.Generator()) is None
    assert not (tmp_path / FILE).exists()
    assert digest({k: v.numpy() for k, v in model.state_dict().items()}) == before  # untouched


def test_valid_checkpoint_resumes_to_identical_results(spec, clean, tmp_path):
    folder = tmp_path / "partial"
    train(spec, str(folder))  # leaves its last checkpoint: step 28 of 30, mid-epoch 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)
        resumed = train(spec, str(folder))
    assert resumed.metrics["resumed_from_step"] == 28
    assert digest(resumed.state) == digest(clean.state)
    timeless = [[{k: v for k, v in row.items() if k != "seconds"} for row in out.metrics["history"]]
                for out in (resumed, clean)]
    assert timeless[0] == timeless[1]

"""Inheritance semantics of the three modes, on the training function itself (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest

from taskgraph.errors import TrainError
from taskgraph.spec import parse_spec
from taskgraph.train import Inheritance, NodeRequest, train_node
from taskgraph.train.model import digest, module_state

GRAPH = """
name: transfer
data:
  shapes: {loader: synthetic_shapes, n: 300, dim: 12, classes: 4}
defaults:
  train: {epochs: 2, batch_size: 64}
tasks:
  up:
    data: shapes
    modules:
      encoder: {type: mlp, in: 12, hidden: [16], dropout: 0.2}
      head: {type: linear, out: 4}
    loss: {type: cross_entropy, target: label}
    metrics: [accuracy]
  down:
    data: shapes
    depends_on: {up: {share: [encoder]}}
    modules:
      encoder: {type: mlp, in: 12, hidden: [16], dropout: 0.2}
      head: {type: linear, out: 1}
    loss: {type: binary_cross_entropy, target: parity}
    metrics: [accuracy]
"""


@pytest.fixture(scope="module")
def spec():
    return parse_spec(GRAPH)[0]


@pytest.fixture(scope="module")
def upstream(spec):
    task = spec.tasks["up"]
    return train_node(NodeRequest("up", task, spec.data["shapes"], seed=1), {})


def run_down(spec, upstream, mode, lr_scale=1.0, seed=2):
    task = spec.tasks["down"]
    inherit = (Inheritance("encoder", "up", "encoder", mode, lr_scale),)
    return train_node(NodeRequest("down", task, spec.data["shapes"], seed=seed, inherits=inherit), {"up": upstream.state})


def test_freeze_keeps_inherited_tensors_bit_identical(spec, upstream):
    out = run_down(spec, upstream, "freeze")
    up_encoder = module_state(upstream.state, "encoder")
    down_encoder = module_state(out.state, "encoder")
    assert digest(down_encoder) == digest(up_encoder)
    assert out.inherited == [{"module": "encoder", "from": "up.encoder", "mode": "freeze", "sha256": digest(up_encoder)}]
    assert out.steps > 0 and "head.weight" in out.state  # the rest did train


def test_the_upstream_states_are_released_once_loaded(spec, upstream):
    """``inherit`` empties the dict it was given: in a chain's task that dict holds the only reference to
    the parent's arrays (``execute.stream``), which would otherwise live beside the model's copy."""
    task = spec.tasks["down"]
    given = {"up": dict(upstream.state)}
    request = NodeRequest("down", task, spec.data["shapes"], seed=2,
                          inherits=(Inheritance("encoder", "up", "encoder", "freeze"),))
    out = train_node(request, given)
    assert given == {}
    assert digest(module_state(out.state, "encoder")) == digest(module_state(upstream.state, "encoder"))


def test_init_starts_from_upstream_values_then_trains(spec, upstream):
    up = module_state(upstream.state, "encoder")["layers.0.weight"]
    init = module_state(run_down(spec, upstream, "init").state, "encoder")["layers.0.weight"]
    scratch_task = spec.tasks["down"].model_copy(update={"depends_on": {}})
    scratch = train_node(NodeRequest("down", scratch_task, spec.data["shapes"], seed=2), {})
    fresh = module_state(scratch.state, "encoder")["layers.0.weight"]
    assert not np.array_equal(init, up), "init mode trains the inherited module"
    assert np.abs(init - up).max() < 0.05, "init mode starts from the upstream values"
    assert np.abs(fresh - up).max() > 0.2, "a fresh module is far from the upstream one"


def test_finetune_moves_less_with_smaller_lr_scale(spec, upstream):
    up = module_state(upstream.state, "encoder")["layers.0.weight"]
    slow = module_state(run_down(spec, upstream, "finetune", lr_scale=0.01).state, "encoder")["layers.0.weight"]
    fast = module_state(run_down(spec, upstream, "finetune", lr_scale=1.0).state, "encoder")["layers.0.weight"]
    assert 0 < np.abs(slow - up).max() < np.abs(fast - up).max()


def test_shape_mismatch_refused_before_training(spec, upstream):
    # custom modules hide their shapes from the planner: the trainer refuses before any step
    task = spec.tasks["down"]
    wide = task.modules["encoder"].model_copy(update={"hidden": (32,)})
    task = task.model_copy(update={"modules": {"encoder": wide, "head": task.modules["head"]}})
    inherit = (Inheritance("encoder", "up", "encoder", "init"),)
    with pytest.raises(TrainError, match=r"inherited 'encoder.layers.0.weight' has shape \[16, 12\], this module has \[32, 12\]"):
        train_node(NodeRequest("down", task, spec.data["shapes"], seed=2, inherits=inherit), {"up": upstream.state})


def test_nan_loss_names_node_step_and_task(spec):
    task = spec.tasks["up"]
    task = task.model_copy(update={"train": task.train.model_copy(update={"lr": 1e30})})
    with pytest.raises(TrainError, match=r"node 'up': loss is .* at epoch \d+, step \d+ \(task loss cross_entropy on 'label'\)"):
        train_node(NodeRequest("up", task, spec.data["shapes"], seed=1), {})


def test_missing_data_field_is_named(spec):
    task = spec.tasks["up"].model_copy(update={"input": "pixels"})
    with pytest.raises(TrainError, match="the data has no field 'pixels'. Fields: coarse, label, parity, x"):
        train_node(NodeRequest("up", task, spec.data["shapes"], seed=1), {})


def test_same_seed_same_result(spec):
    task = spec.tasks["up"]
    a = train_node(NodeRequest("up", task, spec.data["shapes"], seed=5), {})
    b = train_node(NodeRequest("up", task, spec.data["shapes"], seed=5), {})
    assert digest(a.state) == digest(b.state)


def test_a_node_returns_before_its_inherited_digest_and_waits_for_it_when_read(spec, upstream, monkeypatch):
    """The sha256 of an inherited module is taken on a thread; a node hands its state on without
    waiting for it (a 400 MB module's hash held each child of a chain back), and ``inherited``
    waits for it when the node's files are written. Also: a pickled output carries the digests."""
    import pickle
    import threading

    import taskgraph.train.loop as loop

    gate, hashing = threading.Event(), threading.Event()

    def slow_digest(state):
        hashing.set()
        assert gate.wait(60), "the test never opened the gate"
        return digest(state)

    monkeypatch.setattr(loop, "digest", slow_digest)
    done: dict[str, object] = {}
    worker = threading.Thread(target=lambda: done.setdefault("out", run_down(spec, upstream, "freeze")), daemon=True)
    worker.start()
    worker.join(30)
    try:
        assert "out" in done, "train_node waited for the inherited module's digest before returning"
        assert hashing.is_set()
    finally:
        gate.set()
    out = done["out"]
    expected = [{"module": "encoder", "from": "up.encoder", "mode": "freeze",
                 "sha256": digest(module_state(upstream.state, "encoder"))}]
    assert out.inherited == expected
    assert pickle.loads(pickle.dumps(out)).inherited == expected

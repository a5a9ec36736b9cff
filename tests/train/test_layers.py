"""conv1d, conv2d, transformer, layer_norm, dropout and sequential: output shapes equal what the
configs infer (so `in:` of the next module is derived), and experts of different types mix."""

from __future__ import annotations

import pytest
import torch
from pydantic import TypeAdapter

from taskgraph.spec.components import ModuleConfig
from taskgraph.spec.loader import parse_spec
from taskgraph.train.modules import build_module


def module(config: dict, in_dim: int | None):
    parsed = TypeAdapter(ModuleConfig).validate_python(config)
    return parsed, build_module(parsed, in_dim, "m")


@pytest.mark.parametrize("config, x_shape, out_shape", [
    ({"type": "conv1d", "channels": [5, 7]}, (3, 10, 6), (3, 10, 7)),
    ({"type": "conv1d", "channels": [5, 7], "pool": "max", "norm": "layer"}, (3, 10, 6), (3, 2, 7)),
    ({"type": "conv1d", "channels": [5], "kernel": 5, "stride": 2, "norm": "batch"}, (3, 10, 6), (3, 5, 5)),
    ({"type": "conv1d", "channels": [4], "global_pool": "max"}, (3, 10, 6), (3, 4)),
    ({"type": "conv2d", "shape": [1, 28, 28], "channels": [4, 8], "pool": "max"}, (3, 784), (3, 8 * 7 * 7)),
    ({"type": "conv2d", "shape": [2, 9, 7], "channels": [3], "stride": 2}, (3, 2, 9, 7), (3, 3 * 5 * 4)),
    ({"type": "conv2d", "shape": [1, 28, 28], "channels": [4], "global_pool": "mean", "norm": "batch"}, (3, 784), (3, 4)),
    ({"type": "transformer", "dim": 8, "heads": 2, "layers": 1}, (3, 10, 6), (3, 10, 8)),
    ({"type": "transformer", "dim": 6, "heads": 3, "layers": 2, "positional": "learned", "max_len": 12}, (3, 10, 6),
     (3, 10, 6)),
    ({"type": "layer_norm"}, (3, 10, 6), (3, 10, 6)),
    ({"type": "dropout", "p": 0.5}, (3, 6), (3, 6)),
    ({"type": "sequential", "layers": [{"type": "conv1d", "channels": [5], "global_pool": "mean"},
                                       {"type": "layer_norm"}, {"type": "mlp", "hidden": [4], "out": 2}]}, (3, 10, 6), (3, 2)),
])
def test_output_shape_is_the_inferred_width(config, x_shape, out_shape):
    parsed, built = module(config, x_shape[-1] if config["type"] != "conv2d" else None)
    out = built(torch.randn(*x_shape))
    assert tuple(out.shape) == out_shape
    assert parsed.output_dim(x_shape[-1]) == out_shape[-1]
    assert {k: tuple(v.shape) for k, v in built.state_dict().items()} == parsed.param_shapes(x_shape[-1])


def test_layer_norm_normalises_and_dropout_is_identity_in_eval():
    _, norm = module({"type": "layer_norm"}, 6)
    y = norm(torch.randn(4, 6) * 5 + 3)
    assert torch.allclose(y.mean(-1), torch.zeros(4), atol=1e-5) and torch.allclose(y.std(-1, unbiased=False), torch.ones(4), atol=1e-3)
    _, drop = module({"type": "dropout", "p": 0.5}, 6)
    x = torch.ones(200, 6)
    assert (drop(x) == 0).any() and drop.eval()(x).equal(x)


def test_conv2d_refuses_an_image_shape_the_data_does_not_have():
    from taskgraph.errors import PlanError
    from taskgraph.plan.graph import make_plan

    spec, source = parse_spec("""
name: g
data:
  d: {loader: synthetic_shapes, n: 50, dim: 12, classes: 3}
tasks:
  t:
    data: d
    modules:
      conv: {type: conv2d, shape: [1, 4, 4], channels: [2], global_pool: max}
      head: {type: linear, out: 3}
    loss: {type: cross_entropy, target: label}
""", file="g.yaml")
    with pytest.raises(PlanError, match=r"g.yaml:9:28: tasks.t.modules.conv.shape: `shape: \[1, 4, 4\]` reads 16 values"):
        make_plan(spec, source)


def test_experts_of_different_types_mix_over_sequences():
    """A BiLSTM, a convolution stack and a transformer as experts of one MMoE, gated per position."""
    from taskgraph.train.multitask import JointModel, _Joint
    from taskgraph.train.weighting import build_weighting

    spec, _ = parse_spec("""
name: seq
data:
  d: {loader: synthetic_shapes, n: 50, dim: 6}
tasks:
  j:
    kind: multitask
    data: d
    mixture:
      type: mmoe
      experts:
        lstm: {type: bilstm, hidden: 4}
        conv: {type: conv1d, channels: [8], norm: layer}
        attend: {type: sequential, layers: [{type: transformer, dim: 8, heads: 2, layers: 1}, {type: dropout}]}
    heads:
      a: {module: {type: linear, out: 3}, loss: {type: cross_entropy, target: a}}
      b: {module: {type: linear, out: 1}, loss: {type: mse, target: b}}
    weighting: {method: upgrad, level: representation}
""")
    node = spec.tasks["j"]
    torch.manual_seed(0)
    model = JointModel(node, 6, "t")
    batch = {"x": torch.randn(4, 5, 6), "a": torch.randint(0, 3, (4, 5)), "b": torch.randn(4, 5, 1)}
    losses, step = _Joint(node, model).losses({"d": batch}, True, True)
    assert step.reps[0].shape == (4, 5, 6 + 3 * 8)  # input and three experts side by side, per position
    build_weighting(node.weighting, ["a", "b"]).backward(losses, step)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    weights = model.mixture.weights(model, batch["x"])
    assert weights["a"].shape == (4, 5, 3) and torch.allclose(weights["a"].sum(-1), torch.ones(4, 5))


def test_transformer_masks_padding_past_each_length():
    """Given ``length``, what lies past a sequence's end changes none of its outputs; without it, it does."""
    _, encoder = module({"type": "transformer", "dim": 8, "heads": 2, "layers": 2, "dropout": 0.0}, 6)
    encoder.eval()
    torch.manual_seed(0)
    x = torch.randn(3, 7, 6)
    other = x.clone()
    other[0, 4:], other[1, 2:] = torch.randn(3, 6) * 5, torch.randn(5, 6) * 5  # different padding content
    length = torch.tensor([4, 2, 7])
    a, b = encoder(x, length=length), encoder(other, length=length)
    assert torch.allclose(a[0, :4], b[0, :4], atol=1e-5) and torch.allclose(a[1, :2], b[1, :2], atol=1e-5)
    assert torch.allclose(a[2], b[2], atol=1e-5)
    assert not torch.allclose(encoder(x)[0, :4], encoder(other)[0, :4], atol=1e-3)  # unmasked: padding leaks in


def test_the_batchs_length_reaches_a_transformer_in_a_trunk_a_sequential_and_a_mixture():
    """Nodes hand ``length`` to modules that take it (train.model.takes_length): a transformer in a
    single-task trunk, inside a ``sequential`` and as an MMoE expert ignores what lies past a length."""
    from taskgraph.train.model import NodeModel
    from taskgraph.train.multitask import MIXED, JointModel

    spec, _ = parse_spec("""
name: seq
data:
  d: {loader: synthetic_shapes, n: 50, dim: 6}
tasks:
  single:
    data: d
    modules:
      encoder: {type: transformer, dim: 8, heads: 2, layers: 1, dropout: 0.0}
      head: {type: linear, out: 3}
    loss: {type: cross_entropy, target: a}
  j:
    kind: multitask
    data: d
    mixture:
      type: mmoe
      experts:
        attend: {type: sequential, layers: [{type: transformer, dim: 8, heads: 2, layers: 1, dropout: 0.0},
                                            {type: layer_norm}]}
        lstm: {type: bilstm, hidden: 4}
    heads:
      a: {module: {type: linear, out: 3}, loss: {type: cross_entropy, target: a}}
      b: {module: {type: linear, out: 1}, loss: {type: mse, target: b}}
""")
    torch.manual_seed(0)
    x = torch.randn(2, 6, 6)
    other = x.clone()
    other[0, 3:] = torch.randn(3, 6) * 5  # the first sequence is 3 long: different padding
    length = torch.tensor([3, 6])
    single = NodeModel(dict(spec.tasks["single"].modules), 6, "t").eval()
    assert torch.allclose(single(x, length)[0, :3], single(other, length)[0, :3], atol=1e-5)
    joint = JointModel(spec.tasks["j"], 6, "t").eval()
    a, b = joint.run_trunk(x, length)[MIXED], joint.run_trunk(other, length)[MIXED]
    assert torch.allclose(a[0, :3, 6:], b[0, :3, 6:], atol=1e-5)  # every expert's output at the 3 real steps
    assert not torch.allclose(joint.run_trunk(x)[MIXED][0, :3, 6:], joint.run_trunk(other)[MIXED][0, :3, 6:], atol=1e-3)

"""Joint nodes: every weighting method trains, the backward passes are the ones the methods define,
modules move along edges in both directions, and several data sources share a step."""

from __future__ import annotations

import math

import pytest
import torch

from taskgraph.spec.loader import parse_spec
from taskgraph.spec.models import MultiTaskNode
from taskgraph.spec.weighting import GRADIENT_METHODS, LOSS_METHODS
from taskgraph.train.loop import NodeRequest, train_node
from taskgraph.train.multitask import JointModel, _Joint, batch_shares, task_loss
from taskgraph.train.weighting import Step, build_weighting
from taskgraph.train.weighting.aggregators import AGGREGATORS
from taskgraph.train.datasets.conll2000 import resolve_root

needs_data = pytest.mark.skipif(not (resolve_root("../shared/data/conll2000") / "train.txt").exists(),
                                reason="shared/data/conll2000 is not staged")



@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread is faster and steadier on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


GRAPH = """
name: joint
seed: 0
defaults:
  train: {epochs: 1, batch_size: 16, lr: 3.0e-3}
data:
  conll: {loader: conll2000, max_sentences: 48, max_val_sentences: 16, vocab_size: 400}
tasks:
  tagger:
    kind: multitask
    data: conll
    modules:
      embed: {type: embedding, vocab: 400, dim: 12}
      trunk: {type: bilstm, hidden: 8}
    heads:
      pos:   {module: {type: linear, out: 44}, loss: {type: cross_entropy, target: pos}, metrics: [accuracy]}
      chunk: {module: {type: linear, out: 23}, loss: {type: cross_entropy, target: chunk}, input: [trunk, pos],
              metrics: [span_f1]}
    weighting: WEIGHTING
"""


def joint(weighting: str = "{method: equal}", extra: str = ""):
    spec, _ = parse_spec(GRAPH.replace("WEIGHTING", weighting) + extra)
    node = spec.tasks["tagger"]
    return spec, node, NodeRequest("tagger", node, spec.data["conll"], 0, sources=(("conll", spec.data["conll"]),))


def weighting_cases() -> list[str]:
    cases = [f"{{method: {m}}}" for m in LOSS_METHODS + GRADIENT_METHODS]
    cases += [f"{{method: {m}, level: representation}}" for m in AGGREGATORS]
    return cases


@needs_data
@pytest.mark.parametrize("weighting", weighting_cases())
def test_every_method_trains_a_conll_joint_node_without_nan(weighting):
    spec, node, request = joint(weighting)
    out = train_node(request, {})
    final = out.metrics["final"]
    assert set(final) == {"pos.loss", "pos.accuracy", "chunk.loss", "chunk.span_f1"}
    assert all(math.isfinite(v) for v in final.values())
    assert out.steps == 3 and out.metrics["seconds_per_step"] > 0
    assert {k.split(".")[0] for k in out.state} == {"embed", "trunk", "pos", "chunk"}


def batch_of(node: MultiTaskNode, n: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"x": torch.randint(2, 400, (n, 7), generator=g), "pos": torch.randint(0, 44, (n, 7), generator=g),
            "chunk": torch.randint(0, 23, (n, 7), generator=g)}


def grads_after(node: MultiTaskNode, model: JointModel, batch, method) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    joint = _Joint(node, model)
    losses, step = joint.losses({"conll": batch}, method.on_representation, method.task_views)
    method.backward(losses, step)
    return {k: p.grad.clone() for k, p in model.named_parameters()}


@needs_data
def test_accumulation_equals_the_gradient_of_the_sum():
    _, node, _ = joint()
    torch.manual_seed(0)
    model, batch = JointModel(node, 7, "t"), batch_of(node)
    summed = grads_after(node, model, batch, build_weighting(node.weighting, ["pos", "chunk"]))
    _, acc_node, _ = joint("{method: accumulate}")
    accumulated = grads_after(acc_node, model, batch, build_weighting(acc_node.weighting, ["pos", "chunk"]))
    for key in summed:
        assert torch.allclose(summed[key], accumulated[key], atol=1e-6), key


@pytest.mark.parametrize("level", ["parameters", "representation"])
def test_gradient_methods_write_the_aggregated_jacobian(level):
    _, node, _ = joint(f"{{method: mgda, level: {level}}}")
    torch.manual_seed(0)
    model, batch = JointModel(node, 7, "t"), batch_of(node)
    method = build_weighting(node.weighting, ["pos", "chunk"])
    got = grads_after(node, model, batch, method)
    # By hand: per-task gradients of the trunk parameters (or of the trunk output), MGDA, then backward.
    model.zero_grad(set_to_none=True)
    joint_ = _Joint(node, model)
    losses, step = joint_.losses({"conll": batch}, level == "representation", level == "representation")
    reps, leaves = step.reps, step.leaves
    shared = [p for n in ("embed", "trunk") for p in model[n].parameters()]
    wrt = leaves if level == "representation" else shared
    rows = [torch.cat([g.flatten() for g in torch.autograd.grad(l, wrt, retain_graph=True)]) for l in losses]
    direction = AGGREGATORS["mgda"](node.weighting, 2)(torch.stack(rows))
    if level == "representation":
        expected = torch.autograd.grad(reps[0], shared, direction.view_as(reps[0]), retain_graph=True)
    else:
        sizes = [p.numel() for p in shared]
        expected = [d.view_as(p) for d, p in zip(direction.split(sizes), shared)]
    names = [f"{n}.{k}" for n in ("embed", "trunk") for k, _ in model[n].named_parameters()]
    for name, exp in zip(names, expected):
        assert torch.allclose(got[name], exp, atol=1e-5), name
    head_sum = torch.autograd.grad(losses.sum(), list(model["pos"].parameters()), retain_graph=True)
    assert torch.allclose(got["pos.weight"], head_sum[0], atol=1e-6)  # heads get their own tasks' gradients


@pytest.mark.parametrize("two_sources", [False, True])
@pytest.mark.parametrize("weighting", ["{method: gradnorm}", "{method: mgda, level: representation}",
                                       "{method: upgrad, level: representation}"])
def test_one_backward_jacobian_equals_one_backward_per_task(weighting, two_sources):
    """Heads that read only the trunk keep their own input's gradient: one backward through the heads
    must give the same per-task gradients (so the same update, and for GradNorm the same new
    weights) as one backward per task."""
    text = GRAPH.replace("WEIGHTING", weighting).replace(", input: [trunk, pos]", "")
    if two_sources:
        text = text.replace("target: chunk}", "target: chunk}, data: small")
        text = text.replace("data:\n", "data:\n  small: {loader: conll2000, max_sentences: 8, vocab_size: 400}\n", 1)
    node = parse_spec(text)[0].tasks["tagger"]
    torch.manual_seed(0)
    model = JointModel(node, 7, "t")
    batches = {"conll": batch_of(node), "small": batch_of(node, 4)}
    results = []
    for fast in (True, False):
        method = build_weighting(node.weighting, ["pos", "chunk"])
        joint_ = _Joint(node, model)
        for _ in range(2 if weighting.startswith("{method: gradnorm") else 1):  # GradNorm: the learned weights too
            model.zero_grad(set_to_none=True)
            losses, step = joint_.losses(batches, method.on_representation, method.task_views)
            assert joint_.separable and len(step.task_inputs) == 2 and len(step.leaves) == (2 if two_sources else 1)
            if not fast:
                step.task_inputs = []
            method.backward(losses, step)
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        results.append((grads, torch.stack(method.w).detach().clone() if hasattr(method, "w") else torch.ones(2)))
    (fast_grads, fast_w), (slow_grads, slow_w) = results
    assert fast_grads.keys() == slow_grads.keys() == {k for k, _ in model.named_parameters()}
    for key in fast_grads:
        assert torch.allclose(fast_grads[key], slow_grads[key], atol=1e-6), key
    assert torch.allclose(fast_w, slow_w, atol=1e-6)
    if weighting.startswith("{method: gradnorm"):
        assert not torch.allclose(fast_w, torch.ones(2))  # the weights did move


def test_a_head_reading_a_head_takes_one_backward_per_task():
    _, node, _ = joint("{method: gradnorm}")
    model = JointModel(node, 7, "t")
    joint_ = _Joint(node, model)
    assert not joint_.separable  # chunk reads pos: the gradient at chunk's input is not chunk's alone
    assert joint_.losses({"conll": batch_of(node)}, False, True)[1].task_inputs == []


def test_uncertainty_weights_are_trained_with_the_node():
    _, node, _ = joint("{method: uncertainty}")
    method = build_weighting(node.weighting, ["pos", "chunk"])
    assert [p.shape for p in method.parameters()] == [torch.Size([]), torch.Size([])]
    losses = torch.tensor([1.0, 3.0], requires_grad=True)
    leaf = torch.zeros(1)
    method.backward(losses, Step([], [], [leaf], [leaf]))
    # d/ds (0.5 e^-s L + 0.5 s) at s=0 is 0.5 (1 - L).
    assert torch.allclose(torch.stack([p.grad for p in method.log_var]), torch.tensor([0.0, -1.0]))
    assert torch.allclose(losses.grad, torch.tensor([0.5, 0.5]))


def test_dwa_weights_follow_the_loss_ratios():
    _, node, _ = joint("{method: dwa, temperature: 2.0}")
    method = build_weighting(node.weighting, ["pos", "chunk"])
    method.end_epoch(torch.tensor([1.0, 1.0]))
    assert torch.allclose(method.w, torch.ones(2))  # one epoch seen: equal weights
    method.end_epoch(torch.tensor([0.5, 1.0]))  # pos halved, chunk stuck: chunk gains weight
    expected = 2 * torch.softmax(torch.tensor([0.5, 1.0]) / 2.0, 0)
    assert torch.allclose(method.w, expected)


def test_missing_labels_leave_the_task_out_of_the_step():
    out = torch.randn(2, 3, 5, requires_grad=True)
    assert task_loss(out, torch.full((2, 3), -100), joint()[1].heads["pos"].loss) is None  # no fake zero
    regression = task_loss(torch.tensor([[1.0], [5.0]]), torch.tensor([2.0, float("nan")]),
                           parse_spec(GRAPH.replace("WEIGHTING", "{method: equal}"))[0].tasks["tagger"].heads["pos"].loss
                           .model_copy(update={"type": "mse"}))
    assert regression.item() == pytest.approx(1.0)


def test_batch_shares_follow_the_sampling_rule():
    assert batch_shares([100, 900], 40, "round_robin", 2.0) == [20, 20]
    assert batch_shares([100, 900], 40, "proportional", 2.0) == [4, 36]
    assert batch_shares([100, 900], 40, "temperature", 2.0) == [10, 30]  # sqrt: 10 : 30


@needs_data
def test_two_data_sources_and_heads_shared_along_edges():
    extra = """
  chunker:
    data: conll
    depends_on: {tagger: {share: [embed, trunk], mode: freeze}}
    modules:
      embed: {type: embedding, vocab: 400, dim: 12}
      trunk: {type: bilstm, hidden: 8}
      head: {type: linear, out: 23}
    loss: {type: cross_entropy, target: chunk}
  second:
    kind: multitask
    data: conll
    depends_on: {tagger: {share: {trunk: trunk, pos2: pos}}}
    modules:
      embed: {type: embedding, vocab: 400, dim: 12}
      trunk: {type: bilstm, hidden: 8}
    heads:
      pos2: {module: {type: linear, out: 44}, loss: {type: cross_entropy, target: pos}}
      chunk2: {module: {type: linear, out: 23}, loss: {type: cross_entropy, target: chunk}, data: small}
    sampling: {rule: round_robin}
"""
    text = GRAPH.replace("WEIGHTING", "{method: pcgrad, level: representation}") + extra
    text = text.replace("data:\n", "data:\n  small: {loader: conll2000, max_sentences: 8, max_val_sentences: 4, vocab_size: 400}\n", 1)
    from taskgraph.plan.graph import make_plan
    from taskgraph.runner import build_jobs

    spec, source = parse_spec(text)
    plan = make_plan(spec, source)
    assert plan.order == ("tagger", "chunker", "second")

    class Dir:
        def node_dir(self, name):
            return f"/tmp/{name}"

    requests = {job.name: job.payload[0] for job in build_jobs(spec, plan, Dir())}
    assert dict(requests["second"].sources).keys() == {"conll", "small"}
    tagger = train_node(requests["tagger"], {})
    chunker = train_node(requests["chunker"], {"tagger": tagger.state})
    for key in ("embed.weight", "trunk.lstm.weight_ih_l0"):
        assert (chunker.state[key] == tagger.state[key]).all()  # frozen: bit-identical
    second = train_node(requests["second"], {"tagger": tagger.state})
    assert second.inherited[1]["from"] == "tagger.pos" and second.metrics["train_examples"] == {"conll": 48, "small": 8}
    assert math.isfinite(second.metrics["final"]["chunk2.loss"])


def test_plan_refuses_a_head_shape_mismatch_along_an_edge():
    from taskgraph.errors import PlanError
    from taskgraph.plan.graph import make_plan

    extra = """
  reader:
    data: conll
    depends_on: {tagger: {share: {head: chunk}}}
    modules:
      embed: {type: embedding, vocab: 400, dim: 12}
      trunk: {type: bilstm, hidden: 8}
      head: {type: linear, out: 23}
    loss: {type: cross_entropy, target: chunk}
"""
    spec, source = parse_spec(GRAPH.replace("WEIGHTING", "{method: equal}") + extra, file="g.yaml")
    with pytest.raises(PlanError) as err:
        make_plan(spec, source)
    # chunk reads [trunk, pos]: 16 + 44 = 60 inputs; the single-task head reads the trunk's 16.
    assert "shape mismatch for 'head.weight'" in str(err.value) and "[23, 60]" in str(err.value)
    assert "g.yaml:" in str(err.value)


@needs_data
@pytest.mark.parametrize("weighting", ["{method: upgrad, level: representation}", "{method: mgda}", "{method: gradnorm}"])
def test_gradient_methods_with_a_frozen_inherited_trunk(weighting):
    spec, node, request = joint(weighting)
    upstream = train_node(request, {})
    frozen = joint(weighting, extra="""
  down:
    kind: multitask
    data: conll
    depends_on: {tagger: {share: [embed, trunk], mode: freeze}}
    modules:
      embed: {type: embedding, vocab: 400, dim: 12}
      trunk: {type: bilstm, hidden: 8}
    heads:
      pos: {module: {type: linear, out: 44}, loss: {type: cross_entropy, target: pos}}
      chunk: {module: {type: linear, out: 23}, loss: {type: cross_entropy, target: chunk}}
    weighting: WEIGHTING2
""".replace("WEIGHTING2", weighting))[0]
    from taskgraph.train.loop import Inheritance

    down = frozen.tasks["down"]
    req = NodeRequest("down", down, frozen.data["conll"], 0,
                      (Inheritance("embed", "tagger", "embed", "freeze"), Inheritance("trunk", "tagger", "trunk", "freeze")),
                      sources=(("conll", frozen.data["conll"]),))
    out = train_node(req, {"tagger": upstream.state})
    assert (out.state["trunk.lstm.weight_hh_l0"] == upstream.state["trunk.lstm.weight_hh_l0"]).all()
    assert math.isfinite(out.metrics["final"]["chunk.loss"])


def test_adversarial_and_infonce_heads_in_a_joint_node():
    spec, _ = parse_spec("""
name: heads
data:
  shapes: {loader: synthetic_shapes, n: 200, dim: 12, classes: 4}
tasks:
  joint:
    kind: multitask
    data: shapes
    train: {epochs: 2, batch_size: 50}
    modules: {encoder: {type: mlp, hidden: [16]}}
    heads:
      label: {module: {type: linear, out: 4}, loss: {type: cross_entropy, target: label}, metrics: [accuracy]}
      domain: {module: {type: linear, out: 2}, loss: {type: adversarial, target: coarse, scale: 0.5}}
      mi: {module: {type: linear, out: 16}, loss: {type: infonce, target: encoder}}
    weighting: {method: upgrad}
""")
    node = spec.tasks["joint"]
    out = train_node(NodeRequest("joint", node, spec.data["shapes"], 0, sources=(("shapes", spec.data["shapes"]),)), {})
    final = out.metrics["final"]
    assert {"label.accuracy", "domain.loss", "mi.loss"} <= set(final)
    assert all(math.isfinite(v) for v in final.values())
    assert final["mi.loss"] < math.log(200)  # the bound holds: better than chance at matching pairs

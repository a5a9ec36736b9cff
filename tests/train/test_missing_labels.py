"""Missing labels, end to end: a batch without labels for a task takes that task out of the step
(single-task nodes skip the update; joint nodes aggregate only the labelled tasks' rows, and loss
weightings hold the absent task's state) instead of a zero loss that poses as a gradient."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from taskgraph.spec.loader import parse_spec
from taskgraph.train.data import load_data
from taskgraph.train.loop import NodeRequest, train_node
from taskgraph.train.model import NodeModel
from taskgraph.train.multitask import JointModel, _Joint
from taskgraph.train.weighting import build_weighting
from taskgraph.train.weighting.aggregators import AGGREGATORS


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


MASKED = """
name: masked
seed: 0
data:
  toy: {loader: "tests.train.masked_data:load"}
tasks:
"""


def test_single_task_node_masks_integer_bce_labels_and_skips_unlabelled_batches():
    spec, _ = parse_spec(MASKED + """
  clf:
    data: toy
    train: {epochs: 1, batch_size: 2}
    modules: {encoder: {type: mlp, hidden: [8]}, head: {type: linear, out: 1}}
    loss: {type: binary_cross_entropy, target: y}
""")
    task = spec.tasks["clf"]
    out = train_node(NodeRequest("clf", task, spec.data["toy"], 0), {})
    splits = load_data(spec.data["toy"])
    y = splits.train["y"]
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    with_labels = sum(int((y[order[i : i + 2]] != -100).any()) for i in range(0, len(y), 2))
    assert 0 < with_labels < len(y) // 2 and out.steps == with_labels  # the others were skipped, not zero steps
    model = NodeModel(dict(task.modules), in_dim=6, where="t")
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in out.state.items()})
    with torch.no_grad():
        logits = model(splits.val["x"]).squeeze(-1)
    keep = splits.val["y"] != -100
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[keep], splits.val["y"][keep].float())
    assert out.metrics["final"]["loss"] == pytest.approx(expected.item(), rel=1e-5)


JOINT = """
name: joint
seed: 0
data:
  conll: {loader: conll2000, max_sentences: 48, vocab_size: 400}
tasks:
  tagger:
    kind: multitask
    data: conll
    modules:
      embed: {type: embedding, vocab: 400, dim: 12}
      trunk: {type: bilstm, hidden: 8}
    heads:
      pos:   {module: {type: linear, out: 44}, loss: {type: cross_entropy, target: pos}}
      chunk: {module: {type: linear, out: 23}, loss: {type: cross_entropy, target: chunk}}
      pos2:  {module: {type: linear, out: 44}, loss: {type: cross_entropy, target: pos2}}
    weighting: WEIGHTING
"""


def node_of(weighting: str):
    return parse_spec(JOINT.replace("WEIGHTING", weighting))[0].tasks["tagger"]


def batch(n: int = 6, chunk_labels: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    out = {"x": torch.randint(2, 400, (n, 7), generator=g), "pos": torch.randint(0, 44, (n, 7), generator=g),
           "chunk": torch.randint(0, 23, (n, 7), generator=g), "pos2": torch.randint(0, 44, (n, 7), generator=g)}
    if not chunk_labels:
        out["chunk"] = torch.full((n, 7), -100)  # chunk has no label in this batch
    return out


@pytest.mark.parametrize("level", ["parameters", "representation"])
@pytest.mark.parametrize("method", ["mgda", "cagrad", "upgrad", "pcgrad", "nash_mtl"])
def test_a_task_without_labels_leaves_the_aggregation(method, level):
    """Its zero row would make MGDA's min-norm point 0 and torchjd's CAGrad return 0 (a frozen
    trunk); left out, the update is the aggregation of the labelled tasks alone."""
    node = node_of(f"{{method: {method}, level: {level}}}")
    torch.manual_seed(0)
    model = JointModel(node, 7, "t")
    agg = build_weighting(node.weighting, list(node.heads))
    joint = _Joint(node, model)
    losses, step = joint.losses({"conll": batch()}, agg.on_representation, agg.task_views)
    assert step.tasks == (0, 2) and len(losses) == 2
    agg.backward(losses, step)
    got = [p.grad.clone() for n in ("embed", "trunk") for p in model[n].parameters()]
    assert sum(float(g.norm()) for g in got) > 1e-3  # the trunk moves

    model.zero_grad(set_to_none=True)
    losses, step = joint.losses({"conll": batch()}, level == "representation", False)
    shared = [p for n in ("embed", "trunk") for p in model[n].parameters()]
    wrt = step.leaves if level == "representation" else shared
    rows = torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(l, wrt, retain_graph=True)]) for l in losses])
    direction = AGGREGATORS[method](node.weighting, 2)(rows)  # the labelled tasks alone
    if level == "representation":
        expected = torch.autograd.grad(step.reps[0], shared, direction.view_as(step.reps[0]))
    else:
        expected = direction.split([p.numel() for p in shared])
    for g, e in zip(got, expected):
        assert torch.allclose(g, e.view_as(g), atol=1e-5)
    assert model["chunk"].weight.grad is None  # no label, no gradient for its head


def two_steps(method_name: str) -> list:
    """One step with every task labelled, then one without chunk's labels; the method's optimizer
    (its own or the node's Adam) steps after each."""
    node = node_of(f"{{method: {method_name}}}")
    torch.manual_seed(0)
    model = JointModel(node, 7, "t")
    method = build_weighting(node.weighting, list(node.heads))
    params = list(method.parameters())
    opt = torch.optim.Adam(params, lr=0.1) if params else None
    joint = _Joint(node, model)
    states = []
    for labelled in (True, False):
        model.zero_grad(set_to_none=True)
        if opt:
            opt.zero_grad(set_to_none=True)
        losses, step = joint.losses({"conll": batch(chunk_labels=labelled)}, method.on_representation,
                                    method.task_views)
        weights = method.backward(losses, step)
        if opt:
            opt.step()
        if method.needs_losses_after_step:
            method.after_step(joint.losses({"conll": batch(chunk_labels=labelled)}, False, False)[0] * 0.9, step)
        states.append((dict(method.summary()), weights))
    return states


@pytest.mark.parametrize("method,key", [("uncertainty", "log_var"), ("gradnorm", "weight"), ("famo", "logit")])
def test_loss_weightings_hold_the_state_of_a_task_without_labels(method, key):
    (first, _), (second, weights) = two_steps(method)
    assert weights is not None and len(weights) == 2 and bool(torch.isfinite(weights).all())
    assert second[f"chunk.{key}"] == first[f"chunk.{key}"]  # held: no gradient, no momentum, no decay
    assert second[f"pos.{key}"] != first[f"pos.{key}"]  # the labelled tasks did move
    if method == "gradnorm":
        assert sum(second.values()) == pytest.approx(3.0, rel=1e-6)  # still sums to k


def test_dwa_holds_the_ratio_of_a_task_without_labels_in_an_epoch():
    method = build_weighting(node_of("{method: dwa, temperature: 2.0}").weighting, ["a", "b", "c"])
    method.end_epoch(torch.tensor([1.0, 1.0, 1.0]))
    method.end_epoch(torch.tensor([0.5, 1.0, 2.0]))
    method.end_epoch(torch.tensor([0.25, float("nan"), 2.0]))  # b had no label this epoch
    expected = 3 * torch.softmax(torch.tensor([0.5, 1.0, 1.0]) / 2.0, 0)
    assert torch.allclose(method.w, expected)


@pytest.mark.parametrize("weighting", ["{method: mgda}", "{method: cagrad, level: representation}",
                                       "{method: famo}", "{method: gradnorm}", "{method: uncertainty}"])
def test_a_joint_node_with_missing_labels_trains(weighting):
    spec, _ = parse_spec(MASKED + f"""
  joint:
    kind: multitask
    data: toy
    train: {{epochs: 2, batch_size: 2, lr: 0.01}}
    modules: {{encoder: {{type: mlp, hidden: [8]}}}}
    heads:
      y: {{module: {{type: linear, out: 1}}, loss: {{type: binary_cross_entropy, target: y}}}}
      r: {{module: {{type: linear, out: 1}}, loss: {{type: mse, target: r}}}}
    weighting: {weighting}
""")
    node = spec.tasks["joint"]
    request = NodeRequest("joint", node, spec.data["toy"], 0, sources=(("toy", spec.data["toy"]),))
    out = train_node(request, {})
    m = out.metrics
    assert m["unlabelled_steps"] > 0 and out.steps + m["unlabelled_steps"] == 2 * 16
    assert all(math.isfinite(v) for v in m["final"].values())
    assert all(math.isfinite(v) for v in m["weighting_state"].values())
    # BCE over the labelled entries of the validation split only: below log 2 plus a margin, never +50.
    assert 0.0 < m["final"]["y.loss"] < 1.5

"""FAMO (Liu et al. 2023) against Algorithm 1 computed by hand, and the loop's part in it: the
logits move by each task's log-loss decrease on the SAME batch across the parameter step."""

from __future__ import annotations

import math

import pytest
import torch

from taskgraph.spec.loader import parse_spec
from taskgraph.train.loop import NodeRequest, train_node
from taskgraph.train.weighting import Step, build_weighting

GAMMA, BETA, ALPHA, EPS = 0.01, 0.025, 0.05, 1e-8


@pytest.fixture
def float64():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def problem():
    """Three least-squares tasks on one shared parameter vector: L_i = mean((X theta - y_i)^2)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 4, generator=g, dtype=torch.float64)
    ys = torch.randn(3, 20, generator=g, dtype=torch.float64) * torch.tensor([[0.5], [1.0], [3.0]], dtype=torch.float64)
    return x, ys


def task_losses(theta, x, ys):
    return ((x @ theta - ys) ** 2).mean(dim=1)


def task_grads(theta, x, ys):  # by hand: d/dtheta mean((X theta - y)^2) = 2 X^T (X theta - y) / n
    return 2 * (x @ theta - ys) @ x / len(x)


def reference(steps: list[tuple[int, ...]]):
    """Algorithm 1 with plain SGD on theta (step ALPHA) and the logit step through Adam with L2
    decay GAMMA and step BETA, as the official code's ``w_opt``; per-task Adam state, and a task
    absent from a step (not in its tuple) is left out of it entirely."""
    x, ys = problem()
    theta = torch.zeros(4, dtype=torch.float64)
    xi, m, v, t = [torch.zeros(3, dtype=torch.float64) for _ in range(3)] + [[0, 0, 0]]
    out = []
    for rows in steps:
        r = list(rows)
        loss = task_losses(theta, x, ys)[r]
        z = torch.softmax(xi[r], 0)
        c = 1.0 / (z / (loss + EPS)).sum()
        d = (c * z / (loss + EPS)) @ task_grads(theta, x, ys)[r]  # sum_i c z_i grad log(L_i + eps)
        theta = theta - ALPHA * d
        after = task_losses(theta, x, ys)[r]
        delta = torch.log(loss + EPS) - torch.log(after + EPS)
        grad = z * (delta - (z * delta).sum())  # J_softmax^T delta, J = diag(z) - z z^T
        for j, i in enumerate(r):
            g = grad[j] + GAMMA * xi[i]
            t[i] += 1
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            xi[i] = xi[i] - BETA * (m[i] / (1 - 0.9 ** t[i])) / ((v[i] / (1 - 0.999 ** t[i])).sqrt() + 1e-8)
        out.append((theta.clone(), xi.clone(), c * z / (loss + EPS)))
    return out


def run_method(steps: list[tuple[int, ...]]):
    config = parse_spec(WEIGHTED)[0].tasks["j"].weighting
    method = build_weighting(config, ["a", "b", "c"])
    x, ys = problem()
    theta = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([theta], lr=ALPHA)
    out = []
    for rows in steps:
        opt.zero_grad()
        losses = task_losses(theta, x, ys)[list(rows)]
        step = Step([theta], [], [], [], list(losses), [], rows)
        weights = method.backward(losses, step)
        opt.step()
        with torch.no_grad():
            method.after_step(task_losses(theta, x, ys)[list(rows)], step)
        out.append((theta.detach().clone(), torch.stack([p.detach() for p in method.xi]).clone(), weights))
    return out


WEIGHTED = """
name: w
data: {d: {loader: synthetic_shapes}}
tasks:
  j:
    kind: multitask
    data: d
    modules: {m: {type: mlp, hidden: [4]}}
    heads: {a: {module: {type: linear, out: 4}, loss: {type: cross_entropy, target: label}}}
    weighting: {method: famo, lr: 0.025, gamma: 0.01}
"""


def test_famo_is_algorithm_1(float64):
    steps = [(0, 1, 2)] * 6
    for (theta, xi, w), (ref_theta, ref_xi, ref_w) in zip(run_method(steps), reference(steps)):
        assert torch.allclose(theta, ref_theta, atol=1e-6, rtol=0)
        assert torch.allclose(xi, ref_xi, atol=1e-6, rtol=0)
        assert torch.allclose(w, ref_w, atol=1e-6, rtol=0)
    assert float((xi - xi.mean()).abs().max()) > 1e-3  # the logits did move


def test_famo_skips_a_task_without_labels(float64):
    """Task c has no label in steps 3 and 4: the softmax runs over a and b, c's logit (and its
    Adam state) hold, and no 1e-8 loss collapses the weights."""
    steps = [(0, 1, 2), (0, 1, 2), (0, 1), (0, 1), (0, 1, 2)]
    got, ref = run_method(steps), reference(steps)
    for (theta, xi, w), (ref_theta, ref_xi, ref_w) in zip(got, ref):
        assert torch.allclose(theta, ref_theta, atol=1e-6, rtol=0)
        assert torch.allclose(xi, ref_xi, atol=1e-6, rtol=0)
        assert torch.allclose(w, ref_w, atol=1e-6, rtol=0)
    assert got[2][1][2] == got[1][1][2] == got[3][1][2]  # c's logit held while it had no labels
    assert float(got[2][2].min()) > 0.1  # weights of the labelled tasks stay of order 1


JOINT = """
name: famo_loop
seed: 0
data:
  shapes: {loader: synthetic_shapes, n: 120, dim: 8, classes: 4}
tasks:
  joint:
    kind: multitask
    data: shapes
    train: {epochs: 1, batch_size: 20, lr: LR}
    modules: {encoder: {type: mlp, hidden: [16], dropout: 0.5}}
    heads:
      label: {module: {type: linear, out: 4}, loss: {type: cross_entropy, target: label}}
      parity: {module: {type: linear, out: 1}, loss: {type: binary_cross_entropy, target: parity}}
    weighting: {method: famo}
"""


def logits_after_training(lr: str) -> dict[str, float]:
    spec, _ = parse_spec(JOINT.replace("LR", lr))
    node = spec.tasks["joint"]
    out = train_node(NodeRequest("joint", node, spec.data["shapes"], 0, sources=(("shapes", spec.data["shapes"]),)), {})
    assert all(math.isfinite(v) for v in out.metrics["final"].values())
    return out.metrics["weighting_state"]


def test_the_loop_measures_the_same_batch_with_the_same_dropout():
    """With a step too small to change a parameter, the losses after the step equal those before
    (same batch, same dropout masks), so the logits' gradient and decay are exactly 0. Measured on
    the next batch, or with fresh dropout masks, they would move every step."""
    frozen = logits_after_training("1.0e-30")
    assert set(frozen) == {"label.logit", "parity.logit"} and all(v == 0.0 for v in frozen.values())
    assert any(abs(v) > 1e-3 for v in logits_after_training("0.01").values())

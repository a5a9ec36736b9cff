"""Oracles for the loss weightings: each method's update against its paper's rule, written here from
the paper, on a small shared trunk with k = 2, 3 and 10 heads in float32 and float64.

The update a loss weighting makes is the gradient of ``sum_i w_i L_i`` with the paper's weights; the
tests check both the weights (and, where the method learns them, their own update) and the trunk's
gradient. FAMO is checked in ``test_famo.py``.
"""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import pytest
import torch

from taskgraph.train.weighting import Step, build_weighting

CASES = list(itertools.product((2, 3, 10), (torch.float32, torch.float64)))
IDS = [f"k{k}-{str(d)[6:]}" for k, d in CASES]


class Trunk:
    """``z = x W`` shared; head i reads its own view of ``z`` and has loss ``mean((z h_i - y_i)^2) * scale_i``."""

    def __init__(self, k: int, dtype: torch.dtype, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.k, self.dtype, self.g = k, dtype, g
        self.w = torch.randn(6, 4, generator=g, dtype=dtype).requires_grad_()
        self.heads = torch.randn(k, 4, generator=g, dtype=dtype)
        self.scales = torch.logspace(0, 1, k, dtype=dtype)  # tasks of different loss scales

    def losses(self) -> tuple[torch.Tensor, Step]:
        x = torch.randn(5, 6, generator=self.g, dtype=self.dtype)
        y = torch.randn(self.k, 5, generator=self.g, dtype=self.dtype)
        z = x @ self.w
        views = [z.view_as(z) for _ in range(self.k)]
        parts = [((v @ h - t) ** 2).mean() * s for v, h, t, s in zip(views, self.heads, y, self.scales)]
        return torch.stack(parts), Step([self.w], [], [z], [z], parts, [(v, 0) for v in views])

    def gradient_of(self, weighted: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(weighted, self.w, retain_graph=True)[0]


def method(name: str, k: int, **options):
    return build_weighting(SimpleNamespace(method=name, **options), [f"t{i}" for i in range(k)])


def step(m, trunk: Trunk) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One update: the losses, the weights the method reports, and the trunk gradient it wrote."""
    trunk.w.grad = None
    losses, st = trunk.losses()
    weights = m.backward(losses, st)
    return losses.detach(), weights, trunk.w.grad.clone()


@pytest.mark.parametrize("k,dtype", CASES, ids=IDS)
def test_uncertainty_is_kendalls_objective(k, dtype):
    """Kendall et al. 2018, eq. 7 with s = log sigma^2: sum_i L_i / (2 sigma_i^2) + log sigma_i."""
    m, trunk = method("uncertainty", k), Trunk(k, dtype)
    with torch.no_grad():
        for p, v in zip(m.log_var, torch.linspace(-1, 1.5, k)):
            p.fill_(v)
    log_var = lambda: torch.stack([p for p in m.log_var])  # noqa: E731  (one parameter per task)
    trunk.w.grad = None
    losses, st = trunk.losses()
    sigma2 = torch.exp(log_var().detach()).to(dtype)
    expected = trunk.gradient_of((losses / (2 * sigma2)).sum())
    weights = m.backward(losses, st)
    s = log_var().detach().double().requires_grad_()
    objective = (losses.detach().double() / (2 * torch.exp(s)) + 0.5 * s).sum()
    objective.backward()
    assert torch.allclose(torch.stack([p.grad for p in m.log_var]).double(), s.grad, atol=1e-6)
    assert torch.allclose(trunk.w.grad, expected, rtol=1e-5, atol=1e-7)
    assert torch.allclose(weights.double(), 1 / (2 * sigma2.double()), rtol=1e-6)


@pytest.mark.parametrize("k,dtype", CASES, ids=IDS)
def test_dwa_follows_the_papers_rule(k, dtype):
    """Liu et al. 2019, eq. 6: w_i(t) = K exp(r_i(t-1)/T) / sum_j exp(r_j(t-1)/T), r_i(t-1) = L_i(t-1) / L_i(t-2);
    w = 1 for the first two epochs."""
    temperature = 2.0
    m, trunk = method("dwa", k, temperature=temperature), Trunk(k, dtype)
    epochs = [torch.rand(k, generator=torch.Generator().manual_seed(e)) + 0.5 for e in range(4)]
    for t in range(4):
        if t < 2:
            expected = [1.0] * k
        else:
            r = [float(epochs[t - 1][i] / epochs[t - 2][i]) for i in range(k)]
            total = sum(math.exp(ri / temperature) for ri in r)
            expected = [k * math.exp(ri / temperature) / total for ri in r]
        expected = torch.tensor(expected, dtype=torch.float64)
        trunk.w.grad = None
        losses, st = trunk.losses()
        weighted = trunk.gradient_of((expected.to(dtype) * losses).sum())
        weights = m.backward(losses, st)
        assert torch.allclose(weights.double(), expected, rtol=1e-6)
        assert torch.allclose(trunk.w.grad, weighted, rtol=1e-5, atol=1e-7)
        m.end_epoch(epochs[t])


@pytest.mark.parametrize("k,dtype", CASES, ids=IDS)
def test_rlw_weights_are_a_softmax_of_normal_draws(k, dtype):
    """Lin et al. 2022: lambda = softmax(eps), eps ~ N(0, I) drawn anew every step."""
    m, trunk = method("rlw", k), Trunk(k, dtype)
    draws = []
    for seed in range(3):
        torch.manual_seed(seed)
        expected = torch.softmax(torch.randn(k), 0)  # the same draw the method makes
        torch.manual_seed(seed)
        trunk.w.grad = None
        losses, st = trunk.losses()
        weighted = trunk.gradient_of((expected.to(dtype) * losses).sum())
        weights = m.backward(losses, st)
        assert torch.allclose(weights.double(), expected.double(), atol=1e-7)
        assert torch.allclose(trunk.w.grad, weighted, rtol=1e-5, atol=1e-7)
        draws.append(weights)
    assert not torch.allclose(draws[0], draws[1])  # new weights every step


@pytest.mark.parametrize("k,dtype", CASES, ids=IDS)
def test_gradnorm_follows_algorithm_1(k, dtype):
    """Chen et al. 2018, Alg. 1 on the shared representation z: G_i = w_i |dL_i/dz|, r_i = L~_i / mean(L~)
    with L~_i = L_i(t) / L_i(0); the weights take an Adam step on sum_i |G_i - mean(G) r_i^alpha| (the
    target held constant), then are renormalised to sum to k. The update uses the weights before the step."""
    alpha, lr = 1.5, 0.025
    m, trunk = method("gradnorm", k, alpha=alpha, lr=lr), Trunk(k, dtype)
    w_ref = torch.ones(k, dtype=torch.float32, requires_grad=True)
    adam = torch.optim.Adam([w_ref], lr=lr)
    first = None
    for _ in range(4):
        trunk.w.grad = None
        losses, st = trunk.losses()
        norms = torch.stack([torch.autograd.grad(loss, x, retain_graph=True)[0].norm() for loss, (x, _) in
                             zip(st.parts, st.task_inputs)]).detach().double()
        before = w_ref.detach().clone()
        expected_grad = trunk.gradient_of((before.to(dtype) * losses).sum())
        weights = m.backward(losses, st)
        assert torch.allclose(weights.double(), before.double(), atol=1e-6)
        assert torch.allclose(trunk.w.grad, expected_grad, rtol=1e-5, atol=1e-7)
        # The paper's weight update.
        first = losses.detach().double() if first is None else first
        ratio = losses.detach().double() / first
        r = ratio / ratio.mean()
        g = w_ref.double() * norms
        target = (g.mean() * r**alpha).detach()
        adam.zero_grad()
        (g - target).abs().sum().backward()
        adam.step()
        with torch.no_grad():
            w_ref.mul_(k / w_ref.sum())
        learned = torch.stack([w.detach() for w in m.w])
        assert torch.allclose(learned, w_ref.detach(), atol=1e-6), (learned, w_ref)
    assert not torch.allclose(w_ref.detach(), torch.ones(k))  # the weights did move


def test_gradnorm_trains_a_float64_node():
    """GradNorm stepped its float32 weights with a float64 gradient and raised on float64 nodes."""
    m, trunk = method("gradnorm", 3, alpha=1.5, lr=0.025), Trunk(3, torch.float64)
    for _ in range(2):
        losses, weights, grad = step(m, trunk)
        assert grad.dtype == torch.float64 and torch.isfinite(grad).all()
    assert sum(float(w.detach()) for w in m.w) == pytest.approx(3.0)

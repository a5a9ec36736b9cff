"""The gradient aggregators on small hand-made Jacobians: the properties their papers state."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from taskgraph.spec.weighting import GRADIENT_METHODS, WeightingConfig
from taskgraph.train.weighting.aggregators import AGGREGATORS
from pydantic import TypeAdapter

CONFIG = TypeAdapter(WeightingConfig)

#: Two conflicting gradients (negative inner product) and a three-task case with one conflict.
CONFLICT = torch.tensor([[1.0, 0.0], [-0.5, 1.0]], dtype=torch.float64)
THREE = torch.tensor([[2.0, 0.0, 1.0], [-1.0, 1.0, 0.0], [0.0, -0.5, 2.0]], dtype=torch.float64)


def aggregate(method: str, jac: torch.Tensor, **kwargs) -> torch.Tensor:
    config = CONFIG.validate_python({"method": method, **kwargs})
    return AGGREGATORS[method](config, len(jac))(jac.float()).double()


def min_norm_hull(jac: torch.Tensor, steps: int = 2000) -> torch.Tensor:
    """The min-norm point of conv{rows}, by brute force over a grid of the simplex (2 or 3 rows)."""
    best = None
    grid = torch.linspace(0, 1, steps if len(jac) == 2 else 301, dtype=jac.dtype)
    for a in grid:
        if len(jac) == 2:
            points = [torch.stack([a, 1 - a])]
        else:
            points = [torch.stack([a, b, 1 - a - b]) for b in grid if a + b <= 1]
        for w in points:
            v = w @ jac
            if best is None or v.norm() < best.norm():
                best = v
    return best


def test_pcgrad_removes_every_conflict():
    d = aggregate("pcgrad", CONFLICT)
    assert torch.all(CONFLICT @ d >= -1e-6)
    # Yu et al.: g1' = g1 - (g1.g2/|g2|^2) g2, g2' likewise; the result is their sum.
    g1, g2 = CONFLICT
    expected = (g1 - (g1 @ g2) / (g2 @ g2) * g2) + (g2 - (g1 @ g2) / (g1 @ g1) * g1)
    assert torch.allclose(d, expected, atol=1e-5)


def test_pcgrad_without_conflict_is_the_sum():
    jac = torch.tensor([[1.0, 0.2], [0.3, 1.0]], dtype=torch.float64)
    assert torch.allclose(aggregate("pcgrad", jac), jac.sum(0), atol=1e-6)


def test_mgda_is_the_min_norm_point_of_the_convex_hull():
    # By hand: |a g1 + (1-a) g2|^2 is smallest at a = 7/13, giving (4/13, 6/13).
    expected = torch.tensor([4 / 13, 6 / 13], dtype=torch.float64)
    assert torch.allclose(aggregate("mgda", CONFLICT), expected, atol=1e-3)
    assert torch.allclose(min_norm_hull(CONFLICT), expected, atol=1e-3)


def test_mgda_meets_the_min_norm_optimality_conditions():
    d = aggregate("mgda", THREE)
    weights = torch.linalg.solve(THREE.T, d)  # THREE is square and invertible
    assert torch.all(weights >= -1e-3) and abs(weights.sum() - 1) < 1e-3  # in the convex hull
    assert torch.all(THREE @ d >= d @ d - 1e-2)  # KKT: no vertex of the hull is closer along any edge
    assert d.norm() <= min_norm_hull(THREE).norm() + 1e-3


def test_mgda_of_one_dominant_direction_is_the_smaller_gradient():
    jac = torch.tensor([[1.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(aggregate("mgda", jac), torch.tensor([1.0, 0.0], dtype=torch.float64), atol=1e-4)


@pytest.mark.parametrize("jac", [CONFLICT, THREE])
def test_upgrad_has_no_negative_inner_product_with_any_task(jac):
    d = aggregate("upgrad", jac)
    assert torch.all(jac @ d >= -1e-5)
    assert d.norm() > 0


def test_upgrad_without_conflict_is_the_mean():
    jac = torch.tensor([[1.0, 0.2], [0.3, 1.0]], dtype=torch.float64)
    assert torch.allclose(aggregate("upgrad", jac), jac.mean(0), atol=1e-5)


@pytest.mark.parametrize("jac", [CONFLICT, THREE])
def test_imtl_g_projects_equally_on_every_unit_gradient(jac):
    d = aggregate("imtl_g", jac)
    units = jac / jac.norm(dim=1, keepdim=True)
    projections = units @ d
    assert torch.allclose(projections, projections.mean().expand_as(projections), atol=1e-4)


def test_imtl_g_is_invariant_to_scaling_one_task():
    scaled = CONFLICT * torch.tensor([[10.0], [1.0]], dtype=torch.float64)
    a, b = aggregate("imtl_g", CONFLICT), aggregate("imtl_g", scaled)
    # Liu et al.: the direction does not depend on the tasks' loss scales.
    assert torch.allclose(a / a.norm(), b / b.norm(), atol=1e-4)


def test_cagrad_with_zero_radius_is_the_mean_and_improves_the_worst_task():
    assert torch.allclose(aggregate("cagrad", CONFLICT, c=0.0), CONFLICT.mean(0), atol=1e-4)
    mean = CONFLICT.mean(0)
    d = aggregate("cagrad", CONFLICT, c=0.5)
    # Liu et al.: max_d min_i <g_i, d> s.t. |d - g0| <= c|g0|; its worst task does at least as well as the mean's.
    assert (CONFLICT @ d).min() >= (CONFLICT @ mean).min() - 1e-5


@pytest.mark.parametrize("jac", [CONFLICT, THREE])
def test_aligned_mtl_is_the_papers_aligned_update(jac):
    # Senushkin et al. 2023: G = J J^T = V L V^T, B = sqrt(l_min) V L^-1/2 V^T makes B J's rows orthogonal with
    # equal norms (condition number 1); the update is the mean of the aligned rows.
    lam, vec = torch.linalg.eigh(jac @ jac.T)
    b = lam.min().sqrt() * vec @ torch.diag(lam.rsqrt()) @ vec.T
    aligned = b @ jac
    assert torch.allclose(aligned @ aligned.T, lam.min() * torch.eye(len(jac), dtype=jac.dtype), atol=1e-9)
    assert torch.allclose(aggregate("aligned_mtl", jac), aligned.mean(0), atol=1e-5)


@pytest.mark.parametrize("solver", ["newton", "cvxpy"])
def test_nash_mtl_solves_the_bargaining_condition(solver):
    d = aggregate("nash_mtl", CONFLICT, max_norm=0.0, solver=solver)
    # Navon et al.: d = sum a_i g_i with (G a)_i = 1 / a_i, i.e. <g_i, d> = 1 / a_i > 0 for every task.
    gram = CONFLICT @ CONFLICT.T
    alpha = torch.linalg.lstsq(CONFLICT.T, d[:, None]).solution.squeeze(1)
    assert torch.all(alpha > 0)
    assert torch.allclose(gram @ alpha, 1.0 / alpha, rtol=1e-3 if solver == "cvxpy" else 1e-5)


def test_nash_mtl_newton_agrees_with_torchjds_convex_solver():
    """Same fixed point as torchjd's port of the official code, on a 6-task Jacobian with conflicts."""
    g = torch.Generator().manual_seed(3)
    jac = torch.randn(6, 40, generator=g, dtype=torch.float64)
    jac[1] = -0.7 * jac[0] + 0.3 * jac[1]  # a strong conflict
    jac[4] *= 20.0  # and a dominant task
    newton = aggregate("nash_mtl", jac, max_norm=0.0, solver="newton")
    cvxpy = aggregate("nash_mtl", jac, max_norm=0.0, solver="cvxpy")
    assert torch.allclose(newton, cvxpy, rtol=2e-3, atol=1e-4)
    assert torch.all(jac @ newton > 0)  # every task improves


def test_nash_mtl_reuses_its_weights_between_updates():
    from taskgraph.train.weighting.nash import NashMTL

    gram = (CONFLICT @ CONFLICT.T).numpy()
    agg = NashMTL(max_norm=0.0, update_weights_every=3)
    first = agg.weights(gram)
    assert np.array_equal(agg.weights(gram[:2, :2] * 7), first) and np.array_equal(agg.weights(4 * gram), first)
    assert not np.allclose(agg.weights(4 * gram), first)  # the 4th call solves again: a halves
    assert np.allclose(agg.weights(4 * gram), first / 2, rtol=1e-6)


@pytest.mark.parametrize("method", [m for m in GRADIENT_METHODS if m != "accumulate"])
def test_every_aggregator_is_finite_on_identical_and_zero_gradients(method):
    same = torch.tensor([[1.0, 2.0], [1.0, 2.0]], dtype=torch.float64)
    d = aggregate(method, same)
    assert torch.isfinite(d).all()
    assert d @ same[0] > 0  # with no conflict every method goes downhill for both


@pytest.mark.parametrize("method", ["mgda", "upgrad", "pcgrad", "imtl_g", "cagrad"])
def test_aggregators_never_go_uphill_for_every_task_on_random_conflicts(method):
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        jac = torch.randn(3, 6, generator=g, dtype=torch.float64)
        d = aggregate(method, jac)
        if method in ("mgda", "upgrad"):  # guarantees of non-conflict
            assert torch.all(jac @ d >= -1e-4)
        assert torch.isfinite(d).all()


def cagrad_by_the_paper(jac: torch.Tensor, c: float, n: int = 20001) -> torch.Tensor:
    """Liu et al. 2021, Alg. 1 for two tasks: w* = argmin_w g_w.g0 + sqrt(phi) |g_w| on a grid of the simplex,
    d = g0 + sqrt(phi) g_w / |g_w|, phi = c^2 |g0|^2, returned as d / (1 + c^2) like the official code."""
    g0 = jac.mean(0)
    root_phi = c * g0.norm()
    best = min((torch.stack([a, 1 - a]) @ jac for a in torch.linspace(0, 1, n, dtype=jac.dtype)),
               key=lambda gw: float(gw @ g0 + root_phi * gw.norm()))
    return (g0 + root_phi / best.norm() * best) / (1 + c**2)


@pytest.mark.parametrize("c", [0.4, 0.5, 0.9])
def test_cagrad_follows_the_papers_algorithm(c):
    d, paper = aggregate("cagrad", CONFLICT, c=c), cagrad_by_the_paper(CONFLICT, c)
    # Same direction; torchjd leaves out the final 1 / (1 + c^2), a scale Adam ignores.
    assert torch.allclose(d / d.norm(), paper / paper.norm(), atol=1e-4)
    assert d.norm() / paper.norm() == pytest.approx(1 + c**2, rel=1e-3)


@pytest.mark.parametrize("jac", [CONFLICT, THREE])
def test_upgrad_is_the_mean_of_projections_onto_the_dual_cone(jac):
    from scipy.optimize import minimize

    # Quinton & Rey 2024: project each gradient onto {x : J x >= 0} (every task improves), then average.
    def project(g):
        res = minimize(lambda x: ((x - g) ** 2).sum(), g, jac=lambda x: 2 * (x - g),
                       constraints=[{"type": "ineq", "fun": lambda x: jac.numpy() @ x, "jac": lambda x: jac.numpy()}],
                       method="SLSQP", options={"ftol": 1e-12})
        return torch.tensor(res.x, dtype=jac.dtype)

    expected = torch.stack([project(g.numpy()) for g in jac]).mean(0)
    assert torch.allclose(aggregate("upgrad", jac), expected, atol=1e-3)  # float32 QP vs SLSQP

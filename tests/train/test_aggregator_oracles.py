"""Oracles for the gradient aggregators: each against its paper's definition, written here from the
paper (KKT conditions, closed forms, the algorithm as published), not against torchjd.

Every method runs on seven kinds of Jacobian (random, conflicting, near-parallel, antiparallel,
duplicated rows, a zero row, rows 1e4 apart in scale), k = 2, 3, 10, in float32 and float64. The
definitions are checked in float64 on the Jacobian the method was given (its float32 values, exactly).
A task whose gradient is exactly zero takes no part (weight 0): the oracle is the method on the
other rows, and no aggregator may return 0 because of it.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter
from scipy.optimize import linprog, nnls

from taskgraph.spec.weighting import WeightingConfig
from taskgraph.train.weighting.aggregators import AGGREGATORS

CONFIG = TypeAdapter(WeightingConfig)
FAMILIES = ("random", "conflicting", "near_parallel", "antiparallel", "duplicated", "zero_row", "badly_scaled")
KS = (2, 3, 10)
DTYPES = (torch.float32, torch.float64)
CASES = list(itertools.product(FAMILIES, KS, DTYPES))
IDS = [f"{f}-k{k}-{str(d)[6:]}" for f, k, d in CASES]


def jacobian(family: str, k: int, dtype: torch.dtype, n: int | None = None) -> torch.Tensor:
    """A ``k x n`` Jacobian of the named kind (seeded by its name, so every case is fixed)."""
    n = n or 2 * k + 3
    g = torch.Generator().manual_seed(FAMILIES.index(family) * 100 + k)
    base = torch.randn(k, n, generator=g, dtype=torch.float64)
    noise = torch.randn(k, n, generator=g, dtype=torch.float64)
    if family == "conflicting":  # every second task pulls against the one before it
        for i in range(1, k, 2):
            base[i] = -0.8 * base[i - 1] + 0.6 * noise[i]
    elif family == "near_parallel":
        base = base[0].expand(k, n) * torch.linspace(1, 2, k, dtype=torch.float64)[:, None] + 1e-3 * noise
    elif family == "antiparallel":  # alternating signs of one direction, up to 1e-4
        signs = torch.tensor([(-1.0) ** i for i in range(k)], dtype=torch.float64)
        base = signs[:, None] * base[0] + 1e-4 * noise
    elif family == "duplicated":
        base[-1] = base[0]
    elif family == "zero_row":
        base[-1] = 0.0
    elif family == "badly_scaled":
        base = base * torch.logspace(0, -4, k, dtype=torch.float64)[:, None]
    return base.to(dtype)


def build(method: str, k: int, **options):
    config = CONFIG.validate_python({"method": method, **options})
    return AGGREGATORS[method](config, k)


def run(method: str, jac: torch.Tensor, **options) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """The update (in ``jac``'s dtype), the weights, and the float64 Jacobian the method saw."""
    agg = build(method, len(jac), **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "pcgrad":
            torch.manual_seed(7)
        d = agg(jac)
        if method == "pcgrad":
            torch.manual_seed(7)
        w = agg.weights(jac).numpy()
    assert d.dtype == jac.dtype and torch.isfinite(d).all()
    j64 = jac.double().numpy()
    # The update is the weights applied to the rows, to the dtype's rounding.
    rtol = 1e-6 if jac.dtype == torch.float32 else 1e-12
    assert np.allclose(d.double().numpy(), w @ j64, rtol=0, atol=rtol * max(np.linalg.norm(w @ j64), 1e-300) * 10)
    return d, w, j64


def direction(method: str, jac: torch.Tensor, **options) -> torch.Tensor:
    """The update alone (what every version of the aggregators returns), in float64."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build(method, len(jac), **options)(jac).double()


def active(j64: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.linalg.norm(j64, axis=1) > 0)


def check_zero_rows_ignored(w: np.ndarray, j64: np.ndarray) -> np.ndarray:
    """Weight 0 on zero rows; returns the nonzero rows (the problem the method must have solved)."""
    keep = active(j64)
    assert np.all(w[np.setdiff1d(np.arange(len(w)), keep)] == 0)
    return j64[keep]


# ----- MGDA: min-norm point of the convex hull (Sener & Koltun 2018; Désidéri 2012) -------------


@pytest.mark.parametrize("family,k,dtype", CASES, ids=IDS)
def test_mgda_is_the_exact_min_norm_point_of_the_hull(family, k, dtype):
    d, w, j64 = run("mgda", jacobian(family, k, dtype))
    rows, w = check_zero_rows_ignored(w, j64), w[active(j64)]
    dd = w @ rows
    # KKT of min |J^T w|^2 on the simplex: w in the simplex, g_i.d >= |d|^2, equality where w_i > 0.
    assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-12
    slack = rows @ dd - dd @ dd
    scale = np.linalg.norm(rows, axis=1) * max(np.linalg.norm(dd), 1e-300)
    assert np.all(slack >= -1e-9 * scale), slack / scale
    assert np.all(np.abs(slack[w > 1e-9]) <= 1e-9 * scale[w > 1e-9])
    if family != "antiparallel":  # 0 is not in the hull: the update is not 0
        assert np.linalg.norm(dd) > 1e-3 * np.linalg.norm(rows, axis=1).min()


def test_mgda_at_k10_is_not_stopped_by_a_frank_wolfe_tolerance():
    """torchjd's Frank-Wolfe stops at a step of 1e-3: at k = 10 its KKT slack was -0.17 (5 % of |d|^2)."""
    g = torch.Generator().manual_seed(5)
    jac = torch.randn(10, 30, generator=g, dtype=torch.float64) + 0.3
    d = direction("mgda", jac).numpy()
    assert (jac.numpy() @ d).min() - d @ d > -1e-10 * (d @ d)


# ----- PCGrad: Yu et al. 2020, Algorithm 1 ---------------------------------------------------------


def pcgrad_by_the_paper(rows: np.ndarray, seed: int) -> np.ndarray:
    """Each g_i, in a random order of the others, loses its component along every g_j it conflicts with."""
    torch.manual_seed(seed)  # the same random orders as the implementation draws
    k, total = len(rows), np.zeros(rows.shape[1])
    for i in range(k):
        g = rows[i].copy()
        for j in torch.randperm(k).tolist():
            if j != i and g @ rows[j] < 0:
                g = g - (g @ rows[j]) / (rows[j] @ rows[j]) * rows[j]
        total += g
    return total


@pytest.mark.parametrize("family,k,dtype", CASES, ids=IDS)
def test_pcgrad_is_the_papers_projection_rule(family, k, dtype):
    d, w, j64 = run("pcgrad", jacobian(family, k, dtype))
    rows = check_zero_rows_ignored(w, j64)
    expected = pcgrad_by_the_paper(rows, 7)
    tol = (1e-5 if dtype == torch.float32 else 1e-10) * np.abs(rows).max() * k
    assert np.allclose(d.double().numpy(), expected, rtol=0, atol=tol)
    if k == 2 and len(rows) == 2:  # pairwise, by hand: both projections or the plain sum
        g1, g2 = rows
        if g1 @ g2 < 0:
            by_hand = (g1 - (g1 @ g2) / (g2 @ g2) * g2) + (g2 - (g1 @ g2) / (g1 @ g1) * g1)
        else:
            by_hand = g1 + g2
        assert np.allclose(d.double().numpy(), by_hand, rtol=0, atol=tol)


# ----- CAGrad: Liu et al. 2021, max_d min_i <g_i, d> s.t. |d - g0| <= c |g0| ---------------------


def cagrad_primal(rows: np.ndarray, c: float) -> float:
    """The optimum of the primal (an SOCP, solved by cvxpy on the unit rows' scale)."""
    import cvxpy as cp

    g0 = rows.mean(0)
    d, t = cp.Variable(rows.shape[1]), cp.Variable()
    cp.Problem(cp.Maximize(t), [rows @ d >= t, cp.norm(d - g0, 2) <= c * np.linalg.norm(g0)]).solve(cp.CLARABEL)
    return float(t.value)


@pytest.mark.parametrize("family,k,dtype", CASES, ids=IDS)
def test_cagrad_solves_its_primal_problem(family, k, dtype):
    c = 0.4
    d, w, j64 = run("cagrad", jacobian(family, k, dtype), c=c)
    rows = check_zero_rows_ignored(w, j64)
    dd, g0 = w[active(j64)] @ rows, rows.mean(0)
    radius = c * np.linalg.norm(g0)
    # Feasible: inside the ball (so never 0 while the mean is not), and on its rim unless every d ties.
    assert np.linalg.norm(dd - g0) <= radius * (1 + 1e-6) + 1e-12
    assert np.linalg.norm(dd) >= (1 - c) * np.linalg.norm(g0) * (1 - 1e-6)
    # Optimal: the worst task's improvement reaches the primal optimum. Where 0 is nearly in the hull
    # (antiparallel rows) the paper's dual combination g_w nearly vanishes and its direction is known
    # only to the solver's precision, hence the looser bound there.
    best = cagrad_primal(rows, c)
    scale = np.linalg.norm(rows, axis=1).max() * np.linalg.norm(g0)
    assert (rows @ dd).min() >= best - (1e-3 if family == "antiparallel" else 1e-5) * scale


def test_cagrad_with_a_task_1e4_smaller_still_moves():
    """torchjd's CAGrad returned 0 here (its norm_eps branch): the trunk got no update."""
    g = torch.Generator().manual_seed(6)
    jac = torch.randn(3, 20, generator=g, dtype=torch.float64)
    jac[2] *= 1e-4
    d = direction("cagrad", jac.float(), c=0.4)
    g0 = jac.mean(0)
    assert (d - g0).norm() <= 0.4 * g0.norm() * (1 + 1e-5)
    assert d.norm() > 0.5 * g0.norm()


# ----- IMTL-G: Liu et al. 2021, equal projections on the unit gradients ---------------------------


def imtl_g_by_the_paper(rows: np.ndarray) -> np.ndarray:
    """Closed form: alpha_{2..k} = g_1 U^T (D U^T)^-1, alpha_1 = 1 - sum, U_i = u_1 - u_i, D_i = g_1 - g_i."""
    units = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    u_diff, d_diff = units[0] - units[1:], rows[0] - rows[1:]
    alpha = rows[0] @ u_diff.T @ np.linalg.inv(d_diff @ u_diff.T)
    return np.concatenate([[1 - alpha.sum()], alpha]) @ rows


@pytest.mark.parametrize("family,k,dtype", CASES, ids=IDS)
def test_imtl_g_projects_equally_on_every_unit_gradient(family, k, dtype):
    d, w, j64 = run("imtl_g", jacobian(family, k, dtype))
    rows = check_zero_rows_ignored(w, j64)
    dd = w[active(j64)] @ rows
    units = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    projections = units @ dd
    assert np.allclose(projections, projections.mean(), rtol=0, atol=1e-8 * max(np.linalg.norm(dd), 1e-300))
    assert abs(w.sum() - 1) < 1e-9 or not w.any()
    if family in ("random", "conflicting", "badly_scaled", "zero_row"):  # the paper's closed form exists
        expected = imtl_g_by_the_paper(rows)
        assert np.allclose(dd, expected, rtol=0, atol=1e-8 * np.linalg.norm(expected))
    # Never a step longer than the rows (torchjd in float32 returned projections of +-131 on antiparallel rows).
    assert np.linalg.norm(dd) <= np.linalg.norm(rows, axis=1).max() * (1 + 1e-9)


def test_imtl_g_in_float32_on_nearly_antiparallel_gradients():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(2000, generator=g, dtype=torch.float64)
    jac = torch.stack([a, -a + 1e-4 * torch.randn(2000, generator=g, dtype=torch.float64)])
    d = direction("imtl_g", jac.float())
    units = jac / jac.norm(dim=1, keepdim=True)
    projections = units @ d
    assert d.norm() < 1e-2 * a.norm()  # float64's answer: 2e-3; float32 torchjd: 131
    assert torch.allclose(projections, projections.mean().expand(2), atol=1e-6 * d.norm())


# ----- Nash-MTL: Navon et al. 2022, G a = 1 / a -----------------------------------------------


def common_descent_exists(rows: np.ndarray) -> bool:
    """Gordan: some d has g_i.d >= margin |g_i| for all i (LP), so the bargaining problem has a solution."""
    units = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    n = rows.shape[1]
    res = linprog(np.r_[np.zeros(n), -1.0], A_ub=np.c_[-units, np.ones(len(rows))], b_ub=np.zeros(len(rows)),
                  bounds=[(-1, 1)] * n + [(None, 1)])
    return res.status == 0 and -res.fun > 1e-3


@pytest.mark.parametrize("family,k,dtype", CASES, ids=IDS)
def test_nash_mtl_meets_the_bargaining_condition_for_every_task(family, k, dtype):
    d, w, j64 = run("nash_mtl", jacobian(family, k, dtype), max_norm=0.0)
    rows = check_zero_rows_ignored(w, j64)
    a = w[active(j64)]
    assert np.all(a >= 0) and np.all(np.isfinite(a))
    if common_descent_exists(rows):
        assert np.all(a > 0)
        # Each task's own residual, whatever its scale (a task 1e4 smaller was 0.74 off before).
        assert np.allclose(a * (rows @ (a @ rows)), 1.0, atol=1e-6)


def test_nash_mtl_bargains_for_a_task_1e4_smaller():
    """A ridge relative to the whole Gramian left the small task 0.74 off its condition a_i <g_i, d> = 1."""
    g = torch.Generator().manual_seed(2)
    jac = torch.randn(3, 20, generator=g, dtype=torch.float64)
    jac[2] *= 1e-4
    d = direction("nash_mtl", jac, max_norm=0.0)
    a = torch.linalg.lstsq(jac.T, d[:, None]).solution.squeeze(1)  # d = J^T a, rows independent
    assert torch.allclose(a * (jac @ d), torch.ones(3, dtype=torch.float64), atol=1e-6)


def test_nash_mtl_ridge_is_an_option_relative_to_each_task():
    jac = jacobian("conflicting", 3, torch.float64)
    d = direction("nash_mtl", jac, max_norm=0.0, ridge=1e-2)
    a = torch.linalg.lstsq(jac.T, d[:, None]).solution.squeeze(1)
    b = a * jac.norm(dim=1)  # the weights of the unit rows
    # The ridged condition on the unit rows: b_i (C b)_i + ridge b_i^2 = 1 for each task.
    assert torch.allclose(a * (jac @ d) + 1e-2 * b**2, torch.ones(3, dtype=torch.float64), atol=1e-8)
    assert not torch.allclose(a * (jac @ d), torch.ones(3, dtype=torch.float64), atol=1e-4)


def test_nash_mtl_max_norm_clips_the_update():
    jac = jacobian("random", 3, torch.float64) * 100
    d = direction("nash_mtl", jac, max_norm=1.0)
    assert d.norm() == pytest.approx(1.0, rel=1e-9)


# ----- UPGrad: Quinton & Rey 2024 ------------------------------------------------------------------


def project_onto_dual_cone(g: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Euclidean projection of g onto {x : rows @ x >= 0}, by Moreau's decomposition: x = g + J^T l with
    l = argmin_{l >= 0} |g + J^T l|. Its own optimality conditions are checked before it is used."""
    units = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    lam = nnls(units.T, -g, maxiter=1000)[0]
    x = g + units.T @ lam
    scale = np.linalg.norm(g)
    assert np.all(units @ x >= -1e-9 * scale)  # x in the cone
    assert abs(lam @ (units @ x)) <= 1e-9 * scale**2  # complementary slackness: x - g in the polar cone
    return x


@pytest.mark.parametrize("family,k,dtype", CASES, ids=IDS)
def test_upgrad_is_the_mean_projection_and_conflicts_with_no_task(family, k, dtype):
    d, w, j64 = run("upgrad", jacobian(family, k, dtype))
    rows = check_zero_rows_ignored(w, j64)
    dd = w[active(j64)] @ rows
    norms = np.linalg.norm(rows, axis=1)
    assert np.all(rows @ dd >= -1e-9 * norms * np.linalg.norm(dd))  # no task's cosine with d is negative
    expected = np.mean([project_onto_dual_cone(g, rows) for g in rows], axis=0)
    assert np.allclose(dd, expected, rtol=0, atol=1e-7 * np.linalg.norm(rows, axis=1).max())


def test_upgrad_does_not_conflict_with_a_small_task():
    """Norms [6810, 8.6, 7.2]: torchjd's ridge of 1e-4 on the trace-normalised Gramian gave cosines down to -0.58."""
    g = torch.Generator().manual_seed(1)
    jac = torch.randn(3, 50, generator=g, dtype=torch.float64)
    jac = jac / jac.norm(dim=1, keepdim=True) * torch.tensor([[6810.0], [8.6], [7.2]], dtype=torch.float64)
    jac[1] = jac[1] - 0.6 * 8.6 * jac[0] / jac[0].norm()
    d = direction("upgrad", jac.float())
    cosines = jac @ d / jac.norm(dim=1) / d.norm()
    assert torch.all(cosines >= -1e-6), cosines


def test_upgrad_reg_eps_is_a_ridge_relative_to_each_task():
    jac = jacobian("conflicting", 3, torch.float64)
    exact, ridged = direction("upgrad", jac), direction("upgrad", jac, reg_eps=1e-2)
    assert not torch.allclose(exact, ridged, atol=1e-6)  # the option reaches the solve
    assert torch.allclose(exact, ridged, atol=0.05 * exact.norm())


# ----- Aligned-MTL: Senushkin et al. 2023 ----------------------------------------------------------


@pytest.mark.parametrize("family,k,dtype", CASES, ids=IDS)
def test_aligned_mtl_is_the_mean_of_the_aligned_rows(family, k, dtype):
    d, w, j64 = run("aligned_mtl", jacobian(family, k, dtype))
    rows = check_zero_rows_ignored(w, j64)
    # J = U S V^T (rank r): the aligned rows sigma_min U_r V_r^T have condition number 1; d is their mean.
    u, s, vt = np.linalg.svd(rows, full_matrices=False)
    r = int((s > 1e-7 * s[0]).sum())
    aligned = s[r - 1] * u[:, :r] @ vt[:r]
    assert np.allclose(aligned @ aligned.T, s[r - 1] ** 2 * u[:, :r] @ u[:, :r].T, atol=1e-9 * s[0] ** 2)
    expected = aligned.mean(0)
    assert np.allclose(d.double().numpy(), expected, rtol=0, atol=1e-6 * np.linalg.norm(expected))


# ----- All of them ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(AGGREGATORS))
@pytest.mark.parametrize("scale", [0.0, 1e-4, 1e-8])
def test_a_near_zero_row_never_zeroes_the_update(method, scale):
    jac = jacobian("random", 3, torch.float32)
    jac[2] *= scale
    d = direction(method, jac, **({"max_norm": 0.0} if method == "nash_mtl" else {}))
    assert d.norm() > 0


def test_an_all_zero_jacobian_gives_a_zero_update():
    for method in AGGREGATORS:
        d = build(method, 3, **({"max_norm": 0.0} if method == "nash_mtl" else {}))(torch.zeros(3, 5))
        assert torch.equal(d, torch.zeros(5)), method


def test_blocked_float64_products_match_the_single_copy(monkeypatch):
    """A parameter-level Jacobian is converted to float64 block by block: same Gramian and update."""
    from taskgraph.train.weighting import gramian as gm

    jac = jacobian("conflicting", 3, torch.float32, n=50)
    whole = build("upgrad", 3)(jac)
    monkeypatch.setattr(gm, "_BLOCK", 12)  # 4 columns per block, no single copy
    assert gm.float64_copy(jac) is None
    g_blocked, g_whole = gm.gramian(jac), gm.gramian(jac, jac.double())
    assert torch.allclose(g_blocked, g_whole, rtol=1e-14, atol=0)
    assert torch.allclose(build("upgrad", 3)(jac), whole, rtol=1e-6, atol=0)


def test_a_nan_gradient_gives_a_nan_update_not_a_solver_error():
    jac = jacobian("random", 3, torch.float32)
    jac[1, 2] = float("nan")
    for method in AGGREGATORS:
        assert torch.isnan(direction(method, jac)).all(), method

"""Each aggregator's weights from the float64 Gramian ``G = J J^T``: ``w`` with update ``w @ J``.

The small problems are solved to the papers' definitions, not to a stopping tolerance:

* MGDA: the exact min-norm point of the convex hull, as Lawson & Hanson's least-distance program
  through non-negative least squares (an active-set method that ends on the KKT conditions; torchjd's
  Frank-Wolfe loop stops at a step of 1e-3, which left the KKT conditions 5 % off at k = 10).
* UPGrad: each projection onto the dual cone ``{x : J x >= 0}`` is the NNLS problem
  ``min |F^T y|, y >= u`` on the unit-row Gramian (no ridge needed; ``reg_eps`` adds one relative to
  each task). torchjd's default ridge of 1e-4 on the trace-normalised Gramian swamps a task 1e3
  times smaller than the others, and the update then conflicts with it (cosine -0.58 measured).
* IMTL-G: ``G v = |g|`` solved on the unit rows (``C y = 1``, ``v = y / |g|``) with a pseudo-inverse
  cut at 1e-14 of the largest eigenvalue; a normaliser ``sum(v)`` that cancels to rounding means the
  only equal projection is 0 (antiparallel gradients), and the update is 0, not a huge step.
* CAGrad: torchjd's dual (Clarabel) in float64 on the trace-normalised Gramian; where the worst-off
  combination ``g_w`` vanishes it returns the mean gradient (the ball's centre) instead of torchjd's 0.
* PCGrad and Aligned-MTL: torchjd's weightings, fed the float64 Gramian.

A task whose gradient is exactly zero (no label in the batch, a head that ignores the trunk) asks
for nothing and objects to nothing: ``on_nonzero`` solves without its row and gives it weight 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.optimize import nnls

from taskgraph.train.weighting.gramian import factor, unit_gramian

__all__ = ["on_nonzero", "mgda_weights", "upgrad_weights", "imtl_g_weights", "cagrad_weights",
           "pcgrad_weights", "aligned_mtl_weights", "IMTL_G_RCOND"]

Weigh = Callable[[np.ndarray], np.ndarray]

#: Eigenvalues of the cosine matrix below this fraction of the largest count as zero in IMTL-G.
IMTL_G_RCOND = 1e-14


def on_nonzero(weigh: Weigh, gram: np.ndarray) -> np.ndarray:
    """``weigh`` on the rows with a nonzero gradient; weight 0 for the others (all 0 if none)."""
    active = np.flatnonzero(np.diag(gram) > 0)
    out = np.zeros(len(gram))
    if len(active):
        out[active] = weigh(gram[np.ix_(active, active)])
    return out


def _nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return nnls(a, b, maxiter=50 * a.shape[1])[0]


def mgda_weights(gram: np.ndarray) -> np.ndarray:
    """Weights of the min-norm point of conv{g_i}: ``min |J^T w|`` over the simplex.

    Least-distance programming (Lawson & Hanson 1995, ch. 23): the smallest ``x`` with
    ``g_i . x >= 1`` for all i comes from ``u = NNLS([F^T; 1^T], e_last)``, is parallel to
    ``F^T u``, and the min-norm point is ``x / |x|^2``, i.e. the hull point with weights ``u / sum u``.
    """
    k = len(gram)
    f = factor(gram / np.trace(gram))
    target = np.zeros(k + 1)
    target[-1] = 1.0
    u = _nnls(np.vstack([f.T, np.ones((1, k))]), target)
    return u / u.sum()


def upgrad_weights(gram: np.ndarray, reg_eps: float = 0.0) -> np.ndarray:
    """Quinton & Rey 2024: the mean over i of the dual-cone projection of ``g_i``, as weights.

    Projecting ``J^T u`` onto ``{x : J x >= 0}`` is ``J^T v`` with ``v = argmin v^T G v, v >= u``
    (their Prop. 1). On the unit rows (``y = |g| * v``) that is ``min |F^T y|^2, y >= |g| * u`` with
    ``F F^T = C + reg_eps I``: an NNLS in ``y - |g| * u``.
    """
    k = len(gram)
    s, cos = unit_gramian(gram)
    a = factor(cos + reg_eps * np.eye(k)).T
    total = np.zeros(k)
    for i in range(k):
        low = np.zeros(k)
        low[i] = s[i] / k
        total += low + _nnls(a, -a @ low)
    return total / s


def imtl_g_weights(gram: np.ndarray) -> np.ndarray:
    """Liu et al. 2021 (torchjd's generalisation to dependent rows): ``w ∝ G^+ |g|``, ``sum w = 1``,
    so that every unit gradient has the same projection ``1 / sum(v)`` on the update."""
    s, cos = unit_gramian(gram)
    v = np.linalg.pinv(cos, rcond=IMTL_G_RCOND, hermitian=True) @ np.ones(len(gram)) / s
    total = v.sum()
    if not np.isfinite(total) or abs(total) <= 1e-12 * np.abs(v).sum():
        return np.zeros(len(gram))  # no nonzero direction projects equally (antiparallel gradients)
    return v / total


#: Clarabel's tolerances for CAGrad's dual: its defaults (1e-8) left the primal's worst-task value
#: 1.5e-4 short at k = 10; at these it is within 1e-6 (Clarabel may call the result "inaccurate").
_CLARABEL_TIGHT = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-10}


def cagrad_weights(gram: np.ndarray, c: float) -> np.ndarray:
    """Liu et al. 2021, Alg. 1: ``d = g0 + sqrt(phi) g_w / |g_w|``, ``sqrt(phi) = c |g0|``,
    ``w = argmin_{simplex} g_w . g0 + sqrt(phi) |g_w|`` (without the final ``1 / (1 + c^2)``)."""
    import cvxpy as cp

    k = len(gram)
    mean = np.full(k, 1.0 / k)
    f = factor(gram / np.trace(gram))
    g0 = f.T @ mean
    root_phi = c * float(np.linalg.norm(g0))
    if root_phi == 0.0:
        return mean
    w = cp.Variable(k)
    cost = (f @ g0) @ w + root_phi * cp.norm(f.T @ w, 2)
    try:
        cp.Problem(cp.Minimize(cost), [w >= 0, cp.sum(w) == 1]).solve(cp.CLARABEL, **_CLARABEL_TIGHT)
    except cp.SolverError:
        return mean
    if w.value is None:
        return mean
    weights = np.clip(np.asarray(w.value, dtype=np.float64), 0.0, None)
    weights /= weights.sum()
    norm = float(np.linalg.norm(f.T @ weights))
    if norm <= 1e-10:  # the worst-off combination is stationary: every d in the ball ties; take the centre
        return mean
    return mean + root_phi / norm * weights


def pcgrad_weights(gram: np.ndarray) -> np.ndarray:
    """Yu et al. 2020 (torchjd's weighting: a random order per task, projections when conflicting)."""
    import torchjd.aggregation as jd

    return jd.PCGradWeighting()(torch.from_numpy(gram)).numpy()


def aligned_mtl_weights(gram: np.ndarray) -> np.ndarray:
    """Senushkin et al. 2023 (torchjd's weighting: the mean of the rows aligned to condition number 1)."""
    import torchjd.aggregation as jd

    return jd.AlignedMTLWeighting()(torch.from_numpy(gram)).numpy()

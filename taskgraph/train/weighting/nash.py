"""Nash-MTL's weights (Navon et al. 2022) by Newton's method instead of a convex solver per step.

The Nash bargaining update is ``d = J^T a`` with ``a > 0`` solving ``G a = 1 / a`` (``G = J J^T``,
elementwise inverse): every task's directional derivative ``<g_i, d>`` is ``1 / a_i``. The answer
does not depend on each task's scale (scaling ``g_i`` by ``t`` scales ``a_i`` by ``1 / t``), so it
is solved on the unit rows: ``C b = 1 / b`` with ``C`` the cosines and ``a = b / |g|``. That ``b``
is the unique minimiser of the strictly convex ``F(b) = b^T C b / 2 - sum_i log b_i``; Newton's
method with a line search that keeps ``b > 0`` solves the k x k problem to 1e-10 in a few dozen
microseconds. The paper's code (and torchjd, which adapts it) reaches it by up to 20 cvxpy/ECOS
solves of a linearised problem per step (``solver: cvxpy``, 60-90 ms at k = 10, kept to reproduce
the official code). That loop stops after ``optim_niter`` solves, once ``|G a - 1/a| < 1e-3``, or
when ``a`` stops moving, and it does not reach ``G a = 1/a`` in general: with tasks 1e3 apart in
scale its residuals ``a_i (G a)_i - 1`` were 12-450, and on the cosines of a conflicting 6-task
Jacobian (where it agrees with Newton on the raw Gramian) up to 1.0.

``ridge`` is added to ``C``, i.e. relative to each task's own squared norm: it keeps ``F`` bounded
below where no exact solution exists (a zero in the convex hull of the gradients, antiparallel
tasks) and moves each task's ``a_i <g_i, d>`` from 1 by ``ridge * b_i^2``. An earlier ridge
relative to the whole Gramian left a task 1e4 times smaller 0.74 off its bargaining condition.
"""

from __future__ import annotations

import numpy as np

from taskgraph.train.weighting.gramian import factor, unit_gramian
from taskgraph.train.weighting.solvers import on_nonzero

__all__ = ["bargaining_weights", "NashMTL", "RIDGE"]

#: Default ridge on the unit-diagonal Gramian (spec option ``ridge``).
RIDGE = 1e-8


def _newton(c: np.ndarray, b: np.ndarray, tol: float, max_iter: int) -> np.ndarray:
    def objective(x: np.ndarray) -> float:
        return 0.5 * x @ c @ x - np.log(x).sum()

    f = objective(b)
    for _ in range(max_iter):
        grad = c @ b - 1.0 / b
        if np.linalg.norm(grad * b) < tol:  # relative: each task's b_i (C b)_i - 1
            break
        step = np.linalg.solve(c + np.diag(1.0 / b**2), grad)
        t = 1.0
        while np.any(b - t * step <= 0):  # stay inside b > 0
            t *= 0.5
        decrease = grad @ step  # > 0: the Hessian is positive definite
        while True:
            trial = b - t * step
            f_trial = objective(trial)
            if f_trial <= f - 0.25 * t * decrease or t < 1e-12:
                break
            t *= 0.5
        b, f = trial, f_trial
    return b


def bargaining_weights(gram: np.ndarray, start: np.ndarray | None = None, tol: float = 1e-10,
                       max_iter: int = 100, ridge: float = RIDGE) -> np.ndarray:
    """The ``a > 0`` with ``gram @ a = 1 / a`` (float64, nonzero rows), warm-started from ``start``."""
    s, cos = unit_gramian(gram)
    c = cos + ridge * np.eye(len(gram))
    b = np.asarray(start, dtype=np.float64) * s if start is not None and len(start) == len(s) else np.ones(len(s))
    if not (np.all(np.isfinite(b)) and np.all(b > 0)):
        b = np.ones(len(s))
    return _newton(c, b, tol, max_iter) / s


class NashMTL:
    """Gramian weighting ``G -> a`` with torchjd's conventions: ``a`` is recomputed every
    ``update_weights_every`` calls (reused in between), and scaled down so the update ``J^T a``
    has norm ``max_norm`` when longer (0: no clipping). Tasks with a zero gradient get weight 0."""

    def __init__(self, max_norm: float = 1.0, update_weights_every: int = 1, solver: str = "newton",
                 ridge: float = RIDGE, optim_niter: int = 20):
        self.max_norm, self.every, self.solver, self.ridge, self.optim_niter = (
            max_norm, update_weights_every, solver, ridge, optim_niter)
        self.calls = 0
        self.alpha: np.ndarray | None = None
        self._cvxpy: dict[int, object] = {}  # torchjd's solver per number of tasks (it keeps a warm start)

    def _solve(self, gram: np.ndarray) -> np.ndarray:
        if self.solver == "newton":
            return bargaining_weights(gram, ridge=self.ridge)
        import torch
        import torchjd.aggregation as jd

        k = len(gram)
        if k not in self._cvxpy:
            self._cvxpy[k] = jd.NashMTL(n_tasks=k, max_norm=0.0, update_weights_every=1, optim_niter=self.optim_niter)
        rows = torch.from_numpy(factor(gram))  # k x k, with the Jacobian's Gramian: the official code's problem
        return self._cvxpy[k].weighting(rows).numpy().astype(np.float64)

    def weights(self, gram: np.ndarray) -> np.ndarray:
        if self.alpha is None or len(self.alpha) != len(gram) or self.calls % self.every == 0:
            self.alpha = on_nonzero(self._solve, gram)
        self.calls += 1
        alpha = self.alpha
        if self.max_norm > 0:
            norm = float(np.sqrt(max(alpha @ gram @ alpha, 0.0)))
            if norm > self.max_norm:
                alpha = alpha / norm * self.max_norm
        return alpha

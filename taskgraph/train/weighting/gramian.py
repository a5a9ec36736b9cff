"""The float64 side of the gradient aggregators: Gramian, the rows' scales, combining rows.

Every aggregator here is a *Gramian weighting*: from ``G = J J^T`` (k x k) it finds weights ``w``
and the update is ``w @ J``. Both ends run in float64 whatever the node's dtype: a float32
Gramian of nearly antiparallel or badly scaled gradients loses the small eigenvalues the solves
depend on (IMTL-G in float32 returned projections of +-131 where float64 gives 1e-7), and weights
with large opposite entries cancel in ``w @ J``. A parameter-level Jacobian is converted in column
blocks, so its float64 copy never exists whole; the result goes back to ``J``'s dtype.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

__all__ = ["float64_copy", "gramian", "combine", "factor", "unit_gramian"]

#: Numbers of the Jacobian per float64 block (32 MB). A Jacobian this small is copied to float64
#: once for both the Gramian and the update; a larger one (the parameter level) block by block, twice.
_BLOCK = 1 << 22


def float64_copy(jac: torch.Tensor) -> torch.Tensor | None:
    """``J`` in float64 when it fits one block (pass it to ``gramian`` and ``combine``), else None."""
    return jac.detach().double() if jac.numel() <= _BLOCK else None


def _parts(jac: torch.Tensor, copy: torch.Tensor | None) -> Iterator[torch.Tensor]:
    if copy is not None:
        yield copy
        return
    width = max(1, _BLOCK // max(1, len(jac)))
    for part in jac.detach().split(width, dim=1) if jac.shape[1] else [jac.detach()]:
        yield part.double()


def _gram(part: torch.Tensor) -> torch.Tensor:
    if part.device.type == "cpu":  # numpy's dgemm: 3-4x faster than torch's for k x n x k (measured)
        a = part.numpy()
        return torch.from_numpy(a @ a.T)
    return part @ part.T


def gramian(jac: torch.Tensor, copy: torch.Tensor | None = None) -> torch.Tensor:
    """``J J^T`` in float64 on ``J``'s device (exactly symmetric)."""
    out = sum(_gram(part) for part in _parts(jac, copy))
    return (out + out.T) / 2


def combine(weights: torch.Tensor, jac: torch.Tensor, copy: torch.Tensor | None = None) -> torch.Tensor:
    """``weights @ J`` accumulated in float64, returned in ``J``'s dtype."""
    w = weights.to(device=jac.device, dtype=torch.float64)
    return torch.cat([w @ part for part in _parts(jac, copy)]).to(jac.dtype)


def factor(gram: np.ndarray) -> np.ndarray:
    """A ``k x k`` matrix ``F`` with ``F F^T = gram``: row i stands for task i's gradient in a
    k-dimensional space with the same inner products (rounding's negative eigenvalues set to 0)."""
    lam, vec = np.linalg.eigh(gram)
    return vec * np.sqrt(np.clip(lam, 0.0, None))


def unit_gramian(gram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows' norms ``s`` and the Gramian of the unit rows, ``G_ij / (s_i s_j)`` (cosines).

    Methods whose answer does not depend on each task's scale (UPGrad's cone, IMTL-G, Nash-MTL)
    solve on the cosines, so a task 1e4 times smaller than the others is resolved as well as they
    are and a ridge added there is relative to each task. Rows must be nonzero.
    """
    s = np.sqrt(np.diag(gram))
    cos = gram / np.outer(s, s)
    np.fill_diagonal(cos, 1.0)
    return s, cos

"""A constructed affinity case with a known answer: tasks a and b are related, c is not.

``x`` has two independent halves. ``a`` and ``b`` are two noisy views of one direction in the
first half; ``c`` depends on the second half only. A step on ``a`` must help ``b`` (and back);
steps on ``c`` must do little for either.
"""

from __future__ import annotations

import torch


def load(n: int = 2000, dim: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2 * dim, generator=g)
    w = torch.randn(dim, generator=g)
    v = torch.randn(dim, generator=g)
    signal = x[:, :dim] @ w
    return {
        "x": x,
        "a": (signal + 0.3 * torch.randn(n, generator=g) > 0).float(),
        "b": (signal + 0.3 * torch.randn(n, generator=g) > 0).float(),
        "c": (x[:, dim:] @ v > 0).float(),
    }

"""A data source with missing labels: integer labels -100 and float labels NaN (``loader:
"tests.train.masked_data:load"``). ``y`` is a binary label (int), ``r`` a regression target (float);
only the first ``labelled`` of every ``period`` examples have labels, so small batches often
have none for a task, or none at all."""

from __future__ import annotations

import torch


def load(n: int = 64, dim: int = 6, period: int = 8, labelled: int = 2, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    y = (x[:, 0] > 0).long()
    r = x[:, 1] - x[:, 2]
    missing = torch.arange(n) % period >= labelled
    y[missing], r[missing] = -100, float("nan")
    half = n // 2
    return {"train": {"x": x[:half], "y": y[:half], "r": r[:half]},
            "val": {"x": x[half:], "y": y[half:], "r": r[half:]}}

"""A user metric as a graph names it: ``metrics: ["tests.usermetrics:error_rate"]``."""

from __future__ import annotations

import torch


def error_rate(output: torch.Tensor, target: torch.Tensor) -> float:
    """Share of wrong argmax answers (1 - accuracy), labels -100 left out."""
    keep = target != -100
    return float((output.argmax(dim=-1)[keep] != target[keep]).float().mean())

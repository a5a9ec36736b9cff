"""Evaluation metrics a task may list (``metrics: [accuracy]``), computed on whole splits."""

from __future__ import annotations

from collections.abc import Callable

import torch

from taskgraph.train.registry import Registry

__all__ = ["METRIC_FNS", "compute_metric", "predictions"]

MetricFn = Callable[[torch.Tensor, torch.Tensor], float]
METRIC_FNS: Registry[MetricFn] = Registry("metric")


def predictions(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Class predictions: argmax over classes, or logit > 0 for a one-output (binary) head."""
    if output.dim() == target.dim() + 1 and output.shape[-1] == 1:
        output = output.squeeze(-1)
    if output.dim() == target.dim():
        return (output > 0).long()
    return output.argmax(dim=-1)


@METRIC_FNS.register("accuracy")
def accuracy(output: torch.Tensor, target: torch.Tensor) -> float:
    return (predictions(output, target) == target.long()).float().mean().item()


@METRIC_FNS.register("macro_f1")
def macro_f1(output: torch.Tensor, target: torch.Tensor) -> float:
    pred, true = predictions(output, target).flatten(), target.long().flatten()
    scores = []
    for cls in torch.unique(torch.cat([pred, true])):
        tp = ((pred == cls) & (true == cls)).sum().item()
        fp = ((pred == cls) & (true != cls)).sum().item()
        fn = ((pred != cls) & (true == cls)).sum().item()
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(sum(scores) / max(len(scores), 1))


def _regression(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if output.dim() == target.dim() + 1 and output.shape[-1] == 1:
        output = output.squeeze(-1)
    return output - target.to(output.dtype)


@METRIC_FNS.register("mse")
def mse(output: torch.Tensor, target: torch.Tensor) -> float:
    return _regression(output, target).pow(2).mean().item()


@METRIC_FNS.register("mae")
def mae(output: torch.Tensor, target: torch.Tensor) -> float:
    return _regression(output, target).abs().mean().item()


def compute_metric(name: str, output: torch.Tensor, target: torch.Tensor) -> float:
    return float(METRIC_FNS.get(name)(output, target))

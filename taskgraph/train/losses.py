"""Torch implementations of the loss types a graph file names (``loss: {type: cross_entropy}``).

Every loss takes ``(output, target, config)`` and returns a scalar; shapes are normalised here
(one-output binary heads are squeezed) so a graph file never has to reshape anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from taskgraph.spec.losses import BinaryCrossEntropyLoss, CrossEntropyLoss, HuberLoss
from taskgraph.train.registry import Registry

__all__ = ["LOSSES", "compute_loss"]

LossFn = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
LOSSES: Registry[LossFn] = Registry("loss")


def _match(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A head with one output predicts a scalar per example: drop its last axis to match the target."""
    if output.dim() == target.dim() + 1 and output.shape[-1] == 1:
        return output.squeeze(-1)
    return output


@LOSSES.register("cross_entropy")
def _cross_entropy(output: torch.Tensor, target: torch.Tensor, config: CrossEntropyLoss) -> torch.Tensor:
    if output.dim() > 2:  # (batch, time, classes) -> classes on axis 1, as torch expects
        output = output.transpose(1, -1)
    return F.cross_entropy(
        output, target.long(), label_smoothing=config.label_smoothing, ignore_index=config.ignore_index
    )


@LOSSES.register("binary_cross_entropy")
def _bce(output: torch.Tensor, target: torch.Tensor, config: BinaryCrossEntropyLoss) -> torch.Tensor:
    output = _match(output, target)
    pos_weight = None
    if config.pos_weight is not None:
        pos_weight = torch.tensor(config.pos_weight, device=output.device, dtype=output.dtype)
    return F.binary_cross_entropy_with_logits(output, target.to(output.dtype), pos_weight=pos_weight)


@LOSSES.register("mse")
def _mse(output: torch.Tensor, target: torch.Tensor, config: Any) -> torch.Tensor:
    return F.mse_loss(_match(output, target), target.to(output.dtype))


@LOSSES.register("l1")
def _l1(output: torch.Tensor, target: torch.Tensor, config: Any) -> torch.Tensor:
    return F.l1_loss(_match(output, target), target.to(output.dtype))


@LOSSES.register("huber")
def _huber(output: torch.Tensor, target: torch.Tensor, config: HuberLoss) -> torch.Tensor:
    return F.huber_loss(_match(output, target), target.to(output.dtype), delta=config.delta)


def compute_loss(output: torch.Tensor, target: torch.Tensor, config: Any) -> torch.Tensor:
    """The configured loss; user losses get their extra YAML keys as keyword arguments."""
    fn = LOSSES.get(config.type)
    if config.type in LOSSES:
        return fn(output, target, config)
    return fn(output, target, **(config.model_extra or {}))

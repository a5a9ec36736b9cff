"""Torch implementations of the loss types a graph file names (``loss: {type: cross_entropy}``).

Every loss takes ``(output, target, config)`` and returns a scalar; shapes are normalised here
(one-output binary heads are squeezed) so a graph file never has to reshape anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from taskgraph.errors import TrainError
from taskgraph.spec.losses import (
    AdversarialLoss,
    BinaryCrossEntropyLoss,
    CrossEntropyLoss,
    CTCLoss,
    HuberLoss,
    InfoNCELoss,
)
from taskgraph.train.metrics import match_target
from taskgraph.train.registry import Registry

__all__ = ["LOSSES", "compute_loss", "loss_function"]

LossFn = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
LOSSES: Registry[LossFn] = Registry("loss")


@LOSSES.register("cross_entropy")
def _cross_entropy(output: torch.Tensor, target: torch.Tensor, config: CrossEntropyLoss) -> torch.Tensor:
    if output.dim() > 2:  # (batch, time, classes) -> classes on axis 1, as torch expects
        output = output.transpose(1, -1)
    return F.cross_entropy(
        output, target.long(), label_smoothing=config.label_smoothing, ignore_index=config.ignore_index
    )


@LOSSES.register("binary_cross_entropy")
def _bce(output: torch.Tensor, target: torch.Tensor, config: BinaryCrossEntropyLoss) -> torch.Tensor:
    output = match_target(output, target)
    pos_weight = None
    if config.pos_weight is not None:
        pos_weight = torch.tensor(config.pos_weight, device=output.device, dtype=output.dtype)
    return F.binary_cross_entropy_with_logits(output, target.to(output.dtype), pos_weight=pos_weight)


@LOSSES.register("mse")
def _mse(output: torch.Tensor, target: torch.Tensor, config: Any) -> torch.Tensor:
    return F.mse_loss(match_target(output, target), target.to(output.dtype))


@LOSSES.register("l1")
def _l1(output: torch.Tensor, target: torch.Tensor, config: Any) -> torch.Tensor:
    return F.l1_loss(match_target(output, target), target.to(output.dtype))


@LOSSES.register("huber")
def _huber(output: torch.Tensor, target: torch.Tensor, config: HuberLoss) -> torch.Tensor:
    return F.huber_loss(match_target(output, target), target.to(output.dtype), delta=config.delta)


@LOSSES.register("ctc")
def _ctc(output: torch.Tensor, target: torch.Tensor, config: CTCLoss) -> torch.Tensor:
    """Frame logits ``(batch, time, classes)``; every frame is valid, label lengths come from ``pad``."""
    log_probs = F.log_softmax(output.float(), dim=-1).transpose(0, 1)  # (time, batch, classes)
    target = target.long()
    target_lengths = (target != config.pad).sum(dim=1)
    input_lengths = torch.full((output.shape[0],), output.shape[1], dtype=torch.long, device=output.device)
    labels = target.clamp(min=0)  # padded positions are beyond each target length: never read
    return F.ctc_loss(log_probs, labels, input_lengths, target_lengths, blank=config.blank,
                      reduction="mean", zero_infinity=config.zero_infinity)


@LOSSES.register("adversarial")
def _adversarial(output: torch.Tensor, target: torch.Tensor, config: AdversarialLoss) -> torch.Tensor:
    """Cross-entropy of the discriminator; the gradient reversal sits before it (a joint node's adversarial
    head gets one on its input; in a single-task node, put a ``gradient_reversal`` module before it)."""
    if output.dim() > 2:
        output = output.transpose(1, -1)
    return F.cross_entropy(output, target.long(), ignore_index=config.ignore_index)


def _pool(x: torch.Tensor) -> torch.Tensor:
    """One vector per example: mean over every axis between batch and features (e.g. time)."""
    return x.flatten(1, -2).mean(dim=1) if x.dim() > 2 else x


@LOSSES.register("infonce")
def _infonce(output: torch.Tensor, target: torch.Tensor, config: InfoNCELoss) -> torch.Tensor:
    """InfoNCE (van den Oord 2018): -log softmax of the matching pair among the batch, cosine scores."""
    a, b = _pool(output), _pool(target.to(output.dtype))
    if a.shape[-1] != b.shape[-1]:
        raise TrainError(
            f"infonce: the head gives {a.shape[-1]} features but '{config.target}' has {b.shape[-1]}. "
            f"Give the head `out: {b.shape[-1]}`."
        )
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / config.temperature
    labels = torch.arange(len(a), device=a.device)
    loss = F.cross_entropy(logits, labels)
    if config.symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.T, labels))
    return loss


def loss_function(config: Any) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The configured loss as ``fn(output, target)``, looked up once (not on every step).

    User losses (``pkg.module:fn``) get their extra YAML keys as keyword arguments.
    """
    fn = LOSSES.get(config.type)
    if config.type in LOSSES:
        return lambda output, target: fn(output, target, config)
    extra = dict(config.model_extra or {})
    return lambda output, target: fn(output, target, **extra)


def compute_loss(output: torch.Tensor, target: torch.Tensor, config: Any) -> torch.Tensor:
    """The configured loss, looked up now (use ``loss_function`` inside loops)."""
    return loss_function(config)(output, target)

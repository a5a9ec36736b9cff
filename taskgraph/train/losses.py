"""Torch implementations of the loss types a graph file names (``loss: {type: cross_entropy}``).

Every loss takes ``(output, target, config)`` and returns a scalar; shapes are normalised here
(one-output binary heads are squeezed) so a graph file never has to reshape anything.

Missing labels follow one rule for every built-in loss, applied here once for single-task and
joint nodes alike (``loss_function``): an integer label equal to the ignore index (the loss's
``ignore_index``, else -100) or a NaN float label is missing, and the loss is the loss over the
labelled entries only. A batch without any labelled entry has no loss (``None``): the caller
leaves it out of the update instead of inventing a zero.
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
    CRFLoss,
    CTCLoss,
    HuberLoss,
    InfoNCELoss,
)
from taskgraph.train.crf import crf_nll, lengths_of
from taskgraph.train.metrics import IGNORE, match_target
from taskgraph.train.registry import Registry

__all__ = ["LOSSES", "compute_loss", "loss_function", "labelled", "select_labelled"]

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


@LOSSES.register("crf")
def _crf(output: torch.Tensor, target: torch.Tensor, config: CRFLoss) -> torch.Tensor:
    """Negative log-likelihood of the gold paths per labelled token (the scale of cross_entropy)."""
    if output.dim() != target.dim() + 2 or output.shape[-1] != output.shape[-2]:
        raise TrainError(
            f"crf loss on '{config.target}': expects a crf head's (batch, time, tags, tags) output, got "
            f"{tuple(output.shape)}. Make the head `{{type: crf, out: TAGS}}`."
        )
    lengths = lengths_of(target, config.ignore_index)
    return crf_nll(output, target, lengths).sum() / lengths.sum().clamp(min=1)


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


#: How each built-in loss's labels line up with its output, for masking: one label per output
#: element (``element``), one class index per output row with the classes on the last axis
#: (``class``), one target vector per example (``example``: the example is labelled when its
#: whole vector is). ``ctc`` is absent: its -100 pads label sequences of different lengths (the
#: loss reads the lengths from it), and an all-padding row is an empty transcription, a label.
ALIGNMENT = {"cross_entropy": "class", "adversarial": "class", "binary_cross_entropy": "element",
             "mse": "element", "l1": "element", "huber": "element", "infonce": "example", "crf": "sentence"}


def labelled(target: torch.Tensor, config: Any) -> torch.Tensor:
    """Where a label exists: integer labels != the ignore index (-100 unless the loss sets
    ``ignore_index``), float labels not NaN."""
    if target.is_floating_point():
        return ~torch.isnan(target)
    return target != getattr(config, "ignore_index", IGNORE)


def select_labelled(
    output: torch.Tensor, target: torch.Tensor, config: Any
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The output and target entries that have a label (``ALIGNMENT`` says how they line up);
    ``None`` when no entry has. Inputs come back unchanged when every entry is labelled."""
    kind = ALIGNMENT.get(config.type)
    if kind is None:  # ctc; user losses get the whole batch and handle missing labels themselves
        return output, target
    keep = labelled(target, config)
    if kind == "element":
        output = match_target(output, target)
        if output.shape != target.shape:
            out = 1 if output.dim() == target.dim() + 1 else target.shape[-1]
            raise TrainError(
                f"{config.type}: the head gives shape {tuple(output.shape)} but '{config.target}' has shape "
                f"{tuple(target.shape)}. Give the head `out: {out}`."
            )
    elif kind == "class" and output.shape[:-1] != target.shape:
        raise TrainError(
            f"{config.type}: the head gives shape {tuple(output.shape)}; '{config.target}' of shape "
            f"{tuple(target.shape)} needs {tuple(target.shape)} + (classes,)."
        )
    elif kind == "example":
        keep = keep.reshape(len(target), -1).all(dim=1)
    elif kind == "sentence":  # crf: the loss masks the padding after each sentence itself
        return (output, target) if bool(keep.any()) else None
    count = int(keep.sum())  # one host sync: whether to mask, and whether anything is left
    if count == keep.numel():
        return output, target
    if count == 0:
        return None
    return output[keep], target[keep]


def loss_function(config: Any) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor | None]:
    """The configured loss as ``fn(output, target)`` over the labelled entries (``select_labelled``),
    ``None`` for a batch without any; looked up once (not on every step).

    User losses (``pkg.module:fn``) get their extra YAML keys as keyword arguments.
    """
    fn = LOSSES.get(config.type)
    if config.type in LOSSES:

        def masked(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
            kept = select_labelled(output, target, config)
            return None if kept is None else fn(kept[0], kept[1], config)

        return masked
    extra = dict(config.model_extra or {})
    return lambda output, target: fn(output, target, **extra)


def compute_loss(output: torch.Tensor, target: torch.Tensor, config: Any) -> torch.Tensor | None:
    """The configured loss, looked up now (use ``loss_function`` inside loops); ``None`` when no
    entry of ``target`` has a label."""
    return loss_function(config)(output, target)

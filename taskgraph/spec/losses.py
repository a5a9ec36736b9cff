"""Loss configs (``loss: {type: cross_entropy, target: label}``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from taskgraph.spec.base import CUSTOM_PATTERN, Frozen, Open


class _LossBase(Frozen):
    target: str = Field(description="Name of the label field in the data this loss compares against.")
    weight: float = Field(1.0, ge=0.0, description="Static weight of this loss in its node.")


class CrossEntropyLoss(_LossBase):
    """Softmax cross-entropy over class logits (label smoothing, ignored label index)."""

    type: Literal["cross_entropy"]
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    ignore_index: int = -100


class BinaryCrossEntropyLoss(_LossBase):
    """Sigmoid binary cross-entropy on logits; one output, or one per label for multi-label."""

    type: Literal["binary_cross_entropy"]
    pos_weight: float | None = Field(None, gt=0.0)


class MSELoss(_LossBase):
    """Mean squared error for regression targets."""

    type: Literal["mse"]


class L1Loss(_LossBase):
    """Mean absolute error for regression targets."""

    type: Literal["l1"]


class HuberLoss(_LossBase):
    """Huber loss: quadratic near zero, linear beyond ``delta``; robust regression."""

    type: Literal["huber"]
    delta: float = Field(1.0, gt=0.0)


class CustomLoss(Open):
    """User code: ``type: "mypkg.losses:focal"`` called as ``fn(output, target, **kwargs)``."""

    type: str = Field(pattern=CUSTOM_PATTERN)
    target: str
    weight: float = Field(1.0, ge=0.0)


class CTCLoss(_LossBase):
    """Connectionist temporal classification: frame logits ``(batch, time, classes)`` against
    unaligned label sequences ``(batch, labels)`` padded with ``pad``; class ``blank`` is the blank."""

    type: Literal["ctc"]
    blank: int = Field(0, ge=0)
    pad: int = -100
    zero_infinity: bool = True


class AdversarialLoss(_LossBase):
    """A discriminator head behind a gradient-reversal layer: the head learns to tell the domain
    (or task) ``target`` apart while the trunk, receiving ``-scale`` times its gradient, learns to hide it."""

    type: Literal["adversarial"]
    scale: float = Field(1.0, ge=0.0, description="Strength of the reversed gradient reaching the trunk.")
    ignore_index: int = -100


class InfoNCELoss(_LossBase):
    """InfoNCE / Deep InfoMax-style mutual-information bound between this head's output and
    ``target``, another representation (a module or head name of the node, or a data field).
    Matching examples of a batch are positives, the other examples negatives."""

    type: Literal["infonce"]
    temperature: float = Field(0.1, gt=0.0)
    symmetric: bool = True


class CRFLoss(_LossBase):
    """Negative log-likelihood of the gold tag path under a ``crf`` head, per labelled token.

    Labels equal to ``ignore_index`` must be the padding after each sentence (masked by length).
    """

    type: Literal["crf"]
    ignore_index: int = -100

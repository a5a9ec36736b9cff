"""Configs of the named building blocks a graph file may use: modules, losses, data loaders, metrics.

Each family is a discriminated union on its ``type`` (or ``loader``) key, so a user gets errors
for the variant they chose only. The implementations live in ``taskgraph.train`` registries,
keyed by the same names; a test checks both sides list the same names. Nothing here imports
torch: shapes are computed from the configs so ``validate`` can refuse a mismatch instantly.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag

from taskgraph.spec.base import CUSTOM_PATTERN, Frozen, Open, is_custom_ref

__all__ = [
    "ModuleConfig",
    "LossConfig",
    "DataConfig",
    "MLPModule",
    "LinearModule",
    "CustomModule",
    "METRICS",
    "names_of",
]

Shape = tuple[int, ...]


# --------------------------------------------------------------------------- modules


class _ModuleBase(Frozen):
    in_features: int | None = Field(
        None, alias="in", gt=0, description="Input width; inferred from the previous module when omitted."
    )

    def output_dim(self, in_dim: int | None) -> int | None:
        raise NotImplementedError

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        """Parameter name -> shape, as the torch implementation names them; None when unknown."""
        raise NotImplementedError

    def resolved_in(self, in_dim: int | None) -> int | None:
        return self.in_features if self.in_features is not None else in_dim


class MLPModule(_ModuleBase):
    """A stack of Linear + activation layers: the default trunk of tabular and frame-level tasks."""

    type: Literal["mlp"]
    hidden: tuple[Annotated[int, Field(gt=0)], ...] = Field(min_length=1)
    out: int | None = Field(None, gt=0, description="Optional final linear layer without activation.")
    activation: Literal["relu", "gelu", "tanh"] = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)

    def _widths(self) -> tuple[int, ...]:
        return self.hidden + ((self.out,) if self.out else ())

    def output_dim(self, in_dim: int | None) -> int | None:
        return self._widths()[-1]

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        width = self.resolved_in(in_dim)
        if width is None:
            return None
        shapes: dict[str, Shape] = {}
        for i, out in enumerate(self._widths()):
            shapes[f"layers.{i}.weight"] = (out, width)
            shapes[f"layers.{i}.bias"] = (out,)
            width = out
        return shapes


class LinearModule(_ModuleBase):
    """One affine layer: the usual task head."""

    type: Literal["linear"]
    out: int = Field(gt=0)
    bias: bool = True

    def output_dim(self, in_dim: int | None) -> int | None:
        return self.out

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        width = self.resolved_in(in_dim)
        if width is None:
            return None
        shapes: dict[str, Shape] = {"weight": (self.out, width)}
        if self.bias:
            shapes["bias"] = (self.out,)
        return shapes


class CustomModule(Open):
    """User code: ``type: "mypkg.models:Encoder"``; the other keys are its constructor's arguments."""

    type: str = Field(pattern=CUSTOM_PATTERN)
    in_features: int | None = Field(None, alias="in", gt=0)
    out: int | None = Field(None, gt=0, description="Declared output width, for shape inference.")

    def output_dim(self, in_dim: int | None) -> int | None:
        return self.out

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        return None  # only known once built; checked before training starts

    def resolved_in(self, in_dim: int | None) -> int | None:
        return self.in_features if self.in_features is not None else in_dim


def _tag(key: str) -> Any:
    """Callable discriminator: registry names select their variant, ``pkg.mod:name`` selects custom."""

    def pick(value: Any) -> str | None:
        raw = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
        if raw is None:
            return None
        return "custom" if is_custom_ref(raw) else raw

    return pick


ModuleConfig = Annotated[
    Union[
        Annotated[MLPModule, Tag("mlp")],
        Annotated[LinearModule, Tag("linear")],
        Annotated[CustomModule, Tag("custom")],
    ],
    Discriminator(_tag("type")),
]


# --------------------------------------------------------------------------- losses


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


LossConfig = Annotated[
    Union[
        Annotated[CrossEntropyLoss, Tag("cross_entropy")],
        Annotated[BinaryCrossEntropyLoss, Tag("binary_cross_entropy")],
        Annotated[MSELoss, Tag("mse")],
        Annotated[L1Loss, Tag("l1")],
        Annotated[HuberLoss, Tag("huber")],
        Annotated[CustomLoss, Tag("custom")],
    ],
    Discriminator(_tag("type")),
]


# --------------------------------------------------------------------------- data


class _DataBase(Frozen):
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="Share of examples held out for validation.")

    @property
    def feature_dim(self) -> int | None:
        """Width of the input features when known from the config alone (for shape checks)."""
        return None


class SyntheticShapesData(_DataBase):
    """Offline synthetic classification data: clusters on a curved low-dimensional manifold.

    Fields: ``x`` (float, ``dim`` wide), ``label`` (``classes`` classes), ``parity`` (label % 2,
    float 0/1), ``coarse`` (label < classes/2). Hard enough that a learned encoder transfers.
    """

    loader: Literal["synthetic_shapes"]
    n: int = Field(4000, ge=10)
    dim: int = Field(64, ge=2)
    classes: int = Field(10, ge=2)
    latent: int = Field(8, ge=2)
    noise: float = Field(0.7, ge=0.0)
    seed: int = 0

    @property
    def feature_dim(self) -> int | None:
        return self.dim


class CustomData(Open):
    """User code: ``loader: "mypkg.data:load"`` called as ``fn(**kwargs)``, returning the splits."""

    loader: str = Field(pattern=CUSTOM_PATTERN)
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)

    @property
    def feature_dim(self) -> int | None:
        return None


DataConfig = Annotated[
    Union[
        Annotated[SyntheticShapesData, Tag("synthetic_shapes")],
        Annotated[CustomData, Tag("custom")],
    ],
    Discriminator(_tag("loader")),
]


# --------------------------------------------------------------------------- metrics

#: Metric names a task may list, with what they measure (implemented in ``taskgraph.train.metrics``).
METRICS: dict[str, str] = {
    "accuracy": "share of correct predictions (argmax, or logit > 0 for one output)",
    "macro_f1": "unweighted mean of per-class F1 scores",
    "mse": "mean squared error",
    "mae": "mean absolute error",
    "loss": "the task's own loss on the validation split",
}


def names_of(union: Any, key: str) -> dict[str, str]:
    """Registry names of a discriminated union -> first line of the variant's docstring."""
    out: dict[str, str] = {}
    for member in union.__origin__.__args__:  # Annotated[Union[...], Discriminator]
        model = member.__origin__
        tag = member.__metadata__[0].tag
        if tag == "custom":
            continue
        doc = (model.__doc__ or "").strip().splitlines()
        out[tag] = doc[0] if doc else ""
    return dict(sorted(out.items()))

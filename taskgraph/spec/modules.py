"""Module configs (``modules: {encoder: {type: mlp, ...}}``), with their parameter shapes.

Shapes are computed from the config alone, so ``validate`` refuses a shared-module mismatch
without torch. The torch builders in ``taskgraph.train.modules`` must name parameters the same.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from taskgraph.spec.base import CUSTOM_PATTERN, Frozen, Open

Shape = tuple[int, ...]


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

"""Module configs for real trunks: convolution stacks, a transformer encoder, normalisation,
dropout and ``sequential`` composition, each with its output width and parameter shapes.

Widths follow the registry's rule: ``in``/``out`` are the last dimension (features or channels),
so a module after a ``conv1d`` or ``transformer`` reads ``(batch, time, width)`` like after a
``bilstm``. ``conv2d`` reads images as flat rows ``(batch, C*H*W)`` (or ``(batch, C, H, W)``) with
their ``shape: [C, H, W]``, and returns rows again, so it composes with ``mlp`` heads and gates.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from taskgraph.spec.modules import Shape, _ModuleBase

__all__ = ["Conv1dModule", "Conv2dModule", "TransformerModule", "LayerNormModule", "DropoutModule",
           "SequentialModule"]

Positive = Annotated[int, Field(gt=0)]


def _norm_shapes(prefix: str, norm: str, width: int) -> dict[str, Shape]:
    if norm == "none":
        return {}
    shapes: dict[str, Shape] = {f"{prefix}.weight": (width,), f"{prefix}.bias": (width,)}
    if norm == "batch":  # buffers are state too: they travel along edges with the weights
        shapes.update({f"{prefix}.running_mean": (width,), f"{prefix}.running_var": (width,),
                       f"{prefix}.num_batches_tracked": ()})
    return shapes


class _ConvBase(_ModuleBase):
    channels: tuple[Positive, ...] = Field(min_length=1, description="Output channels of each layer.")
    kernel: int = Field(3, ge=1, description="Window; padding kernel // 2 keeps the length at stride 1 (odd kernels).")
    stride: int = Field(1, ge=1)
    activation: Literal["relu", "gelu", "tanh"] = "relu"
    norm: Literal["none", "batch", "layer"] = Field("none", description="After each convolution, before the activation.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    pool: Literal["none", "max", "mean"] = Field("none", description="Pooling after each layer, `pool_size` wide.")
    pool_size: int = Field(2, ge=1)
    global_pool: Literal["none", "max", "mean"] = Field(
        "none", description="Pool over the whole length (image) at the end: one vector per example.")

    def _layer_shapes(self, width: int, kernel_dims: tuple[int, ...]) -> dict[str, Shape]:
        shapes: dict[str, Shape] = {}
        for i, out in enumerate(self.channels):
            shapes[f"convs.{i}.weight"] = (out, width, *kernel_dims)
            shapes[f"convs.{i}.bias"] = (out,)
            shapes.update(_norm_shapes(f"norms.{i}", self.norm, out))
            width = out
        return shapes

    def _length(self, n: int) -> int:
        """A spatial size after one layer: the convolution, then the pooling."""
        pad = self.kernel // 2
        n = (n + 2 * pad - self.kernel) // self.stride + 1
        return n // self.pool_size if self.pool != "none" else n


class Conv1dModule(_ConvBase):
    """Convolutions over time: ``(batch, time, in)`` -> ``(batch, time', channels[-1])``, or
    ``(batch, channels[-1])`` with ``global_pool`` (a sequence classifier's encoder)."""

    type: Literal["conv1d"]

    def output_dim(self, in_dim: int | None) -> int | None:
        return self.channels[-1]

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        width = self.resolved_in(in_dim)
        return None if width is None else self._layer_shapes(width, (self.kernel,))


class Conv2dModule(_ConvBase):
    """Convolutions over images given as rows ``(batch, C*H*W)`` with ``shape: [C, H, W]``: output rows
    ``(batch, channels[-1])`` with ``global_pool``, else the flattened last feature map."""

    type: Literal["conv2d"]
    shape: tuple[Positive, Positive, Positive] = Field(description="[channels, height, width] of one input image.")
    norm: Literal["none", "batch"] = Field("none", description="Batch normalisation after each convolution.")

    @model_validator(mode="after")
    def _fits(self) -> Conv2dModule:
        c, h, w = self.shape
        if self.in_features is not None and self.in_features != c * h * w:
            raise ValueError(f"`in: {self.in_features}` is not shape {list(self.shape)}'s {c * h * w} values. "
                             "Fix one of them (in = channels * height * width).")
        if self.global_pool == "none" and min(self.out_size()) < 1:
            raise ValueError(f"the feature map of {list(self.shape)} shrinks to nothing after {len(self.channels)} "
                             "layers. Use fewer layers, a smaller pool_size or stride.")
        return self

    def out_size(self) -> tuple[int, int]:
        h, w = self.shape[1], self.shape[2]
        for _ in self.channels:
            h, w = self._length(h), self._length(w)
        return h, w

    def resolved_in(self, in_dim: int | None) -> int | None:
        return math.prod(self.shape)  # the image size fixes the input width

    def output_dim(self, in_dim: int | None) -> int | None:
        if self.global_pool != "none":
            return self.channels[-1]
        h, w = self.out_size()
        return self.channels[-1] * h * w

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        return self._layer_shapes(self.shape[0], (self.kernel, self.kernel))


class TransformerModule(_ModuleBase):
    """A transformer encoder over ``(batch, time, in)`` -> ``(batch, time, dim)``: a linear map to
    ``dim`` (when ``in`` differs), positional encoding, ``layers`` pre-norm self-attention blocks.
    Its forward takes the batch's ``length``: positions at or past a sequence's length are masked
    out of attention (given no length, every position is read)."""

    type: Literal["transformer"]
    dim: int = Field(gt=0, description="Model width (divisible by heads).")
    heads: int = Field(4, gt=0)
    layers: int = Field(2, ge=1)
    ff: int | None = Field(None, gt=0, description="Feed-forward width; default 4 * dim.")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    positional: Literal["sinusoidal", "learned", "none"] = "sinusoidal"
    max_len: int = Field(512, ge=1, description="Longest sequence a learned positional table holds.")

    @model_validator(mode="after")
    def _heads_divide(self) -> TransformerModule:
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}. Pick dim = heads * k.")
        return self

    def output_dim(self, in_dim: int | None) -> int | None:
        return self.dim

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        width = self.resolved_in(in_dim)
        if width is None:
            return None
        d, ff = self.dim, self.ff or 4 * self.dim
        shapes: dict[str, Shape] = {}
        if width != d:
            shapes.update({"project.weight": (d, width), "project.bias": (d,)})
        if self.positional == "learned":
            shapes["positions.weight"] = (self.max_len, d)
        for i in range(self.layers):
            p = f"encoder.layers.{i}."
            shapes.update({
                p + "self_attn.in_proj_weight": (3 * d, d), p + "self_attn.in_proj_bias": (3 * d,),
                p + "self_attn.out_proj.weight": (d, d), p + "self_attn.out_proj.bias": (d,),
                p + "linear1.weight": (ff, d), p + "linear1.bias": (ff,),
                p + "linear2.weight": (d, ff), p + "linear2.bias": (d,),
                p + "norm1.weight": (d,), p + "norm1.bias": (d,), p + "norm2.weight": (d,), p + "norm2.bias": (d,),
            })
        shapes.update({"norm.weight": (d,), "norm.bias": (d,)})
        return shapes


class LayerNormModule(_ModuleBase):
    """Layer normalisation over the last dimension (features), with a learned scale and shift."""

    type: Literal["layer_norm"]

    def output_dim(self, in_dim: int | None) -> int | None:
        return self.resolved_in(in_dim)

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        width = self.resolved_in(in_dim)
        return None if width is None else {"weight": (width,), "bias": (width,)}


class DropoutModule(_ModuleBase):
    """Zero each value with probability ``p`` in training (scaled by 1 / (1 - p)); identity in evaluation."""

    type: Literal["dropout"]
    p: float = Field(0.1, ge=0.0, lt=1.0)

    def output_dim(self, in_dim: int | None) -> int | None:
        return self.resolved_in(in_dim)

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        return {}


class SequentialModule(_ModuleBase):
    """Modules applied in order as one named module (an expert made of a conv stack and an mlp, say),
    so it is shared, frozen or mixed as one. Parameters are ``layers.<i>.<name>``."""

    type: Literal["sequential"]
    layers: tuple["ModuleConfig", ...] = Field(min_length=1)

    def resolved_in(self, in_dim: int | None) -> int | None:
        return self.in_features if self.in_features is not None else self.layers[0].resolved_in(in_dim)

    def widths(self, in_dim: int | None) -> list[int | None]:
        """Input width of each layer."""
        width, out = self.resolved_in(in_dim), []
        for layer in self.layers:
            width = layer.resolved_in(width)
            out.append(width)
            width = layer.output_dim(width)
        return out

    def output_dim(self, in_dim: int | None) -> int | None:
        last = self.layers[-1]
        return last.output_dim(self.widths(in_dim)[-1])

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        shapes: dict[str, Shape] = {}
        for i, (layer, width) in enumerate(zip(self.layers, self.widths(in_dim))):
            own = layer.param_shapes(width)
            if own is None:
                return None
            shapes.update({f"layers.{i}.{k}": v for k, v in own.items()})
        return shapes


def rebuild(module_config: Any) -> None:
    """Resolve ``sequential``'s recursive reference once ``ModuleConfig`` exists (``spec.components``):
    a name in this module, where pydantic looks when it builds the model on first use (``model_rebuild``
    would build it now, on every import: the spec models are built lazily, ``spec.base``)."""
    globals()["ModuleConfig"] = module_config

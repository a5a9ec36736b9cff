"""Module configs (``modules: {encoder: {type: mlp, ...}}``), with their parameter shapes.

Shapes are computed from the config alone, so ``validate`` refuses a shared-module mismatch
without torch. The torch builders in ``taskgraph.train.modules`` must name parameters the same.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from taskgraph.spec.base import CUSTOM_PATTERN, Frozen, Open

Shape = tuple[int, ...]


def _ordered(columns: tuple[int, int]) -> tuple[int, int]:
    if columns[1] <= columns[0]:
        raise ValueError(f"columns {list(columns)}: stop must be above start, e.g. [0, 1280].")
    return columns


#: Input columns ``[start, stop)`` a module reads (``mlp``) or keeps (``select``).
Columns = Annotated[tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(gt=0)]], AfterValidator(_ordered)]


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
    columns: Columns | None = Field(
        None,
        description="Read only input columns [start, stop) and pass the others through after the output "
        "(two encoders side by side on a cross-modal input). Parameters depend only on stop - start.",
    )

    def _widths(self) -> tuple[int, ...]:
        return self.hidden + ((self.out,) if self.out else ())

    def output_dim(self, in_dim: int | None) -> int | None:
        if self.columns is None:
            return self._widths()[-1]
        width = self.resolved_in(in_dim)
        passed = None if width is None else width - (self.columns[1] - self.columns[0])
        return None if passed is None else self._widths()[-1] + passed

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        width = self.resolved_in(in_dim)
        if self.columns is not None:
            width = self.columns[1] - self.columns[0]
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


class EmbeddingModule(_ModuleBase):
    """A lookup table from token ids to vectors: the first module of a text trunk (id 0 is padding)."""

    type: Literal["embedding"]
    vocab: int = Field(gt=1, description="Number of ids; the data's `vocab_size` (ids are < vocab).")
    dim: int = Field(gt=0)
    padding_idx: int | None = Field(0, ge=0, description="This id maps to a fixed zero vector (padding).")

    def output_dim(self, in_dim: int | None) -> int | None:
        return self.dim

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        return {"weight": (self.vocab, self.dim)}  # independent of the input: ids, not features


class BiLSTMModule(_ModuleBase):
    """A bidirectional LSTM over ``(batch, time, features)``; output width ``2 * hidden``."""

    type: Literal["bilstm"]
    hidden: int = Field(gt=0)
    layers: int = Field(1, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Between LSTM layers and on the output.")

    def output_dim(self, in_dim: int | None) -> int | None:
        return 2 * self.hidden

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        width = self.resolved_in(in_dim)
        if width is None:
            return None
        shapes: dict[str, Shape] = {}
        gates = 4 * self.hidden
        for layer in range(self.layers):
            layer_in = width if layer == 0 else 2 * self.hidden
            for suffix in ("", "_reverse"):  # torch.nn.LSTM's names, under our `lstm.` attribute
                shapes[f"lstm.weight_ih_l{layer}{suffix}"] = (gates, layer_in)
                shapes[f"lstm.weight_hh_l{layer}{suffix}"] = (gates, self.hidden)
                shapes[f"lstm.bias_ih_l{layer}{suffix}"] = (gates,)
                shapes[f"lstm.bias_hh_l{layer}{suffix}"] = (gates,)
        return shapes


class SelectModule(_ModuleBase):
    """Keep input columns [start, stop) and drop the rest: picks one modality's embedding out of
    a cross-modal trunk's ``[audio | image]`` output, e.g. for an ``infonce`` head. No parameters."""

    type: Literal["select"]
    columns: Columns

    def output_dim(self, in_dim: int | None) -> int | None:
        return self.columns[1] - self.columns[0]

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        return {}


class GradientReversalModule(_ModuleBase):
    """Identity forward, gradient times ``-scale`` backward (domain-adversarial training, Ganin 2015)."""

    type: Literal["gradient_reversal"]
    scale: float = Field(1.0, ge=0.0)

    def output_dim(self, in_dim: int | None) -> int | None:
        return self.resolved_in(in_dim)

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        return {}

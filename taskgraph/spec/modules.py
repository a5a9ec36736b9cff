"""Module configs (``modules: {encoder: {type: mlp, ...}}``), with their parameter shapes.

Shapes are computed from the config alone, so ``validate`` refuses a shared-module mismatch
without torch. The torch builders in ``taskgraph.train.modules`` must name parameters the same.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from taskgraph.spec.base import CUSTOM_PATTERN, Frozen, Open
from taskgraph.spec.data import CASES

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
    init_scale: float | None = Field(
        None, gt=0.0,
        description="Initial vectors ~ N(0, init_scale^2); omitted: torch's N(0, 1), which Adam barely moves.",
    )

    def output_dim(self, in_dim: int | None) -> int | None:
        return self.dim

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        return {"weight": (self.vocab, self.dim)}  # independent of the input: ids, not features


class BiLSTMModule(_ModuleBase):
    """A bidirectional LSTM over ``(batch, time, features)``; output width ``2 * hidden``. With a
    ``length`` field in the data it packs each batch by length: padding is never read."""

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


class TokenEmbeddingModule(_ModuleBase):
    """Word vectors plus spelling: case, suffix, word-shape and character-CNN embeddings, side by side.

    Reads the ``tokens`` field of a text loader (``conll2000`` with ``features: true``): channels
    word, rare, case, suffix, shape, then characters. A part with width 0 is left out. Word
    dropout replaces a rare training word (one seen once) by the unknown id with probability
    ``word_dropout`` in training mode only, so the unknown vector is trained for test words that
    were never seen; their spelling parts still tell them apart.
    """

    type: Literal["token_embedding"]
    vocab: int = Field(gt=2, description="Word ids: the data's `vocab_size`.")
    dim: int = Field(gt=0, description="Width of the word vector.")
    init_scale: float = Field(0.1, gt=0.0, description="Initial vectors ~ N(0, init_scale^2) (every table).")
    word_dropout: float = Field(0.0, ge=0.0, le=1.0, description="Chance a rare training word becomes unknown.")
    unknown: int = Field(1, ge=1, description="The unknown word's id (the loader's UNK).")
    case_dim: int = Field(0, ge=0, description=f"Case-class vector width ({len(CASES)} classes).")
    suffix_vocab: int = Field(0, ge=0, description="Suffix ids: the data's `suffix_vocab` (0: no suffix part).")
    suffix_dim: int = Field(0, ge=0)
    shape_vocab: int = Field(0, ge=0, description="Word-shape ids: the data's `shape_vocab` (0: no shape part).")
    shape_dim: int = Field(0, ge=0)
    char_vocab: int = Field(0, ge=0, description="Character ids: the data's `char_vocab` (0: no character part).")
    char_dim: int = Field(0, ge=0, description="Character vector width.")
    char_filters: int = Field(0, ge=0, description="Character CNN filters (max-pooled over the word): output width.")
    char_width: int = Field(3, ge=1, description="Character CNN window.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the concatenated vector.")

    @model_validator(mode="after")
    def _parts_complete(self) -> TokenEmbeddingModule:
        pairs = (("suffix_vocab", "suffix_dim"), ("shape_vocab", "shape_dim"), ("char_vocab", "char_dim"),
                 ("char_dim", "char_filters"))
        for a, b in pairs:
            if (getattr(self, a) > 0) != (getattr(self, b) > 0):
                raise ValueError(f"set both `{a}` and `{b}` above 0 to use that part, or neither.")
        return self

    def output_dim(self, in_dim: int | None) -> int | None:
        return self.dim + self.case_dim + self.suffix_dim + self.shape_dim + self.char_filters

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        shapes: dict[str, Shape] = {"word.weight": (self.vocab, self.dim)}
        if self.case_dim:
            shapes["case.weight"] = (len(CASES), self.case_dim)
        if self.suffix_dim:
            shapes["suffix.weight"] = (self.suffix_vocab, self.suffix_dim)
        if self.shape_dim:
            shapes["shape.weight"] = (self.shape_vocab, self.shape_dim)
        if self.char_dim:
            shapes["chars.weight"] = (self.char_vocab, self.char_dim)
            shapes["char_conv.weight"] = (self.char_filters, self.char_dim, self.char_width)
            shapes["char_conv.bias"] = (self.char_filters,)
        return shapes


class CRFModule(_ModuleBase):
    """A linear-chain CRF head: emissions from a linear layer plus tag-to-tag transition scores.

    Its output is ``(batch, time, tags, tags)``: entry ``[t, i, j]`` scores tag ``i`` at ``t-1``
    followed by ``j`` at ``t`` (at ``t = 0`` the start score of ``j``, for every ``i``). Train it
    with ``loss: {type: crf}``; ``accuracy`` and ``span_f1`` read the Viterbi path.
    """

    type: Literal["crf"]
    out: int = Field(gt=1, description="Number of tags.")

    def output_dim(self, in_dim: int | None) -> int | None:
        return self.out

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        width = self.resolved_in(in_dim)
        if width is None:
            return None
        k = self.out
        return {"emit.weight": (k, width), "emit.bias": (k,), "transitions": (k, k), "start": (k,)}

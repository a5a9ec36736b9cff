"""Torch implementations of the module types a graph file names (``type: mlp`` ...).

Each builder takes the module's config and its input width and returns an ``nn.Module`` whose
parameter names and shapes equal ``config.param_shapes(in_dim)``: the plan checks shared
modules from the configs alone, so the two must agree (a test checks every registered type).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from taskgraph.errors import TrainError
from taskgraph.spec.modules import (
    BiLSTMModule,
    CRFModule,
    EmbeddingModule,
    GradientReversalModule,
    LinearModule,
    MLPModule,
    SelectModule,
    TokenEmbeddingModule,
)
from taskgraph.spec.layers import (
    Conv1dModule,
    Conv2dModule,
    DropoutModule,
    LayerNormModule,
    SequentialModule,
    TransformerModule,
)
from taskgraph.train.layers import ConvStack, Sequential, Transformer
from taskgraph.train.registry import Registry
from taskgraph.train.text_modules import CRF, TokenEmbedding

__all__ = ["MODULES", "build_module", "MLP", "BiLSTM", "GradientReversal", "reverse_gradient", "TokenEmbedding", "CRF"]

Builder = Callable[[Any, int], nn.Module]
MODULES: Registry[Builder] = Registry("module type")

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class MLP(nn.Module):
    """Linear layers with an activation (and dropout) between them; no activation after ``out``."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], out: int | None, activation: str, dropout: float):
        super().__init__()
        widths = (*hidden, out) if out else tuple(hidden)
        self.layers = nn.ModuleList()
        previous = in_dim
        for width in widths:
            self.layers.append(nn.Linear(previous, width))
            previous = width
        self.n_hidden = len(hidden)
        self.act = _ACTIVATIONS[activation]()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < self.n_hidden:
                x = self.drop(self.act(x))
        return x


class ColumnsMLP(MLP):
    """An MLP on input columns [start, stop); the other columns follow its output unchanged.

    Same parameter names as ``MLP``, so an encoder trained on one modality alone can be shared
    into a node whose input puts two modalities side by side.
    """

    def __init__(self, columns: tuple[int, int], *args):
        super().__init__(*args)
        self.start, self.stop = columns

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inside = super().forward(x[..., self.start : self.stop])
        return torch.cat([inside, x[..., : self.start], x[..., self.stop :]], dim=-1)


def _check_columns(config: MLPModule | SelectModule, in_dim: int | None) -> tuple[int, int]:
    start, stop = config.columns
    if in_dim is not None and stop > in_dim:
        raise TrainError(f"{config.type} columns [{start}, {stop}) go past the input width {in_dim}. Lower `columns`.")
    return start, stop


@MODULES.register("mlp")
def _mlp(config: MLPModule, in_dim: int) -> nn.Module:
    if config.columns is not None:
        start, stop = _check_columns(config, in_dim)
        return ColumnsMLP(config.columns, stop - start, config.hidden, config.out, config.activation, config.dropout)
    return MLP(in_dim, config.hidden, config.out, config.activation, config.dropout)


@MODULES.register("linear")
def _linear(config: LinearModule, in_dim: int) -> nn.Module:
    return nn.Linear(in_dim, config.out, bias=config.bias)


class BiLSTM(nn.Module):
    """A bidirectional LSTM on ``(batch, time, features)`` returning ``(batch, time, 2 * hidden)``.

    Given ``length`` (each sequence's valid positions) it packs the batch, so that the backward
    direction starts on a sentence's last word rather than on padding: a sentence's output is then
    the same whatever it is padded to (training cuts each batch to its longest sentence,
    evaluation may not). Positions past a length come out as zeros. Without ``length`` every
    position is read, padding included.

    Packing sorts the batch and sizes tensors by the lengths' values, which ``torch.export``
    cannot trace; while exporting, the same outputs come from ``by_mask`` instead.
    """

    def __init__(self, in_dim: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(in_dim, hidden, num_layers=layers, bidirectional=True, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, length: torch.Tensor | None = None) -> torch.Tensor:
        if length is not None and torch.compiler.is_exporting():
            return self.drop(self.by_mask(x, length))
        time = x.shape[1]
        if length is None or time == 0:
            return self.drop(self.lstm(x)[0])
        steps = length.to("cpu", torch.long)  # pack_padded_sequence wants its lengths on the CPU
        # pack refuses empty sequences: an empty row reads one (padding) step, then is zeroed below
        packed = pack_padded_sequence(x, steps.clamp(1, time), batch_first=True, enforce_sorted=False)
        out = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=time)[0]
        if bool((steps == 0).any()):
            out = out * (steps > 0).to(out.device, out.dtype)[:, None, None]
        return self.drop(out)

    def by_mask(self, x: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        """What the packed LSTM gives, in operations with static shapes (exportable, any batch and
        length): per layer, the forward direction reads the padded rows as they are (padding comes
        after the words it could affect), the backward direction reads each row with its first
        ``length`` steps reversed, so that it starts on the last word; its outputs are reversed back,
        and positions past a length are zeroed, as ``pad_packed_sequence`` leaves them."""
        lstm = self.lstm
        time = torch.arange(x.shape[1], device=x.device)[None, :]
        steps = length.to(x.device, torch.long).clamp(0, x.shape[1])[:, None]  # as packing: past the end is the end
        inside = time < steps
        flip = torch.where(inside, steps - 1 - time, time)[:, :, None]  # its own inverse

        def reverse(h: torch.Tensor) -> torch.Tensor:
            return h.gather(1, flip.expand(-1, -1, h.shape[2]))

        zeros = x.new_zeros(1, x.shape[0], lstm.hidden_size)
        h = x
        for layer in range(lstm.num_layers):
            if layer:
                h = nn.functional.dropout(h, lstm.dropout, self.training)
            outs = []
            for suffix in ("", "_reverse"):
                params = [getattr(lstm, f"{kind}_l{layer}{suffix}")
                          for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                seen = reverse(h) if suffix else h
                out = torch.lstm(seen, (zeros, zeros), params, True, 1, 0.0, False, False, True)[0]
                outs.append(reverse(out) if suffix else out)
            h = torch.cat(outs, dim=-1) * inside[:, :, None].to(x.dtype)
        return h


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward; the gradient is multiplied by ``-scale`` on the way back (Ganin & Lempitsky 2015)."""
    return _ReverseGradient.apply(x, scale)


class GradientReversal(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reverse_gradient(x, self.scale)


class Select(nn.Module):
    def __init__(self, start: int, stop: int):
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.start : self.stop]


@MODULES.register("embedding")
def _embedding(config: EmbeddingModule, in_dim: int) -> nn.Module:
    module = nn.Embedding(config.vocab, config.dim, padding_idx=config.padding_idx)
    if config.init_scale is not None:
        with torch.no_grad():
            module.weight.normal_(0.0, config.init_scale)
            if config.padding_idx is not None:
                module.weight[config.padding_idx].zero_()
    return module


@MODULES.register("token_embedding")
def _token_embedding(config: TokenEmbeddingModule, in_dim: int) -> nn.Module:
    return TokenEmbedding(config)


@MODULES.register("crf")
def _crf(config: CRFModule, in_dim: int) -> nn.Module:
    return CRF(in_dim, config.out)


@MODULES.register("bilstm")
def _bilstm(config: BiLSTMModule, in_dim: int) -> nn.Module:
    return BiLSTM(in_dim, config.hidden, config.layers, config.dropout)


@MODULES.register("gradient_reversal")
def _gradient_reversal(config: GradientReversalModule, in_dim: int) -> nn.Module:
    return GradientReversal(config.scale)


@MODULES.register("select")
def _select(config: SelectModule, in_dim: int) -> nn.Module:
    return Select(*_check_columns(config, in_dim))


@MODULES.register("conv1d")
def _conv1d(config: Conv1dModule, in_dim: int) -> nn.Module:
    return ConvStack(config, in_dim)


@MODULES.register("conv2d")
def _conv2d(config: Conv2dModule, in_dim: int) -> nn.Module:
    return ConvStack(config, in_dim)


@MODULES.register("transformer")
def _transformer(config: TransformerModule, in_dim: int) -> nn.Module:
    return Transformer(config, in_dim)


@MODULES.register("layer_norm")
def _layer_norm(config: LayerNormModule, in_dim: int) -> nn.Module:
    return nn.LayerNorm(in_dim)


@MODULES.register("dropout")
def _dropout(config: DropoutModule, in_dim: int) -> nn.Module:
    return nn.Dropout(config.p)


@MODULES.register("sequential")
def _sequential(config: SequentialModule, in_dim: int) -> nn.Module:
    widths = config.widths(in_dim)
    return Sequential([build_module(layer, width, f"sequential.layers.{i}")
                       for i, (layer, width) in enumerate(zip(config.layers, widths))])


def build_module(config: Any, in_dim: int | None, where: str) -> nn.Module:
    """Build one named module; user classes get their YAML keys as keyword arguments."""
    width = config.resolved_in(in_dim)
    if config.type in MODULES:
        if width is None and config.type in ("embedding", "token_embedding", "dropout", "sequential"):
            width = 0  # an embedding reads ids: it has no input width
        if width is None:
            raise TrainError(f"{where}: cannot infer the input width. Set `in:` on this module.")
        return MODULES.get(config.type)(config, width)
    cls = MODULES.get(config.type)  # "pkg.mod:Class"
    kwargs = dict(config.model_extra or {})
    if config.in_features is not None or width is not None:
        kwargs.setdefault("in_features", width)
    if config.out is not None:
        kwargs.setdefault("out", config.out)
    try:
        module = cls(**kwargs)
    except TypeError as exc:
        raise TrainError(f"{where}: cannot build '{config.type}' with {sorted(kwargs)}: {exc}.") from exc
    if not isinstance(module, nn.Module):
        raise TrainError(f"{where}: '{config.type}' did not return a torch.nn.Module.")
    return module

"""Torch modules for ``conv1d``, ``conv2d``, ``transformer``, ``layer_norm``, ``dropout`` and ``sequential``.

Registered in ``taskgraph.train.modules``; parameter names equal ``spec.layers``' ``param_shapes``
(a test checks every registered type). Everything reads and returns features on the last dimension,
so these stack with the other modules and feed gates and heads without reshaping.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from taskgraph.errors import TrainError
from taskgraph.spec.layers import Conv1dModule, Conv2dModule, TransformerModule

__all__ = ["ConvStack", "Transformer", "Sequential"]

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class ConvStack(nn.Module):
    """Convolution, normalisation, activation, dropout, pooling per layer; optional global pooling.

    ``conv1d`` reads ``(batch, time, in)``; ``conv2d`` reads ``(batch, C*H*W)`` rows (or
    ``(batch, C, H, W)``) and returns rows. Layer norm normalises channels at each position.
    """

    def __init__(self, config: Conv1dModule | Conv2dModule, in_dim: int):
        super().__init__()
        self.config = config
        self.two_d = config.type == "conv2d"
        conv = nn.Conv2d if self.two_d else nn.Conv1d
        in_channels = config.shape[0] if self.two_d else in_dim
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        for out in config.channels:
            self.convs.append(conv(in_channels, out, config.kernel, stride=config.stride, padding=config.kernel // 2))
            if config.norm == "batch":
                self.norms.append(nn.BatchNorm2d(out) if self.two_d else nn.BatchNorm1d(out))
            elif config.norm == "layer":
                self.norms.append(nn.LayerNorm(out))
            in_channels = out
        self.act = _ACTIVATIONS[config.activation]()
        self.drop = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        pools = {"max": (nn.MaxPool2d if self.two_d else nn.MaxPool1d), "mean": (nn.AvgPool2d if self.two_d else nn.AvgPool1d)}
        self.pool = pools[config.pool](config.pool_size) if config.pool != "none" else nn.Identity()

    def _images(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(self.config.shape)
        if x.dim() == 4 and tuple(x.shape[1:]) == shape:
            return x
        if x.dim() == 2 and x.shape[1] == math.prod(shape):
            return x.view(len(x), *shape)
        raise TrainError(f"conv2d reads images [batch, {math.prod(shape)}] (rows of shape {list(shape)}) or "
                         f"[batch, {', '.join(map(str, shape))}], got {list(x.shape)}. Fix `shape:` or the data.")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.two_d:
            x = self._images(x)
        elif x.dim() != 3:
            raise TrainError(f"conv1d reads sequences [batch, time, features], got {list(x.shape)}. "
                             "Give one [time, features] sequence per example.")
        else:
            x = x.transpose(1, 2)  # (batch, channels, time)
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if self.config.norm == "layer":  # over channels, at each position
                x = self.norms[i](x.transpose(1, -1)).transpose(1, -1)
            elif self.config.norm == "batch":
                x = self.norms[i](x)
            x = self.pool(self.drop(self.act(x)))
        spatial = tuple(range(2, x.dim()))
        if self.config.global_pool == "max":
            return x.amax(dim=spatial)
        if self.config.global_pool == "mean":
            return x.mean(dim=spatial)
        return x.flatten(1) if self.two_d else x.transpose(1, 2)


def sinusoidal(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """Vaswani et al.'s fixed positional encoding, ``(length, dim)``."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    scale = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * scale)
    table[:, 1::2] = torch.cos(position * scale)[:, : dim // 2]
    return table


class Transformer(nn.Module):
    """Pre-norm transformer encoder (``nn.TransformerEncoder``) with positional encoding and a final norm.

    ``forward(x, length=None)``: positions at or past an example's ``length`` are padding, masked
    out of attention (their outputs are ignored by the losses, -100)."""

    def __init__(self, config: TransformerModule, in_dim: int):
        super().__init__()
        d = config.dim
        self.config = config
        self.project = nn.Linear(in_dim, d) if in_dim != d else nn.Identity()
        if config.positional == "learned":
            self.positions = nn.Embedding(config.max_len, d)
        layer = nn.TransformerEncoderLayer(d, config.heads, config.ff or 4 * d, config.dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, length: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3:
            raise TrainError(f"transformer reads sequences [batch, time, features], got {list(x.shape)}.")
        time = x.shape[1]
        h = self.project(x)
        if self.config.positional == "learned":
            if time > self.config.max_len:
                raise TrainError(f"transformer: sequences of {time} steps are longer than `max_len: "
                                 f"{self.config.max_len}`. Raise max_len.")
            h = h + self.positions(torch.arange(time, device=x.device))
        elif self.config.positional == "sinusoidal":
            h = h + sinusoidal(time, self.config.dim, x.device).to(h.dtype)
        mask = None
        if length is not None:
            mask = torch.arange(time, device=x.device)[None, :] >= length.to(x.device)[:, None]  # True: padding
        return self.norm(self.encoder(self.drop(h), src_key_padding_mask=mask))


class Sequential(nn.Module):
    """Modules in order under ``layers.<i>``; the batch's ``length`` goes on to the layers that take it."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        from taskgraph.train.model import takes_length  # model imports modules, which imports this file

        self.layers = nn.ModuleList(layers)
        self._wants_length = [takes_length(layer) for layer in layers]

    def forward(self, x: torch.Tensor, length: torch.Tensor | None = None) -> torch.Tensor:
        for layer, wants in zip(self.layers, self._wants_length):
            x = layer(x, length=length) if wants and length is not None else layer(x)
        return x

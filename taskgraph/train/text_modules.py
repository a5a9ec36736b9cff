"""Torch modules for taggers: ``token_embedding`` (words plus spelling) and the ``crf`` head.

Registered in ``taskgraph.train.modules`` like every module type; here because they belong
together (a text trunk's input and a tagger's structured output) and ``modules.py`` stays short.
"""

from __future__ import annotations

import torch
from torch import nn

from taskgraph.errors import TrainError
from taskgraph.spec.data import CASES, TOKEN_CHANNELS
from taskgraph.spec.modules import TokenEmbeddingModule

__all__ = ["TokenEmbedding", "CRF", "WORD", "RARE", "CASE", "SUFFIX", "SHAPE", "CHARS"]

WORD, RARE, CASE, SUFFIX, SHAPE = (TOKEN_CHANNELS.index(c) for c in ("word", "rare", "case", "suffix", "shape"))
CHARS = len(TOKEN_CHANNELS)  # character ids start here


def _table(rows: int, dim: int, scale: float) -> nn.Embedding:
    """An embedding table ~ N(0, scale^2), id 0 (padding) a fixed zero vector."""
    table = nn.Embedding(rows, dim, padding_idx=0)
    with torch.no_grad():
        table.weight.normal_(0.0, scale)
        table.weight[0].zero_()
    return table


class TokenEmbedding(nn.Module):
    """Word, case, suffix, shape and character-CNN vectors of each token, concatenated.

    Input: the ``tokens`` field ``(batch, time, channels)``; output ``(batch, time, width)``.
    The character CNN (Ma & Hovy 2016) max-pools over a word's characters, padding excluded.
    """

    def __init__(self, config: TokenEmbeddingModule):
        super().__init__()
        self.config = config
        scale = config.init_scale
        self.word = _table(config.vocab, config.dim, scale)
        if config.case_dim:
            self.case = _table(len(CASES), config.case_dim, scale)
        if config.suffix_dim:
            self.suffix = _table(config.suffix_vocab, config.suffix_dim, scale)
        if config.shape_dim:
            self.shape = _table(config.shape_vocab, config.shape_dim, scale)
        if config.char_dim:
            self.chars = _table(config.char_vocab, config.char_dim, scale)
            self.char_conv = nn.Conv1d(config.char_dim, config.char_filters, config.char_width,
                                       padding=config.char_width // 2)
        self.drop = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()

    def _check(self, tokens: torch.Tensor) -> None:
        cfg = self.config
        if tokens.dim() != 3 or tokens.shape[-1] < CHARS or tokens.is_floating_point():
            raise TrainError(
                f"token_embedding reads integer ids (batch, time, {CHARS}+ channels), got {tuple(tokens.shape)} "
                f"{tokens.dtype}. Set `features: true` on the conll2000 data source and `input: tokens` on the task."
            )
        limits = [("word", WORD, cfg.vocab, "vocab", "vocab_size")]
        if cfg.suffix_dim:
            limits.append(("suffix", SUFFIX, cfg.suffix_vocab, "suffix_vocab", "suffix_vocab"))
        if cfg.shape_dim:
            limits.append(("shape", SHAPE, cfg.shape_vocab, "shape_vocab", "shape_vocab"))
        if cfg.char_dim:
            if tokens.shape[-1] == CHARS:
                raise TrainError("token_embedding has a character part but the data has no characters: "
                                 "set `chars:` (e.g. 12) on the conll2000 data source, or char_dim: 0.")
            limits.append(("character", slice(CHARS, None), cfg.char_vocab, "char_vocab", "char_vocab"))
        for what, channel, size, option, data_option in limits:
            top = int(tokens[..., channel].max()) if tokens.numel() else 0
            if top >= size:
                raise TrainError(f"token_embedding: {what} id {top} is past `{option}: {size}`. "
                                 f"Make `{option}` equal the data source's `{data_option}`.")

    def _drop_rare_words(self, tokens: torch.Tensor) -> torch.Tensor:
        """Word ids with rare training words replaced by the unknown id at rate ``word_dropout``."""
        words = tokens[..., WORD]
        if not self.training or self.config.word_dropout == 0.0:
            return words
        hit = (tokens[..., RARE] > 0) & (torch.rand(words.shape, device=words.device) < self.config.word_dropout)
        return torch.where(hit, torch.full_like(words, self.config.unknown), words)

    def _char_vectors(self, chars: torch.Tensor) -> torch.Tensor:
        batch, time, width = chars.shape
        flat = chars.reshape(batch * time, width)
        h = self.char_conv(self.chars(flat).transpose(1, 2))[..., :width]  # (words, filters, width)
        h = h.masked_fill((flat == 0)[:, None, :], float("-inf")).amax(dim=2)
        h = torch.where(torch.isfinite(h), h, torch.zeros_like(h))  # padding words: no characters
        return h.reshape(batch, time, -1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_exporting():  # data-dependent checks cannot be traced (torch.export, ONNX)
            self._check(tokens)
        parts = [self.word(self._drop_rare_words(tokens))]
        if self.config.case_dim:
            parts.append(self.case(tokens[..., CASE]))
        if self.config.suffix_dim:
            parts.append(self.suffix(tokens[..., SUFFIX]))
        if self.config.shape_dim:
            parts.append(self.shape(tokens[..., SHAPE]))
        if self.config.char_dim:
            parts.append(self._char_vectors(tokens[..., CHARS:]))
        return self.drop(torch.cat(parts, dim=-1))


class CRF(nn.Module):
    """Emissions (a linear layer) plus transition and start scores, as potentials ``(b, t, tags, tags)``.

    See ``taskgraph.train.crf`` for what the entries mean; the ``crf`` loss and Viterbi read them.
    """

    def __init__(self, in_dim: int, tags: int):
        super().__init__()
        self.emit = nn.Linear(in_dim, tags)
        self.transitions = nn.Parameter(torch.zeros(tags, tags))
        self.start = nn.Parameter(torch.zeros(tags))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        emissions = self.emit(x)  # (batch, time, tags)
        potentials = emissions[:, :, None, :] + self.transitions  # (batch, time, tags, tags)
        first = (emissions + self.start)[:, :, None, :]  # every "previous tag" row alike at the start
        # A mask, not a slice at 1: torch.export then keeps any sentence length, 1 and 2 included.
        at_start = (torch.arange(x.shape[1], device=x.device) == 0)[None, :, None, None]
        return torch.where(at_start, first, potentials)

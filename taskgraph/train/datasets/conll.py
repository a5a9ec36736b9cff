"""The ``conll`` loader: column-format token files (one token per line, blank lines between
sentences) as padded id tensors.

Words and input columns get ids from the training sentences only (0 = padding, 1 = unknown),
most frequent first with ties by the string, so ids are the same on every machine. Tag ids are
sorted over every file read: a tag seen only in validation still needs an output and a place
in span F1. ``span: true`` tags follow ``span_f1``'s encoding (O = 0, B-k = 2k+1, I-k = 2k+2);
IOB1 and BIOES are brought to IOB2 first, which leaves IOB2 unchanged.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

from taskgraph.errors import TrainError
from taskgraph.spec.filedata import ConllColumn, ConllData
from taskgraph.train.data import Splits
from taskgraph.train.datasets.files import fraction_indices, open_file
from taskgraph.train.datasets.text_features import clip_chars, id_table, suffix, word_case, word_shape
from taskgraph.train.metrics import IGNORE

__all__ = ["load_conll", "read_conll", "to_iob2", "PAD", "UNK"]

PAD, UNK = 0, 1
Sentence = tuple[tuple[str, ...], ...]
DOCSTART = "-DOCSTART-"


def read_conll(path: Path, columns: dict[str, int], separator: str | None = None,
               comment: str | None = None) -> tuple[Sentence, ...]:
    """Sentences of one file, each a tuple of token rows; ``-DOCSTART-`` lines (and comment lines)
    are skipped. Every token row must have the ``columns`` (``{option: index}``) read from it."""
    need_pos = max((i for i in columns.values() if i >= 0), default=-1) + 1
    need_neg = max((-i for i in columns.values() if i < 0), default=0)
    sentences: list[Sentence] = []
    current: list[tuple[str, ...]] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if comment is not None and line.startswith(comment):
            continue
        parts = tuple(line.split(separator)) if separator and line.strip() else tuple(line.split())
        if not parts or parts[0] == DOCSTART:
            if current:
                sentences.append(tuple(current))
                current = []
            continue
        if len(parts) < max(need_pos, need_neg):
            option, index = max(columns.items(), key=lambda kv: kv[1] + 1 if kv[1] >= 0 else -kv[1])
            raise TrainError(f"{path}:{lineno}: {len(parts)} column(s) in {line!r}, but {option} reads column "
                             f"{index}. Set the column index (0-based) or `separator:`.")
        current.append(parts)
    if current:
        sentences.append(tuple(current))
    if not sentences:
        raise TrainError(f"{path}: no sentences (expected one token per line, blank lines between sentences).")
    return tuple(sentences)


def _split_tag(tag: str, where: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    if len(tag) < 3 or tag[0] not in "BIES" or tag[1] not in "-_":
        raise TrainError(f"{where}: tag '{tag}' is not O or B-/I-/E-/S-<type>; span and iob2 need IOB, IOB2 "
                         "or BIOES tags (or drop them to keep tags as given).")
    return tag[0], tag[2:]


def to_iob2(tags: list[str], where: str) -> list[str]:
    """IOB1 and BIOES tags as IOB2 (a chunk starts with B-): I- after O or another type becomes
    B-, S- becomes B-, E- becomes I-. IOB2 comes back unchanged; the chunks are the same."""
    out: list[str] = []
    prev_type = ""
    for tag in tags:
        prefix, kind = _split_tag(tag, where)
        if prefix == "O":
            out.append("O")
        elif prefix in "BS" or kind != prev_type:
            out.append(f"B-{kind}")
        else:
            out.append(f"I-{kind}")
        prev_type = kind
    return out


class _Tags:
    """Id table of one tag column, from every file read."""

    def __init__(self, spec: ConllColumn, index: int, files: list[tuple[Sentence, ...]], where: str):
        self.spec, self.index, self.where = spec, index, where
        seen = {t for sentences in files for s in sentences for t in self.tags(s)}
        if spec.span:
            self.types = {k: i for i, k in enumerate(sorted({t[2:] for t in seen if t != "O"}))}
        self.ids = {t: i for i, t in enumerate(sorted(seen))}

    def tags(self, sentence: Sentence) -> list[str]:
        tags = [row[self.index] for row in sentence]
        return to_iob2(tags, self.where) if self.spec.span or self.spec.iob2 else tags

    def encode(self, sentence: Sentence) -> list[int]:
        # A tag only the test file has (the ids come from training and validation) is a missing label.
        if not self.spec.span:
            return [self.ids.get(t, -100) for t in self.tags(sentence)]
        return [0 if t == "O" else (2 * self.types[t[2:]] + (1 if t[0] == "B" else 2)) if t[2:] in self.types else -100
                for t in self.tags(sentence)]


class _Words:
    """Word ids (and the ``tokens`` channels) from the training sentences."""

    def __init__(self, train: tuple[Sentence, ...], config: ConllData):
        self.config, col = config, config.word_column
        words = [row[col] for s in train for row in s]
        self.counts = Counter(self.key(w) for w in words)
        kept = sorted((w for w in self.counts if self.counts[w] >= config.min_count), key=lambda w: (-self.counts[w], w))
        self.vocab = {w: i + 2 for i, w in enumerate(kept[: config.vocab_size - 2])}
        if config.features:
            self.suffixes = id_table((suffix(w, config.suffix_length) for w in words), config.suffix_vocab)
            self.shapes = id_table((word_shape(w) for w in words), config.shape_vocab)
            self.chars = id_table((c for w in words for c in w), config.char_vocab) if config.chars else {}
        self._rows: dict[tuple[str, bool], list[int]] = {}

    def key(self, word: str) -> str:
        return word.lower() if self.config.lowercase else word

    def id(self, word: str) -> int:
        return self.vocab.get(self.key(word), UNK)

    def row(self, word: str, training: bool) -> list[int]:
        """The ``tokens`` channels of one word; ``rare`` only on training (word dropout's candidates)."""
        if (word, training) not in self._rows:
            cfg, key = self.config, self.key(word)
            chars = [self.chars.get(c, UNK) for c in clip_chars(word, cfg.chars)] if cfg.chars else []
            self._rows[word, training] = [
                self.vocab.get(key, UNK), int(training and self.counts[key] == 1), word_case(word),
                self.suffixes.get(suffix(word, cfg.suffix_length), UNK), self.shapes.get(word_shape(word), UNK),
                *chars, *[PAD] * (cfg.chars - len(chars))]
        return self._rows[word, training]


def _tensors(sentences: tuple[Sentence, ...], words: _Words, tags: dict[str, _Tags],
             inputs: dict[str, tuple[int, dict[str, int]]], training: bool) -> dict[str, torch.Tensor]:
    cfg = words.config
    n, longest = len(sentences), max(len(s) for s in sentences)
    x = torch.full((n, longest), PAD, dtype=torch.long)
    out = {name: torch.full((n, longest), IGNORE, dtype=torch.long) for name in tags}
    out.update({name: torch.full((n, longest), PAD, dtype=torch.long) for name in inputs})
    tokens = torch.zeros((n, longest, 5 + cfg.chars), dtype=torch.int32) if cfg.features else None
    for i, sentence in enumerate(sentences):
        size = len(sentence)
        x[i, :size] = torch.tensor([words.id(row[cfg.word_column]) for row in sentence])
        for name, table in tags.items():
            out[name][i, :size] = torch.tensor(table.encode(sentence))
        for name, (index, ids) in inputs.items():
            out[name][i, :size] = torch.tensor([ids.get(row[index], UNK) for row in sentence])
        if tokens is not None:
            tokens[i, :size] = torch.tensor([words.row(row[cfg.word_column], training) for row in sentence],
                                            dtype=torch.int32)
    fields = {"x": x, **out, "length": torch.tensor([len(s) for s in sentences], dtype=torch.long)}
    if tokens is not None:
        fields["tokens"] = tokens
    return fields


def load_conll(config: ConllData) -> Splits:
    """Train on ``train`` (or the training share of ``path``), validate on ``val`` (or the rest)."""
    columns = {"word_column": config.word_column}
    columns.update({f"labels.{c.field}": c.column for c in config.labels})
    columns.update({f"inputs.{c.field}": c.column for c in config.inputs})
    files = config.files()
    read = {opt: read_conll(open_file(p, "conll", opt), columns, config.separator, config.comment)
            for opt, p in files.items()}
    if "val" in read:
        train_all, val_all = read["train"], read["val"]
    else:
        everything = read.get("path") or read["train"]
        if len(everything) < 2:
            raise TrainError(f"{next(iter(files.values()))}: {len(everything)} sentence(s); a split needs 2.")
        train_idx, val_idx = fraction_indices(len(everything), config.val_fraction, config.seed)
        train_all = tuple(everything[i] for i in train_idx.tolist())
        val_all = tuple(everything[i] for i in val_idx.tolist())
    where = ", ".join(v for k, v in files.items() if k != "test")
    tags = {c.field: _Tags(c, c.column, [train_all, val_all], f"{where}: labels.{c.field}") for c in config.labels}
    train = train_all[: config.max_sentences] if config.max_sentences else train_all
    val = val_all[: config.max_val_sentences] if config.max_val_sentences else val_all
    words = _Words(train, config)
    inputs = {c.field: (c.column, id_table((row[c.column] for s in train for row in s), 1 << 62))
              for c in config.inputs}
    return Splits(train=_tensors(train, words, tags, inputs, training=True),
                  val=_tensors(val, words, tags, inputs, training=False),
                  test=_tensors(read["test"], words, tags, inputs, training=False) if "test" in read else None)

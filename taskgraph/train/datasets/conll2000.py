"""CoNLL-2000 chunking data (WSJ, ``word POS chunk`` per line) as padded id tensors.

Fields: ``x`` word ids (0 = padding, 1 = unknown; vocabulary from the training file only),
``pos`` POS ids, ``chunk`` IOB chunk ids in ``span_f1``'s encoding (O = 0, B-k = 2k+1,
I-k = 2k+2, chunk types sorted by name), ``length`` tokens per sentence. Label padding is
-100, torch's ``ignore_index``, so losses and metrics skip it. Validation is the test file.
With ``features: true`` also ``tokens`` (word, rare, case, suffix, shape and character ids per
word; ``taskgraph.spec.data.TOKEN_CHANNELS``), the input of a ``token_embedding`` module.
"""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path

import torch

from taskgraph.errors import TrainError
from taskgraph.spec.data import Conll2000Data, repo_path
from taskgraph.train.data import LOADERS, Splits
from taskgraph.train.datasets.text_features import clip_chars, id_table, suffix, word_case, word_shape
from taskgraph.train.metrics import IGNORE

__all__ = ["load_conll2000", "read_sentences", "tag_sets", "resolve_root", "PAD", "UNK", "IGNORE"]

PAD, UNK = 0, 1

Sentence = list[tuple[str, str, str]]


def resolve_root(root: str) -> Path:
    """An absolute ``root`` as given; a relative one against the repository (``../shared/data/...``)."""
    return repo_path(root)


def _require(path: Path) -> Path:
    if not path.is_file():
        raise TrainError(
            f"data loader 'conll2000': missing {path}. Loaders never download: point `root:` of this data "
            "source (or --set data.NAME.root=/abs/path) at the folder holding train.txt and test.txt."
        )
    return path


@functools.lru_cache(maxsize=4)
def read_sentences(path: Path) -> tuple[tuple[tuple[str, str, str], ...], ...]:
    """Sentences of one file as ``(word, pos, chunk)`` triples; blank lines separate sentences."""
    sentences, current = [], []
    for lineno, line in enumerate(_require(path).read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            if current:
                sentences.append(tuple(current))
                current = []
            continue
        if len(parts) != 3:
            raise TrainError(f"{path}:{lineno}: expected 'word POS chunk', got {line!r}.")
        current.append((parts[0], parts[1], parts[2]))
    if current:
        sentences.append(tuple(current))
    return tuple(sentences)


def tag_sets(*files: tuple) -> tuple[list[str], list[str]]:
    """POS tags and chunk types, sorted, over all given files (labels are a property of the task)."""
    pos, types = set(), set()
    for sentences in files:
        for sentence in sentences:
            for _, p, c in sentence:
                pos.add(p)
                if c != "O":
                    types.add(c[2:])
    return sorted(pos), sorted(types)


def _chunk_id(tag: str, type_ids: dict[str, int]) -> int:
    if tag == "O":
        return 0
    prefix, kind = tag[:2], type_ids[tag[2:]]
    return 2 * kind + (1 if prefix == "B-" else 2)


def _tensors(sentences, vocab: dict[str, int], pos_ids: dict[str, int], type_ids: dict[str, int],
             lowercase: bool) -> dict[str, torch.Tensor]:
    n, longest = len(sentences), max(len(s) for s in sentences)
    x = torch.full((n, longest), PAD, dtype=torch.long)
    pos = torch.full((n, longest), IGNORE, dtype=torch.long)
    chunk = torch.full((n, longest), IGNORE, dtype=torch.long)
    for i, sentence in enumerate(sentences):
        x[i, : len(sentence)] = torch.tensor([vocab.get(w.lower() if lowercase else w, UNK) for w, _, _ in sentence])
        pos[i, : len(sentence)] = torch.tensor([pos_ids[p] for _, p, _ in sentence])
        chunk[i, : len(sentence)] = torch.tensor([_chunk_id(c, type_ids) for _, _, c in sentence])
    length = torch.tensor([len(s) for s in sentences], dtype=torch.long)
    return {"x": x, "pos": pos, "chunk": chunk, "length": length}


class _Features:
    """Id tables for the ``tokens`` field, built from the training sentences."""

    def __init__(self, train, vocab: dict[str, int], counts: Counter, config: Conll2000Data):
        self.vocab, self.counts, self.config = vocab, counts, config
        words = [w for s in train for w, _, _ in s]
        self.suffixes = id_table((suffix(w, config.suffix_length) for w in words), config.suffix_vocab)
        self.shapes = id_table((word_shape(w) for w in words), config.shape_vocab)
        self.chars = id_table((c for w in words for c in w), config.char_vocab) if config.chars else {}
        self._rows: dict[tuple[str, bool], list[int]] = {}  # one computation per distinct word

    def key(self, word: str) -> str:
        return word.lower() if self.config.lowercase else word

    def row(self, word: str, training: bool) -> list[int]:
        """One word's channels; ``rare`` is set on the training split only (word dropout's candidates)."""
        if (word, training) not in self._rows:
            self._rows[word, training] = self._row(word, training)
        return self._rows[word, training]

    def _row(self, word: str, training: bool) -> list[int]:
        cfg, key = self.config, self.key(word)
        chars = [self.chars.get(c, UNK) for c in clip_chars(word, cfg.chars)] if cfg.chars else []
        return [self.vocab.get(key, UNK), int(training and self.counts[key] == 1), word_case(word),
                self.suffixes.get(suffix(word, cfg.suffix_length), UNK), self.shapes.get(word_shape(word), UNK),
                *chars, *[PAD] * (cfg.chars - len(chars))]

    def tensor(self, sentences, training: bool) -> torch.Tensor:
        longest = max(len(s) for s in sentences)
        out = torch.zeros((len(sentences), longest, 5 + self.config.chars), dtype=torch.int32)
        for i, sentence in enumerate(sentences):
            out[i, : len(sentence)] = torch.tensor([self.row(w, training) for w, _, _ in sentence], dtype=torch.int32)
        return out


@LOADERS.register("conll2000")
def load_conll2000(config: Conll2000Data) -> Splits:
    """Train on train.txt (first ``max_sentences``), validate on test.txt (first ``max_val_sentences``)."""
    root = resolve_root(config.root)
    train_all, test_all = read_sentences(root / "train.txt"), read_sentences(root / "test.txt")
    pos_tags, chunk_types = tag_sets(train_all, test_all)
    train = train_all[: config.max_sentences] if config.max_sentences else train_all
    test = test_all[: config.max_val_sentences] if config.max_val_sentences else test_all
    counts = Counter(w.lower() if config.lowercase else w for s in train for w, _, _ in s)
    # Most frequent first, ties by the word itself, so ids are the same on every machine.
    words = sorted(counts, key=lambda w: (-counts[w], w))[: config.vocab_size - 2]
    vocab = {w: i + 2 for i, w in enumerate(words)}
    pos_ids = {p: i for i, p in enumerate(pos_tags)}
    type_ids = {t: i for i, t in enumerate(chunk_types)}
    train_fields = _tensors(train, vocab, pos_ids, type_ids, config.lowercase)
    val_fields = _tensors(test, vocab, pos_ids, type_ids, config.lowercase)
    if config.features:
        features = _Features(train, vocab, counts, config)
        train_fields["tokens"] = features.tensor(train, training=True)
        val_fields["tokens"] = features.tensor(test, training=False)
    return Splits(train=train_fields, val=val_fields)

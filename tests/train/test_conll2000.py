"""The CoNLL-2000 loader: ids, padding, train-only vocabulary, clear errors."""

from __future__ import annotations

import pytest
import torch

from taskgraph.errors import TrainError
from taskgraph.spec.data import Conll2000Data
from taskgraph.train.data import load_data
from taskgraph.train.datasets.conll2000 import IGNORE, PAD, UNK, read_sentences, resolve_root

ROOT = resolve_root("../shared/data/conll2000")
needs_data = pytest.mark.skipif(not (ROOT / "train.txt").exists(), reason="shared/data/conll2000 is not staged")


@needs_data
def test_tiny_slice_is_padded_and_labelled():
    splits = load_data(Conll2000Data(loader="conll2000", max_sentences=20, max_val_sentences=5, vocab_size=50))
    x, pos, chunk, length = (splits.train[k] for k in ("x", "pos", "chunk", "length"))
    assert x.shape == pos.shape == chunk.shape and len(length) == 20 and len(splits.val["x"]) == 5
    first = read_sentences(ROOT / "train.txt")[0]
    assert length[0] == len(first) and first[0] == ("Confidence", "NN", "B-NP")
    assert chunk[0, 0] % 2 == 1  # B- tags are odd in span_f1's encoding
    pad = x == PAD
    assert (pos[pad] == IGNORE).all() and (chunk[pad] == IGNORE).all()
    assert (pos[~pad] >= 0).all() and x.max() < 50 and (x == UNK).any()  # 48 words kept: the rest are unknown
    assert pos.max() < 44 and chunk.max() < 23


@needs_data
def test_vocabulary_comes_from_training_sentences_only():
    splits = load_data(Conll2000Data(loader="conll2000", max_sentences=5, max_val_sentences=50))
    val = splits.val["x"]
    unknown = (val == UNK).sum().item() / (val != PAD).sum().item()
    assert unknown > 0.3  # five training sentences know few test words


def test_missing_folder_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(TrainError, match=r"missing .*train\.txt.*root:"):
        load_data(Conll2000Data(loader="conll2000", root=str(tmp_path)))


@needs_data
def test_token_features_are_built_from_training_and_flag_rare_words_in_training_only():
    from taskgraph.spec.data import CASES
    from taskgraph.train.datasets.text_features import word_case
    from taskgraph.train.text_modules import CASE, CHARS, RARE, SHAPE, SUFFIX, WORD

    config = Conll2000Data(loader="conll2000", max_sentences=200, max_val_sentences=100, features=True,
                           lowercase=True, chars=8, suffix_vocab=300)
    splits = load_data(config)
    train, val = splits.train["tokens"], splits.val["tokens"]
    assert train.shape == (*splits.train["x"].shape, CHARS + 8)
    assert torch.equal(train[..., WORD].long(), splits.train["x"]) and torch.equal(val[..., WORD].long(), splits.val["x"])
    words = splits.train["x"] != PAD
    assert (train[..., RARE][words] == 1).any() and not (train[..., RARE][~words]).any()
    assert not val[..., RARE].any()  # word dropout never sees the validation split
    first = read_sentences(ROOT / "train.txt")[0][0][0]  # "Confidence": its case survives lowercasing
    assert train[0, 0, CASE] == word_case(first) == CASES.index("title")
    unseen = val[..., WORD] == UNK
    assert unseen.any() and (val[..., SHAPE][unseen] > UNK).float().mean() > 0.9  # unknown words keep a shape
    assert (val[..., SUFFIX][unseen] > UNK).float().mean() > 0.5 and train[..., SUFFIX].max() < 300
    assert (train[..., CHARS:][words] > PAD).any(dim=-1).all()  # every word has characters
    counts = {}
    for sentence in read_sentences(ROOT / "train.txt")[:200]:
        for w, _, _ in sentence:
            counts[w.lower()] = counts.get(w.lower(), 0) + 1
    rare_ids = set(train[..., WORD][train[..., RARE] == 1].tolist())
    vocab_rare = {w for w, c in counts.items() if c == 1}
    assert len(rare_ids) == len(vocab_rare)  # rare = seen exactly once in the training sentences


@needs_data
def test_without_features_the_fields_are_unchanged():
    splits = load_data(Conll2000Data(loader="conll2000", max_sentences=20, max_val_sentences=5))
    assert set(splits.train) == {"x", "pos", "chunk", "length"}

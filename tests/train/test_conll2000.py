"""The CoNLL-2000 loader: ids, padding, train-only vocabulary, clear errors."""

from __future__ import annotations

import pytest

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

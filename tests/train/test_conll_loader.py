"""The ``conll`` loader on small column files written here (CoNLL-2002/2003 style)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from pydantic import TypeAdapter

from taskgraph.errors import TrainError
from taskgraph.spec.components import DataConfig
from taskgraph.train.data import load_data
from taskgraph.train.datasets.conll import to_iob2
from taskgraph.train.metrics import IGNORE

TRAIN = """-DOCSTART- -X- O O

De Art O
Kleinwort N B-ORG
Benson N I-ORG
zegt V O

-DOCSTART- -X- O O
Jan N B-PER
zegt V O
"""
VAL = """Piet N B-PER
zegt V O

De Art O
Kleinwort N I-MISC
"""


def _config(**kw):
    return TypeAdapter(DataConfig).validate_python({"loader": "conll", **kw})


def _files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "train.txt").write_text(TRAIN)
    (tmp_path / "val.txt").write_text(VAL)
    return {"train": str(tmp_path / "train.txt"), "val": str(tmp_path / "val.txt")}


def test_docstart_and_blank_lines_split_sentences_and_labels_pad_with_ignore(tmp_path):
    splits = load_data(_config(**_files(tmp_path), labels={"pos": 1, "ner": -1}))
    train, val = splits.train, splits.val
    assert train["length"].tolist() == [4, 2] and val["length"].tolist() == [2, 2]
    # words by training frequency (zegt twice), ties by the word; 0 pad, 1 unknown
    assert train["x"].tolist() == [[4, 6, 3, 2], [5, 2, 0, 0]]
    assert val["x"].tolist() == [[1, 2], [4, 6]]
    # tags as given, sorted over every file: B-ORG B-PER I-MISC I-ORG O
    assert train["ner"].tolist() == [[4, 0, 3, 4], [1, 4, IGNORE, IGNORE]]
    assert val["ner"].tolist() == [[1, 4], [4, 2]]
    assert train["pos"].tolist() == [[0, 1, 1, 2], [1, 2, IGNORE, IGNORE]]


def test_span_encoding_converts_iob1_and_bioes():
    assert to_iob2(["I-PER", "I-PER", "B-PER", "O", "I-LOC"], "f") == ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]
    assert to_iob2(["S-PER", "B-ORG", "E-ORG", "O"], "f") == ["B-PER", "B-ORG", "I-ORG", "O"]
    assert to_iob2(["B-X", "I-X", "O"], "f") == ["B-X", "I-X", "O"]
    with pytest.raises(TrainError, match="tag 'PER' is not O or B-/I-/E-/S-<type>"):
        to_iob2(["PER"], "f")


def test_span_labels_follow_span_f1_encoding(tmp_path):
    splits = load_data(_config(**_files(tmp_path), labels={"ner": {"column": 2, "span": True}}))
    # types MISC=0, ORG=1, PER=2: B-k = 2k+1, I-k = 2k+2; val's lone I-MISC becomes B-MISC
    assert splits.train["ner"].tolist() == [[0, 3, 4, 0], [5, 0, IGNORE, IGNORE]]
    assert splits.val["ner"].tolist() == [[5, 0], [0, 1]]


def test_vocabulary_options_features_and_input_columns(tmp_path):
    files = _files(tmp_path)
    splits = load_data(_config(**files, labels={"ner": 2}, inputs={"pos_in": 1}, min_count=2, lowercase=True,
                               features=True, chars=4))
    assert splits.train["x"].tolist() == [[1, 1, 1, 2], [1, 2, 0, 0]]  # only 'zegt' seen twice
    assert splits.train["pos_in"].tolist() == [[4, 2, 2, 3], [2, 3, 0, 0]]  # N, V, Art by frequency
    tokens = splits.train["tokens"]
    assert tokens.shape == (2, 4, 9) and tokens.dtype == torch.int32
    assert tokens[0, 1, 1].item() == 1 and tokens[0, 3, 1].item() == 0  # rare flag: seen once / twice
    assert splits.val["tokens"][:, :, 1].sum().item() == 0  # rare only on training


def test_fraction_split_is_seeded_and_errors_name_file_and_line(tmp_path):
    files = _files(tmp_path)
    a = load_data(_config(path=files["train"], labels={"ner": 2}, val_fraction=0.5, seed=1))
    b = load_data(_config(path=files["train"], labels={"ner": 2}, val_fraction=0.5, seed=1))
    assert torch.equal(a.train["x"], b.train["x"]) and len(a.train["x"]) == len(a.val["x"]) == 1
    with pytest.raises(TrainError, match="`val: .*missing.txt` does not exist"):
        load_data(_config(train=files["train"], val=str(tmp_path / "missing.txt"), labels={"ner": 2}))
    short = tmp_path / "short.txt"
    short.write_text("Jan N B-PER\nzegt V\n")
    with pytest.raises(TrainError, match=r"short.txt:2: 2 column\(s\) in 'zegt V', but labels.ner reads column 2"):
        load_data(_config(path=str(short), labels={"ner": 2}))


CONLL2000 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "conll2000"


def _digest(splits) -> str:
    digest = hashlib.sha256()
    for split in ("train", "val"):
        for name, tensor in getattr(splits, split).items():
            digest.update(f"{split}.{name}.{tensor.dtype}.{tuple(tensor.shape)}".encode())
            digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


# Digests of the conll2000 loader's tensors before it became a preset of `conll` (its own reader,
# vocabulary and feature code, commit 939932a): the preset must reproduce them byte for byte.
BEFORE_PRESET = [
    ({"max_sentences": 300, "max_val_sentences": 100, "vocab_size": 500},
     "61e9e3367bb1e66c57ff43de6513a6f2ff255d2cbd32cbba9b1f46f5bd8cf3f1"),
    ({"max_sentences": 200, "max_val_sentences": 80, "features": True, "lowercase": True, "chars": 6,
      "suffix_vocab": 300, "suffix_length": 2, "shape_vocab": 40, "char_vocab": 30},
     "e1b5eb8505ddf0ff4ad43d190a20c33c4ebbaae047de040057661395241b42dd"),
]


@pytest.mark.skipif(not (CONLL2000 / "train.txt").exists(), reason="shared/data/conll2000 is not staged")
@pytest.mark.parametrize("options,before", BEFORE_PRESET)
def test_conll2000_preset_is_byte_identical_to_the_loader_it_replaced(options, before):
    from taskgraph.spec.data import Conll2000Data

    preset = load_data(Conll2000Data(loader="conll2000", root=str(CONLL2000), **options))
    generic = load_data(_config(train=str(CONLL2000 / "train.txt"), val=str(CONLL2000 / "test.txt"),
                                labels={"pos": 1, "chunk": {"column": 2, "span": True}}, **options))
    assert list(preset.train) == list(generic.train)
    assert _digest(preset) == _digest(generic) == before

"""CoNLL-2000 chunking data (WSJ, ``word POS chunk`` per line): a preset of the generic ``conll`` loader.

Fields: ``x`` word ids (0 = padding, 1 = unknown; vocabulary from the training file only),
``pos`` POS ids, ``chunk`` IOB chunk ids in ``span_f1``'s encoding (O = 0, B-k = 2k+1,
I-k = 2k+2, chunk types sorted by name), ``length`` tokens per sentence. Label padding is
-100, torch's ``ignore_index``, so losses and metrics skip it. Validation is the test file.
With ``features: true`` also ``tokens`` (word, rare, case, suffix, shape and character ids per
word; ``taskgraph.spec.data.TOKEN_CHANNELS``), the input of a ``token_embedding`` module.
``tests/train/test_conll_loader.py`` checks this preset and the generic loader give identical tensors.
"""

from __future__ import annotations

import functools
from pathlib import Path

from taskgraph.errors import TrainError
from taskgraph.spec.data import Conll2000Data, data_root, repo_path
from taskgraph.spec.filedata import ConllData
from taskgraph.train.data import LOADERS, Splits
from taskgraph.train.datasets.conll import PAD, UNK, load_conll, read_conll
from taskgraph.train.metrics import IGNORE

__all__ = ["load_conll2000", "read_sentences", "resolve_root", "as_conll", "PAD", "UNK", "IGNORE"]

#: The options conll2000 shares with the generic loader, passed on unchanged.
_SHARED = ("max_sentences", "max_val_sentences", "vocab_size", "lowercase", "features", "suffix_length",
           "suffix_vocab", "shape_vocab", "chars", "char_vocab")


def resolve_root(root: str | None) -> Path:
    """An absolute ``root`` as given; a relative one against the repository (``../shared/data/...``);
    none: the data search path (``spec.data.data_root``)."""
    return repo_path(root) if root else data_root("conll2000", None)


def _require(path: Path) -> Path:
    if not path.is_file():
        raise TrainError(
            f"data loader 'conll2000': missing {path}. Loaders never download: run `taskgraph data fetch conll2000`, "
            "or point `root:` of this data source (or --set data.NAME.root=/abs/path) at the folder holding "
            "train.txt and test.txt."
        )
    return path


@functools.lru_cache(maxsize=4)
def read_sentences(path: Path) -> tuple[tuple[tuple[str, str, str], ...], ...]:
    """Sentences of one file as ``(word, pos, chunk)`` rows; blank lines separate sentences."""
    return read_conll(_require(path), {"pos": 1, "chunk": 2})  # type: ignore[return-value]


def as_conll(config: Conll2000Data) -> ConllData:
    """The generic loader's config that reads CoNLL-2000: train.txt, test.txt, POS in column 1 and
    IOB chunks in column 2 (span_f1's encoding)."""
    root = resolve_root(config.root)
    train = str(_require(root / "train.txt"))
    test = str(_require(root / "test.txt"))
    files = {"val": test} if config.official_test == "val" else {"test": test, "val_fraction": config.train_val_fraction}
    return ConllData(loader="conll", train=train, **files,
                     labels=({"field": "pos", "column": 1}, {"field": "chunk", "column": 2, "span": True}),
                     **{name: getattr(config, name) for name in _SHARED})


@LOADERS.register("conll2000")
def load_conll2000(config: Conll2000Data) -> Splits:
    """Train on train.txt (first ``max_sentences``), validate on test.txt (first ``max_val_sentences``), or
    with ``official_test: test`` validate on a share of train.txt and score test.txt once."""
    return load_conll(as_conll(config))

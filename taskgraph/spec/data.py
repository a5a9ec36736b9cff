"""Data-source configs (``data: {name: {loader: synthetic_shapes, ...}}``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import Field

from taskgraph.spec.base import CUSTOM_PATTERN, Frozen, Open

_REPO = Path(__file__).resolve().parents[2]
#: ``<repo>/../shared/data``: where the staged data sets sit next to the repository checkout.
DEFAULT_DATA = _REPO.parent / "shared" / "data"


def fetch_home() -> Path:
    """Where ``taskgraph data fetch`` puts data sets: ``$TASKGRAPH_DATA``, else the user cache folder
    (``~/.cache/taskgraph/data`` on Linux; platformdirs picks the platform's own elsewhere)."""
    env = os.environ.get("TASKGRAPH_DATA")
    if env:
        return Path(env).expanduser()
    import platformdirs  # small, torch-free; only when no variable says where

    return Path(platformdirs.user_cache_dir("taskgraph")) / "data"


def search_path(name: str) -> list[Path]:
    """Where data set ``name`` is looked for when no ``root`` is given, in order: ``$TASKGRAPH_DATA``
    alone when it is set (an explicit choice); else the user cache folder ``data fetch`` fills, then
    the staged copy beside the repository (``<repo>/../shared/data``)."""
    if os.environ.get("TASKGRAPH_DATA"):
        return [fetch_home() / name]
    return list(dict.fromkeys([fetch_home() / name, DEFAULT_DATA / name]))


#: One look for data on disk: ("dir", folders looked at in order, the one taken) from ``data_root``,
#: ("exists", (path,), the path or "" when absent) from a user loader's argument (``CustomData``).
Probe = tuple[str, tuple[str, ...], str]
_PROBES: list[Probe] | None = None


@contextmanager
def probes_made() -> Iterator[list[Probe]]:
    """Collect the looks for data made meanwhile: a no-change rerun replays a kept record
    (``taskgraph.rerun``) only while each would find the same (no data set folder or file named by a
    loader's argument appeared or went), since what they find decides the paths a cache key hashes."""
    global _PROBES
    found: list[Probe] = []
    outer, _PROBES = _PROBES, found
    try:
        yield found
    finally:
        _PROBES = outer


def data_root(name: str, root: str | None) -> Path:
    """The folder of data set ``name``: the configured ``root``, else the first folder of
    ``search_path`` that exists (the fetch folder if none does, so errors point where fetch writes)."""
    if root:
        return Path(root).expanduser()
    candidates = search_path(name)
    taken = next((path for path in candidates if path.is_dir()), candidates[0])
    if _PROBES is not None:
        _PROBES.append(("dir", tuple(str(path) for path in candidates), str(taken)))
    return taken


def repo_path(path: str) -> Path:
    """An absolute ``path`` as given; a relative one against the repository (``../shared/data/...``)."""
    out = Path(path).expanduser()
    return out if out.is_absolute() else (_REPO / out).resolve()


class _DataBase(Frozen):
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="Share of examples held out for validation.")
    test_fraction: float = Field(
        0.0, ge=0.0, lt=1.0, description="Share of examples held out as a test split, scored once with the "
        "weights a node keeps (loaders that split by fraction; 0: no test split).")

    @property
    def feature_dim(self) -> int | None:
        """Width of the input features when known from the config alone (for shape checks)."""
        return None

    def field_widths(self) -> dict[str, int]:
        """Width of each feature field the config alone fixes, torch-free (``{"x": 64}``): ``validate``
        checks the first module's ``in:`` against the field a task reads, before anything trains."""
        return {} if self.feature_dim is None else {"x": self.feature_dim}

    def reads(self) -> tuple[Path, ...]:
        """The files or folders the loader reads: the cache key hashes them. None for generated data."""
        return ()


class SyntheticShapesData(_DataBase):
    """Offline synthetic classification data: clusters on a curved low-dimensional manifold.

    Fields: ``x`` (float, ``dim`` wide), ``label`` (``classes`` classes), ``parity`` (label % 2,
    float 0/1), ``coarse`` (label < classes/2). Hard enough that a learned encoder transfers.
    """

    loader: Literal["synthetic_shapes"]
    n: int = Field(4000, ge=10)
    dim: int = Field(64, ge=2)
    classes: int = Field(10, ge=2)
    latent: int = Field(8, ge=2)
    noise: float = Field(0.7, ge=0.0)
    seed: int = 0

    @property
    def feature_dim(self) -> int | None:
        return self.dim


class CustomData(Open):
    """User code: ``loader: "mypkg.data:load"`` called as ``fn(**kwargs)``, returning the splits.

    The cache key covers what the loader reads: every argument (at any depth) that is a string or
    a list of strings naming an existing file or folder is fingerprinted by content, whatever its
    name. Files the arguments do not name (a fixed file next to the code, a folder the loader
    builds a path into) are declared in ``reads_files``, which is hashed but not passed on.
    """

    loader: str = Field(pattern=CUSTOM_PATTERN)
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    test_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="Test share when the loader returns one dict.")
    reads_files: tuple[str, ...] = Field(
        (), description="More files or folders the loader reads: hashed into the cache key, not passed to the loader."
    )

    @property
    def feature_dim(self) -> int | None:
        return None

    def field_widths(self) -> dict[str, int]:
        return {}  # only the user's code knows

    def reads(self) -> tuple[Path, ...]:
        """Every path-like argument (names an existing file or folder), then ``reads_files``."""
        found: list[Path] = []
        for text in _strings(self.model_extra or {}):
            path = _existing_path(text)
            if path is not None:
                found.append(path)
        found += [Path(p).expanduser() for p in self.reads_files]
        return tuple(dict.fromkeys(found))


def _strings(value: object) -> list[str]:
    """The strings in a loader's arguments, nested lists and mappings included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def _existing_path(text: str) -> Path | None:
    """``text`` as a path when it names an existing file or folder. Strings with no letter or digit
    (``.``, ``/``, ``~``) are separators and the like, not data: hashing ``/`` would read the disk."""
    if not any(c.isalnum() for c in text) or "\0" in text or len(text) > 4096:
        return None
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # ~user of no such user
        return None
    try:
        found = path if path.exists() else None
    except (OSError, ValueError):
        found = None
    if _PROBES is not None:
        _PROBES.append(("exists", (str(path),), "" if found is None else str(path)))
    return found


# --------------------------------------------------------------------------- real data sets
# Loaders never download: ``root`` is the folder of the data set; when omitted it is
# ``$TASKGRAPH_DATA/<name>`` if that variable is set, else ``<repo>/../shared/data/<name>``
# (``data_root``). The ``max_*`` options take small slices for tests.


class _RealDataBase(_DataBase):
    root: str | None = Field(None, description="Folder of the data set (default: $TASKGRAPH_DATA/<name> or shared/data/<name>).")

    def reads(self) -> tuple[Path, ...]:
        return (data_root(self.loader, self.root),)  # type: ignore[attr-defined]


class TimitSampleData(_RealDataBase):
    """NLTK's TIMIT sample, one example per 10 ms frame: log-mel features with ±context frames.

    Fields: ``x`` (``(2*context+1)*n_mels`` wide, per-utterance mean/variance normalised),
    ``phone`` (61 phones folded to the standard 39, Lee & Hon 1989; frames of the deleted
    glottal stop ``q`` are dropped), ``phone61``, ``phone_boundary`` and ``word_boundary``
    (float 0/1: a boundary lies within ±``boundary_tolerance`` frames), ``speaker``, ``female``.
    The validation split holds out whole speakers (``val_fraction`` of them, both genders).
    """

    loader: Literal["timit_sample"]
    val_fraction: float = Field(0.25, gt=0.0, lt=1.0, description="Share of *speakers* held out for validation.")
    n_mels: int = Field(40, ge=4)
    context: int = Field(5, ge=0, description="Frames stacked on each side of the centre frame.")
    boundary_tolerance: int = Field(1, ge=0, description="A frame is a boundary frame within ±this many frames.")
    max_utterances: int | None = Field(None, ge=2, description="Keep this many utterances, spread over speakers (tests).")
    seed: int = 0

    @property
    def feature_dim(self) -> int | None:
        return (2 * self.context + 1) * self.n_mels


class FsddData(_RealDataBase):
    """Free Spoken Digit Dataset: one example per clip, a log-mel grid resampled to ``frames`` frames.

    Fields: ``x`` (``n_mels * frames`` wide, standardised per mel band on the training clips),
    ``digit`` (10 classes), ``speaker`` (6 classes). Validation is the official test split
    (recording indices 0-4); ``max_index`` keeps only indices below it (tests).
    """

    loader: Literal["fsdd"]
    n_mels: int = Field(40, ge=4)
    frames: int = Field(32, ge=2, description="Every clip's log-mel is resampled to this many frames.")
    max_index: int = Field(50, ge=6, le=50, description="Keep recordings with index < this (0-4 are validation).")

    @property
    def feature_dim(self) -> int | None:
        return self.n_mels * self.frames


class MnistData(_RealDataBase):
    """MNIST digits from the raw IDX files: ``x`` (784 pixels, standardised), ``digit``, ``parity``, ``ge5``.

    Validation is the official 10,000-image test set; ``max_train``/``max_val`` take the first N (tests).
    """

    loader: Literal["mnist"]
    max_train: int | None = Field(None, ge=1)
    max_val: int | None = Field(None, ge=1)
    official_test: Literal["val", "test"] = Field(
        "val", description="The 10,000 test images as the validation split (val) or as a test split scored once "
        "with the kept weights (test; validation is then `val_fraction` of the training images).")

    @property
    def feature_dim(self) -> int | None:
        return 784


class DigitPairsData(_RealDataBase):
    """Cross-modal pairs: each FSDD clip next to an MNIST image, of the same digit ``same_fraction`` of the time.

    Fields: ``x`` = ``[audio | image]`` (``n_mels*frames + 784`` wide; modules pick their part with
    ``columns``), ``same`` (float 0/1), ``audio_digit``, ``image_digit``. FSDD's official split
    decides train/val; train images come from MNIST train, validation images from MNIST test.
    ``root`` is the folder that holds ``fsdd/`` and ``mnist/``.
    """

    loader: Literal["digit_pairs"]
    n_mels: int = Field(40, ge=4)
    frames: int = Field(32, ge=2)
    max_index: int = Field(50, ge=6, le=50)
    pairs_per_clip: int = Field(2, ge=1, description="Images paired with each clip (more pairs, same audio).")
    same_fraction: float = Field(
        0.5, ge=0.0, le=1.0,
        description="Share of pairs showing the same digit: 0.5 for a balanced `same` task, 1.0 for "
        "positive pairs only (contrastive alignment, where the other pairs of a batch are the negatives).",
    )
    seed: int = 0

    @property
    def feature_dim(self) -> int | None:
        return self.n_mels * self.frames + 784

    def reads(self) -> tuple[Path, ...]:
        """The FSDD and MNIST folders (``root/fsdd``, ``root/mnist``; by default each data set's own)."""
        return tuple(data_root(name, str(Path(self.root) / name) if self.root else None) for name in ("fsdd", "mnist"))


#: Channels of the CoNLL-2000 ``tokens`` field, in order; ``chars`` more channels follow (char ids).
TOKEN_CHANNELS = ("word", "rare", "case", "suffix", "shape")
#: Word case classes of the ``case`` channel (0 is padding); see ``taskgraph.train.datasets.text_features``.
CASES = ("pad", "lower", "upper", "title", "mixed", "digits", "alnum", "other")


class TokenOptions(Frozen):
    """Word vocabulary and ``tokens`` features, the same for every token-file loader (conll, conll2000)."""

    vocab_size: int = Field(20000, ge=3, description="Word ids kept: the most frequent training words, plus pad and unknown.")
    lowercase: bool = Field(False, description="Look words up lowercased (the `case` channel keeps what is lost).")
    max_sentences: int | None = Field(None, ge=1, description="Use only the first N training sentences (tests).")
    max_val_sentences: int | None = Field(None, ge=1, description="Use only the first N validation (test) sentences.")
    features: bool = Field(False, description="Add the `tokens` field (word, rare, case, suffix, shape, chars).")
    suffix_length: int = Field(3, ge=1, le=8, description="Suffix channel: the last N letters, lowercased.")
    suffix_vocab: int = Field(2000, ge=3, description="Suffix ids kept (most frequent in training), plus pad and unknown.")
    shape_vocab: int = Field(500, ge=3, description="Word-shape ids kept, plus pad and unknown.")
    chars: int = Field(0, ge=0, le=64, description="Characters per word in `tokens` (0: none); longer words keep both ends.")
    char_vocab: int = Field(100, ge=3, description="Character ids kept, plus pad and unknown.")


class Conll2000Data(TokenOptions):
    """CoNLL-2000 WSJ text with POS and chunk tags: padded word ids ``x``, ``pos``, ``chunk``, ``length``.

    Validation is the official test file (CoNLL-2000 has no development set). Words are mapped
    with a train-only vocabulary (0 = padding, 1 = unknown); chunk tags are IOB ids in
    ``span_f1``'s encoding (O = 0, B-k = 2k+1, I-k = 2k+2); padding labels are -100.

    ``features: true`` adds ``tokens`` ``(sentences, time, 5 + chars)``, the input of a
    ``token_embedding`` module: per word its id (as ``x``), a rare flag (1 where the word occurs
    once in the training sentences, training split only: word dropout's candidates), its case
    class, suffix id, word-shape id (``Xxxx`` -> ``Xx``, ``1,000`` -> ``d,d``) and ``chars``
    character ids. Suffix, shape and character ids come from the training sentences too
    (0 = padding, 1 = unknown), so a word never seen in training still has its spelling.
    """

    loader: Literal["conll2000"]
    root: str | None = Field(
        None,
        description="Folder with train.txt and test.txt; a relative path is resolved against the repository "
        "(default: the data search path, as the other example data sets: $TASKGRAPH_DATA/conll2000, else the "
        "folder `taskgraph data fetch` fills, else ../shared/data/conll2000).",
    )
    official_test: Literal["val", "test"] = Field(
        "val", description="The official test file as the validation split (val, as published results use it) or "
        "as a test split scored once with the kept weights (test; validation is then `train_val_fraction` of "
        "train.txt).")
    train_val_fraction: float = Field(
        0.1, gt=0.0, lt=1.0, description="With official_test: test, the share of train.txt's sentences held out "
        "for validation (seeded).")

    @property
    def feature_dim(self) -> int | None:
        return None  # word ids, not features: the first module is an embedding

    def field_widths(self) -> dict[str, int]:
        return {}

    def reads(self) -> tuple[Path, ...]:
        return (repo_path(self.root) if self.root else data_root("conll2000", None),)

"""Data-source configs (``data: {name: {loader: synthetic_shapes, ...}}``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from taskgraph.spec.base import CUSTOM_PATTERN, Frozen, Open


class _DataBase(Frozen):
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="Share of examples held out for validation.")

    @property
    def feature_dim(self) -> int | None:
        """Width of the input features when known from the config alone (for shape checks)."""
        return None


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
    """User code: ``loader: "mypkg.data:load"`` called as ``fn(**kwargs)``, returning the splits."""

    loader: str = Field(pattern=CUSTOM_PATTERN)
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)

    @property
    def feature_dim(self) -> int | None:
        return None


class Conll2000Data(Frozen):
    """CoNLL-2000 WSJ text with POS and chunk tags: padded word ids ``x``, ``pos``, ``chunk``, ``length``.

    Validation is the official test file (CoNLL-2000 has no development set). Words are mapped
    with a train-only vocabulary (0 = padding, 1 = unknown); chunk tags are IOB ids in
    ``span_f1``'s encoding (O = 0, B-k = 2k+1, I-k = 2k+2); padding labels are -100.
    """

    loader: Literal["conll2000"]
    root: str = Field(
        "../shared/data/conll2000",
        description="Folder with train.txt and test.txt; a relative path is resolved against the repository.",
    )
    max_sentences: int | None = Field(None, ge=1, description="Use only the first N training sentences (tests).")
    max_val_sentences: int | None = Field(None, ge=1, description="Use only the first N test sentences.")
    vocab_size: int = Field(20000, ge=3, description="Ids kept: the most frequent training words, plus pad and unknown.")
    lowercase: bool = False

    @property
    def feature_dim(self) -> int | None:
        return None  # word ids, not features: the first module is an embedding

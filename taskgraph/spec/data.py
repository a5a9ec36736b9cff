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

"""MNIST from the raw gzipped IDX files; validation is the official test set."""

from __future__ import annotations

import functools
import gzip
import struct

import numpy as np
import torch

from taskgraph.errors import TrainError
from taskgraph.spec.data import MnistData
from taskgraph.train.datasets.files import fraction_indices
from taskgraph.train.data import LOADERS, Splits
from taskgraph.train.datasets.paths import data_root, require

__all__ = ["mnist", "read_mnist"]

#: Pixel mean and std of the MNIST training set, the usual standardisation.
_MEAN, _STD = 0.1307, 0.3081


def _idx(path, magic: int) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    got, n = struct.unpack(">II", data[:8])
    if got != magic:
        raise TrainError(f"{path}: not an IDX file (magic {got}, expected {magic}).")
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows * cols)
    return np.frombuffer(data, dtype=np.uint8, offset=8)


@functools.lru_cache(maxsize=4)
def read_mnist(root: str, part: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(standardised pixels ``(n, 784)``, labels) of ``train`` or ``t10k``; cached per process."""
    folder = require(data_root("mnist", root or None), "mnist")
    images = _idx(require(folder / f"{part}-images-idx3-ubyte.gz", "mnist"), 2051)
    labels = _idx(require(folder / f"{part}-labels-idx1-ubyte.gz", "mnist"), 2049)
    x = (torch.from_numpy(images.astype(np.float32)) / 255.0 - _MEAN) / _STD
    return x, torch.from_numpy(labels.astype(np.int64))


def _fields(x: torch.Tensor, y: torch.Tensor, limit: int | None) -> dict[str, torch.Tensor]:
    x, y = x[:limit], y[:limit]
    return {"x": x, "digit": y, "parity": (y % 2).float(), "ge5": (y >= 5).float()}


@LOADERS.register("mnist")
def mnist(config: MnistData) -> Splits:
    train_x, train_y = read_mnist(config.root or "", "train")
    test_x, test_y = read_mnist(config.root or "", "t10k")
    if config.official_test == "val":
        return Splits(train=_fields(train_x, train_y, config.max_train), val=_fields(test_x, test_y, config.max_val))
    train_idx, val_idx = fraction_indices(len(train_x), config.val_fraction, 0)
    return Splits(train=_fields(train_x[train_idx], train_y[train_idx], config.max_train),
                  val=_fields(train_x[val_idx], train_y[val_idx], config.max_val),
                  test=_fields(test_x, test_y, None))

"""Data loaders a graph file names (``loader: synthetic_shapes``): each returns train/val splits.

A split is a dict of tensors with equal first dimension (``x``, ``label``, ...), so a task
picks its input and target by name. Loaded data is cached per worker process: several nodes on
one worker reading the same source pay for it once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from taskgraph.errors import TrainError
from taskgraph.spec.data import SyntheticShapesData
from taskgraph.train.registry import Registry
from taskgraph.train.shapes import as_field, check_lengths

__all__ = ["Splits", "LOADERS", "load_data", "subsample", "trim_padding", "evaluate_batches"]

Split = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Splits:
    """Train and validation examples of one data source, and test examples where the source has them.

    ``test`` is scored once, with the weights the node keeps (``train.select``), and reported apart
    from validation: validation chooses (epochs, models), test only measures.
    """

    train: Split
    val: Split
    test: Split | None = None

    def __post_init__(self) -> None:
        for name, split in (("train", self.train), ("val", self.val), ("test", self.test)):
            if split is not None:
                check_lengths(split, f"data split '{name}'")

    def split(self, name: str, where: str) -> Split:
        """One split by name; asking for ``test`` of a source without one is an error saying how to add it."""
        found = getattr(self, name, None) if name in ("train", "val", "test") else None
        if found is None:
            raise TrainError(f"{where}: the data has no '{name}' split. Splits: "
                             f"{', '.join(s for s in ('train', 'val', 'test') if getattr(self, s) is not None)}"
                             + (" (a generic loader takes `test: FILE`, or `test_value` with a split column; "
                                "a user loader returns a 'test' split)." if name == "test" else "."))
        return found

    def field(self, split: str, name: str, where: str) -> torch.Tensor:
        fields = self.split(split, where)
        if name not in fields:
            raise TrainError(f"{where}: the data has no field '{name}'. Fields: {', '.join(sorted(fields))}.")
        return fields[name]


Loader = Callable[[Any], Splits]
LOADERS: Registry[Loader] = Registry("data loader")


def split_by_fraction(fields: Split, val_fraction: float, seed: int, test_fraction: float = 0.0) -> Splits:
    """A seeded random train/val(/test) split, the same on every machine. Validation takes the first
    rows of the permutation and test the next, so ``test_fraction: 0`` splits exactly as before."""
    n = len(next(iter(fields.values())))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(n * val_fraction)))
    n_test = int(round(n * test_fraction)) if test_fraction > 0 else 0
    val_idx, test_idx, train_idx = order[:n_val], order[n_val : n_val + n_test], order[n_val + n_test :]
    return Splits(
        train={k: v[train_idx] for k, v in fields.items()},
        val={k: v[val_idx] for k, v in fields.items()},
        test={k: v[test_idx] for k, v in fields.items()} if n_test else None,
    )


@LOADERS.register("synthetic_shapes")
def synthetic_shapes(config: SyntheticShapesData) -> Splits:
    """Class clusters in a small latent space, pushed through a fixed random nonlinear map.

    The nonlinear map is what makes an encoder worth learning: the classes are not linearly
    separable in ``x``, so a task with few labels gains from an encoder trained on many.
    """
    g = torch.Generator().manual_seed(config.seed)
    centers = torch.randn(config.classes, config.latent, generator=g) * 2.0
    label = torch.randint(0, config.classes, (config.n,), generator=g)
    z = centers[label] + config.noise * torch.randn(config.n, config.latent, generator=g)
    w1 = torch.randn(config.latent, 4 * config.latent, generator=g) / config.latent**0.5
    w2 = torch.randn(4 * config.latent, config.dim, generator=g) / (4 * config.latent) ** 0.5
    x = torch.tanh(torch.sin(z @ w1 * 1.5) @ w2 * 2.0)
    x = x + 0.1 * torch.randn(x.shape, generator=g)
    fields = {
        "x": x.float(),
        "label": label,
        "parity": (label % 2).float(),
        "coarse": (label < config.classes // 2).float(),
    }
    return split_by_fraction(fields, config.val_fraction, config.seed, config.test_fraction)


def load_data(config: Any, cache: str | None = None) -> Splits:
    """The splits of one data source, cached per process by its config (frozen, so it hashes) *and*
    the content of the files it reads (the cache key's fingerprint, memoised on size and mtime): a
    worker that outlives a run (one Ray session, several runs) never serves data from before a change.

    ``cache``: a folder shared by the run's workers (``<run-dir>/.cache/data``): the source is loaded
    once there and read back by every other worker and ablation variant (``train.datacache``)."""
    from taskgraph.plan.keys import data_fingerprint

    return _load_data(config, data_fingerprint(config), cache)


@functools.lru_cache(maxsize=8)
def _load_data(config: Any, fingerprint: str, cache: str | None = None) -> Splits:
    if cache is None:
        return _call_loader(config)
    from taskgraph.train.datacache import cached_splits

    return cached_splits(config, fingerprint, cache, lambda: _call_loader(config))


def _call_loader(config: Any) -> Splits:
    loader = LOADERS.get(config.loader)
    if config.loader in LOADERS:
        return loader(config)
    result = loader(**(config.model_extra or {}))
    if isinstance(result, Splits):
        return result
    where = f"loader '{config.loader}'"
    if isinstance(result, dict) and {"train", "val"} <= set(result):
        return Splits(train=_fields(result["train"], f"{where}, split 'train'"),
                      val=_fields(result["val"], f"{where}, split 'val'"),
                      test=_fields(result["test"], f"{where}, split 'test'") if result.get("test") is not None else None)
    if isinstance(result, dict):
        fields = _fields(result, where)
        check_lengths(fields, where)  # before splitting: indexing a short field fails in torch's words
        return split_by_fraction(fields, config.val_fraction, 0, config.test_fraction)
    raise TrainError(f"loader '{config.loader}' must return Splits or a dict of tensors, got {type(result).__name__}.")


def _fields(split: Any, where: str) -> Split:
    """A user loader's split as tensors (numpy arrays and lists convert; ragged rows are refused in words)."""
    if not isinstance(split, dict):
        raise TrainError(f"{where}: expected a dict of field name -> tensor, got {type(split).__name__}.")
    return {name: as_field(value, name, where) for name, value in split.items()}


def subsample(split: Split, fraction: float, seed: int) -> Split:
    """A seeded share of the training examples, for low-label runs; at least one example."""
    if fraction >= 1.0:
        return split
    n = len(next(iter(split.values())))
    keep = max(1, int(round(n * fraction)))
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:keep]
    return {k: v[idx] for k, v in split.items()}


def trim_padding(batch: Split) -> Split:
    """Cut padded sequence fields to the longest sequence of the batch (its ``length`` field), for speed:
    a batch of short sentences does not pay for the longest sentence of the data set."""
    if "length" not in batch:
        return batch
    longest = int(batch["length"].max())
    full = next((v.shape[1] for k, v in batch.items() if k != "length" and v.dim() >= 2), None)
    if full is None or longest >= full:
        return batch
    return {k: (v[:, :longest] if k != "length" and v.dim() >= 2 and v.shape[1] == full else v) for k, v in batch.items()}


#: Token slots (rows x padded width) per evaluation batch of sequence data: a batch of long sentences
#: holds fewer rows, so one 859-token sentence shares its batch with few others.
EVAL_TOKENS = 1 << 16


def evaluate_batches(split: Split, keys: list[str], batch_size: int,
                     forward: Callable[[Split], dict[str, torch.Tensor]],
                     tokens: int | None = None) -> dict[str, torch.Tensor]:
    """``forward``'s outputs on a whole split, batch by batch, in the split's order.

    Sequence data (a ``length`` field) is evaluated shortest first, each batch cut to its longest
    sequence and holding at most ``tokens`` token slots (default ``EVAL_TOKENS``): one 859-token
    sentence then costs one narrow-rowed wide batch, not a split padded to 859 in every batch.
    Outputs of a cut batch are padded back to the split's width with zeros along the time axis
    (positions past a sentence's length carry no label, so no loss or metric reads them), which
    lets the batches concatenate.
    """
    fields = {k: split[k] for k in dict.fromkeys([*keys, "length"]) if k in split}
    n = len(next(iter(fields.values())))
    lengths = fields.get("length")
    if lengths is None:
        order, bounds = None, [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    else:
        order = torch.argsort(lengths, stable=True)
        bounds = _length_bounds(lengths[order].tolist(), batch_size, tokens or EVAL_TOKENS)
    pieces: dict[str, list[torch.Tensor]] = {}
    for start, stop in bounds:
        idx = order[start:stop] if order is not None else slice(start, stop)
        batch = {k: v[idx] for k, v in fields.items()}
        cut = trim_padding(batch)
        full, width = _time_width(batch), _time_width(cut)
        for name, out in forward(cut).items():
            pieces.setdefault(name, []).append(_pad_time(out, width, full))
    outputs = {name: torch.cat(parts) for name, parts in pieces.items()}
    if order is None:
        return outputs
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(n, device=order.device)
    return {name: out[inverse] for name, out in outputs.items()}


def _length_bounds(sorted_lengths: list[int], rows: int, tokens: int) -> list[tuple[int, int]]:
    """Batches over lengths sorted ascending: at most ``rows`` rows and ``tokens`` slots each, at least one row."""
    bounds, start = [], 0
    for i, length in enumerate(sorted_lengths):
        if i > start and (i - start >= rows or (i - start + 1) * max(int(length), 1) > tokens):
            bounds.append((start, i))
            start = i
    if sorted_lengths:
        bounds.append((start, len(sorted_lengths)))
    return bounds


def _time_width(batch: Split) -> int | None:
    """The padded length of a batch's sequence fields (``trim_padding``'s notion), None without one."""
    if "length" not in batch:
        return None
    return next((v.shape[1] for k, v in batch.items() if k != "length" and v.dim() >= 2), None)


def _pad_time(output: torch.Tensor, width: int | None, full: int | None) -> torch.Tensor:
    """A cut batch's output, zero-padded back from ``width`` to ``full`` steps along axis 1."""
    if width is None or full is None or width >= full or output.dim() < 2 or output.shape[1] != width:
        return output
    pad = output.new_zeros((output.shape[0], full - width, *output.shape[2:]))
    return torch.cat([output, pad], dim=1)


# The real data sets register themselves in LOADERS (imported last: they import this module).
import taskgraph.train.datasets  # noqa: E402,F401
import taskgraph.train.datasets.conll2000  # noqa: E402,F401  (registers `conll2000`)

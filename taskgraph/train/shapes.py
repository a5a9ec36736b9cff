"""The user-data boundary: a node's fields checked against its model before training, in words.

A loader that returns the wrong width, a 3-D field where one row per example is expected, rows of
different lengths or no examples at all otherwise surfaces as torch's own text ("mat1 and mat2
shapes cannot be multiplied") from deep inside the first step. Each check here names the node,
the field, the shape expected and the shape found, and what to change. Only the first training
batch is translated (``first_batch_error``): a failure later is not about the data's shape.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Mapping
from typing import Any

import torch

from taskgraph.errors import TrainError

__all__ = ["as_field", "check_lengths", "check_input", "first_batch_error"]

#: Built-in modules that read one row of features per example: ``[batch, in]``.
_ROW_MODULES = frozenset({"mlp", "linear", "select", "gradient_reversal"})
#: Built-in modules that read sequences: ``[batch, time, in]``.
_SEQUENCE_MODULES = frozenset({"bilstm", "conv1d", "transformer"})
_TORCH = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep


def _shape(tensor: torch.Tensor) -> str:
    return f"[{', '.join(str(d) for d in tensor.shape)}] ({str(tensor.dtype).removeprefix('torch.')})"


def as_field(value: Any, name: str, where: str) -> torch.Tensor:
    """A loader's field as a tensor: numpy arrays and equal-length lists convert; ragged rows are refused."""
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.as_tensor(value)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise TrainError(
            f"{where}: field '{name}' cannot become a tensor ({type(value).__name__}: {exc}). Every example of a "
            "field needs the same shape: pad ragged rows to one length (and mark padding with -100 in targets)."
        ) from None


def check_lengths(fields: Mapping[str, Any], where: str) -> None:
    """Every field holds one entry per example: equal first dimensions."""
    sizes = {k: len(v) for k, v in fields.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"'{k}' {n}" for k, n in sorted(sizes.items()))
        raise TrainError(f"{where}: fields have different numbers of examples ({listed}). "
                         "Return one entry per example in every field.")


def _first(modules: Mapping[str, Any]) -> tuple[str, Any] | None:
    return next(iter(modules.items()), None)


def _expected(config: Any) -> str:
    """The batch shape the first module reads, from its config alone."""
    if config.type == "sequential":
        return _expected(config.layers[0])
    width = config.in_features if config.in_features is not None else "in"
    if config.type in _SEQUENCE_MODULES:
        return f"[batch, time, {width}] (float)"
    if config.type == "conv2d":
        c, h, w = config.shape
        return f"[batch, {c * h * w}] or [batch, {c}, {h}, {w}] (float images)"
    if config.type == "embedding":
        return f"[batch] or [batch, time] (integer ids < {config.vocab})"
    if config.type in _ROW_MODULES:
        return f"[batch, {width}] (float)"
    return "what the module's forward takes"


def check_input(
    where: str, node: str, field: str, x: torch.Tensor, target: str | None, y: torch.Tensor | None,
    modules: Mapping[str, Any], splits: Mapping[str, int],
) -> None:
    """Refuse, before the model is built, data the node's first module cannot read.

    ``splits``: examples per split (after ``label_fraction``), so an empty split is named too.
    ``target``/``y``: the task's target (None for a joint node's trunk, whose heads differ).
    """
    for split, count in splits.items():
        if count == 0:
            raise TrainError(
                f"{where}: the data has no {split} examples (field '{field}' is {_shape(x)} in train). "
                "Check the loader returns examples, and that label_fraction and val_fraction leave some.",
                node=node,
            )
    first = _first(modules)
    if first is None:
        return
    name, config = first
    while config.type == "sequential":
        config = config.layers[0]
    module = f"modules.{name} ({config.type}"
    want = _expected(config)
    if config.type == "embedding":
        if torch.is_floating_point(x):
            raise TrainError(
                f"{where}: field '{field}' is {_shape(x)}, but {module}) reads integer ids: {want}. "
                "Return token ids as an integer tensor, or start with a feature module (mlp).",
                node=node,
            )
        return
    if config.type in _SEQUENCE_MODULES and x.dim() != 3:
        raise TrainError(
            f"{where}: field '{field}' is {_shape(x)}, but {module}) reads sequences {want}. "
            "Return one [time, features] sequence per example, or start with an mlp for one row per example.",
            node=node,
        )
    if config.type in _ROW_MODULES and x.dim() == 1:
        raise TrainError(
            f"{where}: field '{field}' is {_shape(x)}: one number per example, but {module}) reads {want}. "
            f"Return it as [examples, 1] (x.unsqueeze(1)) with `in: 1`.",
            node=node,
        )
    if config.type in _ROW_MODULES and x.dim() > 2 and y is not None and y.dim() < x.dim() - 1:
        flat = 1
        for d in x.shape[1:]:
            flat *= int(d)
        raise TrainError(
            f"{where}: field '{field}' is {_shape(x)} ({x.dim()}-D), but {module}) reads {want} and target "
            f"'{target}' is {_shape(y)}: one value per example. Flatten '{field}' to [examples, {flat}] in the "
            "loader, or start with a sequence module (bilstm) and give a target per position.",
            node=node,
        )
    if config.in_features is not None and x.dim() >= 2 and x.shape[-1] != config.in_features:
        raise TrainError(
            f"{where}: field '{field}' is {_shape(x)}: {x.shape[-1]} wide, but {module}, in: "
            f"{config.in_features}) expects {want}. Set `in: {x.shape[-1]}` on modules.{name}, or leave `in` "
            "out to take the data's width.",
            node=node,
        )


def first_batch_error(
    exc: BaseException, where: str, node: str, field: str, x: torch.Tensor, target: str, y: torch.Tensor,
    modules: Mapping[str, Any],
) -> TrainError | None:
    """The first step's shape failure in words, or None when it is not one (out of memory, a user bug).

    Only errors raised inside torch itself count: a user module raising its own error keeps it.
    A loss's own shape message (``train.losses``) gets the node in front.
    """
    if isinstance(exc, TrainError):
        return exc if str(exc).startswith(where) else TrainError(f"{where}: {exc}", node=node)
    if isinstance(exc, torch.OutOfMemoryError) or not isinstance(exc, (RuntimeError, ValueError, IndexError)):
        return None
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames or not os.path.abspath(frames[-1].filename).startswith(_TORCH):
        return None
    first = _first(modules)
    reads = f" modules.{first[0]} ({first[1].type}) reads {_expected(first[1])};" if first else ""
    torch_says = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return TrainError(
        f"{where}: the first training batch does not fit the model: field '{field}' is {_shape(x)},"
        f"{reads} target '{target}' is {_shape(y)} (torch: {torch_says}). Make the loader's shapes match the "
        "modules' `in`/`out` and the loss (class ids for cross_entropy, one value per output for mse/bce).",
        node=node,
    )

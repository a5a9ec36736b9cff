"""Checkpoints inside a node: a retried or resumed node continues from its last one, exactly.

Saved every ``train.checkpoint_every`` steps: model and optimizer state, the data-order generator
as it was at the start of the epoch, the position in the epoch, torch's global RNG (dropout) and
the history so far. Resuming replays the same batch order from the same point, so a node that was
killed and resumed ends with the same parameters as one that was never interrupted.

Checkpoints live in the shared run directory (``<run-dir>/.cache/partial/<key>/``), which other
people and machines can write to, so they hold data only, never pickles: one safetensors file
whose tensors are the model and optimizer state and the RNG states, and whose header metadata
holds the rest as JSON (epoch, step, history, the optimizer's scalar and structure part). One
file, replaced atomically, so a checkpoint is whole or absent. A file that cannot be read or does
not fit the node is reported, removed, and the node starts from scratch: it never blocks a node.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from taskgraph.errors import TaskgraphWarning

__all__ = ["Checkpointer", "CheckpointWarning", "flatten", "unflatten"]

FILE = "checkpoint.safetensors"
#: Checkpoints of older versions (torch pickles): never loaded, removed when seen.
_LEGACY = ("checkpoint.pt",)
_META_KEY = "taskgraph.checkpoint"
_FORMAT = 1


class CheckpointWarning(TaskgraphWarning):
    """A checkpoint was unreadable or did not fit its node: it was removed and the node restarted."""


def _encode(value: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """JSON for ``value``, with every tensor moved into ``tensors`` under a path-like name."""
    if isinstance(value, torch.Tensor):
        tensors[prefix] = value.detach().to("cpu").contiguous().clone()  # clone: tied weights share storage
        return {"__tensor__": prefix}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {"__dict__": {k: _encode(v, tensors, f"{prefix}/{k}") for k, v in value.items()}}
        # optimizer state is keyed by int parameter ids: keep the key type
        return {"__items__": [[k, _encode(v, tensors, f"{prefix}/{k}")] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{prefix}/{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{prefix}/{i}") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"checkpoint value of type {type(value).__name__} at {prefix} is neither a tensor nor JSON")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__dict__" in value:
        return {k: _decode(v, tensors) for k, v in value["__dict__"].items()}
    if "__items__" in value:
        return {k: _decode(v, tensors) for k, v in value["__items__"]}
    if "__tuple__" in value:
        return tuple(_decode(v, tensors) for v in value["__tuple__"])
    raise ValueError(f"unknown checkpoint entry {sorted(value)}")


def flatten(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], str]:
    """A nested training state as (tensors by name, JSON for everything else and the structure)."""
    tensors: dict[str, torch.Tensor] = {}
    structure = _encode(state, tensors, "")
    return tensors, json.dumps({"format": _FORMAT, "state": structure}, allow_nan=True)


def unflatten(tensors: dict[str, torch.Tensor], text: str) -> dict[str, Any]:
    """The inverse of ``flatten``."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ValueError(f"not a taskgraph checkpoint of format {_FORMAT}")
    state = _decode(data["state"], tensors)
    if not isinstance(state, dict):
        raise ValueError("a checkpoint holds a mapping")
    return state


class Checkpointer:
    """Atomic save/load of one node's training state in ``directory`` (none when ``every`` is unset)."""

    def __init__(self, directory: str | os.PathLike[str] | None, every: int | None, node: str = "?"):
        self.path = Path(directory) / FILE if directory and every else None
        self.every = every or 0
        self.node = node
        #: Why the last ``load``/``restore`` found no usable checkpoint (None when fine or absent).
        self.discarded: str | None = None

    def due(self, step: int) -> bool:
        return self.path is not None and step % self.every == 0

    def save(self, state: dict[str, Any]) -> None:
        from safetensors.torch import save

        assert self.path is not None
        tensors, text = flatten(state)
        data = save(tensors, metadata={_META_KEY: text})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # a new file (O_EXCL: never one planted under the temp name), renamed over the old one
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{FILE}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None (no checkpoint, or a damaged one, which is reported and removed)."""
        if self.path is None:
            return None
        for legacy in _LEGACY:  # pickles from older versions: unsafe to load, so never read
            (self.path.parent / legacy).unlink(missing_ok=True)
        if not self.path.is_file():
            return None
        try:
            from safetensors import safe_open

            with safe_open(str(self.path), framework="pt", device="cpu") as handle:
                text = (handle.metadata() or {}).get(_META_KEY)
                if text is None:
                    raise ValueError("no taskgraph metadata in its header")
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}
            return unflatten(tensors, text)
        except Exception as exc:  # noqa: BLE001 - any unreadable file means: start over
            self.discard(exc)
            return None

    def restore(
        self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator
    ) -> dict[str, Any] | None:
        """Load the checkpoint into ``model``, ``optimizer``, ``generator`` and torch's global RNG;
        returns the whole state (epoch, batch, step, history, ...).

        Everything is checked before anything changes: a checkpoint that does not fit (missing
        keys, other shapes, a malformed RNG state) is removed, nothing is touched, and None is
        returned, so the node trains from scratch.
        """
        state = self.load()
        if state is None:
            return None
        try:
            _check(state, model, optimizer)
        except Exception as exc:  # noqa: BLE001
            self.discard(exc)
            return None
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["epoch_generator"])
        torch.set_rng_state(state["torch_rng"])
        return state

    def discard(self, why: BaseException | str) -> None:
        """Report an unusable checkpoint (node and file named) and remove it."""
        assert self.path is not None
        reason = why if isinstance(why, str) else f"{type(why).__name__}: {why}"
        self.discarded = (
            f"checkpoint {self.path} of node '{self.node}' is unreadable ({reason}); removed, training from scratch"
        )
        warnings.warn(self.discarded, CheckpointWarning, stacklevel=3)
        self.path.unlink(missing_ok=True)


def _check(state: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Raise unless ``state`` fits this model and optimizer exactly (names, shapes, types)."""
    current = model.state_dict()
    saved = state["model"]
    if set(saved) != set(current) or any(saved[k].shape != current[k].shape for k in current):
        raise ValueError("its model parameters do not match this node's modules")
    optim = state["optimizer"]
    groups = optimizer.param_groups
    if len(optim["param_groups"]) != len(groups) or any(
        len(g["params"]) != len(s["params"]) for g, s in zip(groups, optim["param_groups"])
    ):
        raise ValueError("its optimizer groups do not match this node's")
    ids = (i for g in optim["param_groups"] for i in g["params"])
    params = dict(zip(ids, (p for g in groups for p in g["params"])))
    for pid, entry in optim["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != params[pid].shape:
                raise ValueError(f"optimizer state {name} of parameter {pid} has shape {tuple(value.shape)}")
    torch.Generator().set_state(state["epoch_generator"])  # raises on a malformed state, changes nothing
    rng = state["torch_rng"]
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 or rng.shape != torch.get_rng_state().shape:
        raise ValueError("torch_rng is not an RNG state")
    for key in ("epoch", "batch", "step", "batches"):
        if not isinstance(state[key], int) or state[key] < 0:
            raise ValueError(f"{key} is not a count")
    if not isinstance(state["history"], list):
        raise ValueError("history is not a list")
    float(state["total"])

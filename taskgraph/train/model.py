"""The model of one node: its named modules applied in order, with inherited state loaded in."""

from __future__ import annotations

import hashlib
import inspect
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from taskgraph.errors import TrainError
from taskgraph.train.modules import build_module

__all__ = ["NodeModel", "takes_length", "apply_module", "state_to_numpy", "module_state", "digest"]


def takes_length(module: nn.Module) -> bool:
    """Whether ``module.forward`` has a ``length`` parameter: such a module is handed the batch's
    sequence lengths (the data's ``length`` field, ``(batch,)`` int64) so that it can ignore padding
    (the ``bilstm`` packs by it). Built-in and user modules alike; the parameter needs a default
    (``length=None``): data without a ``length`` field passes nothing."""
    try:
        return "length" in inspect.signature(module.forward).parameters
    except (TypeError, ValueError):  # a forward whose signature Python cannot read: it gets x only
        return False


def apply_module(module: nn.Module, x: torch.Tensor, length: torch.Tensor | None, wants: bool) -> torch.Tensor:
    """``module(x)``, with ``length=`` added when the module takes it (``wants``) and there is one."""
    return module(x, length=length) if wants and length is not None else module(x)


class NodeModel(nn.ModuleDict):
    """Named modules applied in order; state keys read ``encoder.layers.0.weight``.

    ``forward(x, length)``: modules that take ``length`` (``takes_length``) get the batch's
    sequence lengths; the others get ``x`` alone.
    """

    def __init__(self, configs: dict[str, Any], in_dim: int, where: str):
        super().__init__()
        width: int | None = in_dim
        for name, config in configs.items():
            self[name] = build_module(config, width, f"{where}.modules.{name}")
            width = config.output_dim(config.resolved_in(width))
        self._wants_length = {name: takes_length(module) for name, module in self.items()}

    def forward(self, x: torch.Tensor, length: torch.Tensor | None = None) -> torch.Tensor:
        for name, block in self.items():
            x = apply_module(block, x, length, self._wants_length[name])
        return x

    def load_module(self, name: str, state: dict[str, np.ndarray], where: str) -> None:
        """Copy an upstream module's values in, refusing any difference in names or shapes."""
        module = self[name]
        own = module.state_dict()
        missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or extra:
            raise TrainError(f"{where}: inherited '{name}' does not fit: missing {missing}, unexpected {extra}.")
        for key, value in state.items():
            if tuple(own[key].shape) != tuple(value.shape):
                raise TrainError(
                    f"{where}: inherited '{name}.{key}' has shape {list(value.shape)}, "
                    f"this module has {list(own[key].shape)}. Make the module configs match."
                )
        # The upstream's arrays are read-only views of Ray's object store (or of the bytes read from
        # the cache): torch wraps them without a copy, and load_state_dict copies each value into
        # this module's own parameter, the one copy the inheritance needs.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})


def state_to_numpy(model: nn.Module) -> dict[str, np.ndarray]:
    """Every tensor of the model as a CPU numpy array keyed ``module.param`` (zero-copy in Ray)."""
    return {k: v.detach().cpu().contiguous().numpy() for k, v in model.state_dict().items()}


def module_state(state: dict[str, np.ndarray], module: str) -> dict[str, np.ndarray]:
    """The part of a node's state that belongs to one named module, with the prefix removed."""
    prefix = f"{module}."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def digest(state: dict[str, np.ndarray]) -> str:
    """sha256 over names, dtypes, shapes and bytes: equal digests mean bit-identical tensors."""
    h = hashlib.sha256()
    for key in sorted(state):
        value = np.ascontiguousarray(state[key])
        h.update(f"{key}|{value.dtype}|{value.shape}|".encode())
        h.update(value.reshape(-1).view(np.uint8))  # the bytes where they are: no copy of the tensor
    return h.hexdigest()

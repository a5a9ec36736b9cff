"""Typed artifact files on top of ``artifacts.store``: JSON and safetensors parameters.

Writes are the store's (a temp file, then ``os.replace``): a run killed at any instant leaves
either the old file or the new one, never half of one. Every function also takes an fsspec URL
(``s3://...``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskgraph.artifacts import store

if TYPE_CHECKING:  # numpy is imported where tensors are handled: a cached rerun never needs it
    import numpy as np

__all__ = [
    "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "save_params", "load_params", "read_json",
    "params_bytes", "params_from_bytes",
]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path | str:
    """``store.write_bytes``: never half a file, never an in-place write."""
    return store.write_bytes(path, data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path | str:
    return store.write_text(path, text)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path | str:
    """JSON as every taskgraph file is written (``store.write_json``: sorted keys, indented)."""
    return store.write_json(path, obj)


def read_json(path: str | os.PathLike[str]) -> Any:
    return store.read_json(path)


def params_bytes(state: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """Tensors as safetensors bytes (no pickle: safe to load from an untrusted run dir)."""
    import numpy as np
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in state.items()}, metadata=metadata)


def params_from_bytes(data: bytes) -> dict[str, np.ndarray]:
    """The tensors of safetensors bytes, as read-only views into ``data`` (no per-tensor copies)."""
    from taskgraph.artifacts.tensorfile import parse_params

    return parse_params(data)


def save_params(
    path: str | os.PathLike[str], state: dict[str, np.ndarray], metadata: dict[str, str] | None = None
) -> Path | str:
    """Tensors as safetensors, written atomically."""
    return atomic_write_bytes(path, params_bytes(state, metadata))


def load_params(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    if store.is_remote(path):
        return params_from_bytes(store.read_bytes(path))
    return load_file(str(store.normalize(path)))

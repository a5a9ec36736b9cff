"""Atomic file writes: a temp file in the same folder, then ``os.replace``.

A run killed at any instant leaves either the old file or the new one, never half of one.
Every function also takes an fsspec URL (``s3://...``), handled by ``artifacts.store``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "save_params", "load_params", "read_json"]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path | str:
    from taskgraph.artifacts import store

    if store.is_remote(path) or os.fspath(path).startswith("file://"):
        return store.write_bytes(path, data)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path | str:
    from taskgraph.artifacts import store

    return store.write_text(path, text)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path | str:
    """JSON as every taskgraph file is written (``store.write_json``: sorted keys, indented)."""
    from taskgraph.artifacts import store

    return store.write_json(path, obj)


def read_json(path: str | os.PathLike[str]) -> Any:
    from taskgraph.artifacts import store

    return store.read_json(path)


def save_params(
    path: str | os.PathLike[str], state: dict[str, np.ndarray], metadata: dict[str, str] | None = None
) -> Path | str:
    """Tensors as safetensors (no pickle: safe to load from an untrusted run dir)."""
    from safetensors.numpy import save

    arrays = {k: np.ascontiguousarray(v) for k, v in state.items()}
    return atomic_write_bytes(path, save(arrays, metadata=metadata))


def load_params(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    from safetensors.numpy import load, load_file

    from taskgraph.artifacts import store

    if store.is_remote(path):
        return load(store.read_bytes(path))
    return load_file(str(store.normalize(path)))

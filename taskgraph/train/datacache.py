"""Loaded data sources on disk, so a run loads and featurises each source once, not once per worker.

Every node of a run (and every variant of ``taskgraph ablate``) that reads a source reads the same
splits: the first worker to need them runs the loader and writes them to
``<run-dir>/.cache/data/<key>.safetensors``; the others, on any worker process of this host, wait
for it (a file lock) and map the file in. The key covers what the node cache keys cover for a
source: its config, the content of the files it reads, the user code it names and the training
code (``plan.keys``), so a changed file or loader is loaded afresh.

Nothing is unpickled: tensors in safetensors, their digest in a JSON sidecar written after them.
A file that does not match its digest (truncated, damaged) is deleted and the source loaded again.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from taskgraph.train.data import Splits

__all__ = ["data_key", "cached_splits", "LOADS"]

#: Bumped when the file layout changes, so old entries are never misread.
SCHEMA = 1
#: Loader calls this process made through the cache (the rest were read from disk): for tests and benchmarks.
LOADS: list[str] = []


def data_key(config: Any, fingerprint: str) -> str:
    """sha256 of what a loaded source depends on, as ``plan.keys.node_keys`` counts it for a source."""
    from taskgraph.plan.keys import _code_digests, canonical_digest, code_version

    dumped = config.model_dump(mode="json", by_alias=True)
    return canonical_digest({"schema": SCHEMA, "config": dumped, "content": fingerprint,
                             "user_code": _code_digests(dumped, f"data.{config.loader}"), "code": code_version()})


def cached_splits(config: Any, fingerprint: str, folder: str | os.PathLike[str], load: Callable[[], Splits]) -> Splits:
    """The source's splits from ``folder`` if a whole entry is there, else ``load()`` and store them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = data_key(config, fingerprint)
    tensors, sidecar = folder / f"{key}.safetensors", folder / f"{key}.json"
    with FileLock(str(folder / f"{key}.lock")):  # one loader per source at a time; the rest wait, then read
        found = _read(tensors, sidecar)
        if found is not None:
            return found
        splits = load()
        LOADS.append(key)
        _write(splits, tensors, sidecar, config)
        return splits


def _read(tensors: Path, sidecar: Path) -> Splits | None:
    """The stored splits, or None when absent or not matching their recorded digest (then deleted)."""
    if not sidecar.exists():
        return None
    try:
        meta = json.loads(sidecar.read_text())
        data = tensors.read_bytes()
        if meta.get("schema") != SCHEMA or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            raise ValueError("digest mismatch")
        flat = load_tensors(data)
    except Exception:  # noqa: BLE001  (damaged in any way, safetensors' own errors included: load afresh)
        for path in (sidecar, tensors):
            path.unlink(missing_ok=True)
        return None
    split: dict[str, dict[str, torch.Tensor]] = {"train": {}, "val": {}}
    for name in meta["fields"]:
        part, field = name.split("/", 1)
        split.setdefault(part, {})[field] = flat[name]
    return Splits(train=split["train"], val=split["val"], test=split.get("test"))


def _write(splits: Splits, tensors: Path, sidecar: Path, config: Any) -> None:
    """Tensors first, then the sidecar naming their digest: an entry without a sidecar does not count."""
    flat = {f"{part}/{k}": v.detach().cpu().contiguous()
            for part, fields in (("train", splits.train), ("val", splits.val), ("test", splits.test or {}))
            for k, v in fields.items()}
    try:
        data = save_tensors(flat)
    except RuntimeError:  # a user loader's fields that share memory (views of one tensor): store copies
        data = save_tensors({k: v.clone() for k, v in flat.items()})
    meta = {"schema": SCHEMA, "sha256": hashlib.sha256(data).hexdigest(), "fields": list(flat),
            "loader": config.loader, "bytes": len(data)}
    for path, content in ((tensors, data), (sidecar, json.dumps(meta).encode())):
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_bytes(content)
            os.replace(tmp, path)
        except OSError:  # a full or read-only disk: the run goes on with the loaded splits
            tmp.unlink(missing_ok=True)
            return

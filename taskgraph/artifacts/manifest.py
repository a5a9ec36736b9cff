"""What a folder of artifacts should hold: each file's sha256 and size, recorded once, when written.

A node folder and a cache entry each carry ``manifest.json`` (``{file: {"sha256", "size"}}``).
The digest is computed from the bytes being written, never by reading the file back. Use is
verified cheaply: sizes always (a ``stat``), and the digest of whatever is read in full anyway
(the small JSON files, and the parameters a downstream node inherits), hashed from the bytes read.
A mismatch raises ``DamagedArtifact`` naming the file: the caller reports it and recomputes,
so nothing damaged is ever served.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from taskgraph.artifacts import store
from taskgraph.errors import ArtifactError, TaskgraphWarning

__all__ = ["MANIFEST", "DamagedArtifact", "IntegrityWarning", "digest", "read_manifest", "check_sizes", "read_verified"]

MANIFEST = "manifest.json"

Digest = dict[str, Any]  # {"sha256": hex, "size": bytes}


class DamagedArtifact(ArtifactError):
    """A stored file is missing, has another size or other bytes than its manifest records."""

    def __init__(self, path: str | os.PathLike[str], what: str):
        self.path, self.what = str(path), what
        super().__init__(f"{path} is damaged ({what})")


class IntegrityWarning(TaskgraphWarning):
    """A damaged artifact was found and set aside; it is being recomputed."""


def digest(data: bytes) -> Digest:
    """The manifest record of ``data``, from the bytes in hand."""
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def read_manifest(folder: str | os.PathLike[str], names: tuple[str, ...]) -> dict[str, Digest]:
    """The folder's manifest, checked to list every one of ``names`` with a digest and a size."""
    path = store.join(folder, MANIFEST)
    if not store.exists(path):
        raise DamagedArtifact(path, "missing")
    try:
        manifest = store.read_json(path)
    except ArtifactError:
        raise DamagedArtifact(path, "not valid JSON") from None
    if not isinstance(manifest, dict) or not all(
        isinstance(manifest.get(n), dict)
        and isinstance(manifest[n].get("sha256"), str)
        and isinstance(manifest[n].get("size"), int)
        for n in names
    ):
        raise DamagedArtifact(path, f"does not list {', '.join(names)}")
    return manifest


def check_sizes(folder: str | os.PathLike[str], manifest: dict[str, Digest], names: tuple[str, ...]) -> None:
    """Every file is there with its recorded size: a ``stat`` each, no reading."""
    for name in names:
        path = store.join(folder, name)
        try:
            size = store.size(path)
        except FileNotFoundError:
            raise DamagedArtifact(path, "missing") from None
        if size != manifest[name]["size"]:
            raise DamagedArtifact(path, f"{size} bytes, expected {manifest[name]['size']}")


def read_verified(path: str | os.PathLike[str], expected: Digest) -> bytes:
    """The file's bytes, hashed as read: a size or digest other than ``expected`` raises."""
    try:
        data = store.read_bytes(path)
    except ArtifactError:
        raise DamagedArtifact(path, "missing") from None
    if len(data) != expected["size"]:
        raise DamagedArtifact(path, f"{len(data)} bytes, expected {expected['size']}")
    if hashlib.sha256(data).hexdigest() != expected["sha256"]:
        raise DamagedArtifact(path, "its sha256 differs from the one recorded when it was written")
    return data

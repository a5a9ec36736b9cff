"""Checkpoints inside a node: a retried or resumed node continues from its last one, exactly.

Saved every ``train.checkpoint_every`` steps: model and optimizer state, the data-order generator
as it was at the start of the epoch, the position in the epoch, torch's global RNG (dropout) and
the history so far. Resuming replays the same batch order from the same point, so a node that was
killed and resumed ends with the same parameters as one that was never interrupted.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["Checkpointer"]

FILE = "checkpoint.pt"


class Checkpointer:
    """Atomic save/load of one node's training state in ``directory`` (none when ``every`` is unset)."""

    def __init__(self, directory: str | os.PathLike[str] | None, every: int | None):
        self.path = Path(directory) / FILE if directory and every else None
        self.every = every or 0

    def due(self, step: int) -> bool:
        return self.path is not None and step % self.every == 0

    def save(self, state: dict[str, Any]) -> None:
        assert self.path is not None
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def load(self) -> dict[str, Any] | None:
        if self.path is None or not self.path.is_file():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=False)

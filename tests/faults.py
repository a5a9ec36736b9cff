"""User code that fails on purpose, for fault-tolerance tests (referenced as "tests.faults:...")."""

from __future__ import annotations

import glob
import os
import signal
import time
from pathlib import Path

from torch import nn


def _once(marker: str) -> bool:
    """True the first time for this marker file (and creates it), False afterwards."""
    path = Path(marker)
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(os.getpid()))
    return True


class KillOnce(nn.Module):
    """Identity layer that SIGKILLs its own worker process at forward call ``after`` the first time."""

    def __init__(self, marker: str, after: int = 1, in_features: int | None = None, out: int | None = None):
        super().__init__()
        self.marker, self.after, self.calls = marker, after, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.after and _once(self.marker):
            os.kill(os.getpid(), signal.SIGKILL)
        return x


class HoldWhile(nn.Module):
    """Identity layer that, while the file ``path`` exists, waits in its forward call (having written
    ``path + ".reached"``): a node that is mid-training exactly until the test removes the file, then
    trains on at full speed (no node made slow for a fixed time, then waited out again on resume)."""

    def __init__(self, path: str, in_features: int | None = None, out: int | None = None):
        super().__init__()
        self.path = path

    def forward(self, x):
        if os.path.exists(self.path):
            Path(self.path + ".reached").write_text(str(os.getpid()))
            while os.path.exists(self.path):
                time.sleep(0.05)
        return x


class FillDisk(nn.Module):
    """Identity layer that, on its first forward call, fills the disk holding ``path`` (a full disk mid-run),
    once a file matching the glob ``after`` exists (say, an upstream node's files: they are durable)."""

    def __init__(self, path: str, after: str | None = None, in_features: int | None = None, out: int | None = None):
        super().__init__()
        self.path, self.after = path, after

    def forward(self, x):
        if _once(self.path + ".marker"):
            deadline = time.time() + 120
            while self.after and not glob.glob(self.after) and time.time() < deadline:
                time.sleep(0.05)
            try:
                with open(self.path, "wb") as handle:
                    while True:
                        handle.write(b"\0" * 4096)
                        handle.flush()
            except OSError:  # ENOSPC: the disk is full now
                pass
        return x


class Explode(nn.Module):
    """Raises a plain Python error: a bug in user code."""

    def __init__(self, in_features: int | None = None, out: int | None = None):
        super().__init__()

    def forward(self, x):
        raise RuntimeError("boom from user code")


# User loaders with the data mistakes a new user makes (issue 13 item 8): each must fail in words.


def _labels(n: int):
    import torch

    return torch.arange(n) % 4


def narrow_data(n: int = 64):
    """8 features per example (a graph saying `in: 16` is wrong)."""
    import torch

    return {"x": torch.randn(n, 8), "label": _labels(n)}


def sequence_data(n: int = 64):
    """A 3-D field: 5 steps of 8 features per example, one label per example."""
    import torch

    return {"x": torch.randn(n, 5, 8), "label": _labels(n)}


def ragged_data(n: int = 64):
    """Rows of different lengths, as plain lists."""
    return {"x": [[0.5] * (8 if i % 2 else 7) for i in range(n)], "label": [i % 4 for i in range(n)]}


def uneven_data(n: int = 64):
    """Fields with different numbers of examples."""
    import torch

    return {"x": torch.randn(n, 8), "label": _labels(n - 10)}


def empty_data():
    """No examples at all."""
    import torch

    return {"train": {"x": torch.zeros(0, 8), "label": torch.zeros(0, dtype=torch.long)},
            "val": {"x": torch.zeros(0, 8), "label": torch.zeros(0, dtype=torch.long)}}


def wide_targets(n: int = 64):
    """Targets of the wrong kind: 3 values per example for a cross-entropy head."""
    import torch

    return {"x": torch.randn(n, 8), "label": torch.randn(n, 3)}


def index_targets(n: int = 64):
    """Class ids up to 9 for a graph whose head has 4 outputs."""
    import torch

    return {"x": torch.randn(n, 8), "label": torch.arange(n) % 10}

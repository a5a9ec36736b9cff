"""User code that fails on purpose, for fault-tolerance tests (referenced as "tests.faults:...")."""

from __future__ import annotations

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


class SlowDown(nn.Module):
    """Identity layer that sleeps on every forward call: makes a node last long enough to interrupt."""

    def __init__(self, seconds: float, in_features: int | None = None, out: int | None = None):
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        time.sleep(self.seconds)
        return x


class Explode(nn.Module):
    """Raises a plain Python error: a bug in user code."""

    def __init__(self, in_features: int | None = None, out: int | None = None):
        super().__init__()

    def forward(self, x):
        raise RuntimeError("boom from user code")

"""A user data loader as a new user writes one (referenced as "tests.userdata:csv_table")."""

from __future__ import annotations

import csv

import torch


def csv_table(table: str, label: str = "y") -> dict[str, torch.Tensor]:
    """Every column but ``label`` is a float feature of ``x``; ``label`` is a float 0/1 target."""
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    features = [c for c in rows[0] if c != label]
    x = torch.tensor([[float(r[c]) for c in features] for r in rows])
    return {"x": x, label: torch.tensor([float(r[label]) for r in rows])}


def counted_csv(table: str, label: str = "y") -> dict[str, torch.Tensor]:
    """``csv_table``, leaving one file per call in ``calls/`` beside the table's folder, so a test
    counts the loads of every worker (the folder is not an argument: it is not in the cache key)."""
    import os
    import uuid
    from pathlib import Path

    calls = Path(table).resolve().parent.parent / "calls"
    calls.mkdir(exist_ok=True)
    (calls / f"{os.getpid()}-{uuid.uuid4().hex}").touch()
    return csv_table(table, label)

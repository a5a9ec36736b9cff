"""What the generic loaders (``table``, ``conll``, ``arrays``) share: finding the user's files,
naming what is missing, and the seeded fraction split."""

from __future__ import annotations

import difflib
from pathlib import Path

import torch

from taskgraph.errors import TrainError
from taskgraph.spec.filedata import user_path

__all__ = ["open_file", "unknown", "fraction_indices"]


def open_file(text: str, loader: str, option: str) -> Path:
    """The file an option names; missing -> an error naming the option, the path and the folder."""
    path = user_path(text)
    if not path.exists():
        raise TrainError(
            f"data loader '{loader}': `{option}: {text}` does not exist ({path}). Relative paths are read from "
            f"the folder taskgraph runs in ({Path.cwd()}); give an absolute path or run from the data's folder."
        )
    return path


def unknown(what: str, name: str, known: list[str], where: str) -> TrainError:
    """``where: no column 'incme'. Did you mean 'income'? Columns: ...`` (the caller raises it)."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    shown = ", ".join(known[:40]) + (f", ... ({len(known)} in all)" if len(known) > 40 else "")
    return TrainError(f"{where}: no {what} '{name}'.{hint} {what.capitalize()}s: {shown or '(none)'}.")


def fraction_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) row indices of a seeded split, the same on every machine (as ``split_by_fraction``)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(n * val_fraction)))
    return order[n_val:], order[:n_val]

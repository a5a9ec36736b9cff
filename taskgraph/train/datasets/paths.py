"""Where a data set lives: ``root`` from the graph file, else ``$TASKGRAPH_DATA/<name>``, else shared/data."""

from __future__ import annotations

from pathlib import Path

from taskgraph.errors import TrainError
from taskgraph.spec.data import DEFAULT_DATA, data_root  # the spec knows where data lives (cache keys read it too)

__all__ = ["data_root", "require", "DEFAULT_DATA"]


def require(path: Path, loader: str) -> Path:
    """``path`` if it exists; else an error naming the file and the two ways to point at the data."""
    if not path.exists():
        raise TrainError(
            f"data loader '{loader}': missing {path}. Loaders never download: set `root:` on this data "
            f"source (or --set data.NAME.root=/path), or TASKGRAPH_DATA to the folder holding '{loader}' data."
        )
    return path

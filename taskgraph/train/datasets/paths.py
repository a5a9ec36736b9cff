"""Where a data set lives: ``root`` from the graph file, else ``$TASKGRAPH_DATA/<name>``, else the folder
``taskgraph data fetch`` fills, else shared/data (``spec.data.search_path``)."""

from __future__ import annotations

from pathlib import Path

from taskgraph.errors import TrainError
from taskgraph.spec.data import DEFAULT_DATA, data_root  # the spec knows where data lives (cache keys read it too)

__all__ = ["data_root", "require", "DEFAULT_DATA"]


def require(path: Path, loader: str) -> Path:
    """``path`` if it exists; else an error naming the file and the two ways to point at the data."""
    if not path.exists():
        raise TrainError(
            f"data loader '{loader}': missing {path}. Loaders never download: run `taskgraph data fetch --all` "
            f"(or the data set's name), set `root:` on this data source (or --set data.NAME.root=/path), or "
            f"TASKGRAPH_DATA to the folder holding '{loader}' data."
        )
    return path

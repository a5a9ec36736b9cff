"""Where a data set lives: ``root`` from the graph file, else ``$TASKGRAPH_DATA/<name>``, else shared/data."""

from __future__ import annotations

import os
from pathlib import Path

from taskgraph.errors import TrainError

__all__ = ["data_root", "require", "DEFAULT_DATA"]

#: ``<repo>/../shared/data``: where the staged data sets sit next to the repository checkout.
DEFAULT_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def data_root(name: str, root: str | None) -> Path:
    """The folder of data set ``name``: the configured ``root``, ``$TASKGRAPH_DATA/name``, or the default."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("TASKGRAPH_DATA")
    return (Path(env).expanduser() if env else DEFAULT_DATA) / name


def require(path: Path, loader: str) -> Path:
    """``path`` if it exists; else an error naming the file and the two ways to point at the data."""
    if not path.exists():
        raise TrainError(
            f"data loader '{loader}': missing {path}. Loaders never download: set `root:` on this data "
            f"source (or --set data.NAME.root=/path), or TASKGRAPH_DATA to the folder holding '{loader}' data."
        )
    return path

"""Is the data a graph reads on this machine? Checked by the CLI before Ray starts.

Registered loaders never download: a data set folder that is not here used to fail each node
after Ray had started (~25 s), with a traceback per node. User loaders (``pkg.module:fn``) are not
checked: only their code knows what their arguments mean (a URL, a table name, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskgraph.errors import SpecError, SpecIssue
from taskgraph.spec.data import CustomData

if TYPE_CHECKING:
    from taskgraph.spec.loader import SourceMap
    from taskgraph.spec.models import Graph

__all__ = ["missing_data", "check_data_present"]


def missing_data(spec: Graph, source: SourceMap | None = None) -> list[SpecIssue]:
    """One issue per data source some task reads whose files or folders do not exist here."""
    used = sorted({name for task in spec.tasks.values() for name in task.data_sources()})
    issues: list[SpecIssue] = []
    for name in used:
        config = spec.data.get(name)
        if config is None or isinstance(config, CustomData):
            continue
        for path in config.reads():
            if path.exists():
                continue
            message = (f"data set '{config.loader}' not found: {path} does not exist. Loaders never download: put "
                       f"the data there, set `root:` on this data source (or --set data.{name}.root=/path), or "
                       f"point TASKGRAPH_DATA at the folder that holds '{config.loader}'.")
            loc = ("data", name, "root")
            issues.append(source.issue(loc, message) if source else SpecIssue(message=message, path=f"data.{name}"))
            break
    return issues


def check_data_present(spec: Graph, source: SourceMap | None = None) -> None:
    """Raise ``SpecError`` naming each missing data set, its position in the file and the fixes."""
    issues = missing_data(spec, source)
    if issues:
        raise SpecError(issues)

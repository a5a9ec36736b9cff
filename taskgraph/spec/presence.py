"""Is the data a graph reads on this machine? Checked by the CLI before Ray starts.

Registered loaders never download: a data set folder that is not here used to fail each node
after Ray had started (~25 s), with a traceback per node. User loaders (``pkg.module:fn``) are not
checked: only their code knows what their arguments mean (a URL, a table name, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskgraph.errors import SpecError, SpecIssue
from taskgraph.spec.data import CustomData
from taskgraph.spec.filedata import FILE_LOADERS, user_path

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
        if isinstance(config, FILE_LOADERS):  # the user's own files: name the option that points at them
            issues += _missing_files(name, config, source)
            continue
        for path in config.reads():
            if path.exists():
                continue
            message = (f"data set '{config.loader}' not found: {path} does not exist. Loaders never download: run "
                       f"`taskgraph data fetch {path.name}`, put the data there, set `root:` on this data source "
                       f"(or --set data.{name}.root=/path), or point TASKGRAPH_DATA at the folder that holds "
                       f"'{config.loader}'.")
            loc = ("data", name, "root")
            issues.append(source.issue(loc, message) if source else SpecIssue(message=message, path=f"data.{name}"))
            break
    return issues


def _missing_files(name: str, config: object, source: SourceMap | None) -> list[SpecIssue]:
    """The first file option of a ``table``/``conll``/``arrays`` source that names no file here."""
    for option, text in config.files().items():  # type: ignore[attr-defined]
        path = user_path(text)
        if path.exists():
            continue
        message = (f"data source '{name}': `{option}: {text}` does not exist ({path}). Relative paths are read from "
                   "the folder taskgraph runs in; give an absolute path or run from the data's folder.")
        loc = ("data", name, *option.split("."))
        return [source.issue(loc, message) if source else SpecIssue(message=message, path=f"data.{name}.{option}")]
    return []


def check_data_present(spec: Graph, source: SourceMap | None = None) -> None:
    """Raise ``SpecError`` naming each missing data set, its position in the file and the fixes."""
    issues = missing_data(spec, source)
    if issues:
        raise SpecError(issues)

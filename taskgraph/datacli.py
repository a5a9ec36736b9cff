"""``taskgraph data fetch|list|inspect``: get the example data sets, see where they are, see what a
loader produced. Fetching is standard library only; ``inspect`` runs the loaders (torch) in this
process, as a worker would, without Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

data_app = typer.Typer(
    help="Example data sets (fetch, list) and what a graph's loaders produce (inspect).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _echo(text: str = "") -> None:
    typer.echo(text)


@data_app.command("fetch")
def fetch_cmd(
    names: Annotated[Optional[list[str]], typer.Argument(help="Data sets to fetch (see `taskgraph data list`).",
                                                         show_default=False)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every example data set.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Fetch again even if present.")] = False,
    retries: Annotated[int, typer.Option("--retries", min=1, help="Tries per file (each resumes the last).")] = 3,
) -> None:
    """Download example data sets from their public sources into $TASKGRAPH_DATA (else the user cache
    folder), check their sha256 sums and convert them to the layout the loaders read."""
    from taskgraph.errors import TaskgraphError
    from taskgraph.fetch import fetch, known

    chosen = list(known()) if all_ else list(names or [])
    if not chosen:
        raise TaskgraphError("name the data sets to fetch (e.g. `taskgraph data fetch conll2000`) or pass --all. "
                             f"Known: {', '.join(sorted(known()))}.")
    for name in chosen:
        fetch(name, force=force, retries=retries, say=_echo)


@data_app.command("list")
def list_cmd(
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Also the source and what the sums check.")] = False,
) -> None:
    """Each example data set: present or not, where, size and licence."""
    from taskgraph.fetch import installed, known
    from taskgraph.spec.data import fetch_home

    _echo(f"fetch folder: {fetch_home()}  (set TASKGRAPH_DATA to change it)")
    for name, ds in known().items():
        row = installed(name)
        where = f"{row.folder}  {row.bytes / 1e6:.1f} MB" if row.present else f"missing (fetch to {row.folder})"
        _echo(f"  {name:<13} {'present' if row.present else 'absent ':<8} {where}")
        _echo(f"  {'':<13} {ds.title}; licence: {ds.licence}")
        if verbose:
            _echo(f"  {'':<13} source: {ds.source}")
            _echo(f"  {'':<13} checked: {ds.verified}")


@data_app.command("inspect")
def inspect_cmd(
    graph: Annotated[Path, typer.Argument(help="The graph file (YAML).", show_default=False)],
    source: Annotated[Optional[str], typer.Argument(help="One data source (default: every source the graph uses).",
                                                    show_default=False)] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a value (repeatable).")] = None,
) -> None:
    """Fields, shapes, dtypes, label distributions, missing-label share and split sizes of each data source."""
    from taskgraph.datainspect import describe
    from taskgraph.errors import TaskgraphError
    from taskgraph.spec.loader import load_spec

    spec, _ = load_spec(graph, tuple(set_ or ()))
    used = sorted({name for task in spec.tasks.values() for name in task.data_sources()})
    names = used or sorted(spec.data)
    if source is not None:
        if source not in spec.data:
            import difflib

            close = difflib.get_close_matches(source, list(spec.data), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise TaskgraphError(f"{graph}: no data source '{source}'.{hint} Sources: {', '.join(sorted(spec.data))}.")
        names = [source]
    for name in names:
        for line in describe(name, spec.data[name], _targets(spec, name)):
            _echo(line)


def _targets(spec: Any, source: str) -> dict[str, list[str]]:
    """Field -> the tasks (``node`` or ``node.head``) that read it as their target, for one source."""
    out: dict[str, list[str]] = {}
    for name, task in spec.tasks.items():
        if getattr(task, "kind", None) == "multitask":
            for head_name, head in task.heads.items():
                if (head.data or task.data) == source:
                    out.setdefault(head.loss.target, []).append(f"{name}.{head_name}")
        elif task.data == source:
            out.setdefault(task.loss.target, []).append(name)
    return out

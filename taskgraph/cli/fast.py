"""The no-change rerun's fast path: ``taskgraph run GRAPH`` answered before typer or pydantic load.

A rerun with nothing to train used to spend ~0.9 s starting typer, defining and validating the spec
models and planning, for a few milliseconds of cache lookups. ``fast_run`` takes only the plainest
``run`` command lines (the graph, ``--run-dir``, ``--set``, ``--plain``, ``--[no-]tensorboard``,
``--[no-]warm``; no cluster, no selection), finds the graph's kept record (``taskgraph.rerun``) and,
when every node's recomputed key has a sound cache entry, writes the run folder and prints what
the full path prints. In every other case it returns None before writing anything and the typer
app runs as before, errors and all: the fast path never decides what a command line means.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunArgs", "parse_run", "fast_run"]

#: Variables that change what ``run`` does here: a cluster, the warm local Ray.
_AWAY = ("RAY_ADDRESS", "TASKGRAPH_WARM")


@dataclass
class RunArgs:
    """The options of ``taskgraph run`` the fast path takes, as typer would give them."""

    graph: Path
    run_dir: str = "runs"
    overrides: tuple[str, ...] = ()
    plain: bool = False
    tensorboard: bool = True


def parse_run(argv: Sequence[str]) -> RunArgs | None:
    """``run GRAPH [--run-dir D] [--set K=V ...] [--plain] [--[no-]tensorboard] [--[no-]warm]`` in any order, as
    click reads them; None for anything else (other options, ``--help``, a missing value, two
    graphs, ``--``), which the typer app then reads and, where it is wrong, reports."""
    if not argv or argv[0] != "run" or any(name in os.environ for name in _AWAY):
        return None
    graphs: list[str] = []
    run_dir: str | None = None
    overrides: list[str] = []
    plain, tensorboard, warm = False, True, False
    rest = list(argv[1:])
    while rest:
        token = rest.pop(0)
        if not token.startswith("-"):
            graphs.append(token)
            continue
        name, eq, value = token.partition("=")
        if name in ("--run-dir", "--set"):
            if not eq:
                value = rest.pop(0) if rest else ""
            if not value or value.startswith("-"):
                return None
            if name == "--set":
                overrides.append(value)
            else:
                run_dir = value
        elif token == "--plain":
            plain = True
        elif token in ("--tensorboard", "--no-tensorboard"):
            tensorboard = token == "--tensorboard"
        elif token in ("--warm", "--no-warm"):  # the warm Ray is reached only to train something
            warm = token == "--warm"
        else:
            return None
    if len(graphs) != 1 or (warm and "TASKGRAPH_WARM_IDLE" in os.environ):
        return None  # a malformed TASKGRAPH_WARM_IDLE is an error with --warm: the full path says so
    if run_dir is None:
        run_dir = os.environ.get("TASKGRAPH_RUN_DIR", "runs")
        if not run_dir:
            return None  # an empty variable: let click say what it means
    if "://" in run_dir:
        return None  # object stores (and file:// URLs) take the full path
    return RunArgs(Path(graphs[0]), run_dir, tuple(overrides), plain, tensorboard)


def fast_run(argv: Sequence[str] | None = None) -> int | None:
    """0 after a no-change rerun written and printed as the full path would; None (nothing written,
    nothing printed) when the command line, the graph or the cache asks for the full path."""
    args = parse_run(sys.argv[1:] if argv is None else argv)
    if args is None:
        return None
    from taskgraph.artifacts.cache import NodeCache
    from taskgraph.rerun import read_record, record_digest, replay, sound_keys

    try:
        record = read_record(args.run_dir, record_digest(args.graph, args.overrides))
    except OSError:
        return None  # no such graph file (or unreadable): the full path words the error
    if record is None:
        return None
    cache = NodeCache.for_run_root(args.run_dir)
    keys = sound_keys(record, cache)
    if keys is None:
        return None

    from taskgraph.cli.output import echo, print_run_end
    from taskgraph.report.live import make_view

    plan = record.plan
    echo(f"running {record.name}: {len(plan.order)} nodes in {len(plan.stages)} stages")
    view = make_view(record.name, plan, live=sys.stdout.isatty() and not args.plain, write=echo)
    with view:
        result = replay(record, keys, cache, args.run_dir, tensorboard=args.tensorboard,
                        on_update=view.on_update, on_progress=view.on_progress)
    print_run_end(plan.order, result.records, result.run_dir, result.wall_seconds, args.tensorboard)
    return 0

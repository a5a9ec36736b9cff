"""The ``taskgraph`` command. Wires the layers together; imports Ray and torch only to run.

Every user error is a ``TaskgraphError``: printed as one message, no traceback, exit code 2.

The commands live in modules by job (graph: read a graph file; running: train and look at runs; cluster:
Ray jobs; use: apply trained nodes; common: what they share). They are registered here, in the order
``taskgraph --help`` lists them.
"""

from __future__ import annotations

import warnings

import typer

from taskgraph.cli import cluster, graph, running, use
from taskgraph.cli.common import _check_writable, _echo, _interrupt_behind, _load, _show_warning, _writing  # noqa: F401
from taskgraph.errors import Interrupted, SpecError, TaskgraphError

app = typer.Typer(
    name="taskgraph",
    help="Train a graph of interdependent ML tasks on Ray, passing learned modules downstream.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# `taskgraph data fetch|list|inspect` (taskgraph/datacli.py: typer only at import, like this package)
from taskgraph.datacli import data_app  # noqa: E402

app.add_typer(data_app, name="data")

# `taskgraph warm start|status|stop`: the warm local Ray that `run --warm` keeps between runs
from taskgraph.cli.warm import warm_app  # noqa: E402

app.add_typer(warm_app, name="warm")

app.command()(graph.validate)
app.command()(graph.plan)
app.command()(graph.viz)
app.command()(running.report)
app.command()(use.evaluate)
app.command()(use.predict)
app.command()(running.run)
app.command()(running.ablate)
app.command()(running.affinity)
app.command()(running.status)
app.command()(running.resume)
app.command("list")(graph.list_)
app.command()(graph.schema)
app.command()(cluster.submit)
app.command()(cluster.logs)
app.command()(cluster.jobs)
app.command()(cluster.stop)
app.command("export")(use.export_)
app.command()(use.serve)


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors exit 2 with one message and no traceback (usage errors too)."""
    warnings.showwarning = _show_warning
    try:
        app(args=argv, prog_name="taskgraph")  # standalone: click prints usage errors, exits 2
    except SystemExit as exc:
        stop = _interrupt_behind(exc)  # typer turns Ctrl-C into a silent Exit(130)
        if stop is not None:
            typer.echo(str(stop) if isinstance(stop, Interrupted) else "interrupted.", err=True)
            return 128 + stop.signum if isinstance(stop, Interrupted) else 130
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except SpecError as exc:
        typer.echo(str(exc), err=True)
        n = len(exc.issues)
        typer.echo(f"{n} problem{'s' if n != 1 else ''} found.", err=True)
        return 2
    except TaskgraphError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except Interrupted as exc:  # a run: it marked itself interrupted and names the resume command
        typer.echo(str(exc), err=True)
        return 128 + exc.signum
    except KeyboardInterrupt:  # before a run started (loading, planning): nothing to keep or resume
        typer.echo("interrupted.", err=True)
        return 130
    return 0


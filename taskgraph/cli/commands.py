"""The ``taskgraph`` typer app: every command, registered in the order ``taskgraph --help`` lists them.

The commands live in modules by job (graph: read a graph file; running: train and look at runs; cluster:
Ray jobs; use: apply trained nodes; common: what they share). ``taskgraph.cli.main`` builds this app
only when the no-change rerun's fast path (``cli.fast``) does not answer.
"""

from __future__ import annotations

import typer

from taskgraph.cli import cluster, graph, running, use

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


"""Commands that read a graph file and train nothing: validate, plan, viz, list, schema."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from taskgraph.cli.common import GraphArg, SetOpt, _echo, _load, _writing
from taskgraph.errors import TaskgraphError


def validate(graph: GraphArg, set_: SetOpt = None) -> None:
    """Check a graph file: schema, names, cycles and shared-module shapes. Exit 2 with every problem."""
    from taskgraph.spec.presence import missing_data

    spec, source, plan = _load(graph, set_)
    edges = sum(len(t.depends_on) for t in spec.tasks.values())
    _echo(f"{graph}: ok ({len(spec.tasks)} tasks, {edges} dependencies, {len(plan.stages)} stages)")
    for issue in missing_data(spec, source):  # valid, but `run` here would stop: say so now
        typer.echo(f"note: {issue} (`taskgraph run` on this machine refuses to start until it is there.)", err=True)


class PlanFormat(str, Enum):
    text = "text"
    json = "json"


def plan(
    graph: GraphArg,
    format: Annotated[PlanFormat, typer.Option("--format", "-f", help="text or json.")] = PlanFormat.text,
    set_: SetOpt = None,
) -> None:
    """Show the stages, the run order and the critical path."""
    from taskgraph.report.dependency import to_ascii

    spec, _source, the_plan = _load(graph, set_)
    if format is PlanFormat.json:
        _echo(json.dumps(the_plan.to_dict(), indent=2))
        return
    _echo(to_ascii(spec, the_plan).rstrip())
    _echo(f"order: {' -> '.join(the_plan.order)}")
    _echo(f"critical path: {' -> '.join(the_plan.critical_path)} ({the_plan.critical_cost:g} cost units)")


def viz(
    graph: Annotated[
        Path, typer.Argument(help="The graph file (YAML), or a run folder printed by `taskgraph run`.", show_default=False)
    ],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="svg, png, pdf, mmd or dot file.")] = None,
    format: Annotated[Optional[str], typer.Option("--format", "-f", help="svg|png|pdf|mmd|dot|ascii.")] = None,
    set_: SetOpt = None,
) -> None:
    """Draw the dependency order (format from the file suffix; ASCII on the terminal by default).

    Given a run folder, nodes are coloured by how they ended (done, cached, failed, skipped) and show their time.
    """
    from taskgraph.report.dependency import write_picture
    from taskgraph.report.rundata import is_run_dir, load_run

    status = durations = None
    if is_run_dir(graph):
        view = load_run(graph)
        if view.spec is None or view.plan is None:
            raise TaskgraphError(f"{graph}/graph.yaml cannot be read: {'; '.join(view.problems)}.")
        if set_:
            raise TaskgraphError("--set applies to graph files, not to a run folder (it shows what ran).")
        spec, the_plan, status, durations = view.spec, view.plan, view.status(), view.durations()
    else:
        spec, _source, the_plan = _load(graph, set_)
    with _writing(output):
        text = write_picture(spec, the_plan, output, format, status, durations)
    if output is None:
        _echo(text.rstrip())
    else:
        _echo(f"wrote {output}")


class ListWhat(str, Enum):
    modules = "modules"
    losses = "losses"
    loaders = "loaders"
    metrics = "metrics"
    weightings = "weightings"
    all = "all"


def list_(
    what: Annotated[ListWhat, typer.Argument(help="Which names to list.")] = ListWhat.all,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Each name's options, defaults and meaning.")] = False,
) -> None:
    """The names a graph file may use (or 'package.module:name' for your own code)."""
    from taskgraph.spec.components import METRICS, DataConfig, LossConfig, ModuleConfig, names_of, options_of
    from taskgraph.spec.weighting import weighting_names

    tables = {
        "modules": ("type", names_of(ModuleConfig)),
        "losses": ("type", names_of(LossConfig)),
        "loaders": ("loader", names_of(DataConfig)),
        "metrics": ("metrics", METRICS),
        "weightings": ("weighting.method", weighting_names()),
    }
    for key, (field, names) in tables.items():
        if what.value not in ("all", key):
            continue
        _echo(f"{key} ({field}: ...):")
        options = options_of({"modules": ModuleConfig, "losses": LossConfig, "loaders": DataConfig}[key]) \
            if verbose and key in ("modules", "losses", "loaders") else {}
        for name, doc in names.items():
            _echo(f"  {name:<22} {doc}")
            for line in options.get(name, ()):
                _echo(f"      {line}")


def schema() -> None:
    """Print the JSON Schema of graph files (for editor validation)."""
    from taskgraph.spec.models import Graph

    _echo(json.dumps(Graph.model_json_schema(by_alias=True), indent=2))

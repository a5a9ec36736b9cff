"""The ``taskgraph`` command. Wires the layers together; imports Ray and torch only to run.

Every user error is a ``TaskgraphError``: printed as one message, no traceback, exit code 2.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from taskgraph.errors import ExecutionError, SpecError, TaskgraphError

app = typer.Typer(
    name="taskgraph",
    help="Train a graph of interdependent ML tasks on Ray, passing learned modules downstream.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

GraphArg = Annotated[Path, typer.Argument(help="The graph file (YAML).", show_default=False)]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a value: --set tasks.NAME.train.epochs=1 (repeatable)."),
]


def _echo(text: str = "") -> None:
    typer.echo(text)


def _load(graph: Path, overrides: list[str] | None):
    from taskgraph.plan.graph import make_plan
    from taskgraph.spec.loader import load_spec

    spec, source = load_spec(graph, tuple(overrides or ()))
    return spec, source, make_plan(spec, source)


@app.command()
def validate(graph: GraphArg, set_: SetOpt = None) -> None:
    """Check a graph file: schema, names, cycles and shared-module shapes. Exit 2 with every problem."""
    spec, _source, plan = _load(graph, set_)
    edges = sum(len(t.depends_on) for t in spec.tasks.values())
    _echo(f"{graph}: ok ({len(spec.tasks)} tasks, {edges} dependencies, {len(plan.stages)} stages)")


class PlanFormat(str, Enum):
    text = "text"
    json = "json"


@app.command()
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


@app.command()
def viz(
    graph: GraphArg,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="svg, png, pdf, mmd or dot file.")] = None,
    format: Annotated[Optional[str], typer.Option("--format", "-f", help="svg|png|pdf|mmd|dot|ascii.")] = None,
    set_: SetOpt = None,
) -> None:
    """Draw the dependency order (format from the file suffix; ASCII on the terminal by default)."""
    from taskgraph.report.dependency import write_picture

    spec, _source, the_plan = _load(graph, set_)
    text = write_picture(spec, the_plan, output, format)
    if output is None:
        _echo(text.rstrip())
    else:
        _echo(f"wrote {output}")


@app.command()
def run(
    graph: GraphArg,
    address: Annotated[
        Optional[str], typer.Option(help="An existing Ray cluster: auto, host:port or ray://host:10001.")
    ] = None,
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Where run folders go.")] = Path("runs"),
    set_: SetOpt = None,
    cpu_only: Annotated[bool, typer.Option("--cpu-only", help="Train GPU nodes on the CPU.")] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop everything at the first failure.")] = False,
    num_cpus: Annotated[Optional[int], typer.Option(help="CPUs of the embedded local Ray (default: all).")] = None,
) -> None:
    """Train the graph on Ray (an embedded local Ray unless --address or RAY_ADDRESS is given)."""
    from taskgraph.runner import run_graph

    spec, source, the_plan = _load(graph, set_)
    _echo(f"running {spec.name}: {len(the_plan.order)} nodes in {len(the_plan.stages)} stages")

    def progress(record) -> None:
        if record.status == "done":
            final = ", ".join(f"{k}={v:.4f}" for k, v in record.meta.get("final", {}).items())
            took = (record.ended_at or 0) - (record.started_at or 0)
            _echo(f"  done     {record.name} in {took:.1f}s on {record.host} ({record.meta.get('device')}): {final}")
        elif record.status in ("failed", "skipped"):
            _echo(f"  {record.status:<8} {record.name}: {record.error}")

    result = run_graph(
        spec, source, run_root=run_dir, address=address, use_cpu_only=cpu_only,
        keep_going=not fail_fast, num_cpus=num_cpus, on_update=progress,
    )
    _echo("")
    _echo(f"{'node':<16} {'status':<8} {'seconds':>8}  metrics (validation)")
    for name in the_plan.order:
        rec = result.records[name]
        took = f"{rec.ended_at - rec.started_at:.1f}" if rec.started_at and rec.ended_at else "-"
        final = ", ".join(f"{k}={v:.4f}" for k, v in rec.meta.get("final", {}).items())
        _echo(f"{name:<16} {rec.status:<8} {took:>8}  {final}")
    _echo(f"\nwall time {result.wall_seconds:.1f}s; run directory: {result.run_dir}")
    if not result.ok:
        failed = [n for n, r in result.records.items() if r.status == "failed"]
        raise ExecutionError(
            f"{len(failed)} node(s) failed: {', '.join(failed)}. Errors and tracebacks are in "
            f"{result.run_dir}/run.json; finished nodes' artifacts are kept there."
        )


class ListWhat(str, Enum):
    modules = "modules"
    losses = "losses"
    loaders = "loaders"
    metrics = "metrics"
    weightings = "weightings"
    all = "all"


@app.command("list")
def list_(what: Annotated[ListWhat, typer.Argument(help="Which names to list.")] = ListWhat.all) -> None:
    """The names a graph file may use (or 'package.module:name' for your own code)."""
    from taskgraph.spec.components import METRICS, DataConfig, LossConfig, ModuleConfig, names_of
    from taskgraph.spec.weighting import weighting_names

    tables = {
        "modules": ("type", names_of(ModuleConfig, "type")),
        "losses": ("type", names_of(LossConfig, "type")),
        "loaders": ("loader", names_of(DataConfig, "loader")),
        "metrics": ("metrics", METRICS),
        "weightings": ("weighting.method", weighting_names()),
    }
    for key, (field, names) in tables.items():
        if what.value not in ("all", key):
            continue
        _echo(f"{key} ({field}: ...):")
        for name, doc in names.items():
            _echo(f"  {name:<22} {doc}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of graph files (for editor validation)."""
    from taskgraph.spec.models import Graph

    _echo(json.dumps(Graph.model_json_schema(by_alias=True), indent=2))


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors exit 2 with one message and no traceback (usage errors too)."""
    try:
        app(args=argv, prog_name="taskgraph")  # standalone: click prints usage errors, exits 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except SpecError as exc:
        typer.echo(str(exc), err=True)
        n = len(exc.issues)
        typer.echo(f"{n} problem{'s' if n != 1 else ''} found.", err=True)
        return 2
    except TaskgraphError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("interrupted; finished nodes' artifacts are kept in the run directory.", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``taskgraph`` command. Wires the layers together; imports Ray and torch only to run.

Every user error is a ``TaskgraphError``: printed as one message, no traceback, exit code 2.
"""

from __future__ import annotations

import errno
import json
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from taskgraph.errors import ExecutionError, Interrupted, SpecError, TaskgraphError, TaskgraphWarning

app = typer.Typer(
    name="taskgraph",
    help="Train a graph of interdependent ML tasks on Ray, passing learned modules downstream.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# `taskgraph data fetch|list|inspect` (taskgraph/datacli.py: typer only at import, like this module)
from taskgraph.datacli import data_app  # noqa: E402

app.add_typer(data_app, name="data")

OnlyOpt = Annotated[Optional[str], typer.Option("--only", help="Run only these nodes (their upstream must be cached).")]
FromOpt = Annotated[Optional[str], typer.Option("--from", help="Retrain these nodes and everything downstream of them.")]
UntilOpt = Annotated[Optional[str], typer.Option("--until", help="Stop after these nodes: run only them and their ancestors.")]
ForceOpt = Annotated[Optional[str], typer.Option("--force", help="Retrain these nodes even if cached (NAME+ for descendants too).")]
GraphArg = Annotated[Path, typer.Argument(help="The graph file (YAML).", show_default=False)]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a value: --set tasks.NAME.train.epochs=1 (repeatable)."),
]
MlflowOpt = Annotated[
    Optional[str],
    typer.Option("--mlflow", help="Also log metrics to MLflow at this tracking URI (needs mlflow installed)."),
]
TensorboardOpt = Annotated[
    bool, typer.Option("--tensorboard/--no-tensorboard", help="TensorBoard event files per node (RUN/NODE/tb).")
]
PlainOpt = Annotated[bool, typer.Option("--plain", help="Plain progress lines even on a terminal.")]
JobsAddressOpt = Annotated[
    Optional[str],
    typer.Option("--address", help="The cluster's Ray Jobs API: http://HEAD:8265 (default: RAY_API_SERVER_ADDRESS)."),
]

TokenOpt = Annotated[
    Optional[Path],
    typer.Option("--token-file", help="The cluster's token file (default: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or "
                 "~/.ray/auth_token); sent on token-protected clusters."),
]


def _echo(text: str = "") -> None:
    typer.echo(text)


@contextmanager
def _writing(output: Path | None, option: str = "-o") -> Iterator[None]:
    """A picture or report that cannot be written (read-only, full, no such folder is impossible to
    make) is the user's to fix: one line naming the file, not a traceback. Reading errors pass through."""
    try:
        yield
    except OSError as exc:
        if output is None:
            raise
        target = output.resolve()
        failed = target if exc.filename is None else Path(str(exc.filename)).resolve()  # a write: no name
        if failed != target and failed not in target.parents and target not in failed.parents \
                and not str(failed).startswith(f"{target}."):
            raise
        at = "" if failed == target or exc.filename is None else f" ({exc.filename})"
        fix = "Free space there or pass" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "Pass"
        raise TaskgraphError(
            f"cannot write {output}: {exc.strerror}{at}. {fix} {option} a path in a folder you can write to."
        ) from None


def _check_writable(folder: Path, option: str = "-o") -> None:
    """Make ``folder`` and write (then remove) a file in it: a read-only or full target fails now."""
    import tempfile

    with _writing(folder, option):
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".taskgraph-probe-") as probe:
            probe.write(b"\0")
            probe.flush()


def _load(graph: Path, overrides: list[str] | None):
    from taskgraph.plan.graph import make_plan
    from taskgraph.spec.loader import load_spec

    spec, source = load_spec(graph, tuple(overrides or ()))
    return spec, source, make_plan(spec, source)


def _use_cluster(address: str | None, token_file: Path | None) -> None:
    """Before anything is written: send the token (``--token-file`` or Ray's variables) and, for an
    address (``--address``/RAY_ADDRESS), make sure something answers there and takes the token."""
    import os

    if token_file is not None or address or os.environ.get("RAY_ADDRESS"):
        from taskgraph.execute.auth import use_token

        use_token(token_file)
    if address or os.environ.get("RAY_ADDRESS"):
        from taskgraph.execute.cluster import check_address

        check_address(address)


def _use_jobs_api(token_file: Path | None) -> None:
    from taskgraph.execute.auth import use_token

    use_token(token_file)


def _check_local_data(spec, source, address: str | None) -> None:
    """Before Ray starts: the data sets an embedded local Ray would load must be on this machine.
    (A cluster's workers read their own disks, so `--address`/RAY_ADDRESS runs are not checked.)"""
    import os

    from taskgraph.spec.presence import check_data_present

    if address is None and not os.environ.get("RAY_ADDRESS"):
        check_data_present(spec, source)


@app.command()
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


@app.command()
def report(
    run_folder: Annotated[str, typer.Argument(help="A run folder printed by `taskgraph run` (a path or an "
                                               "s3://... URL).", show_default=False)],
    output: Annotated[
        Optional[Path], typer.Option("-o", "--output", help="The HTML file (default: RUN_FOLDER/report.html).")
    ] = None,
) -> None:
    """One self-contained HTML page of a run: dependency picture, Gantt timeline with the critical path,
    training curves, the per-node table and, where `taskgraph ablate` ran, the ablation table."""
    from taskgraph.artifacts import store
    from taskgraph.report.html import write_report

    if store.is_remote(run_folder):  # read a local copy of what the report reads (not the parameters)
        import tempfile

        from taskgraph.artifacts.rundir import RunDir

        RunDir.open(run_folder)  # not a run folder: one line, before anything is copied
        with tempfile.TemporaryDirectory(prefix="taskgraph-report-") as tmp:
            local = store.download(run_folder, Path(tmp) / "run", skip=(".safetensors", ".ckpt", ".pt"))
            with _writing(output):
                written = write_report(local, output)
            if output is None:
                target = store.join(run_folder, "report.html")
                store.write_bytes(target, written.read_bytes())
                written = target
        _echo(f"wrote {written}")
        return
    with _writing(output or Path(run_folder) / "report.html"):
        written = write_report(run_folder, output)
    _echo(f"wrote {written}")


RunArg = Annotated[Path, typer.Argument(help="A run folder printed by `taskgraph run`.", show_default=False)]
DataOpt = Annotated[
    Optional[str],
    typer.Option("--data", help="A data source of the graph, or a file for the node's table/conll/arrays loader "
                 "(read as its test split)."),
]
SplitOpt = Annotated[
    Optional[str], typer.Option("--split", help="train, val or test (default: val; test for a --data file).")
]
DataSetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Change the run's data: --set data.NAME.OPTION=VALUE (repeatable)."),
]


def _check_split(split: str | None) -> None:
    from taskgraph.apply import SPLITS

    if split is not None and split not in SPLITS:
        raise TaskgraphError(f"--split {split}: not a split. Use one of {', '.join(SPLITS)}.")


def _check_sets(set_: list[str] | None) -> tuple[str, ...]:
    """Only data may change: a changed task would not be the model that was trained."""
    for item in set_ or []:
        if not item.startswith("data."):
            raise TaskgraphError(f"--set {item}: only data.NAME.OPTION=VALUE may change here (the nodes are what was "
                                 "trained). To change a task, run the graph again.")
    return tuple(set_ or ())


@app.command()
def evaluate(
    run_folder: RunArg,
    node: Annotated[Optional[list[str]], typer.Option("--node", "-n", help="Only this node (repeatable).")] = None,
    data: DataOpt = None,
    set_: DataSetOpt = None,
    split: SplitOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Metrics of trained nodes on a split of their data, or on other data, without training.

    On the split the run validated on (the default) the numbers equal the run's own.
    """
    from taskgraph.apply import evaluate_run

    _check_split(split)
    scores = evaluate_run(run_folder, node, data, _check_sets(set_), split)
    if as_json:
        _echo(json.dumps({s.node: {"split": s.split, "data": s.data, "examples": s.examples, "metrics": s.metrics}
                          for s in scores}, indent=2))
        return
    _echo(f"{'node':<16} {'split':<6} {'examples':>8}  metrics")
    for s in scores:
        _echo(f"{s.node:<16} {s.split:<6} {s.examples:>8}  " + ", ".join(f"{k}={v:.4f}" for k, v in s.metrics.items()))


@app.command()
def predict(
    run_folder: RunArg,
    node: Annotated[str, typer.Option("--node", "-n", help="The node whose answers to write.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="preds.parquet, preds.jsonl or preds.npz.")],
    data: DataOpt = None,
    set_: DataSetOpt = None,
    split: SplitOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Examples per batch.")] = 1024,
    plain: PlainOpt = False,
) -> None:
    """Answers of a trained node for every example of a split: class and probabilities, probability or
    value per head (sequence answers per token), in the data's order."""
    from taskgraph.apply import OUTPUT_SUFFIXES, predict_node, write_predictions

    _check_split(split)
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise TaskgraphError(f"-o {output}: write .parquet, .jsonl or .npz (the format follows the suffix).")
    _check_writable(output.parent if str(output.parent) else Path("."))
    if sys.stderr.isatty() and not plain:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            job = bar.add_task(f"predicting {node}", total=None)
            columns, words, chosen = predict_node(
                run_folder, node, data, _check_sets(set_), split, batch_size=batch_size,
                on_batch=lambda done, total: bar.update(job, completed=done, total=total))
    else:
        columns, words, chosen = predict_node(run_folder, node, data, _check_sets(set_), split, batch_size=batch_size)
    with _writing(output):
        write_predictions(columns, output)
    n = len(next(iter(columns.values())))
    _echo(f"wrote {output}: {n} examples of {words} ({chosen}), columns {', '.join(columns)}")


@app.command()
def run(
    graph: GraphArg,
    address: Annotated[
        Optional[str], typer.Option(help="An existing Ray cluster: auto, host:port or ray://host:10001.")
    ] = None,
    run_dir: Annotated[
        str,
        typer.Option("--run-dir", envvar="TASKGRAPH_RUN_DIR",
                     help="Where run folders go: a path, or an fsspec URL (s3://bucket/runs); on a cluster, "
                     "a store every Ray node reaches."),
    ] = "runs",
    set_: SetOpt = None,
    cpu_only: Annotated[bool, typer.Option("--cpu-only", help="Train GPU nodes on the CPU.")] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop everything at the first failure.")] = False,
    num_cpus: Annotated[Optional[int], typer.Option(help="CPUs of the embedded local Ray (default: all).")] = None,
    only: OnlyOpt = None,
    from_: FromOpt = None,
    until: UntilOpt = None,
    force: ForceOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Train every selected node; store nothing.")] = False,
    mlflow: MlflowOpt = None,
    tensorboard: TensorboardOpt = True,
    plain: PlainOpt = False,
    token_file: TokenOpt = None,
) -> None:
    """Train the graph on Ray (an embedded local Ray unless --address or RAY_ADDRESS is given).

    Nodes whose result is cached under --run-dir (same config, data, code, seed and upstream)
    are reused, not retrained. Selections: NAME, NAME+ (with descendants), +NAME (with
    ancestors), shell patterns, comma-separated.
    """
    spec, source, the_plan = _load(graph, set_)
    _check_local_data(spec, source, address)
    _use_cluster(address, token_file)
    _run_and_report(spec, source, the_plan, run_dir=run_dir, address=address, cpu_only=cpu_only,
                    fail_fast=fail_fast, num_cpus=num_cpus, only=only, from_=from_, until=until,
                    force=force, no_cache=no_cache, graph_path=graph, mlflow=mlflow, tensorboard=tensorboard,
                    plain=plain)


def _run_and_report(spec, source, the_plan, *, run_dir, address=None, cpu_only=False, fail_fast=False,
                    num_cpus=None, only=None, from_=None, until=None, force=None, no_cache=False,
                    graph_path=None, resume_dir=None, mlflow=None, tensorboard=True, plain=False) -> None:
    """Shared by ``run`` and ``resume``: run, print per-node lines and the summary table."""
    from taskgraph.runner import run_graph

    _echo(f"running {spec.name}: {len(the_plan.order)} nodes in {len(the_plan.stages)} stages")

    from taskgraph.report.live import make_view, scores

    # A live table on a terminal; plain lines in CI and files (progress comes from the workers via Ray).
    view = make_view(spec.name, the_plan, live=sys.stdout.isatty() and not plain, write=_echo)
    with view:
        result = run_graph(
            spec, source, run_root=run_dir, address=address, use_cpu_only=cpu_only,
            keep_going=not fail_fast, num_cpus=num_cpus, on_update=view.on_update, on_progress=view.on_progress,
            only=only, from_=from_, until=until, force=force, use_cache=not no_cache, resume_dir=resume_dir,
            tensorboard=tensorboard, mlflow_uri=mlflow, plan=the_plan,
        )
    _echo("")
    _echo(f"{'node':<16} {'status':<8} {'seconds':>8}  metrics (validation | test)")
    for name in the_plan.order:
        if name not in result.records:
            continue  # not selected
        rec = result.records[name]
        took = f"{rec.ended_at - rec.started_at:.1f}" if rec.started_at and rec.ended_at else "-"
        _echo(f"{name:<16} {rec.status:<8} {took:>8}  {scores(rec.meta)}")
    _echo(f"\nsee it: taskgraph report {result.run_dir}  (Chrome trace: trace.json"
          + (f"; tensorboard --logdir {result.run_dir})" if tensorboard else ")"))
    _echo(f"wall time {result.wall_seconds:.1f}s; run directory: {result.run_dir}")
    if not result.ok:
        failed = [n for n, r in result.records.items() if r.status == "failed"]
        raise ExecutionError(
            f"{len(failed)} node(s) failed: {', '.join(failed)}. Their errors and tracebacks are in "
            f"{result.run_dir}/<node>/error.txt; finished nodes' artifacts are kept there and in the cache. "
            f"After a fix, `taskgraph resume {result.run_dir}` (or the same `taskgraph run`) trains only "
            "what is not finished."
        )


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise TaskgraphError(f"{option} '{text}': expected comma-separated numbers, e.g. 0.1,0.3,1.0.") from None


@app.command()
def ablate(
    graph: GraphArg,
    seeds: Annotated[int, typer.Option(help="Seeds per variant (paired: same seed with and without the edge).")] = 3,
    fractions: Annotated[str, typer.Option(help="Label fractions of the downstream task, e.g. 0.1,0.3,1.0.")] = "1.0",
    edge: Annotated[
        Optional[list[str]], typer.Option("--edge", help="Only this edge, 'upstream->downstream' (repeatable).")
    ] = None,
    metric: Annotated[Optional[str], typer.Option(help="Compare this metric (default: each task's first).")] = None,
    from_run: Annotated[
        Optional[Path], typer.Option("--from-run", help="Take upstream states from this finished run folder.")
    ] = None,
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Where run folders go.")] = Path("runs"),
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Train the upstream nodes even if cached.")] = False,
    address: Annotated[Optional[str], typer.Option(help="An existing Ray cluster (default: embedded local Ray).")] = None,
    num_cpus: Annotated[Optional[int], typer.Option(help="CPUs of the embedded local Ray (default: all).")] = None,
    cpu_only: Annotated[bool, typer.Option("--cpu-only", help="Train GPU nodes on the CPU.")] = False,
    set_: SetOpt = None,
    token_file: TokenOpt = None,
) -> None:
    """Transfer gain of every dependency: train each edge's target with and without it, over seeds."""
    from taskgraph.ablate import ablate_graph
    from taskgraph.runner import cpu_only as drop_gpus

    spec, source, the_plan = _load(graph, set_)
    _check_local_data(spec, source, address)
    _use_cluster(address, token_file)
    if cpu_only:
        spec = drop_gpus(spec)
    shares = _floats(fractions, "--fractions")

    def progress(record) -> None:
        if record.status == "done" and "[" in record.name:
            final = ", ".join(f"{k}={v:.4f}" for k, v in record.meta.get("final", {}).items())
            _echo(f"  done     {record.name}: {final}")
        elif record.status == "done":
            _echo(f"  upstream {record.name} trained")

    result = ablate_graph(
        spec, source, seeds=seeds, fractions=shares, edges=edge, metric=metric, run_root=run_dir,
        from_run=from_run, use_cache=not no_cache, address=address, num_cpus=num_cpus, on_update=progress,
        plan=the_plan,
    )
    _echo("")
    for note in result.skipped:
        _echo(f"skipped {note}")
    _echo(result.table())
    _echo(f"\nwrote {result.out_dir / 'ablation.json'} and {result.out_dir / 'ablation.png'}")


@app.command()
def affinity(
    graph: GraphArg,
    tasks: Annotated[Optional[str], typer.Option(help="Comma-separated tasks (default: every single-task node).")] = None,
    shared: Annotated[Optional[str], typer.Option(help="The shared module (default: the first task's first module).")] = None,
    epochs: Annotated[int, typer.Option(help="Epochs of joint training while measuring.")] = 3,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size (default: the first task's).")] = None,
    lookahead_lr: Annotated[float, typer.Option(help="SGD step size of the lookahead on the shared module.")] = 0.1,
    every: Annotated[int, typer.Option(help="Measure affinity every N steps.")] = 2,
    ratio: Annotated[float, typer.Option(help="Group/chain above this share of the largest mutual affinity.")] = 0.5,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for affinity.json and suggested.yaml.")] = Path(
        "runs/affinity"
    ),
    set_: SetOpt = None,
) -> None:
    """Measure inter-task affinity (TAG lookahead) on shared inputs and write a suggested graph."""
    from taskgraph.affinity import measure_affinity

    spec, source, _plan = _load(graph, set_)
    _check_local_data(spec, source, None)  # affinity trains in this process
    names = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
    _check_writable(output)  # before minutes of measuring, not after
    with _writing(output):
        report = measure_affinity(
            spec, names, shared, out_dir=output, ratio=ratio, epochs=epochs, batch_size=batch_size,
            lookahead_lr=lookahead_lr, every=every, seed=spec.seed,
        )
    _echo(report.text())
    _echo(f"\nwrote {output / 'affinity.json'} and {output / 'suggested.yaml'} (start from it: taskgraph validate ...)")


class ListWhat(str, Enum):
    modules = "modules"
    losses = "losses"
    loaders = "loaders"
    metrics = "metrics"
    weightings = "weightings"
    all = "all"


@app.command()
def status(
    graph: Annotated[Path, typer.Argument(help="The graph file, or a job id from `taskgraph submit`.",
                                          show_default=False)],
    run_dir: Annotated[str, typer.Option("--run-dir", envvar="TASKGRAPH_RUN_DIR",
                                         help="The --run-dir whose cache to look in (a path or a URL).")] = "runs",
    set_: SetOpt = None,
    only: OnlyOpt = None,
    from_: FromOpt = None,
    until: UntilOpt = None,
    force: ForceOpt = None,
    address: JobsAddressOpt = None,
    token_file: TokenOpt = None,
) -> None:
    """What is cached and what a `taskgraph run` with the same options would train, and why.

    With a job id instead of a graph file (and --address), the state of a submitted run.
    """
    if not graph.is_file() and graph.suffix.lower() not in (".yaml", ".yml"):
        _use_jobs_api(token_file)
        _job_status(str(graph), address)  # a job id from `taskgraph submit`
        return
    from taskgraph.artifacts.cache import NodeCache
    from taskgraph.incremental import decide

    spec, _source, the_plan = _load(graph, set_)
    selection = decide(spec, the_plan, NodeCache.for_run_root(run_dir), only=only, from_=from_, until=until,
                       force=force)
    _echo(f"{'node':<16} {'action':<9} {'key':<12}  why")
    for name in the_plan.order:
        _echo(f"{name:<16} {selection.action(name):<9} {selection.keys[name][:12]}  {selection.reasons[name]}")
    _echo(f"\n{len(selection.to_run)} to train, {len(selection.cached)} cached, {len(selection.excluded)} not selected")


@app.command()
def resume(
    run_folder: Annotated[str, typer.Argument(help="A run folder printed by `taskgraph run` (a path or an "
                                               "s3://... URL).", show_default=False)],
    address: Annotated[Optional[str], typer.Option(help="An existing Ray cluster.")] = None,
    num_cpus: Annotated[Optional[int], typer.Option(help="CPUs of the embedded local Ray (default: all).")] = None,
    cpu_only: Annotated[bool, typer.Option("--cpu-only", help="Train GPU nodes on the CPU.")] = False,
    token_file: TokenOpt = None,
) -> None:
    """Finish an interrupted or failed run in its own folder: only unfinished nodes train."""
    from taskgraph.artifacts.rundir import GRAPH, RunDir

    from taskgraph.artifacts import store

    folder = RunDir.open(run_folder)
    if store.is_remote(folder.path):
        from taskgraph.plan.graph import make_plan
        from taskgraph.spec.loader import parse_spec

        graph_url = str(store.join(folder.path, GRAPH))
        spec, source = parse_spec(store.read_text(graph_url), file=graph_url)
        the_plan = make_plan(spec, source)
        run_root: Path | str = str(folder.path).rsplit("/", 2)[0]  # <run-dir>/<graph>/<timestamp>
    else:
        spec, source, the_plan = _load(Path(str(folder.path)) / GRAPH, None)
        run_root = Path(str(folder.path)).parents[1]
    _check_local_data(spec, source, address)
    _use_cluster(address, token_file)
    _run_and_report(spec, source, the_plan, run_dir=run_root, address=address, cpu_only=cpu_only,
                    num_cpus=num_cpus, resume_dir=folder.path)


@app.command("list")
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


@app.command()
def schema() -> None:
    """Print the JSON Schema of graph files (for editor validation)."""
    from taskgraph.spec.models import Graph

    _echo(json.dumps(Graph.model_json_schema(by_alias=True), indent=2))


@app.command()
def submit(
    graph: GraphArg,
    address: JobsAddressOpt = None,
    run_dir: Annotated[
        Optional[str],
        typer.Option("--run-dir", help="Shared path or URL every Ray node reaches (default: the cluster's "
                     "TASKGRAPH_RUN_DIR)."),
    ] = None,
    set_: SetOpt = None,
    cpu_only: Annotated[bool, typer.Option("--cpu-only", help="Train GPU nodes on the CPU.")] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop everything at the first failure.")] = False,
    working_dir: Annotated[
        Path, typer.Option("--working-dir", help="Shipped with the job (your project; must contain the graph).")
    ] = Path("."),
    ship_code: Annotated[
        bool, typer.Option("--ship-code/--no-ship-code", help="Ship this taskgraph too (else the cluster's own).")
    ] = True,
    pip: Annotated[Optional[list[str]], typer.Option("--pip", help="Extra pip package for the job (repeatable).")] = None,
    job_id: Annotated[Optional[str], typer.Option("--job-id", help="Choose the submission id.")] = None,
    follow: Annotated[bool, typer.Option("--follow", help="Print the job's log until it ends.")] = False,
    token_file: TokenOpt = None,
) -> None:
    """Run the graph on a Ray cluster as a Ray job (the driver runs on the cluster; you may disconnect)."""
    from taskgraph.artifacts import store
    from taskgraph.execute.jobs import follow_job, submit_graph

    _load(graph, set_)  # a bad graph fails here, not minutes later on the cluster
    args: list[str] = []
    if run_dir is not None:
        if not store.is_remote(run_dir) and not Path(str(store.normalize(run_dir))).is_absolute():
            raise ExecutionError(
                f"--run-dir {run_dir} is relative: on the cluster it would land in the job's temporary folder. "
                "Pass a path every Ray node mounts (/shared/runs) or a URL (s3://bucket/runs)."
            )
        args += ["--run-dir", run_dir]
    for item in set_ or []:
        args += ["--set", item]
    args += ["--cpu-only"] if cpu_only else []
    args += ["--fail-fast"] if fail_fast else []
    _use_jobs_api(token_file)
    submitted = submit_graph(graph, address, working_dir=working_dir, run_args=args, ship_code=ship_code,
                             pip=pip, job_id=job_id)
    where = f" --address {address}" if address else ""
    _echo(f"submitted {graph} as job {submitted}")
    _echo(f"  follow:  taskgraph logs {submitted}{where} --follow")
    _echo(f"  status:  taskgraph status {submitted}{where}")
    if follow:
        info = follow_job(submitted, address, _echo)
        _print_job(info)
        if info.status != "SUCCEEDED":
            raise ExecutionError(f"job {submitted} {info.status}: {_short(info.message)} (its log is above).")


@app.command()
def logs(
    job_id: Annotated[str, typer.Argument(help="The id `taskgraph submit` printed.", show_default=False)],
    address: JobsAddressOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
    token_file: TokenOpt = None,
) -> None:
    """Print the log of a submitted run (its `taskgraph run` output on the cluster)."""
    from taskgraph.execute.jobs import follow_job, job_logs

    _use_jobs_api(token_file)
    if follow:
        _print_job(follow_job(job_id, address, _echo))
    else:
        _echo(job_logs(job_id, address).rstrip("\n"))


@app.command()
def jobs(address: JobsAddressOpt = None, token_file: TokenOpt = None) -> None:
    """List the jobs submitted to the cluster, oldest first, with their status and graph."""
    import time as _time

    from taskgraph.execute.jobs import list_jobs

    _use_jobs_api(token_file)
    found = list_jobs(address)
    if not found:
        _echo("no jobs on this cluster (submit one: taskgraph submit GRAPH --address ...)")
        return
    _echo(f"{'job':<30} {'status':<10} {'graph':<20} {'started':<19} {'seconds':>8}")
    for info in found:
        started = _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(info.start_time)) if info.start_time else "-"
        took = f"{(info.end_time or _time.time()) - info.start_time:.1f}" if info.start_time else "-"
        _echo(f"{info.job_id:<30} {info.status:<10} {info.metadata.get('taskgraph_graph', '-'):<20} {started:<19} "
              f"{took:>8}")


@app.command()
def stop(
    job_id: Annotated[str, typer.Argument(help="The id `taskgraph submit` printed (see `taskgraph jobs`).",
                                          show_default=False)],
    address: JobsAddressOpt = None,
    token_file: TokenOpt = None,
) -> None:
    """Stop a submitted run. Its finished nodes stay cached; `taskgraph resume RUN_DIR` finishes it later."""
    from taskgraph.execute.jobs import TERMINAL, stop_job

    _use_jobs_api(token_file)
    info = stop_job(job_id, address)
    _print_job(info)
    if info.status not in TERMINAL:
        raise ExecutionError(f"job {job_id} is still {info.status} after 45 s of waiting for it to stop; "
                             f"see `taskgraph status {job_id}` and `taskgraph logs {job_id}`.")


RunDirArg = Annotated[str, typer.Argument(help="A run folder (`taskgraph run` prints it).", show_default=False)]


@app.command("export")
def export_(
    run_dir: RunDirArg,
    node: Annotated[str, typer.Option("--node", "-n", help="The node to export.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="model.pt2 (torch.export) or model.onnx.",
                                         show_default=False)],
) -> None:
    """Export a trained node to a file that runs without taskgraph (.pt2: torch.export; .onnx: ONNX)."""
    from taskgraph.export import FORMATS, export_node
    from taskgraph.trained import load_node

    if output.suffix.lower() not in FORMATS:
        raise TaskgraphError(f"-o {output}: name the file .pt2 (torch.export) or .onnx (ONNX).")
    trained = load_node(run_dir, node)
    with _writing(output):
        done = export_node(trained, output)
    shape = ", ".join(map(str, done.input_shape))
    _echo(f"{done.path}: {done.format}, {done.bytes / 1e6:.2f} MB; input {done.input_name} ({shape}); "
          f"outputs {', '.join(done.outputs)}; max |exported - eager| {done.max_difference:.1e}")
    if done.note:
        _echo(f"note: {done.note}")


@app.command()
def serve(
    run_dir: RunDirArg,
    nodes: Annotated[Optional[str], typer.Option("--nodes", help="Serve only these nodes (comma-separated).")] = None,
    replicas: Annotated[Optional[int], typer.Option("--replicas", min=1, help="Replicas per node.")] = None,
    cpus: Annotated[Optional[float], typer.Option("--cpus", min=0.0, help="CPUs per replica.")] = None,
    gpus: Annotated[Optional[float], typer.Option("--gpus", min=0.0, help="GPUs per replica.")] = None,
    max_batch_size: Annotated[Optional[int], typer.Option("--max-batch-size", min=1,
                                                          help="Most examples per forward pass.")] = None,
    batch_wait_ms: Annotated[Optional[float], typer.Option("--batch-wait-ms", min=0.0,
                                                           help="How long a replica waits to fill a batch.")] = None,
    host: Annotated[str, typer.Option("--host", help="Where HTTP listens (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="The HTTP port.")] = 8000,
    address: Annotated[Optional[str], typer.Option(help="An existing Ray cluster (default: embedded local Ray).")] = None,
    num_cpus: Annotated[Optional[int], typer.Option(help="CPUs of the embedded local Ray (default: all).")] = None,
) -> None:
    """Serve a run's trained nodes over HTTP on Ray Serve (JSON in, JSON out) until Ctrl-C.

    Replicas, GPUs and batching per node come from these flags, else the graph's `serve:` section.
    """
    import time

    from taskgraph.serve.app import prepare, start
    from taskgraph.spec.serving import Deployment

    names = [n.strip() for n in nodes.split(",") if n.strip()] if nodes else None
    flags = Deployment(replicas=replicas, cpus=cpus, gpus=gpus, max_batch_size=max_batch_size,
                       batch_wait_ms=batch_wait_ms)
    prepared = prepare(run_dir, names, flags)
    serving = start(prepared, host=host, port=port, address=address, num_cpus=num_cpus)
    try:
        _echo(f"serving {', '.join(prepared.served)} of {prepared.run_dir} at {serving.url} (Ctrl-C stops)")
        for name, d in prepared.deployments.items():
            _echo(f"  {name}: {d.replicas} replica(s), {d.cpus:g} CPU / {d.gpus:g} GPU each, batches of up to "
                  f"{d.max_batch_size} examples within {d.batch_wait_ms:g} ms")
        first = next(iter(prepared.served.values()))
        _echo(f"  try: curl {serving.url}   (describes the inputs)")
        _echo(f"       curl -X POST {serving.url} -d '{{\"inputs\": {{\"{first.field}\": [...]}}}}'")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        _echo("stopping.")
    finally:
        serving.stop()


def _print_job(info) -> None:
    import time as _time

    when = lambda t: _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(t)) if t else "-"  # noqa: E731
    took = f" ({info.end_time - info.start_time:.1f}s)" if info.start_time and info.end_time else ""
    _echo(f"job {info.job_id}: {info.status}{took}")
    _echo(f"  graph:      {info.metadata.get('taskgraph_graph', '-')}")
    _echo(f"  entrypoint: {info.entrypoint}")
    _echo(f"  started:    {when(info.start_time)}   ended: {when(info.end_time)}")
    if info.message:
        _echo(f"  message:    {_short(info.message)}")


def _short(message: str) -> str:
    """Ray's job message, without the copy of the log's tail it appends (`taskgraph logs` shows the log)."""
    first = (message.strip().splitlines() or [""])[0]
    return first.split(", last available logs")[0].rstrip(":. ")


def _job_status(job_id: str, address: str | None) -> None:
    """``taskgraph status JOB_ID``: a submitted run's state; exit 1 when it failed or was stopped."""
    from taskgraph.execute.jobs import job_info

    info = job_info(job_id, address)
    _print_job(info)
    if info.status in ("FAILED", "STOPPED"):
        raise typer.Exit(1)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """taskgraph's own warnings (a damaged cache entry evicted, ...) as one ``warning:`` line."""
    if issubclass(category, TaskgraphWarning):
        typer.echo(f"warning: {message}", err=True)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM) an exit was raised from, if any."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


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


if __name__ == "__main__":
    sys.exit(main())

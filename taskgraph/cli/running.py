"""Commands that train or look at what was trained: run, resume, ablate, affinity, status, report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from taskgraph.cli.cluster import _job_status
from taskgraph.cli.common import (
    ForceOpt,
    FromOpt,
    GraphArg,
    JobsAddressOpt,
    MlflowOpt,
    OnlyOpt,
    PlainOpt,
    SetOpt,
    TensorboardOpt,
    TokenOpt,
    UntilOpt,
    WarmOpt,
    _check_local_data,
    _check_writable,
    _echo,
    _load,
    _use_cluster,
    _use_jobs_api,
    _use_warm,
    _writing,
)
from taskgraph.cli.output import print_run_end
from taskgraph.errors import ExecutionError, TaskgraphError


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
    warm: WarmOpt = False,
) -> None:
    """Train the graph on Ray (an embedded local Ray unless --address or RAY_ADDRESS is given).

    Nodes whose result is cached under --run-dir (same config, data, code, seed and upstream)
    are reused, not retrained. Selections: NAME, NAME+ (with descendants), +NAME (with
    ancestors), shell patterns, comma-separated.
    """
    from taskgraph.rerun import snapshot

    # The record a no-change rerun replays (cli.fast) is kept under a digest of the bytes validated
    # here and of the code and settings as they are now, not as they are when the run ends.
    raw, digest = snapshot(graph, tuple(set_ or ()))  # raw None: unreadable, and _load says why
    spec, source, the_plan = _load(graph, set_, raw)
    _check_local_data(spec, source, address)
    warm_request = _use_warm(warm, address)
    _use_cluster(address, token_file)
    _run_and_report(spec, source, the_plan, run_dir=run_dir, address=address, cpu_only=cpu_only,
                    fail_fast=fail_fast, num_cpus=num_cpus, only=only, from_=from_, until=until,
                    force=force, no_cache=no_cache, graph_path=graph, mlflow=mlflow, tensorboard=tensorboard,
                    plain=plain, warm=warm_request)
    if digest is not None and not (cpu_only or no_cache):
        from taskgraph.rerun import write_record

        write_record(spec, the_plan, digest, run_dir)


def _run_and_report(spec, source, the_plan, *, run_dir, address=None, cpu_only=False, fail_fast=False,
                    num_cpus=None, only=None, from_=None, until=None, force=None, no_cache=False,
                    graph_path=None, resume_dir=None, mlflow=None, tensorboard=True, plain=False, warm=None) -> None:
    """Shared by ``run`` and ``resume``: run, print per-node lines and the summary table."""
    from taskgraph.runner import run_graph

    _echo(f"running {spec.name}: {len(the_plan.order)} nodes in {len(the_plan.stages)} stages")

    from taskgraph.report.live import make_view

    # A live table on a terminal; plain lines in CI and files (progress comes from the workers via Ray).
    view = make_view(spec.name, the_plan, live=sys.stdout.isatty() and not plain, write=_echo)
    with view:
        result = run_graph(
            spec, source, run_root=run_dir, address=address, use_cpu_only=cpu_only,
            keep_going=not fail_fast, num_cpus=num_cpus, on_update=view.on_update, on_progress=view.on_progress,
            only=only, from_=from_, until=until, force=force, use_cache=not no_cache, resume_dir=resume_dir,
            tensorboard=tensorboard, mlflow_uri=mlflow, plan=the_plan, warm=warm,
        )
    print_run_end(the_plan.order, result.records, result.run_dir, result.wall_seconds, tensorboard, _echo)
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
    warm: WarmOpt = False,
) -> None:
    """Transfer gain of every dependency: train each edge's target with and without it, over seeds."""
    from taskgraph.ablate import ablate_graph
    from taskgraph.runner import cpu_only as drop_gpus

    spec, source, the_plan = _load(graph, set_)
    _check_local_data(spec, source, address)
    warm_request = _use_warm(warm, address)
    _use_cluster(address, token_file)
    if cpu_only:
        spec = drop_gpus(spec)
    shares = _floats(fractions, "--fractions")

    def progress(record) -> None:
        if record.status == "done" and "[" in record.name:
            final = ", ".join(f"{k}={v:.4f}" for k, v in record.meta.get("final", {}).items())
            test = ", ".join(f"{k}={v:.4f}" for k, v in (record.meta.get("test") or {}).items())
            _echo(f"  done     {record.name}: {final}{' | test ' + test if test else ''}")  # test apart, as `run`
        elif record.status == "done":
            _echo(f"  upstream {record.name} trained")

    result = ablate_graph(
        spec, source, seeds=seeds, fractions=shares, edges=edge, metric=metric, run_root=run_dir,
        from_run=from_run, use_cache=not no_cache, address=address, num_cpus=num_cpus, on_update=progress,
        plan=the_plan, warm=warm_request,
    )
    _echo("")
    for note in result.skipped:
        _echo(f"skipped {note}")
    _echo(result.table())
    _echo(f"\nwrote {result.out_dir / 'ablation.json'} and {result.out_dir / 'ablation.png'}")


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


def resume(
    run_folder: Annotated[str, typer.Argument(help="A run folder printed by `taskgraph run` (a path or an "
                                               "s3://... URL).", show_default=False)],
    address: Annotated[Optional[str], typer.Option(help="An existing Ray cluster.")] = None,
    num_cpus: Annotated[Optional[int], typer.Option(help="CPUs of the embedded local Ray (default: all).")] = None,
    cpu_only: Annotated[bool, typer.Option("--cpu-only", help="Train GPU nodes on the CPU.")] = False,
    token_file: TokenOpt = None,
    warm: WarmOpt = False,
) -> None:
    """Finish an interrupted or failed run in its own folder: only unfinished nodes train."""
    from taskgraph.artifacts import store
    from taskgraph.artifacts.rundir import GRAPH, RunDir

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
    warm_request = _use_warm(warm, address)
    _use_cluster(address, token_file)
    _run_and_report(spec, source, the_plan, run_dir=run_root, address=address, cpu_only=cpu_only,
                    num_cpus=num_cpus, resume_dir=folder.path, warm=warm_request)


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

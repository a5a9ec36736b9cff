"""Commands for runs submitted to a Ray cluster as Ray jobs: submit, logs, jobs, stop (and `status JOB_ID`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from taskgraph.cli.common import GraphArg, JobsAddressOpt, SetOpt, TokenOpt, _echo, _load, _use_jobs_api
from taskgraph.errors import ExecutionError


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

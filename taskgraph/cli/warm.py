"""``taskgraph warm start|status|stop``: taskgraph's warm local Ray, kept between runs for ``--warm``.

The commands only start, describe and stop it; runs join it with ``taskgraph run --warm`` (or
``TASKGRAPH_WARM=1``). The mechanics are in ``taskgraph.execute.warmray``.
"""

from __future__ import annotations

import time
from typing import Annotated, Optional

import typer

warm_app = typer.Typer(
    help="taskgraph's warm local Ray for `run --warm`: start it, see it, stop it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@warm_app.command("start")
def start_cmd(
    num_cpus: Annotated[Optional[int], typer.Option(help="Its CPUs (default: all).")] = None,
    num_gpus: Annotated[Optional[int], typer.Option(help="Its GPUs (default: those Ray finds).")] = None,
    idle: Annotated[Optional[str], typer.Option(
        help="Stop after this long without a run: 90s, 15m, 2h (default: TASKGRAPH_WARM_IDLE, else 15m). "
        "On a warm Ray already up: its new idle time.")] = None,
) -> None:
    """Start the warm local Ray now (or keep the one that is up), so the next `taskgraph run --warm`
    does not wait for Ray's start."""
    from taskgraph.execute.warmray import state
    from taskgraph.execute.warmray.client import WarmRequest, ensure, minutes

    idle_s = state.parse_duration(idle) if idle is not None else None
    ray, started = ensure(WarmRequest(num_cpus=num_cpus, num_gpus=num_gpus, idle_s=idle_s,
                                      say=lambda text: typer.echo(text, err=True)))
    if not started:
        typer.echo(f"the warm Ray is up at {ray.describe()}; it stops after {minutes(ray.idle_s)} without a run")


@warm_app.command("status")
def status_cmd() -> None:
    """Whether the warm Ray is up, its resources, the runs connected to it and when it stops."""
    from taskgraph.execute.warmray import state
    from taskgraph.execute.warmray.client import look, minutes, runs_on

    folder = state.warm_dir()
    with state.locked(folder, timeout=30):
        ray, stale = look(folder)
    if stale:
        typer.echo(f"the warm Ray recorded in {folder} was gone ({stale}); its record is removed")
    if ray is None:
        typer.echo("no warm Ray is up (`taskgraph run --warm` or `taskgraph warm start` starts one)")
        return
    try:
        runs = runs_on(ray)
    except Exception as exc:  # noqa: BLE001  (its head stopped answering since the look above)
        typer.echo(f"warm Ray at {ray.describe()}: its head does not answer ({exc}); `taskgraph warm stop` ends it")
        return
    typer.echo(f"warm Ray at {ray.describe()}, up {minutes(round(time.time() - ray.started_at))}")
    if runs:
        typer.echo(f"runs connected: pid {', '.join(map(str, runs))}")
    else:
        left = ray.idle_left()  # None: the last run left since the keeper's last look (seconds ago)
        typer.echo(f"no run connected: stops in {minutes(round(ray.idle_s if left is None else left))} "
                   f"(idle time {minutes(ray.idle_s)})")
    typer.echo(f"session {ray.session_dir}; log {folder / state.LOG}")


@warm_app.command("stop")
def stop_cmd(
    force: Annotated[bool, typer.Option("--force", help="Stop it even while runs use it (their running nodes "
                                                        "fail; resume them later).")] = False,
) -> None:
    """Stop the warm Ray now (it also stops itself after its idle time)."""
    from taskgraph.execute.warmray.client import stop

    ray, stale = stop(force=force)
    if ray is not None:
        typer.echo(f"stopped the warm Ray at {ray.describe()}")
    elif stale:
        typer.echo(f"no warm Ray was up (its record was stale: {stale}; removed)")
    else:
        typer.echo("no warm Ray is up")

"""What the ``taskgraph`` commands share: option and argument types, printing, the one-line error for a file
that cannot be written, loading a graph and reaching a cluster (``main``'s warning and Ctrl-C helpers are
in ``cli.output``, which needs no typer).

Imports only typer and taskgraph.errors: the layers are imported inside the functions that use them.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from taskgraph.errors import TaskgraphError

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

WarmOpt = Annotated[
    bool,
    typer.Option("--warm/--no-warm", envvar="TASKGRAPH_WARM",
                 help="Run on taskgraph's warm local Ray, kept between runs (started if none is up; it stops after "
                 "TASKGRAPH_WARM_IDLE, default 15 min, without a run). See `taskgraph warm --help`."),
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


def _load(graph: Path, overrides: list[str] | None, raw: bytes | None = None):
    from taskgraph.plan.graph import make_plan
    from taskgraph.spec.loader import load_spec

    spec, source = load_spec(graph, tuple(overrides or ()), raw)
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


def _use_warm(warm: bool, address: str | None):  # noqa: ANN202
    """``--warm``: refused with a cluster address before anything is written; else the request
    ``run_graph``/``ablate_graph`` pass to ``connect`` (None without --warm)."""
    if not warm:
        return None
    from taskgraph.execute.warmray.client import WarmRequest, check_warm, default_idle

    check_warm(address)
    return WarmRequest(idle_s=default_idle(), say=lambda text: typer.echo(text, err=True))


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

"""What the CLI prints, without importing typer: lines, warnings, and the table that ends a run.

Typer (with its click and the pydantic its option coercion imports) costs ~0.3 s to start; the
no-change rerun (``cli.fast``) prints through this module alone, so both paths print the same bytes.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from taskgraph.errors import TaskgraphWarning

__all__ = ["echo", "show_warning", "interrupt_behind", "print_run_end"]


def echo(text: str = "", err: bool = False) -> None:
    """``typer.echo``: the line and a newline, flushed. Plain ASCII is written here; anything else
    (ANSI codes click strips off a non-terminal, other encodings) goes through typer itself."""
    if not text.isascii() or "\x1b" in text:
        import typer

        typer.echo(text, err=err)
        return
    stream = sys.stderr if err else sys.stdout
    if stream is None:  # no console (pythonw): click prints nothing either
        return
    stream.write(text + "\n")
    stream.flush()


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """taskgraph's own warnings (a damaged cache entry evicted, ...) as one ``warning:`` line."""
    if issubclass(category, TaskgraphWarning):
        echo(f"warning: {message}", err=True)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


def interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM) an exit was raised from, if any."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def print_run_end(order: Iterable[str], records: dict[str, Any], run_dir: Path | str, wall_seconds: float,
                  tensorboard: bool, write: Callable[[str], None] = echo) -> None:
    """The table after a run (one line per node run or cached) and where to look at it."""
    from taskgraph.report.live import scores

    write("")
    write(f"{'node':<16} {'status':<8} {'seconds':>8}  metrics (validation | test)")
    for name in order:
        if name not in records:
            continue  # not selected
        rec = records[name]
        took = f"{rec.ended_at - rec.started_at:.1f}" if rec.started_at and rec.ended_at else "-"
        write(f"{name:<16} {rec.status:<8} {took:>8}  {scores(rec.meta)}")
    write(f"\nsee it: taskgraph report {run_dir}  (Chrome trace: trace.json"
          + (f"; tensorboard --logdir {run_dir})" if tensorboard else ")"))
    write(f"wall time {wall_seconds:.1f}s; run directory: {run_dir}")

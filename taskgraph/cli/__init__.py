"""The ``taskgraph`` command. Wires the layers together; imports Ray and torch only to run.

Every user error is a ``TaskgraphError``: printed as one message, no traceback, exit code 2.

``main`` first offers the arguments to ``cli.fast``, which answers a no-change ``taskgraph run``
from a kept record without importing typer or pydantic (~0.3 s and ~0.4 s of a rerun); anything
else goes to the typer app (``cli.commands``: the commands, by job, in ``graph``, ``running``,
``cluster``, ``use``, ``common``). This module imports neither, so ``taskgraph.cli.app`` loads on use.
"""

from __future__ import annotations

import warnings
from typing import Any

from taskgraph.cli.output import echo, interrupt_behind, show_warning
from taskgraph.errors import Interrupted, SpecError, TaskgraphError

__all__ = ["main", "app"]


def __getattr__(name: str) -> Any:
    """``taskgraph.cli.app``, the typer app, built on first use."""
    if name == "app":
        from taskgraph.cli.commands import app

        return app
    raise AttributeError(f"module 'taskgraph.cli' has no attribute {name!r}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors exit 2 with one message and no traceback (usage errors too)."""
    warnings.showwarning = show_warning
    try:
        from taskgraph.cli.fast import fast_run

        code = fast_run(argv)
        if code is not None:
            return code
        from taskgraph.cli.commands import app

        app(args=argv, prog_name="taskgraph")  # standalone: click prints usage errors, exits 2
    except SystemExit as exc:
        stop = interrupt_behind(exc)  # typer turns Ctrl-C into a silent Exit(130)
        if stop is not None:
            echo(str(stop) if isinstance(stop, Interrupted) else "interrupted.", err=True)
            return 128 + stop.signum if isinstance(stop, Interrupted) else 130
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except SpecError as exc:
        echo(str(exc), err=True)
        n = len(exc.issues)
        echo(f"{n} problem{'s' if n != 1 else ''} found.", err=True)
        return 2
    except TaskgraphError as exc:
        echo(f"error: {exc}", err=True)
        return 2
    except Interrupted as exc:  # a run: it marked itself interrupted and names the resume command
        echo(str(exc), err=True)
        return 128 + exc.signum
    except KeyboardInterrupt:  # before a run started (loading, planning): nothing to keep or resume
        echo("interrupted.", err=True)
        return 130
    return 0

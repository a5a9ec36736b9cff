"""One base error, a subclass per layer: the CLI prints these without a traceback and exits 2.

Anything that is not a ``TaskgraphError`` is a bug in taskgraph and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "TaskgraphError",
    "Interrupted",
    "SpecIssue",
    "SpecError",
    "PlanError",
    "ExecutionError",
    "TrainError",
    "ArtifactError",
    "TaskgraphWarning",
]


class TaskgraphError(Exception):
    """Base of every error a user can cause and fix."""


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM, after marking itself and its running nodes ``interrupted``
    in ``run.json``. The message says what stopped and the resume command; the CLI exits 128 + signal
    (130 for Ctrl-C). A ``KeyboardInterrupt``, so code that stops on Ctrl-C still does."""

    def __init__(self, message: str, signum: int = 2, run_dir: object = None):
        self.signum = signum
        self.run_dir = run_dir
        super().__init__(message)


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a graph file, with where it is and what to do."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    path: str = ""

    def __str__(self) -> str:
        where = self.file or "<graph>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class SpecError(TaskgraphError):
    """The graph file is not valid; carries every issue found in one pass."""

    def __init__(self, issues: list[SpecIssue] | SpecIssue):
        self.issues = [issues] if isinstance(issues, SpecIssue) else list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class PlanError(SpecError):
    """The file is valid but the graph cannot be planned (a cycle, a missing shared module, ...)."""

    def __init__(self, issues: list[SpecIssue] | SpecIssue, cycle: tuple[str, ...] | None = None):
        self.cycle = cycle
        super().__init__(issues)


class ExecutionError(TaskgraphError):
    """A node failed on Ray, or the cluster cannot run it."""

    def __init__(self, message: str, node: str | None = None, worker: str | None = None):
        self.node = node
        self.worker = worker
        super().__init__(message)


class TrainError(TaskgraphError):
    """Training of one node went wrong in a way the user can fix (NaN loss, bad shapes, ...)."""

    def __init__(self, message: str, node: str | None = None):
        self.node = node
        super().__init__(message)


class ArtifactError(TaskgraphError):
    """A run directory or cached artifact is missing or unreadable."""


class TaskgraphWarning(UserWarning):
    """Something was wrong but taskgraph recovered (a damaged cache entry, an unreadable checkpoint):
    the CLI prints it as one ``warning:`` line."""

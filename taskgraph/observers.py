"""What watches a run besides the scheduler: live progress, ``trace.json``, TensorBoard and MLflow.

Wiring only, like ``runner``: the scheduler hands progress events to ``on_progress``, the workers
log metrics through the ``Tracking`` settings shipped with the node function, and at the end
(finished or failed) ``finish`` writes the Chrome trace and closes the MLflow run.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskgraph.errors import TaskgraphError

__all__ = ["RunObservers", "Tracking", "TRACE"]

TRACE = "trace.json"


@dataclass(frozen=True)
class Tracking:
    """What the workers log a run's metrics to (``train.tracking`` reads it); shipped with the node function."""

    tensorboard: bool = True
    mlflow_uri: str | None = None
    mlflow_experiment_id: str | None = None
    mlflow_parent_run_id: str | None = None  # one MLflow run per graph run, a child run per node
    run_name: str = ""


class RunObservers:
    """One per run: forwards progress to the caller, keeps epoch events for the trace, owns MLflow's run."""

    def __init__(
        self,
        run_dir: Any,
        graph: str,
        upstream: dict[str, tuple[str, ...]],
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        tensorboard: bool = True,
        mlflow_uri: str | None = None,
    ):
        self.run_dir, self.upstream, self.user_progress = run_dir, upstream, on_progress
        self.epochs: list[dict[str, Any]] = []
        # node -> {pid of a try: time of its last event}: when a retried try was last heard from
        self.last_heard: dict[str, dict[int, float]] = {}
        self._current_pid: dict[str, int] = {}
        run_name = f"{graph}/{os.path.basename(str(run_dir.path))}"
        experiment_id = parent = None
        if mlflow_uri:
            try:
                import mlflow  # noqa: F401
            except ImportError as exc:
                raise TaskgraphError(
                    f"--mlflow {mlflow_uri}: mlflow is not installed. pip install mlflow-skinny (or mlflow), "
                    "or leave out --mlflow (TensorBoard logs are written anyway)."
                ) from exc
            from taskgraph.train.tracking import start_mlflow_run

            experiment_id, parent = start_mlflow_run(
                mlflow_uri, graph, run_name, {"taskgraph.run_dir": str(run_dir.path), "taskgraph.graph": graph}
            )
        self.mlflow_uri, self.mlflow_run = mlflow_uri, parent
        self.tracking = Tracking(tensorboard, mlflow_uri, experiment_id, parent, run_name)

    def node_fn(self, node_job: Callable[..., Any]) -> Callable[..., Any]:
        """``node_job`` with the tracking settings bound (a partial pickles to the workers)."""
        return functools.partial(node_job, tracking=self.tracking)

    @property
    def progress(self) -> Callable[[dict[str, Any]], None] | None:
        """The scheduler's ``on_progress``; None (no hub actor at all) when nobody watches live."""
        return self._on_progress if self.user_progress else None

    def _on_progress(self, event: dict[str, Any]) -> None:
        node = event.get("node")
        if node is not None:
            if event.get("kind") == "start" and event.get("pid") is not None:
                self._current_pid[node] = int(event["pid"])  # a node's events arrive in order, tries too
            if node in self._current_pid and event.get("time") is not None:
                self.last_heard.setdefault(node, {})[self._current_pid[node]] = float(event["time"])
        if event.get("kind") == "epoch":
            self.epochs.append({**event, "pid": self._current_pid.get(node)} if node else event)
        if self.user_progress:
            self.user_progress(event)

    def finish(self, state: dict[str, Any], ok: bool) -> None:
        """Write ``trace.json`` from the final ``run.json`` state; end the MLflow run."""
        from taskgraph.artifacts.files import atomic_write_json
        from taskgraph.report.trace import chrome_trace

        atomic_write_json(os.path.join(str(self.run_dir.path), TRACE), chrome_trace(state, self.upstream, self.epochs))
        if self.mlflow_run:
            from taskgraph.train.tracking import end_mlflow_run

            end_mlflow_run(self.mlflow_uri, self.mlflow_run, ok)
            self.mlflow_run = None

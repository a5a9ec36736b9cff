"""Metrics to TensorBoard (event files per node) and, when installed and asked for, to MLflow.

Both listen to the training loop's ``report`` hook, on the worker that trains the node, so they
see every epoch (and the throttled in-epoch batch losses) whatever the driver does. The libraries
write their own formats; nothing here re-implements them. TensorBoard needs the ``tensorboard``
package (a dependency); without it logging is skipped and the node's metrics say why.

The settings (``tracking``) are ``taskgraph.observers.Tracking``: tensorboard, mlflow_uri,
mlflow_experiment_id, mlflow_parent_run_id, run_name. Read by attribute, so this layer does not
import the wiring above it.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from typing import Any

__all__ = ["TensorBoardLogger", "MlflowLogger", "open_loggers", "fan_out", "start_mlflow_run", "end_mlflow_run"]

Event = dict[str, Any]


def _scalars(event: Event) -> dict[str, float]:
    """``train/loss``, ``val/accuracy``, ... from an epoch event; ``train/batch_loss`` from a step event."""
    if event.get("kind") == "step":
        return {"train/batch_loss": float(event["loss"])} if event.get("loss") is not None else {}
    out = {}
    for key, value in event.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if key == "train_loss":
            out["train/loss"] = float(value)
        elif key.startswith("val_"):
            out[f"val/{key.removeprefix('val_')}"] = float(value)
        elif key == "seconds":
            out["time/epoch_seconds"] = float(value)
    return out


#: A node's first seconds of TensorBoard scalars are kept in memory and written when the writer
#: opens: then, or when the node ends. A short node never waits for TensorBoard's import and event
#: file (~0.5 s on a fresh worker) before handing its state on; a long one is live after this.
LIVE_AFTER_S = 5.0


class TensorBoardLogger:
    """Scalars by optimizer step, so batch and epoch curves share one x axis (with their wall times).

    A retried node resumes from its last checkpoint, behind where the dead try had logged to. The
    writer opens at the try's first event, and when an earlier try left event files here it opens
    with ``purge_step`` = that event's step: TensorBoard then drops the earlier try's points from
    that step on (the training they show was rolled back), so every curve stays one monotonic line.
    Events of the first ``LIVE_AFTER_S`` seconds are held and written when the writer opens.
    """

    def __init__(self, log_dir: str):
        if importlib.util.find_spec("tensorboard") is None:  # fail now, not at the first event
            raise ImportError("No module named 'tensorboard'")
        self.log_dir = log_dir
        self.writer: Any = None
        self._held: list[tuple[str, float, int, float]] = []
        self._opened = time.monotonic()

    def _open(self, step: int) -> Any:
        import os

        from torch.utils.tensorboard import SummaryWriter

        earlier = os.path.isdir(self.log_dir) and any(n.startswith("events.") for n in os.listdir(self.log_dir))
        self.writer = SummaryWriter(log_dir=self.log_dir, purge_step=step if earlier else None)
        for tag, value, at, wall in self._held:
            self.writer.add_scalar(tag, value, at, walltime=wall)
        self._held = []
        return self.writer

    def __call__(self, event: Event) -> None:
        if event.get("kind") not in ("step", "epoch"):
            return
        step, now = int(event.get("step") or 0), time.time()
        rows = [(tag, value, step, now) for tag, value in _scalars(event).items()]
        if event.get("kind") == "epoch":
            rows.append(("epoch", float(event.get("epoch") or 0), step, now))
        if self.writer is None and time.monotonic() - self._opened < LIVE_AFTER_S:
            self._held.extend(rows)
            return
        if self.writer is None:
            self._open(self._held[0][2] if self._held else step)
        for tag, value, at, wall in rows:
            self.writer.add_scalar(tag, value, at, walltime=wall)

    def close(self, ok: bool = True) -> None:
        if self.writer is None and self._held:
            self._open(self._held[0][2])
        if self.writer is not None:
            self.writer.close()

    def close_later(self) -> tuple[str, list[tuple[str, float, int, float]]] | None:
        """Close, leaving the scalars still held (no event file opened yet: a short node) to the node's
        other writes: returns the folder and the scalars for ``artifacts.tbevents.write_scalars``."""
        if self.writer is None:
            rows, self._held = self._held, []
            return (self.log_dir, rows) if rows else None
        self.writer.close()
        return None


def start_mlflow_run(uri: str, experiment: str, run_name: str, tags: dict[str, str]) -> tuple[str, str]:
    """The graph run's MLflow run (on the driver, before any node): returns (experiment id, run id)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    return experiment_id, run.info.run_id


def end_mlflow_run(uri: str, run_id: str, ok: bool) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=uri).set_terminated(run_id, "FINISHED" if ok else "FAILED")


class MlflowLogger:
    """One MLflow child run per node: parameters once, metrics per epoch (by step), status at the end."""

    def __init__(self, tracking: Any, node: str, params: dict[str, Any]):
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking.mlflow_uri)
        tags = {"taskgraph.node": node, "taskgraph.run": tracking.run_name}
        if tracking.mlflow_parent_run_id:
            tags["mlflow.parentRunId"] = tracking.mlflow_parent_run_id
        run = self.client.create_run(tracking.mlflow_experiment_id or "0", run_name=node, tags=tags)
        self.run_id = run.info.run_id
        self.client.log_batch(self.run_id, params=[Param(k, str(v)[:500]) for k, v in sorted(params.items())])

    def __call__(self, event: Event) -> None:
        if event.get("kind") != "epoch":  # batch losses stay in TensorBoard: MLflow calls are round trips
            return
        from mlflow.entities import Metric

        stamp, step = int(time.time() * 1000), int(event.get("step") or 0)
        metrics = [Metric(tag.replace("/", "_"), value, stamp, step) for tag, value in _scalars(event).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self, ok: bool = True) -> None:
        self.client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED")

    def close_later(self) -> None:
        """A node that trained to its end: its run is finished now (nothing to leave to the writer)."""
        self.close(True)


def open_loggers(
    tracking: Any, node: str, node_dir: str, params: dict[str, Any]
) -> tuple[list[Any], list[str]]:
    """The loggers this node writes to, and notes on what was skipped (stored in its metrics)."""
    loggers: list[Any] = []
    notes: list[str] = []
    if tracking is None:
        return loggers, notes
    if tracking.tensorboard:
        if "://" in node_dir and not node_dir.startswith("file://"):
            # SummaryWriter writes local files; on an object store it would fail the node. The
            # curves are still in metrics.json and in the report.
            notes.append(f"no TensorBoard files: the run dir {node_dir} is not a local folder")
        else:
            try:
                loggers.append(TensorBoardLogger(f"{node_dir.removeprefix('file://')}/tb"))
            except ImportError:
                notes.append("tensorboard is not installed: no event files. pip install tensorboard")
    if tracking.mlflow_uri:
        loggers.append(MlflowLogger(tracking, node, params))
    return loggers, notes


def fan_out(*sinks: Callable[[Event], None] | None) -> Callable[[Event], None]:
    """One ``report`` callable that feeds every sink (progress to the driver, loggers).

    An event without ``kind`` is an epoch's end (what every trainer reported before step events).
    """
    targets = [s for s in sinks if s is not None]

    def report(event: Event) -> None:
        if "kind" not in event:
            event = {"kind": "epoch", **event}
        for target in targets:
            target(event)

    return report

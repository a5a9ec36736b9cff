"""The training loop's reports (epoch and throttled step events) and the TensorBoard logger (no Ray)."""

from __future__ import annotations

import math

import pytest

from taskgraph.spec import parse_spec
from taskgraph.train import NodeRequest, train_node
from taskgraph.train import loop as loop_module
from taskgraph.train.tracking import TensorBoardLogger, fan_out, open_loggers

GRAPH = """
name: tiny
data:
  shapes: {loader: synthetic_shapes, n: 300, dim: 8, classes: 3}
tasks:
  only:
    data: shapes
    modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 3}}
    loss: {type: cross_entropy, target: label}
    metrics: [accuracy]
    train: {epochs: 3, batch_size: 32}
"""


def _train(report):
    spec = parse_spec(GRAPH)[0]
    return train_node(NodeRequest("only", spec.tasks["only"], spec.data["shapes"], seed=1), {}, report=report)


def test_epoch_events_and_step_events_when_not_throttled(monkeypatch):
    monkeypatch.setattr(loop_module, "STEP_REPORT_S", 0.0)
    events: list[dict] = []
    out = _train(events.append)
    epochs = [e for e in events if e["kind"] == "epoch"]
    steps = [e for e in events if e["kind"] == "step"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert all(e["total_steps"] == out.steps for e in events)
    assert [e["step"] for e in steps] == list(range(1, out.steps + 1))
    assert all(math.isfinite(e["loss"]) and e["node"] == "only" for e in steps)
    assert {"train_loss", "val_loss", "val_accuracy"} <= set(epochs[-1])


def test_step_events_are_throttled_by_the_clock(monkeypatch):
    monkeypatch.setattr(loop_module, "STEP_REPORT_S", 3600.0)
    events: list[dict] = []
    _train(events.append)
    assert len([e for e in events if e["kind"] == "step"]) == 1  # the first one, then nothing for an hour
    assert len([e for e in events if e["kind"] == "epoch"]) == 3


def test_tensorboard_event_files_hold_the_curves(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    class Settings:  # what observers.Tracking carries
        tensorboard, mlflow_uri = True, None

    loggers, notes = open_loggers(Settings(), "only", str(tmp_path / "only"), {})
    assert notes == [] and isinstance(loggers[0], TensorBoardLogger)
    _train(fan_out(*loggers))
    loggers[0].close()
    acc = EventAccumulator(str(tmp_path / "only" / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/batch_loss", "val/loss", "val/accuracy", "epoch"} <= tags
    assert [int(e.value) for e in acc.Scalars("epoch")] == [1, 2, 3]
    assert len(acc.Scalars("val/accuracy")) == 3


def test_no_tensorboard_on_an_object_store_run_dir_but_training_goes_on():
    class Settings:
        tensorboard, mlflow_uri = True, None

    loggers, notes = open_loggers(Settings(), "only", "s3://bucket/runs/g/1/only", {})
    assert loggers == [] and "not a local folder" in notes[0]


def test_events_without_a_kind_are_epoch_ends():
    seen: list[dict] = []
    fan_out(seen.append, None)({"node": "joint", "epoch": 2, "train_loss": 0.5})
    assert seen == [{"kind": "epoch", "node": "joint", "epoch": 2, "train_loss": 0.5}]


def test_a_short_nodes_scalars_are_written_by_the_writer_as_its_summary_writer_would(tmp_path):
    """A node shorter than LIVE_AFTER_S never opens a SummaryWriter (3.5 ms of a chain link, in the
    process that trains the next node): ``close_later`` hands its held scalars to the writer process,
    which writes the same events with tensorboard's own writer; a second try's file purges the first's."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from taskgraph.artifacts.tbevents import write_scalars

    def curves(folder):
        acc = EventAccumulator(str(folder))
        acc.Reload()
        return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}

    deferred, direct = TensorBoardLogger(str(tmp_path / "deferred")), TensorBoardLogger(str(tmp_path / "direct"))
    _train(fan_out(deferred, direct))
    log_dir, rows = deferred.close_later()
    assert deferred.writer is None and log_dir == str(tmp_path / "deferred") and not (tmp_path / "deferred").exists()
    write_scalars(log_dir, rows)
    direct.close()
    assert curves(tmp_path / "deferred") == curves(tmp_path / "direct")
    assert [v for _, v in curves(tmp_path / "deferred")["epoch"]] == [1, 2, 3]
    # a retried node's try writes from a later step on: TensorBoard drops the first try's points from there
    steps = sorted({step for _, _, step, _ in rows})
    redo = steps[len(steps) // 2]
    write_scalars(log_dir, [(tag, value + 10, step, wall) for tag, value, step, wall in rows if step >= redo])
    epochs = curves(tmp_path / "deferred")["epoch"]
    assert [s for s, _ in epochs] == sorted({s for s, _ in epochs}), "one monotonic line"
    assert [v for s, v in epochs] == [v + (10 if s >= redo else 0) for s, v in curves(tmp_path / "direct")["epoch"]]

"""The live terminal view and the plain log lines, fed by hand-made records and progress events."""

from __future__ import annotations

from types import SimpleNamespace

from rich.console import Console

from taskgraph.report.live import LiveView, PlainView, ProgressState


def record(name, status, **kw):
    base = dict(name=name, status=status, started_at=None, ended_at=None, host=None, gpu_ids=[], error=None, meta={})
    return SimpleNamespace(**{**base, **kw})


def test_state_goes_queued_running_done_and_keeps_the_latest_loss():
    state = ProgressState(["a", "b"])
    state.on_update(record("a", "running"))
    assert state.nodes["a"].status == "queued"
    state.on_progress({"node": "a", "kind": "start", "time": 1.0, "host": "h", "pid": 7, "gpu_ids": []})
    assert state.nodes["a"].status == "running" and state.nodes["a"].where == "h pid 7"
    state.on_progress({"node": "a", "kind": "step", "epoch": 1, "epochs": 3, "step": 5, "total_steps": 30, "loss": 0.9})
    state.on_progress({"node": "a", "kind": "epoch", "epoch": 1, "epochs": 3, "step": 10, "total_steps": 30,
                       "train_loss": 0.8, "val_loss": 0.7, "val_accuracy": 0.6})
    a = state.nodes["a"]
    assert (a.epoch, a.step, a.total_steps, a.loss, a.val) == (1, 10, 30, 0.8, {"loss": 0.7, "accuracy": 0.6})
    state.on_progress({"kind": "resources", "in_use": {"CPU": 1.0, "GPU": 0.0}, "total": {"CPU": 2.0, "GPU": 0.0}})
    assert state.in_use["CPU"] == 1.0
    state.on_update(record("a", "done", started_at=1.0, ended_at=3.5, host="h"))
    assert state.nodes["a"].status == "done" and state.nodes["a"].seconds == 2.5
    state.on_progress({"node": "unknown", "kind": "epoch"})  # ignored, no error


def test_live_view_renders_every_node_with_progress():
    view = LiveView("quickstart", ["pretrain", "finetune"])
    view.on_update(record("pretrain", "running"))
    view.on_progress({"node": "pretrain", "kind": "start", "time": 1.0, "host": "h", "pid": 7})
    view.on_progress({"node": "pretrain", "kind": "epoch", "epoch": 2, "epochs": 3, "step": 20, "total_steps": 30,
                      "train_loss": 0.4321, "val_accuracy": 0.75})
    view.on_progress({"kind": "resources", "in_use": {"CPU": 1.0}, "total": {"CPU": 2.0}})
    console = Console(record=True, width=140, force_terminal=False)
    console.print(view.render())
    text = console.export_text()
    assert "pretrain" in text and "finetune" in text
    assert "2/3" in text and "0.4321" in text and "accuracy=0.750" in text
    assert "CPU 1/2 in use" in text and "pending" in text


def test_plain_view_writes_lines_not_step_noise():
    lines: list[str] = []
    view = PlainView(["a"], write=lines.append, every_s=3600)
    view.on_progress({"node": "a", "kind": "start", "host": "h", "pid": 3})
    for step in range(50):
        view.on_progress({"node": "a", "kind": "step", "epoch": 1, "step": step, "loss": 1.0})
    for epoch in (1, 2, 3):
        view.on_progress({"node": "a", "kind": "epoch", "epoch": epoch, "epochs": 3, "train_loss": 0.5, "val_loss": 0.4})
    view.on_update(record("a", "done", started_at=0.0, ended_at=2.0, host="h", meta={"final": {"loss": 0.4},
                                                                                       "device": "cpu"}))
    assert lines[0] == "  start    a on h pid 3"
    assert [line.split()[2] for line in lines if line.startswith("  epoch")] == ["1/3", "3/3"]  # throttled, last kept
    assert lines[-1].startswith("  done     a in 2.0s on h (cpu): loss=0.4000")

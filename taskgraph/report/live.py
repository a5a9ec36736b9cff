"""What ``taskgraph run`` shows while it runs: a live rich view on a terminal, plain lines elsewhere.

Both take the same two feeds: ``on_update(record)`` (a node's status changed: submitted, done,
failed, skipped) and ``on_progress(event)`` (what the nodes report live through the progress
hub: start, step, epoch, end, plus the scheduler's resources in use). Updates only store values;
rich redraws from its own thread a few times a second, so the driver never waits on the screen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from taskgraph.plan.graph import Plan

__all__ = ["scores", "NodeProgress", "ProgressState", "LiveView", "PlainView", "make_view"]

_STYLE = {"pending": "dim", "queued": "yellow", "running": "bold blue", "done": "green", "cached": "cyan",
          "failed": "bold red", "skipped": "yellow", "interrupted": "bold magenta"}


def scores(meta: dict[str, Any]) -> str:
    """``loss=0.31, accuracy=0.91 (epoch 7) | test loss=0.35, accuracy=0.90``: validation, then test apart from it."""
    text = ", ".join(f"{k}={v:.4f}" for k, v in (meta.get("final") or {}).items())
    if meta.get("selected_epoch") is not None:
        text += f" (epoch {meta['selected_epoch']})"
    if meta.get("test"):
        text += " | test " + ", ".join(f"{k}={v:.4f}" for k, v in meta["test"].items())
    return text


@dataclass
class NodeProgress:
    status: str = "pending"  # pending | queued | running | done | cached | failed | skipped | interrupted
    epoch: int = 0
    epochs: int | None = None
    step: int = 0
    total_steps: int | None = None
    loss: float | None = None  # the latest: a batch loss inside an epoch, the epoch's mean at its end
    val: dict[str, float] = field(default_factory=dict)
    started: float | None = None
    seconds: float | None = None
    where: str = ""
    error: str | None = None
    tries: int = 0  # start events seen: more than one means Ray ran the node again after its worker died
    previous_where: str = ""  # where the try before this one ran
    pid: int | None = None


class ProgressState:
    """The picture of a run built from both feeds; views render it."""

    def __init__(self, order: tuple[str, ...] | list[str]):
        self.order = tuple(order)
        self.nodes = {n: NodeProgress() for n in self.order}
        self.in_use: dict[str, float] = {}
        self.total: dict[str, float] = {}
        self.began = time.time()

    def on_update(self, record: Any) -> None:
        node = self.nodes.setdefault(record.name, NodeProgress())
        if record.status == "running":
            node.status = "queued" if node.started is None else "running"
        else:
            node.status = record.status
        if record.started_at and record.ended_at:
            node.seconds = record.ended_at - record.started_at
        if record.host and not node.where:  # the start event's "host pid N" says more
            node.where = record.host + (f" GPU {','.join(map(str, record.gpu_ids))}" if record.gpu_ids else "")
        node.error = record.error

    def on_progress(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "resources":
            self.in_use, self.total = dict(event.get("in_use", {})), dict(event.get("total", {}))
            return
        node = self.nodes.get(event.get("node", ""))
        if node is None:
            return
        if kind == "scale_up":
            node.where = "waits for a scale-up"
        elif kind == "start":
            node.started = event.get("time")
            if node.status in ("pending", "queued"):
                node.status = "running"
            if event.get("pid") != node.pid or not node.tries:
                node.tries += 1
                node.previous_where, node.pid = node.where, event.get("pid")
            gpus = event.get("gpu_ids") or []
            node.where = f"{event.get('host', '?')}" + (f" GPU {','.join(gpus)}" if gpus else f" pid {event.get('pid')}")
        elif kind in ("step", "epoch"):
            node.epoch = int(event.get("epoch") or node.epoch)
            node.epochs = event.get("epochs") or node.epochs
            node.step = int(event.get("step") or node.step)
            node.total_steps = event.get("total_steps") or node.total_steps
            loss = event.get("loss", event.get("train_loss"))
            node.loss = float(loss) if loss is not None else node.loss
            if kind == "epoch":
                node.val = {k.removeprefix("val_"): v for k, v in event.items()
                            if k.startswith("val_") and isinstance(v, (int, float))}


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


class LiveView:
    """A rich ``Live`` table: one row per node with a progress bar, the latest loss and metrics."""

    def __init__(self, title: str, order: tuple[str, ...] | list[str], console: Any = None):
        self.title, self.state, self.console = title, ProgressState(order), console
        self._live: Any = None

    def on_update(self, record: Any) -> None:
        self.state.on_update(record)

    def on_progress(self, event: dict[str, Any]) -> None:
        self.state.on_progress(event)

    def render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        state, now = self.state, time.time()
        table = Table(title=self.title, title_justify="left", expand=False, pad_edge=False, box=None)
        for col, justify in (("node", "left"), ("status", "left"), ("epoch", "right"), ("progress", "left"),
                             ("loss", "right"), ("validation", "left"), ("time", "right"), ("where", "left")):
            table.add_column(col, justify=justify, no_wrap=True)
        for name in state.order:
            n = state.nodes[name]
            if n.total_steps:
                total, done = float(n.total_steps), float(min(n.step, n.total_steps))
            else:
                total, done = float(n.epochs or 1), float(n.epoch)
            if n.status in ("done", "cached"):
                done = total
            bar = ProgressBar(total=total, completed=done, width=24,
                              complete_style="red" if n.status == "failed" else "green")
            took = n.seconds if n.seconds is not None else (now - n.started if n.started else None)
            val = " ".join(f"{k}={v:.3f}" for k, v in list(n.val.items())[:3])
            table.add_row(
                Text(name, style="bold"), Text(n.status, style=_STYLE.get(n.status, "")),
                f"{n.epoch}/{n.epochs}" if n.epochs else "", bar,
                f"{n.loss:.4f}" if n.loss is not None else "", val, _fmt_time(took),
                Text(n.where, style="dim"),
            )
        counts: dict[str, int] = {}
        for n in state.nodes.values():
            counts[n.status] = counts.get(n.status, 0) + 1
        used = " · ".join(f"{k} {state.in_use.get(k, 0):g}/{state.total.get(k, 0):g}" for k in ("CPU", "GPU")
                          if state.total.get(k))
        footer = Text(f"{used + ' in use · ' if used else ''}"
                      + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
                      + f" · {_fmt_time(now - state.began)}", style="dim")
        return Group(table, footer)

    def __enter__(self) -> LiveView:
        from rich.live import Live

        self._live = Live(get_renderable=self.render, console=self.console, refresh_per_second=4, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.__exit__(*exc)


class PlainView:
    """Log lines for CI and files: starts, ends, and each node's epochs at most every ``every_s`` seconds."""

    def __init__(self, order: tuple[str, ...] | list[str], write: Callable[[str], None] | None = None,
                 every_s: float = 5.0, stream: TextIO | None = None):
        self.state = ProgressState(order)
        self.every_s = every_s
        self._write = write or (lambda line: print(line, file=stream, flush=True))
        self._last_epoch_line: dict[str, float] = {}

    def on_update(self, record: Any) -> None:
        self.state.on_update(record)
        if record.status == "done":
            final = scores(record.meta)
            took = (record.ended_at or 0) - (record.started_at or 0)
            tries = len(getattr(record, "attempts", None) or ())
            again = f" (try {tries}: Ray ran it again after its worker died)" if tries > 1 else ""
            self._write(f"  done     {record.name} in {took:.1f}s on {record.host} "
                        f"({record.meta.get('device')}){again}: {final}")
        elif record.status == "cached":
            final = scores(record.meta)
            self._write(f"  cached   {record.name}: {final}")
        elif record.status in ("failed", "skipped"):
            self._write(f"  {record.status:<8} {record.name}: {record.error}")
        elif record.status == "interrupted":
            self._write(f"  stopped  {record.name}: {record.error}")

    def on_progress(self, event: dict[str, Any]) -> None:
        self.state.on_progress(event)
        name, kind = event.get("node"), event.get("kind")
        if kind == "start" and name in self.state.nodes and self.state.nodes[name].tries > 1:
            node = self.state.nodes[name]
            self._write(f"  retry    {name}: try {node.tries - 1} on {node.previous_where} ended (its worker died); "
                        f"Ray runs it again, try {node.tries} on {node.where}")
        elif kind == "start":
            self._write(f"  start    {name} on {self.state.nodes[name].where}" if name in self.state.nodes else "")
        elif kind == "scale_up":
            self._write(f"  waits    {name}: {event.get('text')}")
        elif kind == "epoch" and name in self.state.nodes:
            now, last = time.time(), self._last_epoch_line.get(name, float("-inf"))
            if now - last >= self.every_s or event.get("epoch") == event.get("epochs"):
                self._last_epoch_line[name] = now
                val = " ".join(f"{k}={v:.4f}" for k, v in event.items() if k.startswith("val_"))
                self._write(f"  epoch    {name} {event.get('epoch')}/{event.get('epochs')} "
                            f"train_loss={event.get('train_loss', float('nan')):.4f} {val}".rstrip())

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def make_view(title: str, plan: Plan, live: bool, write: Callable[[str], None] | None = None) -> LiveView | PlainView:
    """A rich live view when ``live`` (stdout is a terminal), else plain lines through ``write``."""
    return LiveView(title, plan.order) if live else PlainView(plan.order, write)

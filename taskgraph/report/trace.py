"""A Chrome trace (``trace.json``) of a run, for ``chrome://tracing`` or https://ui.perfetto.dev.

Trace Event Format: one process per host, one thread per worker process or GPU (the Gantt's
lanes), a complete event (``ph: X``) per try of each node (a retried node has one per try, each on
the worker it ran on), its queue wait on the driver's track, flow arrows along the dependencies,
and per-epoch slices when the driver saw the epochs live, each inside the try that sent it
(by worker pid, else by time), so no slice has a negative duration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from taskgraph.report.gantt import lanes
from taskgraph.report.rundata import NodeRun

__all__ = ["chrome_trace"]

_DRIVER_PID = 0


def _us(seconds: float) -> float:
    return round(seconds * 1e6, 1)


def chrome_trace(
    run: Mapping[str, Any],
    upstream: Mapping[str, Iterable[str]] | None = None,
    epochs: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The trace of ``run`` (the ``run.json`` dict). ``epochs``: progress events of kind ``epoch``."""
    nodes = {n: NodeRun.from_dict(n, d) for n, d in (run.get("nodes") or {}).items()}
    t0 = float(run.get("started_at") or min((r.submitted_at or r.begin or 0.0) for r in nodes.values()) or 0.0)
    names, bars = lanes(nodes, t0)
    hosts = sorted({name.split(" ")[0] for name in names})
    pid_of = {h: i + 1 for i, h in enumerate(hosts)}
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": _DRIVER_PID, "tid": 0, "args": {"name": "driver"}},
        {"ph": "M", "name": "thread_name", "pid": _DRIVER_PID, "tid": 0, "args": {"name": "queue (submitted, waiting for a worker)"}},
    ]
    for host, pid in pid_of.items():
        events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": f"host {host}"}})
    for tid, name in enumerate(names, start=1):
        events.append({"ph": "M", "name": "thread_name", "pid": pid_of[name.split(" ")[0]], "tid": tid,
                       "args": {"name": name}})
    where: dict[str, tuple[int, int, float, float]] = {}  # node -> its last try's (pid, tid, begin, end)
    spans: dict[str, list[tuple[int, int, int, float, float, int | None]]] = {}  # node -> tries' slots
    for bar in bars:
        rec = nodes[bar.node]
        pid, tid = pid_of[names[bar.lane].split(" ")[0]], bar.lane + 1
        worker_pid = _try_pid(rec, bar.attempt)
        spans.setdefault(bar.node, []).append((bar.attempt, pid, tid, bar.begin, bar.end, worker_pid))
        if bar.status is None:
            where[bar.node] = (pid, tid, bar.begin, bar.end)
        args = {"status": bar.status or rec.status, "host": rec.host, "pid": worker_pid, "attempt": bar.attempt}
        if bar.status:
            args["ended"] = bar.why
        else:
            args.update({"gpu_ids": list(rec.gpu_ids),
                         **{k: v for k, v in rec.meta.items() if k in ("final", "device", "steps", "inherited")}})
            if rec.error:
                args["error"] = rec.error
        name = bar.node if len(rec.attempts) <= 1 else f"{bar.node} (try {bar.attempt})"
        events.append({"ph": "X", "name": name, "cat": bar.status or rec.status, "pid": pid, "tid": tid,
                       "ts": _us(bar.begin), "dur": _us(bar.end - bar.begin), "args": args})
        if bar.queued_from is not None and bar.begin > bar.queued_from:
            events.append({"ph": "X", "name": f"{bar.node} queued", "cat": "queue", "pid": _DRIVER_PID, "tid": 0,
                           "ts": _us(bar.queued_from), "dur": _us(bar.begin - bar.queued_from)})
    for event in epochs:
        node = event.get("node")
        if node not in spans or event.get("time") is None:
            continue
        at = float(event["time"]) - t0
        slot = _slot(spans[node], at, event.get("pid"))
        _attempt, pid, tid, begin, end, _wpid = slot
        stop = min(max(at, begin), end)
        start = max(begin, stop - float(event.get("seconds") or 0.0))
        args = {"node": node, "try": _attempt,
                **{k: v for k, v in event.items() if k.startswith(("train_", "val_")) or k == "step"}}
        events.append({"ph": "X", "name": f"epoch {event.get('epoch')}", "cat": "epoch", "pid": pid, "tid": tid,
                       "ts": _us(start), "dur": _us(stop - start), "args": args})
    flow = 0
    for node, ups in sorted((upstream or {}).items()):
        for up in sorted(ups):
            if up in where and node in where:
                flow += 1
                (upid, utid, _b, uend), (dpid, dtid, dbegin, _e) = where[up], where[node]
                events.append({"ph": "s", "name": "dependency", "cat": "dependency", "id": flow,
                               "pid": upid, "tid": utid, "ts": _us(uend)})
                events.append({"ph": "f", "bp": "e", "name": "dependency", "cat": "dependency", "id": flow,
                               "pid": dpid, "tid": dtid, "ts": _us(max(dbegin, uend))})
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"graph": run.get("graph"), "run_dir": run.get("run_dir"), "status": run.get("status"),
                      "started_at": t0},
    }


def _try_pid(rec: NodeRun, attempt: int) -> int | None:
    """The worker pid of try ``attempt`` (1-based) of a node."""
    if rec.attempts and 0 < attempt <= len(rec.attempts):
        return rec.attempts[attempt - 1].get("pid")
    return rec.pid


def _slot(slots: list[tuple[int, int, int, float, float, int | None]], at: float, pid: Any
          ) -> tuple[int, int, int, float, float, int | None]:
    """The try an epoch event belongs to: the one whose worker sent it, else the one running at ``at``,
    else the last one that started before it."""
    if pid is not None:
        mine = [s for s in slots if s[5] == pid]
        if mine:
            return mine[-1]
    running = [s for s in slots if s[3] - 1e-6 <= at <= s[4] + 1e-6]
    if running:
        return running[-1]
    before = [s for s in slots if s[3] <= at]
    return before[-1] if before else slots[0]


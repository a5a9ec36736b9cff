"""One self-contained HTML report of a run: opens offline, from a file, with no CDN and no script.

Pictures are inline SVG (dependency order coloured by status, Gantt timeline, training curves),
tables are plain HTML; every node appears with a ``data-node`` attribute so tests can find it.
"""

from __future__ import annotations

import datetime as dt
import os
from html import escape
from pathlib import Path
from typing import Any

from taskgraph.report.gantt import STATUS_FILL, critical_path, gantt_svg
from taskgraph.report.rundata import TRACE, RunView, load_run

__all__ = ["build_report", "write_report"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1200px;color:#111827;
padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:32px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
.sub{color:#6b7280;font-size:13px}.pill{display:inline-block;border-radius:10px;padding:1px 8px;font-size:12px;
border:1px solid #9ca3af}table{border-collapse:collapse;font-size:13px;width:100%}
th,td{border-bottom:1px solid #e5e7eb;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f9fafb;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
.curves{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:12px}
.curves figure{margin:0;border:1px solid #e5e7eb;border-radius:6px;padding:4px}
.curves svg,.picture svg{max-width:100%;height:auto}.scroll{overflow-x:auto}
.problems{background:#fef3c7;border:1px solid #f59e0b;padding:8px 12px;border-radius:6px}
.neg{color:#b91c1c;font-weight:600}code{font-size:12px}
"""


def _svg_inline(data: bytes | str) -> str:
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return text[text.index("<svg"):] if "<svg" in text else ""


def _pill(status: str) -> str:
    return f'<span class="pill" style="background:{STATUS_FILL.get(status, "#fff")}">{escape(status)}</span>'


def _num(value: Any, digits: int = 4) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.0f}"
    return "–" if value is None else escape(str(value))


def _when(ts: float | None) -> str:
    if not ts:
        return "–"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _summary(view: RunView) -> str:
    run = view.run
    counts: dict[str, int] = {}
    for rec in view.nodes.values():
        counts[rec.status] = counts.get(rec.status, 0) + 1
    wall = (run.get("ended_at") or 0) - (run.get("started_at") or 0) if run.get("ended_at") else None
    ray = run.get("ray") or {}
    parts = [
        f"run status {_pill(str(run.get('status', '?')))}",
        " ".join(f"{_pill(s)}&nbsp;{n}" for s, n in sorted(counts.items())),
        f"started {_when(run.get('started_at'))}",
        f"wall time {wall:.1f}s" if wall is not None else "not finished",
    ]
    if ray:
        parts.append(f"Ray: {escape(str(ray.get('address', '?')))}, {escape(str(ray.get('nodes', '?')))} node(s)")
    return f'<p class="sub">{" · ".join(parts)}<br>run directory <code>{escape(str(view.path))}</code></p>'


def _dependency(view: RunView) -> str:
    if view.spec is None or view.plan is None:
        return '<p class="empty">The graph could not be re-planned; see the problems above.</p>'
    from taskgraph.report.dependency import render

    svg = _svg_inline(render(view.spec, view.plan, "svg", view.status(), view.durations()))
    return f'<div class="picture scroll">{svg}</div>'


def _curves(view: RunView) -> str:
    from taskgraph.report.curves import curves_svg

    figures = []
    for name in view.order:
        history = (view.metrics.get(name) or {}).get("history") or []
        svg = curves_svg(name, history)
        if svg:
            figures.append(f'<figure data-node="{escape(name)}">{svg}</figure>')
    if not figures:
        return '<p class="empty">No node finished an epoch: no curves yet.</p>'
    return f'<div class="curves">{"".join(figures)}</div>'


def _cache_cell(status: str, meta: dict[str, Any], keyed: bool) -> str:
    """hit (taken from the result cache), miss (trained, then stored under its key) or – (no cache)."""
    if status == "cached" or meta.get("cache_hit") or meta.get("cached"):
        return "hit"
    return "miss" if (keyed or meta.get("cache_key")) and status == "done" else "–"


def _node_table(view: RunView) -> str:
    metric_names = sorted({k for m in view.metrics.values() for k in (m.get("final") or {})}
                          | {k for r in view.nodes.values() for k in (r.meta.get("final") or {})})
    test_names = sorted({k for m in view.metrics.values() for k in (m.get("test") or {})}
                        | {k for r in view.nodes.values() for k in (r.meta.get("test") or {})})
    head = ["node", "status", "stage", "seconds", "queued", "tries", "host", "worker", "GPU", "device", "steps",
            *(f"val {m}" if test_names else m for m in metric_names), *(f"test {m}" for m in test_names),
            "inherits", "cache", "error"]
    rows = []
    keys = view.run.get("keys") or {}  # cache keys of the nodes, when the run used the result cache
    for name in view.order:
        rec = view.nodes[name]
        meta = rec.meta
        final = meta.get("final") or (view.metrics.get(name) or {}).get("final") or {}
        test = meta.get("test") or (view.metrics.get(name) or {}).get("test") or {}
        inherited = meta.get("inherited") or (view.metrics.get(name) or {}).get("inherited") or []
        inherits = "<br>".join(
            f"{escape(str(i.get('module')))} ← {escape(str(i.get('from')))} ({escape(str(i.get('mode')))})"
            for i in inherited
        ) or "–"
        stage = view.plan.nodes[name].stage if view.plan and name in view.plan.nodes else "–"
        cells = [
            f"<td><b>{escape(name)}</b></td>", f"<td>{_pill(rec.status)}</td>", f'<td class="num">{stage}</td>',
            f'<td class="num">{_num(rec.seconds, 3)}</td>', f'<td class="num">{_num(rec.queued_seconds, 2)}</td>',
            f'<td class="num">{len(rec.attempts) or "–"}</td>',
            f"<td>{escape(rec.host or '–')}</td>", f'<td class="num">{_num(rec.pid)}</td>',
            f"<td>{escape(','.join(rec.gpu_ids) or '–')}</td>", f"<td>{escape(str(meta.get('device') or '–'))}</td>",
            f'<td class="num">{_num(meta.get("steps"))}</td>',
            *(f'<td class="num">{_num(final.get(m))}</td>' for m in metric_names),
            *(f'<td class="num">{_num(test.get(m))}</td>' for m in test_names),
            f"<td>{inherits}</td>", f"<td>{_cache_cell(rec.status, meta, bool(keys.get(name)))}</td>",
            f"<td>{escape(rec.error or '')}</td>",
        ]
        rows.append(f'<tr data-node="{escape(name)}">{"".join(cells)}</tr>')
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f'<div class="scroll"><table class="nodes"><tr>{header}</tr>{"".join(rows)}</table></div>'


def _retries(view: RunView) -> str:
    """Every try of each node that Ray ran more than once: where, when, and how it ended."""
    t0 = float(view.run.get("started_at") or 0.0)
    rows = []
    for name in view.order:
        rec = view.nodes[name]
        if len(rec.attempts) < 2:
            continue
        for a in rec.attempts:
            start, end = a.get("started_at"), a.get("ended_at")
            ended = ("retried" if a.get("ended") == "retried" else str(a.get("ended") or rec.status))
            when = (f"{start - t0:.1f} s" if start is not None else "–",
                    ("≤ " if a.get("ended_at_is_bound") else "") + (f"{end - t0:.1f} s" if end is not None else "–"))
            rows.append(
                f'<tr data-node="{escape(name)}" data-attempt="{a.get("attempt")}"><td><b>{escape(name)}</b></td>'
                f'<td class="num">{a.get("attempt")}</td><td>{escape(str(a.get("host") or "–"))}</td>'
                f'<td class="num">{_num(a.get("pid"))}</td><td><code>{escape(str(a.get("node_id") or "–")[:12])}</code></td>'
                f'<td class="num">{when[0]}</td><td class="num">{escape(when[1])}</td><td>{_pill(ended)}</td>'
                f"<td>{escape(str(a.get('why') or ''))}</td></tr>")
    if not rows:
        return ""
    header = "".join(f"<th>{h}</th>" for h in ("node", "try", "host", "worker", "Ray node", "started", "ended",
                                                "ended as", "why"))
    return ('<h2>Retried nodes</h2><p class="sub">Ray runs a node again when the worker running it dies (a '
            "killed process, a lost machine); each try below, times since the run started (≤: not heard from "
            "after that, the next try's start).</p>"
            f'<div class="scroll"><table class="tries"><tr>{header}</tr>{"".join(rows)}</table></div>')


_ABLATION_COLUMNS = ("edge", "fraction", "metric", "with_mean", "with_std", "without_mean", "without_std",
                     "gain_mean", "gain_std", "p_value", "negative_transfer", "verdict")


def _ablation(view: RunView) -> str:
    if not view.ablation:
        return ""
    extra = sorted({k for r in view.ablation for k in r} - set(_ABLATION_COLUMNS))
    columns = [c for c in _ABLATION_COLUMNS if any(c in r for r in view.ablation)] + extra
    rows = []
    for row in view.ablation:
        negative = bool(row.get("negative_transfer"))
        cells = []
        for col in columns:
            value = row.get(col)
            if col == "edge" and isinstance(value, (list, tuple)):
                value = " → ".join(str(v) for v in value)
            if col == "negative_transfer":
                cells.append(f'<td class="{"neg" if negative else ""}">{"yes" if negative else "no"}</td>')
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                cells.append(f'<td class="num">{_num(value)}</td>')
            else:
                cells.append(f"<td>{escape('–' if value is None else str(value))}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    header = "".join(f"<th>{escape(c)}</th>" for c in columns)
    source = escape(str(view.ablation_file or "ablation.json"))
    return ("<h2>Ablation: what each edge buys</h2><p class=\"sub\">From <code>" + source + "</code> "
            "(<code>taskgraph ablate</code>): the metric with and without the edge, over seeds; a negative gain "
            f"is negative transfer.</p><div class=\"scroll\"><table class=\"ablation\"><tr>{header}</tr>"
            f"{''.join(rows)}</table></div>")


def build_report(view: RunView) -> str:
    """The whole report as one HTML string."""
    path = critical_path(view.nodes, view.upstream)
    problems = ""
    if view.problems:
        items = "".join(f"<li>{escape(p)}</li>" for p in view.problems)
        problems = f'<div class="problems"><b>Parts of this run could not be read:</b><ul>{items}</ul></div>'
    trace = view.path / TRACE
    trace_note = (f'<p class="sub">Chrome trace: <code>{escape(str(trace))}</code> (open in chrome://tracing or '
                  "ui.perfetto.dev).</p>") if trace.is_file() else ""
    tb = [n for n in view.order if (view.path / n / "tb").is_dir()]
    tb_note = (f'<p class="sub">TensorBoard: <code>tensorboard --logdir {escape(str(view.path))}</code> '
               f"({len(tb)} node(s) logged).</p>") if tb else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>taskgraph report: {escape(view.name)}</title><style>{_CSS}</style></head>
<body>
<h1>{escape(view.name)}</h1>
{_summary(view)}
{problems}
<h2>Dependency order</h2>
<p class="sub">Stages left to right; colour = how each node ended, with its time; red outline = planned critical path;
edges say which modules they pass and how.</p>
{_dependency(view)}
<h2>Timeline</h2>
<p class="sub">One lane per worker process or GPU. Critical path of this run: <b>{escape(" → ".join(path) or "–")}</b>.</p>
<div class="scroll">{gantt_svg(view.nodes, view.upstream, path=path)}</div>
{trace_note}
<h2>Training curves</h2>
{_curves(view)}
{tb_note}
<h2>Nodes</h2>
{_node_table(view)}
{_retries(view)}
{_ablation(view)}
<p class="sub">Made by <code>taskgraph report</code>.</p>
</body></html>
"""


def write_report(run_dir: str | os.PathLike[str], output: str | os.PathLike[str] | None = None) -> Path:
    """Read a run directory and write its report (default: ``<run_dir>/report.html``)."""
    view = load_run(run_dir)
    out = Path(output) if output is not None else view.path / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_report(view), encoding="utf-8")
    return out

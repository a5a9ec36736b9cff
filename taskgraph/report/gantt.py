"""Where the time went: a Gantt timeline of nodes per worker/GPU, with the run's critical path.

The critical path here is the *observed* one: from the node that ended last, step back to the
upstream node that ended last (the one it was waiting for), until a node that waited on none.
Shortening any other node would not have ended the run sooner. Plain SVG text, no matplotlib:
bars carry ``<title>`` tooltips and ``data-node`` attributes, and the report stays small.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape

from taskgraph.report.rundata import STATUS_FILL, NodeRun

__all__ = ["Bar", "lanes", "critical_path", "gantt_svg", "STATUS_FILL"]



@dataclass(frozen=True)
class Bar:
    """One try of a node in one lane: a retried node has a bar per try, each where it ran."""

    node: str
    lane: int
    begin: float  # seconds since the run started
    end: float
    queued_from: float | None  # when it was submitted, if it waited for a worker (first try only)
    attempt: int = 1
    status: str | None = None  # "retried" for a try whose worker died; None: the node's own status
    why: str = ""


def critical_path(nodes: Mapping[str, NodeRun], upstream: Mapping[str, tuple[str, ...]]) -> list[str]:
    """The chain of nodes that decided when the run ended (see the module docstring)."""
    timed = {n: r for n, r in nodes.items() if r.ended_at is not None and r.begin is not None}
    if not timed:
        return []
    node = max(sorted(timed), key=lambda n: timed[n].ended_at)  # first of equals by name: stable
    path = [node]
    while True:
        before = [u for u in upstream.get(node, ()) if u in timed]
        if not before:
            break
        node = max(sorted(before), key=lambda n: timed[n].ended_at)
        path.append(node)
    return path[::-1]


def _place_label(label: str, begin: float, w: float, free_from: float, free_until: float
                 ) -> tuple[str, float, float] | None:
    """(anchor, x, right edge) for a bar's label: inside the bar when it fits, else after the bar
    before ``free_until``, else before it after ``free_from``; None when there is no room."""
    text_w = 7 * len(label) + 8  # ~7 px a character at 12 px sans-serif
    if w > text_w:
        return "start", begin + 5, begin + w
    if begin + w + text_w < free_until:
        return "start", begin + w + 4, begin + w + text_w
    if begin - text_w > free_from:
        return "end", begin - 4, begin + w
    return None


def lanes(nodes: Mapping[str, NodeRun], t0: float) -> tuple[list[str], list[Bar]]:
    """One lane per worker process or GPU; nodes that overlap in one lane (GPU sharing) get extra rows.
    Each try of a retried node is its own bar, in the lane of the worker it ran on."""
    tries = sorted((t for r in nodes.values() for t in r.tries()), key=lambda t: (t.begin, t.node, t.attempt))
    names: list[str] = []
    row_end: list[float] = []
    bars = []
    first_try = {n: min((t.attempt for t in tries if t.node == n), default=1) for n in nodes}
    for t in tries:
        rec = nodes[t.node]
        begin, end = t.begin - t0, t.end - t0
        label = t.where
        rows = [i for i, name in enumerate(names) if name == label or name.startswith(label + " #")]
        lane = next((i for i in rows if row_end[i] <= begin + 1e-6), None)
        if lane is None:
            names.append(label if not rows else f"{label} #{len(rows) + 1}")
            row_end.append(end)
            lane = len(names) - 1
        row_end[lane] = end
        queued = (rec.submitted_at - t0 if rec.submitted_at is not None and rec.first_started_at is not None
                  and t.attempt == first_try[t.node] else None)
        retried = t.status == "retried"
        bars.append(Bar(t.node, lane, begin, end, queued, t.attempt, "retried" if retried else None,
                        t.why if retried else ""))
    return names, bars


def _ticks(span: float) -> list[float]:
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200):
        if span / step <= 10:
            return [i * step for i in range(int(span / step) + 1)]
    return [0.0, span]


def _fmt(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    return f"{seconds / 60:.1f}m"


def gantt_svg(
    nodes: Mapping[str, NodeRun],
    upstream: Mapping[str, tuple[str, ...]],
    t0: float | None = None,
    width: int = 960,
    path: list[str] | None = None,
) -> str:
    """The timeline as an SVG element (inline in the HTML report); ``path``: the critical path,
    when the caller has already worked it out."""
    starts = [r.submitted_at or r.begin for r in nodes.values() if (r.submitted_at or r.begin) is not None]
    if t0 is None:
        t0 = min(starts) if starts else 0.0
    names, bars = lanes(nodes, t0)
    if not bars:
        return '<p class="empty">No node has run yet: nothing to put on a timeline.</p>'
    on_path = set(path if path is not None else critical_path(nodes, upstream))
    span = max(b.end for b in bars) or 1.0
    left, right, top, row, bar_h = 170, 130, 28, 34, 22  # the right margin holds labels of short bars at the end
    plot = width - left - right
    height = top + row * len(names) + 30

    def x(t: float) -> float:
        return left + plot * max(0.0, t) / span

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="gantt" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">']
    for i, name in enumerate(names):
        y = top + i * row
        if i % 2 == 0:
            out.append(f'<rect x="0" y="{y}" width="{width}" height="{row}" fill="#f9fafb"/>')
        out.append(f'<text x="{left - 8}" y="{y + row / 2 + 4}" text-anchor="end" fill="#374151">{escape(name)}</text>')
    for t in _ticks(span):
        out.append(f'<line x1="{x(t):.1f}" y1="{top}" x2="{x(t):.1f}" y2="{top + row * len(names)}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{x(t):.1f}" y="{height - 10}" text-anchor="middle" fill="#6b7280">{_fmt(t)}</text>')
    # Bars lane by lane, left to right: a label that does not fit inside its bar goes after it (before
    # the next bar of its lane) or before it (after the previous bar or label), never over a
    # neighbour; with no room it is left to the tooltip.
    ordered = sorted(bars, key=lambda b: (b.lane, b.begin))
    taken_until = 0.0  # how far the previous bar or label of this lane reaches
    for i, bar in enumerate(ordered):
        after = ordered[i + 1] if i + 1 < len(ordered) and ordered[i + 1].lane == bar.lane else None
        if i == 0 or ordered[i - 1].lane != bar.lane:
            taken_until = 0.0
        rec = nodes[bar.node]
        y = top + bar.lane * row + (row - bar_h) / 2
        status = bar.status or rec.status
        critical = bar.node in on_path and bar.status is None
        tries = f" (try {bar.attempt})" if bar.status or len(rec.attempts) > 1 else ""
        tip = (f"{bar.node}{tries}: {status}, {_fmt(bar.end - bar.begin)} on {names[bar.lane]}"
               + (f", queued {_fmt(bar.begin - bar.queued_from)}" if bar.queued_from is not None else "")
               + (" (critical path)" if critical else "")
               + (f"\nended: {bar.why}; Ray ran it again" if bar.status else f"\n{rec.error}" if rec.error else ""))
        attempt = f' data-attempt="{bar.attempt}"' if tries else ""
        out.append(f'<g class="bar" data-node="{escape(bar.node)}"{attempt}><title>{escape(tip)}</title>')
        if bar.queued_from is not None and bar.begin - bar.queued_from > 0:
            out.append(f'<rect x="{x(bar.queued_from):.1f}" y="{y + bar_h / 2 - 2}" '
                       f'width="{max(0.5, x(bar.begin) - x(bar.queued_from)):.1f}" height="4" fill="#d1d5db"/>')
        w = max(2.0, x(bar.end) - x(bar.begin))
        stroke = 'stroke="#dc2626" stroke-width="3"' if critical else 'stroke="#374151" stroke-width="1"'
        out.append(f'<rect x="{x(bar.begin):.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="4" '
                   f'fill="{STATUS_FILL.get(status, "#ffffff")}" {stroke}/>')
        label = f"{bar.node}{' ✕' if bar.status else ''} {_fmt(bar.end - bar.begin)}"
        placed = _place_label(label, x(bar.begin), w, taken_until,
                              min(x(after.begin), width + 10) if after else width + 10)
        taken_until = x(bar.begin) + w
        if placed is not None:
            anchor, lx, taken_until = placed
            out.append(f'<text x="{lx:.1f}" y="{y + bar_h / 2 + 4}" text-anchor="{anchor}" fill="#111827">'
                       f"{escape(label)}</text>")
        out.append("</g>")
    out.append(f'<text x="{left}" y="16" fill="#374151">seconds since the first node was submitted; '
               'red outline = critical path, grey line = waiting for a worker, orange ✕ = a try whose worker died</text>')
    out.append("</svg>")
    return "\n".join(out)

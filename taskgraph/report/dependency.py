"""Pictures of the dependency order: Mermaid, DOT, ASCII text and SVG/PNG (matplotlib, lazily).

Pure functions of a spec and its plan, no Ray or torch, so ``taskgraph viz`` answers at once.
Given a run's ``status`` and ``durations`` (``taskgraph viz RUN_DIR``) nodes are coloured by how
they ended (done, cached, failed, skipped) and show their time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from taskgraph.report.rundata import STATUS_FILL

if TYPE_CHECKING:
    from taskgraph.plan.graph import Plan
    from taskgraph.spec.models import Graph

__all__ = ["to_mermaid", "to_dot", "to_ascii", "render", "write_picture", "FORMATS", "edge_label", "STATUS_FILL"]

FORMATS = ("svg", "png", "pdf", "mmd", "dot", "ascii")


def edge_label(spec: Graph, upstream: str, downstream: str) -> str:
    """What an edge carries: ``encoder (finetune x0.1)``, or ``order`` for an order-only edge."""
    dep = spec.tasks[downstream].depends_on[upstream]
    if not dep.share:
        return "order"
    shared = ", ".join(local if local == remote else f"{remote}->{local}" for local, remote in dep.share.items())
    scale = f" x{dep.lr_scale:g}" if dep.mode == "finetune" and dep.lr_scale != 1.0 else ""
    return f"{shared} ({dep.mode}{scale})"


def _resource_kind(spec: Graph, name: str) -> str:
    res = spec.tasks[name].resources
    return "gpu" if res is not None and res.gpus > 0 else "cpu"


def _mode(spec: Graph, upstream: str, downstream: str) -> str:
    dep = spec.tasks[downstream].depends_on[upstream]
    return dep.mode if dep.share else "order"


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 60 else f"{value / 60:.1f}m"


def _run_note(name: str, status: Mapping[str, str] | None, durations: Mapping[str, float] | None) -> str:
    """``done 12.3s`` for a node of a run; empty for a plan."""
    if not status:
        return ""
    took = (durations or {}).get(name)
    return status.get(name, "pending") + (f" {_seconds(took)}" if took is not None else "")


RESOURCE_FILL = {"cpu": "#dbeafe", "gpu": "#dcfce7"}
#: Edge colour by how the downstream node takes the shared module.
MODE_COLOR = {"init": "#2563eb", "finetune": "#7c3aed", "freeze": "#0891b2", "order": "#9ca3af"}


def to_mermaid(
    spec: Graph, plan: Plan, status: Mapping[str, str] | None = None, durations: Mapping[str, float] | None = None
) -> str:
    lines = ["flowchart LR"]
    for name in plan.order:
        note = _run_note(name, status, durations) or f"stage {plan.nodes[name].stage}"
        cls = (status or {}).get(name, "pending") if status else _resource_kind(spec, name)
        lines.append(f'    {name}["{name}<br/>{note}"]:::{cls}')
    for name in plan.order:
        for up in plan.nodes[name].upstream:
            lines.append(f'    {up} -->|"{edge_label(spec, up, name)}"| {name}')
    fills = STATUS_FILL if status else RESOURCE_FILL
    lines += [f"    classDef {key} fill:{color},stroke:#374151" for key, color in fills.items()]
    return "\n".join(lines) + "\n"


def to_dot(
    spec: Graph, plan: Plan, status: Mapping[str, str] | None = None, durations: Mapping[str, float] | None = None
) -> str:
    lines = [f'digraph "{spec.name}" {{', "  rankdir=LR;", '  node [shape=box, style="rounded,filled"];']
    for i, stage in enumerate(plan.stages):
        members = " ".join(f'"{n}";' for n in stage)
        lines.append(f"  {{ rank=same; {members} }}  // stage {i}")
    for name in plan.order:
        note = _run_note(name, status, durations)
        fill = STATUS_FILL.get(status.get(name, "pending"), "#ffffff") if status else RESOURCE_FILL[_resource_kind(spec, name)]
        label = f'"{name}\\n{note}"' if note else f'"{name}"'
        border = ', color="#dc2626", penwidth=2' if plan.nodes[name].on_critical_path else ""
        lines.append(f'  "{name}" [label={label}, fillcolor="{fill}"{border}];')
    for name in plan.order:
        for up in plan.nodes[name].upstream:
            color = MODE_COLOR[_mode(spec, up, name)]
            lines.append(f'  "{up}" -> "{name}" [label="{edge_label(spec, up, name)}", color="{color}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_ascii(
    spec: Graph, plan: Plan, status: Mapping[str, str] | None = None, durations: Mapping[str, float] | None = None
) -> str:
    """Stages top to bottom, each node with what it inherits; the critical path starred."""
    lines = [f"{spec.name}: {len(plan.order)} nodes, {len(plan.stages)} stages "
             f"(* = critical path, {plan.critical_cost:g} of {plan.total_cost:g} cost units)"]
    width = max(len(n) for n in plan.order)
    for i, stage in enumerate(plan.stages):
        lines.append(f"stage {i}")
        for name in stage:
            node = plan.nodes[name]
            star = "*" if node.on_critical_path else " "
            gets = "; ".join(f"{up}: {edge_label(spec, up, name)}" for up in node.upstream)
            note = _run_note(name, status, durations)
            head = f"  {star} {name:<{width}} [{_resource_kind(spec, name)}]" + (f" {note:<14}" if note else "")
            lines.append((head + (f"  <- {gets}" if gets else "")).rstrip())
    return "\n".join(lines) + "\n"


def _layout(plan: Plan) -> dict[str, tuple[float, float]]:
    """Stages left to right; a node sits level with its parents where room allows (straight arrows,
    fewer crossings), nodes at least one row apart; ties by name so pictures are reproducible."""
    pos: dict[str, tuple[float, float]] = {}
    for x, stage in enumerate(plan.stages):
        def wanted(name: str) -> float:
            ups = [pos[u][1] for u in plan.nodes[name].upstream if u in pos]
            return sum(ups) / len(ups) if ups else 0.0

        if x == 0 or not any(plan.nodes[n].upstream for n in stage):
            ys = {n: -(i - (len(stage) - 1) / 2) * _DY for i, n in enumerate(stage)}
        else:
            ordered = sorted(stage, key=lambda n: (-wanted(n), n))
            ys, last = {}, float("inf")
            for name in ordered:  # top to bottom, pushed down where the row above is too close
                ys[name] = min(wanted(name), last - _DY)
                last = ys[name]
            shift = sum(wanted(n) - ys[n] for n in ordered) / len(ordered)  # re-centre on the parents
            ys = {n: y + shift for n, y in ys.items()}
        for name in stage:
            pos[name] = (x * _DX, ys[name])
    return pos


_DX, _DY, _W, _H = 5.4, 1.5, 2.5, 0.9  # column step, row step, box width and height (inches-ish units)


def render(
    spec: Graph,
    plan: Plan,
    fmt: str = "svg",
    status: Mapping[str, str] | None = None,
    durations: Mapping[str, float] | None = None,
) -> bytes:
    """The layered picture as SVG/PNG/PDF bytes. With ``status``: node colours are run statuses."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

    pos = _layout(plan)
    spread = max(y for _, y in pos.values()) - min(y for _, y in pos.values())
    fig_w = max(5.0, 1.05 * (_DX * (len(plan.stages) - 1) + _W) + 1.2)
    fig_h = max(2.6, 0.75 * (spread + _H) + 1.9)
    with plt.rc_context({"svg.fonttype": "none", "font.family": "DejaVu Sans", "svg.hashsalt": "taskgraph"}):
        fig, ax = plt.subplots(figsize=(fig_w, fig_h))
        top = max(y for _, y in pos.values())
        for x, _stage in enumerate(plan.stages):
            ax.text(x * _DX, top + _H / 2 + 0.35, f"stage {x}", ha="center", fontsize=9, color="#6b7280")
        modes_seen = set()
        for name in plan.order:
            for up in plan.nodes[name].upstream:
                (x0, y0), (x1, y1) = pos[up], pos[name]
                mode = _mode(spec, up, name)
                modes_seen.add(mode)
                critical = plan.nodes[up].on_critical_path and plan.nodes[name].on_critical_path
                arrow = FancyArrowPatch(
                    (x0 + _W / 2, y0), (x1 - _W / 2, y1), arrowstyle="-|>", mutation_scale=14,
                    color=MODE_COLOR[mode], lw=2.4 if critical else 1.4,
                    linestyle=":" if mode == "order" else "-", shrinkA=2, shrinkB=2,
                )
                ax.add_patch(arrow)
                # On the line, along it, on white (as graphviz does): readable whatever the slope.
                (ax0, ay0), (ax1, ay1) = (x0 + _W / 2, y0), (x1 - _W / 2, y1)
                angle = math.degrees(math.atan2(ay1 - ay0, ax1 - ax0))
                ax.text((ax0 + ax1) / 2, (ay0 + ay1) / 2, edge_label(spec, up, name), ha="center", va="center",
                        fontsize=7.5, color="#1f2937", rotation=angle, rotation_mode="anchor",
                        bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": MODE_COLOR[mode], "lw": 0.6})
        for name, (x, y) in pos.items():
            if status:
                fill = STATUS_FILL.get(status.get(name, "pending"), "#ffffff")
            else:
                fill = RESOURCE_FILL[_resource_kind(spec, name)]
            critical = plan.nodes[name].on_critical_path
            ax.add_patch(FancyBboxPatch(
                (x - _W / 2, y - _H / 2), _W, _H, boxstyle="round,pad=0.02,rounding_size=0.15",
                fc=fill, ec="#dc2626" if critical else "#374151", lw=2.2 if critical else 1.0,
            ))
            ax.text(x, y + 0.13, name, ha="center", va="center", fontsize=10, fontweight="bold", color="#111827")
            note = _run_note(name, status, durations) or f"{_resource_kind(spec, name)} · cost {plan.nodes[name].cost:g}"
            ax.text(x, y - 0.2, note, ha="center", va="center", fontsize=8, color="#374151")
        keys = [k for k in STATUS_FILL if k in set((status or {}).values())] if status else sorted(
            {_resource_kind(spec, n) for n in plan.order})
        fills = STATUS_FILL if status else RESOURCE_FILL
        handles = [Patch(fc=fills[k], ec="#374151", label=k) for k in keys]
        handles.append(Patch(fc="white", ec="#dc2626", lw=2, label="critical path"))
        handles += [Line2D([], [], color=MODE_COLOR[m], ls=":" if m == "order" else "-", label=m)
                    for m in MODE_COLOR if m in modes_seen]
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=min(len(handles), 6),
                  fontsize=8, frameon=False)
        ax.set_xlim(-_W / 2 - 0.3, _DX * (len(plan.stages) - 1) + _W / 2 + 0.3)
        ys = [y for _, y in pos.values()]
        ax.set_ylim(min(ys) - _H / 2 - 0.3, max(ys) + _H / 2 + 0.8)
        ax.set_aspect("equal")
        title = "run" if status else "dependency order"
        ax.set_title(f"{spec.name}: {title}", fontsize=11, loc="left")
        ax.axis("off")
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, bbox_inches="tight", dpi=150, metadata={"Date": None} if fmt == "svg" else None)
        plt.close(fig)
    return buf.getvalue()


def write_picture(
    spec: Graph,
    plan: Plan,
    path: str | os.PathLike[str] | None,
    fmt: str | None = None,
    status: Mapping[str, str] | None = None,
    durations: Mapping[str, float] | None = None,
) -> str:
    """Write the picture in the format named by ``fmt`` or the file suffix; returns text formats too.

    ``status``/``durations`` (from a run directory) colour nodes by how they ended and show their time.
    """
    fmt = (fmt or (Path(path).suffix.lstrip(".") if path else "ascii")).lower()
    if fmt == "mermaid":
        fmt = "mmd"
    if fmt not in FORMATS:
        from taskgraph.errors import TaskgraphError

        raise TaskgraphError(f"unknown picture format '{fmt}'. Use one of: {', '.join(FORMATS)}.")
    if fmt in ("svg", "png", "pdf"):
        if path is None:
            from taskgraph.errors import TaskgraphError

            raise TaskgraphError(f"format {fmt} needs an output file: add -o graph.{fmt}.")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(render(spec, plan, fmt, status, durations))
        return ""
    text = {"mmd": to_mermaid, "dot": to_dot, "ascii": to_ascii}[fmt](spec, plan, status, durations)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)  # as for pictures: -o out/order.dot just works
        Path(path).write_text(text, encoding="utf-8")
    return text

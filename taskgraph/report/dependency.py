"""Pictures of the dependency order: Mermaid, DOT, ASCII text and SVG/PNG (matplotlib, lazily).

Pure functions of a spec and its plan, no Ray or torch, so ``taskgraph viz`` answers at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskgraph.plan.graph import Plan
    from taskgraph.spec.models import Graph

__all__ = ["to_mermaid", "to_dot", "to_ascii", "draw", "write_picture", "FORMATS", "edge_label"]

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


def to_mermaid(spec: Graph, plan: Plan) -> str:
    lines = ["flowchart LR"]
    for name in plan.order:
        lines.append(f'    {name}["{name}<br/>stage {plan.nodes[name].stage}"]:::{_resource_kind(spec, name)}')
    for name in plan.order:
        for up in plan.nodes[name].upstream:
            lines.append(f'    {up} -->|"{edge_label(spec, up, name)}"| {name}')
    lines += ["    classDef cpu fill:#dbeafe,stroke:#1d4ed8", "    classDef gpu fill:#dcfce7,stroke:#15803d"]
    return "\n".join(lines) + "\n"


def to_dot(spec: Graph, plan: Plan) -> str:
    colors = {"cpu": "#dbeafe", "gpu": "#dcfce7"}
    lines = [f'digraph "{spec.name}" {{', "  rankdir=LR;", '  node [shape=box, style="rounded,filled"];']
    for i, stage in enumerate(plan.stages):
        members = " ".join(f'"{n}";' for n in stage)
        lines.append(f"  {{ rank=same; {members} }}  // stage {i}")
    for name in plan.order:
        lines.append(f'  "{name}" [fillcolor="{colors[_resource_kind(spec, name)]}"];')
    for name in plan.order:
        for up in plan.nodes[name].upstream:
            lines.append(f'  "{up}" -> "{name}" [label="{edge_label(spec, up, name)}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_ascii(spec: Graph, plan: Plan) -> str:
    """Stages top to bottom, each node with what it inherits; the critical path starred."""
    lines = [f"{spec.name}: {len(plan.order)} nodes, {len(plan.stages)} stages "
             f"(* = critical path, {plan.critical_cost:g} of {plan.total_cost:g} cost units)"]
    for i, stage in enumerate(plan.stages):
        lines.append(f"stage {i}")
        for name in stage:
            node = plan.nodes[name]
            star = "*" if node.on_critical_path else " "
            gets = "; ".join(f"{up}: {edge_label(spec, up, name)}" for up in node.upstream)
            lines.append(f"  {star} {name} [{_resource_kind(spec, name)}]" + (f"  <- {gets}" if gets else ""))
    return "\n".join(lines) + "\n"


def draw(spec: Graph, plan: Plan, path: str | os.PathLike[str], status: dict[str, str] | None = None) -> Path:
    """Layered left-to-right drawing by stage, saved as SVG, PNG or PDF (by the file's suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pos: dict[str, tuple[float, float]] = {}
    for x, stage in enumerate(plan.stages):
        for y, name in enumerate(stage):
            pos[name] = (x * 3.0, -(y - (len(stage) - 1) / 2) * 1.4)
    width = max(4.0, 3.0 * len(plan.stages) + 1)
    height = max(2.5, 1.4 * max(len(s) for s in plan.stages) + 1)
    fig, ax = plt.subplots(figsize=(width, height))
    fill = {"cpu": "#dbeafe", "gpu": "#dcfce7", "done": "#bbf7d0", "cached": "#e5e7eb",
            "failed": "#fecaca", "skipped": "#fef3c7", "running": "#bfdbfe", "pending": "#f3f4f6"}
    for name in plan.order:
        for up in plan.nodes[name].upstream:
            (x0, y0), (x1, y1) = pos[up], pos[name]
            ax.annotate("", xy=(x1 - 0.9, y1), xytext=(x0 + 0.9, y0),
                        arrowprops={"arrowstyle": "->", "color": "#374151", "lw": 1.2})
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.15, edge_label(spec, up, name), ha="center", fontsize=7,
                    color="#374151")
    for name, (x, y) in pos.items():
        key = (status or {}).get(name, _resource_kind(spec, name))
        edge = "#b91c1c" if plan.nodes[name].on_critical_path else "#1f2937"
        ax.text(x, y, name, ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round,pad=0.5", "fc": fill.get(key, "#ffffff"), "ec": edge, "lw": 1.5})
    ax.set_xlim(-1.5, 3.0 * (len(plan.stages) - 1) + 1.5)
    ys = [y for _, y in pos.values()]
    ax.set_ylim(min(ys) - 1, max(ys) + 1)
    ax.set_title(f"{spec.name}: dependency order (red border = critical path)", fontsize=10)
    ax.axis("off")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def write_picture(spec: Graph, plan: Plan, path: str | os.PathLike[str] | None, fmt: str | None = None) -> str:
    """Write the picture in the format named by ``fmt`` or the file suffix; returns text formats too."""
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
        draw(spec, plan, path)
        return ""
    text = {"mmd": to_mermaid, "dot": to_dot, "ascii": to_ascii}[fmt](spec, plan)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text

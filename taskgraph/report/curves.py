"""Training curves of one node, from the per-epoch ``history`` in its ``metrics.json``.

Loss (train and validation) on the left axis, the other validation metrics on the right one.
matplotlib loads lazily; SVG text stays text (``svg.fonttype: none``), so the report is small.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["curve_series", "curves_svg"]


def curve_series(history: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """``{"train_loss": [(epoch, value), ...], "val_loss": ..., "val_accuracy": ...}``."""
    series: dict[str, list[tuple[int, float]]] = {}
    for row in history:
        epoch = row.get("epoch")
        for key, value in row.items():
            if key in ("epoch", "step", "seconds") or not isinstance(value, (int, float)) or epoch is None:
                continue
            series.setdefault(key, []).append((int(epoch), float(value)))
    return series


def curves_svg(node: str, history: Sequence[Mapping[str, Any]], width_in: float = 4.4, height_in: float = 3.0) -> str:
    """One node's curves as an ``<svg>`` element (empty string when there is no history)."""
    series = curve_series(history)
    if not series:
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    with plt.rc_context({"svg.fonttype": "none", "font.family": "DejaVu Sans", "svg.hashsalt": "taskgraph",
                         "font.size": 8}):
        fig, ax = plt.subplots(figsize=(width_in, height_in))
        losses = {k: v for k, v in series.items() if k.endswith("loss")}
        others = {k: v for k, v in series.items() if k not in losses}
        styles = {"train_loss": ("#2563eb", "-"), "val_loss": ("#dc2626", "-")}
        for key, points in losses.items():
            color, ls = styles.get(key, ("#6b7280", "--"))
            ax.plot(*zip(*points), color=color, ls=ls, lw=1.6, marker="o" if len(points) < 15 else None, ms=3,
                    label=key.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if others:
            ax2 = ax.twinx()
            palette = ["#16a34a", "#9333ea", "#ea580c", "#0891b2"]
            for i, (key, points) in enumerate(sorted(others.items())):
                ax2.plot(*zip(*points), color=palette[i % len(palette)], ls="--", lw=1.4,
                         marker="s" if len(points) < 15 else None, ms=3, label=key.replace("_", " "))
            ax2.set_ylabel("metric")
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        ax.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4,
                  frameon=False)  # below the axes: never on top of a curve
        ax.set_title(node, fontsize=9, loc="left")
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: the SVG goes inline in HTML

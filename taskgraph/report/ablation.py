"""Statistics and pictures of an edge ablation: transfer gain per edge, paired over seeds.

Pure functions of the measured numbers (no Ray or torch; scipy and matplotlib load lazily),
so they are tested on hand-made values. Gains are signed so that positive always means "the
edge helps": for metrics where lower is better (loss, mse, mae) the sign is flipped.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path
from statistics import mean, stdev
from typing import Any

__all__ = ["EdgeGain", "LOWER_IS_BETTER", "paired_test", "summarize", "by_split", "format_table", "plot_gains",
           "mean_std"]

#: Metrics where a smaller value is better; every other metric is "higher is better".
LOWER_IS_BETTER = frozenset({"loss", "mse", "mae"})


@dataclass(frozen=True)
class EdgeGain:
    """The effect of one edge ``upstream -> downstream`` at one label fraction, over paired seeds."""

    upstream: str
    downstream: str
    fraction: float
    metric: str
    with_edge: tuple[float, ...]
    without_edge: tuple[float, ...]
    gain_mean: float
    gain_std: float
    p_value: float
    test: str

    @property
    def negative(self) -> bool:
        """Negative transfer: on average the downstream task is worse with the edge than without it."""
        return self.gain_mean < 0

    def significant(self, alpha: float = 0.05) -> bool:
        return not math.isnan(self.p_value) and self.p_value < alpha

    def verdict(self, alpha: float = 0.05) -> str:
        if self.negative:
            return f"NEGATIVE TRANSFER{' (significant)' if self.significant(alpha) else ' (not significant)'}"
        return "helps" if self.significant(alpha) else "no significant effect"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "negative": self.negative, "significant": self.significant(), "verdict": self.verdict()}


def _sign_flip_p(diffs: list[float]) -> float:
    """Exact two-sided paired permutation test: every sign pattern of the differences."""
    observed = abs(sum(diffs))
    count = total = 0
    for signs in product((1, -1), repeat=len(diffs)):
        total += 1
        count += abs(sum(s * d for s, d in zip(signs, diffs))) >= observed - 1e-12
    return count / total


def paired_test(with_edge: list[float], without_edge: list[float]) -> tuple[float, str]:
    """Two-sided p-value that the paired differences have mean zero, and the test's name.

    The paired t-test (scipy) when scipy is there; the exact sign-flip test otherwise. With
    identical differences (zero variance) the t-test is undefined: then the sign-flip test,
    whose smallest p-value for n seeds is 2 / 2**n (0.25 for 3 seeds).
    """
    diffs = [a - b for a, b in zip(with_edge, without_edge)]
    if len(diffs) < 2:
        return float("nan"), "none (one seed)"
    if all(abs(d - diffs[0]) < 1e-15 for d in diffs):
        return (1.0 if diffs[0] == 0 else _sign_flip_p(diffs)), "sign-flip (exact)"
    try:
        from scipy.stats import ttest_rel
    except ImportError:
        return _sign_flip_p(diffs), "sign-flip (exact)"
    return float(ttest_rel(with_edge, without_edge).pvalue), "paired t-test"


def summarize(rows: list[dict[str, Any]]) -> list[EdgeGain]:
    """Rows ``{upstream, downstream, fraction, seed, with_edge, metric, value}`` -> one ``EdgeGain`` per edge and fraction.

    Seeds are paired: the same seed with and without the edge shares initialisation of the
    modules that are not inherited and the same label subsample. Unpaired seeds are dropped.
    """
    groups: dict[tuple[str, str, float, str], dict[bool, dict[int, float]]] = {}
    for row in rows:
        key = (row["upstream"], row["downstream"], float(row["fraction"]), row["metric"])
        groups.setdefault(key, {True: {}, False: {}})[bool(row["with_edge"])][int(row["seed"])] = float(row["value"])
    out = []
    for (up, down, fraction, metric), by in sorted(groups.items()):
        seeds = sorted(set(by[True]) & set(by[False]))
        with_v = [by[True][s] for s in seeds]
        without_v = [by[False][s] for s in seeds]
        sign = -1.0 if metric.removeprefix("test ") in LOWER_IS_BETTER else 1.0
        gains = [sign * (a - b) for a, b in zip(with_v, without_v)]
        p, test = paired_test(with_v, without_v)
        out.append(EdgeGain(
            up, down, fraction, metric, tuple(with_v), tuple(without_v),
            mean(gains) if gains else float("nan"), stdev(gains) if len(gains) > 1 else 0.0, p, test,
        ))
    return out


def mean_std(values: Sequence[float], digits: int = 4) -> str:
    """``mean ± std`` (sample std; 0 for one value), ``-`` for none: how every table shows seeds."""
    if not values:
        return "-"
    sd = stdev(values) if len(values) > 1 else 0.0
    return f"{mean(values):.{digits}f} ± {sd:.{digits}f}"


def by_split(gains: list[EdgeGain]) -> dict[str, list[EdgeGain]]:
    """``{"validation": [...], "test": [...]}`` (splits without gains left out): the test split's gains
    (metric ``test <name>``) are shown apart from the validation ones, in the table and the chart."""
    split = {"validation": [g for g in gains if not g.metric.startswith("test ")],
             "test": [g for g in gains if g.metric.startswith("test ")]}
    return {name: part for name, part in split.items() if part}


def format_table(gains: list[EdgeGain], alpha: float = 0.05) -> str:
    """A plain-text table: edge, fraction, metric with and without the edge, gain, p-value, verdict;
    the test split's rows (when the data has one) under their own heading after the validation rows."""
    width = max([10, *(len(g.metric) for g in gains)])
    header = (f"{'edge':<34} {'labels':>6} {'metric':<{width}} {'with edge':>17} {'without (scratch)':>17} "
              f"{'gain':>17} {'p':>6}  verdict")
    lines = [header, "-" * len(header)]
    for split, part in by_split(gains).items():
        if split == "test":
            lines.append("test split (scored once per variant, with the weights it kept):")
        for g in part:
            edge = f"{g.upstream} -> {g.downstream}"
            p = "n/a" if math.isnan(g.p_value) else f"{g.p_value:.3f}"
            gain = f"{g.gain_mean:+.4f} ± {g.gain_std:.4f}"
            lines.append(
                f"{edge:<34} {g.fraction:>6g} {g.metric:<{width}} {mean_std(g.with_edge):>17} "
                f"{mean_std(g.without_edge):>17} {gain:>17} {p:>6}  {g.verdict(alpha)}"
            )
    n = max((len(g.with_edge) for g in gains), default=0)
    test = gains[0].test if gains else ""
    lines.append(f"(mean ± std over {n} paired seeds; gain > 0: the edge helps; p: {test}, two-sided)")
    return "\n".join(lines)


def plot_gains(gains: list[EdgeGain], path: str | os.PathLike[str], title: str = "") -> Path:
    """Bar chart of the mean gain per edge (error bars: std over seeds), one colour per label fraction;
    a second panel for the test split's gains when there are any (never drawn over the validation ones)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = sorted({(g.upstream, g.downstream) for g in gains}, key=lambda e: (e[1], e[0]))
    fractions = sorted({g.fraction for g in gains})
    panels = by_split(gains) or {"validation": []}
    side = max(5.0, 1.6 * len(edges) * max(1, len(fractions)) ** 0.5 + 2)
    fig, axes = plt.subplots(1, len(panels), figsize=(side * len(panels), 4), squeeze=False)
    for ax, (split, part) in zip(axes[0], panels.items()):
        _draw_gains(ax, part, edges, fractions)
        metrics = sorted({g.metric for g in part})
        ax.set_ylabel(f"gain in {', '.join(metrics)} (with - without edge)")
        ax.set_title(f"{title or 'transfer gain per edge (red border: negative transfer)'}"
                     f"{' - ' + split + ' split' if len(panels) > 1 else ''}", fontsize=10)
        if len(fractions) > 1:
            ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", dpi=120)
    plt.close(fig)
    return path


def _draw_gains(ax: Any, gains: list[EdgeGain], edges: list[tuple[str, str]], fractions: list[float]) -> None:
    by = {(g.upstream, g.downstream, g.fraction): g for g in gains}
    width = 0.8 / max(len(fractions), 1)
    for j, fraction in enumerate(fractions):
        xs, ys, errs, colors = [], [], [], []
        for i, (up, down) in enumerate(edges):
            g = by.get((up, down, fraction))
            if g is None:
                continue
            xs.append(i + (j - (len(fractions) - 1) / 2) * width)
            ys.append(g.gain_mean)
            errs.append(g.gain_std)
            colors.append("#b91c1c" if g.negative else None)
        bars = ax.bar(xs, ys, width, yerr=errs, capsize=3, label=f"{fraction:.0%} of labels")
        for bar, color in zip(bars, colors):
            if color:
                bar.set_edgecolor(color)
                bar.set_linewidth(2)
    ax.axhline(0, color="#374151", lw=0.8)
    ax.set_xticks(range(len(edges)))
    ax.set_xticklabels([f"{u}\n-> {d}" for u, d in edges], fontsize=8)

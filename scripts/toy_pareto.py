"""The two-objective toy problem of the CAGrad (Liu et al. 2021) and Nash-MTL (Navon et al. 2022) papers.

From the papers' five starting points, each gradient method runs Adam on x in R^2; we record the
trajectories, draw them over the Pareto set, and say which methods end on the Pareto front
(Pareto-stationary: the min-norm point of the convex hull of the two gradients is ~0, and the
end point is within reach of the numerically computed Pareto set).

    python scripts/toy_pareto.py                      # docs/figures/toy_pareto.png (10,000 steps), table on stdout
    python scripts/toy_pareto.py --steps 1000         # the short budget
    python scripts/toy_pareto.py --steps 3000 --lr 0.01 --lr-end -1   # constant learning rate
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

LOWER = 0.000005  # the papers' clamp, so log|.| stays finite on the valleys' floors
#: Starting points of the CAGrad and Nash-MTL figures.
STARTS = ((-8.5, 7.5), (-8.5, -5.0), (0.0, 0.0), (9.0, 9.0), (-7.5, -0.5), (9.0, -1.0))
METHODS = ("equal", "mgda", "pcgrad", "cagrad", "imtl_g", "nash_mtl", "aligned_mtl", "upgrad")


def toy_losses(x: torch.Tensor) -> torch.Tensor:
    """(f1, f2) at x = (x1, x2): two log-valleys joined to quadratics, as in the papers' code."""
    x1, x2 = x[..., 0], x[..., 1]
    f1 = torch.clamp((0.5 * (-x1 - 7) - torch.tanh(-x2)).abs(), LOWER).log() + 6
    f2 = torch.clamp((0.5 * (-x1 + 3) + torch.tanh(-x2) + 2).abs(), LOWER).log() + 6
    c1 = torch.clamp(torch.tanh(x2 * 0.5), 0)
    f1_sq = ((-x1 + 7).pow(2) + 0.1 * (-x2 - 8).pow(2)) / 10 - 20
    f2_sq = ((-x1 - 7).pow(2) + 0.1 * (-x2 - 8).pow(2)) / 10 - 20
    c2 = torch.clamp(torch.tanh(-x2 * 0.5), 0)
    return torch.stack([f1 * c1 + f1_sq * c2, f2 * c1 + f2_sq * c2], dim=-1)


def aggregator(method: str):
    """``jacobian (2 x 2) -> direction`` for a method name, with the spec's defaults (torchjd inside)."""
    if method == "equal":
        return lambda jac: jac.sum(0)
    from pydantic import TypeAdapter

    from taskgraph.spec.weighting import WeightingConfig
    from taskgraph.train.weighting.aggregators import AGGREGATORS

    config = TypeAdapter(WeightingConfig).validate_python({"method": method})
    return AGGREGATORS[method](config, 2)


def pareto_stationarity(x: torch.Tensor) -> float:
    """Norm of the min-norm point of conv{grad f1, grad f2}: 0 exactly at Pareto-stationary points."""
    x = x.detach().clone().requires_grad_(True)
    f = toy_losses(x)
    g1, g2 = (torch.autograd.grad(f[i], x, retain_graph=True)[0] for i in range(2))
    diff = g1 - g2
    a = 0.5 if diff.norm() == 0 else float(torch.clamp(((g2 - g1) @ g2) / (diff @ diff), 0.0, 1.0))
    return float((a * g1 + (1 - a) * g2).norm())


def pareto_set(n: int = 600, box: float = 10.0) -> torch.Tensor:
    """Grid points whose (f1, f2) no other grid point dominates: the Pareto set, numerically."""
    axis = torch.linspace(-box, box, n)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1).reshape(-1, 2)
    f = toy_losses(grid)
    order = torch.argsort(f[:, 0] + 1e-9 * f[:, 1])
    best = torch.cummin(f[order, 1], dim=0).values
    keep = torch.ones(len(order), dtype=torch.bool)
    keep[1:] = f[order[1:], 1] < best[:-1]
    return grid[order[keep]]


def run(method: str, start: tuple[float, float], steps: int, lr: float, lr_end: float | None = None) -> torch.Tensor:
    """Adam on x with the method's direction as the gradient; returns the (steps + 1) x 2 trajectory.

    ``lr_end`` decays the learning rate along a cosine to that value: large steps to travel, small
    ones to settle (the papers run lr 1e-3 for tens of thousands of steps; this is the same path, shorter).
    """
    aggregate = aggregator(method)
    x = torch.tensor(start, dtype=torch.float32, requires_grad=True)
    opt = torch.optim.Adam([x], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr_end) if lr_end is not None else None
    path = [x.detach().clone()]
    for _ in range(steps):
        f = toy_losses(x)
        jac = torch.stack([torch.autograd.grad(f[i], x, retain_graph=True)[0] for i in range(2)])
        opt.zero_grad()
        x.grad = aggregate(jac).to(x.dtype)
        opt.step()
        if sched:
            sched.step()
        path.append(x.detach().clone())
    return torch.stack(path)


def reached(end: torch.Tensor, front: torch.Tensor, tol: float = 0.05) -> bool:
    """On the front: Pareto-stationary, and within 0.25 of a numerically non-dominated grid point."""
    near = float((front - end).norm(dim=1).min()) < 0.25
    return pareto_stationarity(end) < tol and near


def _method_runs(job: tuple[str, int, float, float | None]) -> tuple[str, list[torch.Tensor], float]:
    import warnings

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    method, steps, lr, lr_end = job
    started = time.perf_counter()
    paths = [run(method, s, steps, lr, lr_end) for s in STARTS]
    return method, paths, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--lr-end", type=float, default=0.001, help="Cosine decay to this (negative: constant lr).")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs/figures/toy_pareto.png"))
    args = parser.parse_args()
    from concurrent.futures import ProcessPoolExecutor

    methods = args.methods.split(",")
    lr_end = args.lr_end if args.lr_end >= 0 else None
    front = pareto_set()
    paths: dict[str, list[torch.Tensor]] = {}
    print(f"Adam lr {args.lr}" + (f" -> {lr_end} (cosine)" if lr_end is not None else "") + f", {args.steps} steps")
    print(f"{'method':<12} " + " ".join(f"{str(s):>13}" for s in STARTS) + "  reached  ms/step")
    with ProcessPoolExecutor(args.jobs) as pool:
        for method, runs, seconds in pool.map(_method_runs, [(m, args.steps, args.lr, lr_end) for m in methods]):
            paths[method] = runs
            marks = [reached(p[-1], front) for p in runs]
            cells = " ".join(f"{('yes' if m else 'no'):>13}" for m in marks)
            print(f"{method:<12} {cells}  {sum(marks)}/{len(marks)}  {1e3 * seconds / (len(STARTS) * args.steps):7.2f}",
                  flush=True)
    paths = {m: paths[m] for m in [*METHODS, *paths] if m in paths}  # figure in the usual order
    draw(paths, front, args.out, args.steps, args.lr, lr_end)
    print(f"wrote {args.out}")


def draw(paths: dict[str, list[torch.Tensor]], front: torch.Tensor, out: str, steps: int, lr: float,
         lr_end: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(paths)
    cols = 4
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    axis = torch.linspace(-10, 10, 200)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1)
    mean = toy_losses(grid).mean(-1)
    for ax, (method, runs) in zip(axes.flat, paths.items()):
        ax.contourf(axis, axis, mean, levels=25, cmap="Greys", alpha=0.5)
        ax.scatter(front[:, 0], front[:, 1], s=1, c="black", label="Pareto set")
        for i, path in enumerate(runs):
            ax.plot(path[:, 0], path[:, 1], lw=1.5, color=plt.cm.tab10(i))
            ax.scatter(path[0, 0], path[0, 1], marker="o", s=14, color=plt.cm.tab10(i))
            ax.scatter(path[-1, 0], path[-1, 1], marker="*", s=50, color=plt.cm.tab10(i), edgecolor="k", lw=0.4)
        ax.set_title(method)
        ax.set_xlim(-10, 10)
        ax.set_ylim(-10, 10)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    schedule = f"{lr}" + (f" -> {lr_end} cosine" if lr_end is not None else "")
    fig.suptitle(f"Toy problem of CAGrad / Nash-MTL: Adam lr {schedule}, {steps} steps (o start, * end; black: Pareto set)",
                 fontsize=9)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()

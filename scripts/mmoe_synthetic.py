"""The synthetic experiment of the MMoE paper (Ma et al. 2018, section 3): does MMoE's advantage over
hard sharing grow as the two tasks' labels correlate less?

Data (the paper's recipe, section 3.2): two orthogonal unit vectors u1, u2 in R^d (d = 100); task
weights w1 = c u1 and w2 = c (rho u1 + sqrt(1 - rho^2) u2) with c = 1; inputs x ~ N(0, I); labels
y_i = w_i.x + sum_{j=1..m} sin(alpha_j w_i.x + beta_j) + eps_i, m = 10, alpha_j, beta_j ~ N(0, 0.01)
(variance) shared by the two tasks, eps_i ~ N(0, 0.01). The Pearson correlation of y1 and y2 is
then close to rho. Models (section 3.3's sizes): hard sharing, a 113-unit ReLU bottom and an 8-unit
tower per task; OMoE, one gate shared by both tasks (the paper's one-gate baseline; here an `mmoe`
with one task both heads read through `gate:`); MMoE, 8 single-layer experts of 16 units and a
softmax gate per task; PLE, two levels (4 shared + 2 per-task experts of 16 units, then 2 shared +
1 per-task). Every model is built from a graph node by taskgraph's own JointModel and trained by
its joint-node step (`_Joint.losses`, equal weights), Adam, batch 128, each seed on fresh data.

    python scripts/mmoe_synthetic.py                       # docs/figures/mmoe_synthetic.png, table on stdout
    python scripts/mmoe_synthetic.py --seeds 5 --steps 3000 --models "hard sharing,OMoE,MMoE,PLE"
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from taskgraph.spec.loader import parse_spec
from taskgraph.train.multitask import JointModel, _Joint
from taskgraph.train.weighting import build_weighting

D, M = 100, 10
TOWER = "{type: mlp, hidden: [8], out: 1}"
HEADS = f"""
    heads:
      t1: {{module: {TOWER}, loss: {{type: mse, target: y1}}GATE}}
      t2: {{module: {TOWER}, loss: {{type: mse, target: y2}}GATE}}
"""
EXPERT = "{type: mlp, hidden: [16]}"
MODELS = {
    "hard sharing": "    modules:\n      bottom: {type: mlp, hidden: [113]}\n",
    "OMoE": "    mixture: {type: mmoe, tasks: [both], experts: {%s}}\n"
            % ", ".join(f"e{i}: {EXPERT}" for i in range(8)),
    "MMoE": "    mixture: {type: mmoe, experts: {%s}}\n" % ", ".join(f"e{i}: {EXPERT}" for i in range(8)),
    "PLE": "    mixture:\n      type: ple\n      levels:\n"
           "        - {shared: {%s}, specific: {t1: {a1: %s, a2: %s}, t2: {b1: %s, b2: %s}}}\n"
           "        - {shared: {s5: %s, s6: %s}, specific: {t1: {a3: %s}, t2: {b3: %s}}}\n"
           % ((", ".join(f"s{i}: {EXPERT}" for i in range(1, 5)),) + (EXPERT,) * 8),
}
COLORS = {"hard sharing": "tab:gray", "OMoE": "tab:blue", "MMoE": "tab:red", "PLE": "tab:green"}


def node_for(model: str):
    text = f"name: synthetic\ndata:\n  d: {{loader: synthetic_shapes}}\ntasks:\n  j:\n    kind: multitask\n    data: d\n"
    text += MODELS[model] + HEADS.replace("GATE", ", gate: both" if model == "OMoE" else "")
    spec, _ = parse_spec(text)
    return spec.tasks["j"]


def make_data(rho: float, n: int, seed: int) -> dict[str, torch.Tensor]:
    """The paper's two regression tasks with label correlation about ``rho`` (section 3.2)."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(D, 2, generator=g))  # two orthonormal columns
    u1, u2 = u[:, 0], u[:, 1]
    w1, w2 = u1, rho * u1 + math.sqrt(1 - rho**2) * u2
    alpha, beta = torch.randn(M, generator=g) * 0.1, torch.randn(M, generator=g) * 0.1
    x = torch.randn(n, D, generator=g)

    def label(w: torch.Tensor) -> torch.Tensor:
        s = x @ w
        return (s + torch.sin(alpha * s[:, None] + beta).sum(1) + torch.randn(n, generator=g) * 0.1)[:, None]

    return {"x": x, "y1": label(w1), "y2": label(w2)}


def train(model_name: str, rho: float, seed: int, steps: int, every: int, lr: float, n_train: int):
    """Test MSE of each task every ``every`` steps: ``[(step, mse1, mse2), ...]``."""
    torch.manual_seed(seed)
    data = make_data(rho, n_train + 1000, seed)
    train_split = {k: v[:n_train] for k, v in data.items()}
    test = {k: v[n_train:] for k, v in data.items()}
    node = node_for(model_name)
    model = JointModel(node, D, "synthetic")
    joint, method = _Joint(node, model), build_weighting(node.weighting, list(node.heads))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    curve = []
    g = torch.Generator().manual_seed(seed + 1)
    for step in range(steps + 1):
        if step % every == 0:
            model.eval()
            with torch.no_grad():
                losses, _ = joint.losses({"d": test}, False, False)
            model.train()
            curve.append((step, *losses.tolist()))
        if step == steps:
            break
        idx = torch.randint(0, n_train, (128,), generator=g)
        losses, state = joint.losses({"d": {k: v[idx] for k, v in train_split.items()}}, False, False)
        optimizer.zero_grad(set_to_none=True)
        method.backward(losses, state)
        optimizer.step()
    return curve, sum(p.numel() for p in model.parameters())


def draw(results: dict, rhos: list[float], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rhos), figsize=(4.2 * len(rhos), 3.4), sharey=True)
    for ax, rho in zip(axes, rhos):
        for model, runs in results[str(rho)].items():
            curves = torch.tensor([[(a + b) / 2 for _, a, b in run] for run in runs])
            steps = [s for s, _, _ in runs[0]]
            mean, std = curves.mean(0), curves.std(0) if len(runs) > 1 else torch.zeros(curves.shape[1])
            ax.plot(steps, mean, color=COLORS[model], label=model)
            ax.fill_between(steps, mean - std, mean + std, color=COLORS[model], alpha=0.15)
        ax.set_title(f"correlation {rho}")
        ax.set_xlabel("training step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test MSE (mean of the two tasks)")
    axes[0].legend()
    fig.suptitle(f"MMoE synthetic experiment (Ma et al. 2018, fig. 4): mean ± sd over {len(runs)} seeds")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rhos", default="0.5,0.9,1.0")
    parser.add_argument("--models", default="hard sharing,MMoE,PLE", help=f"any of {', '.join(MODELS)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("-o", "--out", type=Path, default=Path("docs/figures/mmoe_synthetic.png"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rhos = [float(r) for r in args.rhos.split(",")]
    models = args.models.split(",")
    results: dict = {}
    sizes: dict[str, int] = {}
    started = time.perf_counter()
    for rho in rhos:
        results[str(rho)] = {}
        sample = make_data(rho, 20000, 0)
        corr = torch.corrcoef(torch.cat([sample["y1"], sample["y2"]], 1).T)[0, 1]
        print(f"rho {rho}: Pearson correlation of the labels {corr:.3f}", flush=True)
        for model in models:
            runs = []
            for seed in range(args.seeds):
                curve, sizes[model] = train(model, rho, seed, args.steps, args.every, args.lr, args.train_size)
                runs.append(curve)
            results[str(rho)][model] = runs
            final = [(a + b) / 2 for _, a, b in (run[-1] for run in runs)]
            print(f"rho {rho} {model:>12}: final test MSE {sum(final) / len(final):.4f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    print(f"\nparameters: " + ", ".join(f"{m} {n:,}" for m, n in sizes.items()))
    for title, pick in (("final test MSE", lambda run: [run[-1]]), ("test MSE averaged over training (area under "
                                                                      "the curve / steps)", lambda run: run[1:])):
        print(f"\n{title}, mean ± sd over {args.seeds} seeds (the mean of the two tasks; noise floor 0.01)")
        print("\n| model | " + " | ".join(f"rho = {r}" for r in rhos) + " |")
        print("|---|" + "---|" * len(rhos))
        table: dict[str, list[float]] = {}
        for model in models:
            cells = []
            for rho in rhos:
                values = torch.tensor([sum((a + b) / 2 for _, a, b in pick(run)) / len(pick(run))
                                       for run in results[str(rho)][model]])
                table.setdefault(model, []).append(float(values.mean()))
                cells.append(f"{values.mean():.4f} ± {values.std() if len(values) > 1 else 0:.4f}")
            print(f"| {model} | " + " | ".join(cells) + " |")
        if "hard sharing" in table and "MMoE" in table:
            gaps = [h - m for h, m in zip(table["hard sharing"], table["MMoE"])]
            print("| MMoE advantage (hard sharing - MMoE) | " + " | ".join(f"{g:+.4f}" for g in gaps) + " |")
    draw(results, rhos, args.out)
    args.out.with_suffix(".json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                          "parameters": sizes, "curves": results}))
    print(f"\nfigure: {args.out}  ({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()

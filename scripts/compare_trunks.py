"""Train the independent nodes of a graph side by side, in this process, over seeds: a table of
their final validation metrics (mean ± sd) and parameter counts.

For comparing trunks of one joint node (hard sharing against MMoE or CGC, as in
``graphs/fsdd_experts.yaml``): every node trains with the seed ``taskgraph run --set seed=S`` gives
it, by the same ``train_node`` a Ray worker runs, without starting Ray (so it works on a machine
too busy for Ray's start-up limit). Nodes with dependencies are refused: use ``taskgraph run``.

    python scripts/compare_trunks.py graphs/fsdd_experts.yaml --seeds 3
    python scripts/compare_trunks.py graphs/fsdd_experts.yaml --seeds 3 --set defaults.train.label_fraction=0.1
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from taskgraph.plan.graph import make_plan
from taskgraph.spec.loader import load_spec
from taskgraph.train.loop import NodeRequest, node_seed, train_node


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graph", type=Path)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="override a value as taskgraph run --set does (repeatable)")
    parser.add_argument("--nodes", help="only these nodes (comma-separated)")
    parser.add_argument("-o", "--out", type=Path, help="write the per-seed metrics here (JSON)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict[str, list[dict]] = {}
    sizes: dict[str, int] = {}
    started = time.perf_counter()
    for seed in range(args.seeds):
        spec, source = load_spec(args.graph, overrides=[*args.overrides, f"seed={seed}"])
        plan = make_plan(spec, source)
        for name in plan.order:
            if args.nodes and name not in args.nodes.split(","):
                continue
            task = spec.tasks[name]
            if task.depends_on:
                raise SystemExit(f"{name} depends on {', '.join(task.depends_on)}: use taskgraph run for graphs with edges")
            sources = tuple((s, spec.data[s]) for s in task.data_sources())
            request = NodeRequest(name, task, spec.data[task.data], node_seed(task.seed or 0, name), sources=sources)
            t0 = time.perf_counter()
            out = train_node(request, {})
            sizes[name] = sum(int(v.size) for k, v in out.state.items() if "running_" not in k and "num_batches" not in k)
            results.setdefault(name, []).append({**out.metrics["final"], "seconds": time.perf_counter() - t0})
            print(f"seed {seed} {name:>8}: " + ", ".join(f"{k} {v:.4f}" for k, v in out.metrics["final"].items()
                                                       if not k.endswith(".loss")) + f" ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    metrics = [k for k in next(iter(results.values()))[0] if not k.endswith(".loss") and k != "seconds"]
    print(f"\n| node | parameters | " + " | ".join(metrics) + " |")
    print("|---|---|" + "---|" * len(metrics))
    for name, runs in results.items():
        cells = []
        for metric in metrics:
            values = [r[metric] for r in runs]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.4f} ± {sd:.4f}")
        print(f"| {name} | {sizes[name]:,} | " + " | ".join(cells) + " |")
    print(f"\n{args.seeds} seeds, {time.perf_counter() - started:.0f} s in all")
    if args.out:
        args.out.write_text(json.dumps({"graph": str(args.graph), "seeds": args.seeds, "set": args.overrides,
                                        "parameters": sizes,
                                        "runs": results}, indent=1))


if __name__ == "__main__":
    main()

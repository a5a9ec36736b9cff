"""The numbers in README's "Example graphs" section: every node over N seeds, then the edge ablation.

    python scripts/example_results.py graphs/speech.yaml --seeds 3 --fractions 0.1,1.0
    python scripts/example_results.py graphs/digits.yaml --seeds 3
    python scripts/example_results.py graphs/text.yaml --seeds 3

For each seed s the whole graph runs with ``--set seed=s`` (every node's metrics, mean ± std);
then ``taskgraph ablate`` runs with the same seeds. Everything lands in ``results/<graph>/``:
``nodes.json``, the ablation folder (``ablation.json``, ``ablation.png``) and ``summary.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "token")

import taskgraph  # noqa: E402
from taskgraph.ablate import ablate_graph  # noqa: E402
from taskgraph.report.ablation import mean_std  # noqa: E402
from taskgraph.spec.loader import load_spec  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("graph", type=Path)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--fractions", default="1.0")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--skip-runs", action="store_true", help="Only the ablation.")
    parser.add_argument("--skip-ablation", action="store_true", help="Only the per-seed runs.")
    args = parser.parse_args()

    import ray

    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    spec0, source0 = load_spec(args.graph, tuple(args.overrides))
    out = args.out / spec0.name
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# {spec0.name}: {args.seeds} seeds", "", f"command: `python scripts/example_results.py {args.graph} "
             f"--seeds {args.seeds} --fractions {args.fractions}" + "".join(f" --set {o}" for o in args.overrides) + "`", ""]
    started = time.time()
    if not args.skip_runs:
        per_node: dict[str, dict[str, list[float]]] = {}
        for seed in range(args.seeds):
            spec = taskgraph.load(args.graph, [*args.overrides, f"seed={seed}"])
            result = taskgraph.run(spec, run_root=out / "runs")
            assert result.ok, {n: r.error for n, r in result.records.items()}
            for node in spec.tasks:
                for metric, value in result.metrics(node).items():
                    per_node.setdefault(node, {}).setdefault(metric, []).append(value)
            print(f"seed {seed} done ({time.time() - started:.0f}s)", flush=True)
        (out / "nodes.json").write_text(json.dumps(per_node, indent=2))
        lines += ["| node | metric | mean ± std |", "|---|---|---|"]
        for node, metrics in per_node.items():
            for metric, values in metrics.items():
                if not metric.endswith("loss"):
                    lines.append(f"| {node} | {metric} | {mean_std(values)} |")
        lines.append("")
    if not args.skip_ablation:
        fractions = tuple(float(f) for f in args.fractions.split(","))
        result = ablate_graph(spec0, source0, seeds=args.seeds, fractions=fractions, run_root=out)
        lines += ["```", result.table(), "```", "", f"ablation folder: {result.out_dir}"]
    lines.append(f"total wall time: {time.time() - started:.0f} s")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

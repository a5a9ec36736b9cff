"""A no-change rerun as a whole process: ``taskgraph run G.yaml`` when every node is cached.

Builds bench_peers' 20-node DAG (and the quickstart) in a temporary folder, fills their caches the
way a worker does (``write_node`` + ``NodeCache.store``: no Ray, no training), runs ``taskgraph run``
once (the full path, which keeps the record the fast path replays), then times ``--reps`` more
runs. Each tree is timed twice: with PYTHONDONTWRITEBYTECODE=1 and its ``__pycache__`` removed
(every module compiled in every process, as in this project's CI environment) and with bytecode
cached (a user's Python after the first run). Prints the median wall and CPU (user + sys) seconds.

    python3 scripts/bench_rerun.py [--reps 5] [--before /path/to/older/checkout]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


def fill(graph: Path, runs: Path, work: Path) -> None:
    """Store a finished result for every node under its key, as a worker stores one (run with the
    timed tree on PYTHONPATH: ``--fill``, so each tree's cache has that tree's keys)."""
    import numpy as np

    from taskgraph.artifacts.cache import NodeCache
    from taskgraph.artifacts.rundir import write_node
    from taskgraph.plan.graph import make_plan
    from taskgraph.plan.keys import node_keys
    from taskgraph.spec.loader import load_spec

    spec, _ = load_spec(graph)
    cache = NodeCache.for_run_root(runs)
    for name, key in node_keys(spec, make_plan(spec)).items():
        files = write_node(work / name, {"encoder.w": np.zeros((2, 3), np.float32)}, {"node": name, "final": {"loss": 0.5}})
        cache.store(key, work / name, {"final": {"loss": 0.5}, "inherited": [], "device": "cpu", "steps": 1,
                                       "node": name, "host": "bench", "trained_at": 1.0}, files)


def drop_bytecode(tree: Path) -> None:
    for folder in (tree / "taskgraph").rglob("__pycache__"):
        shutil.rmtree(folder, ignore_errors=True)


def fill_with(tree: Path, work: Path, runs: str) -> None:
    for graph in ("dag.yaml", "quickstart.yaml"):
        subprocess.run([sys.executable, __file__, "--fill", str(work / graph), str(work / runs), str(work / "work")],
                       env={**os.environ, "PYTHONPATH": str(tree)}, check=True)


def timed(tree: Path, graph: str, cwd: Path, bytecode: bool, runs: str) -> tuple[float, float]:
    """Wall and CPU seconds of one ``taskgraph run`` process."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("RAY_ADDRESS", None)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = os.times().elapsed
    proc = subprocess.run([sys.executable, "-m", "taskgraph", "run", graph, "--run-dir", runs, "--plain"],
                          cwd=cwd, env=env, capture_output=True, text=True)
    wall = os.times().elapsed - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0 or " cached " not in proc.stdout:
        raise RuntimeError(f"taskgraph run {graph} failed or trained something:\n{proc.stdout}\n{proc.stderr}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--before", type=Path, help="an older checkout to time the same way")
    parser.add_argument("--fill", nargs=3, type=Path, help=argparse.SUPPRESS)  # GRAPH RUNS WORK (internal)
    args = parser.parse_args()
    if args.fill:
        fill(*args.fill)
        return
    from bench_peers import dag_graph

    trees = [("this", ROOT)] + ([("before", args.before.resolve())] if args.before else [])
    with tempfile.TemporaryDirectory(prefix="bench-rerun-") as tmp:
        work = Path(tmp)
        (work / "dag.yaml").write_text(dag_graph()[0])
        shutil.copy(ROOT / "graphs" / "quickstart.yaml", work / "quickstart.yaml")
        for label, tree in trees:
            fill_with(tree, work, f"runs-{label}")
        print(f"load average {os.getloadavg()[0]:.1f}; {args.reps} reps each, medians", flush=True)
        for graph in ("dag.yaml", "quickstart.yaml"):
            for label, tree in trees:
                for bytecode in (False, True):
                    if not bytecode:
                        drop_bytecode(tree)
                    runs = f"runs-{label}"
                    timed(tree, graph, work, bytecode, runs)  # the first: the full path (it keeps the record)
                    times = [timed(tree, graph, work, bytecode, runs) for _ in range(args.reps)]
                    wall = statistics.median(t[0] for t in times)
                    cpu = statistics.median(t[1] for t in times)
                    mode = "bytecode cached" if bytecode else "PYTHONDONTWRITEBYTECODE=1"
                    print(f"{graph:<16} {label:<7} {mode:<26} wall {wall:.3f} s  cpu {cpu:.3f} s", flush=True)
        print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

"""Wall time and loader calls of runs whose nodes share one census-like table.

    PYTHONPATH=/path/to/checkout python3 scripts/bench_load_once.py [--rows 200000] [--nodes 4] [--num-cpus 2]

Writes a census-like CSV (6 numeric and 8 categorical columns, two label columns) and a graph of
``--nodes`` independent nodes on it, then runs ``taskgraph run`` twice as separate commands, as a
user does (the second with 2 epochs: every node trains again on the same data).
The source goes through ``counted_table`` below, which calls the built-in ``table`` loader and
leaves one file per call (with its seconds) in ``calls/``: the loads of every worker are counted.
``taskgraph`` comes from PYTHONPATH, so one script measures a checkout before and after a change.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent


def counted_table(path: str, **options: object):
    """The ``table`` loader, counted: one file per call in ``calls/`` beside the table's folder."""
    from pydantic import TypeAdapter

    from taskgraph.spec.components import DataConfig
    from taskgraph.train.data import LOADERS

    started = time.perf_counter()
    splits = LOADERS.get("table")(TypeAdapter(DataConfig).validate_python({"loader": "table", "path": path, **options}))
    calls = Path(path).resolve().parent.parent / "calls"
    calls.mkdir(exist_ok=True)
    (calls / f"{os.getpid()}-{uuid.uuid4().hex}").write_text(f"{time.perf_counter() - started:.3f}")
    return splits


def _census(path: Path, rows: int) -> None:
    rng = random.Random(0)
    cats = {f"cat{i}": [f"v{i}_{k}" for k in range(5 + 5 * i)] for i in range(8)}
    with path.open("w") as out:
        out.write(",".join([f"num{i}" for i in range(6)] + list(cats) + ["income", "sex"]) + "\n")
        for _ in range(rows):
            nums = [f"{rng.gauss(0, 1):.3f}" for _ in range(6)]
            picks = [rng.choice(v) for v in cats.values()]
            income = ">50K" if float(nums[0]) + rng.gauss(0, 1) > 0.8 else "<=50K"
            out.write(",".join(nums + picks + [income, rng.choice(["Male", "Female"])]) + "\n")


GRAPH = """
name: census
data:
  census:
    loader: "bench_load_once:counted_table"
    path: {path}
    labels: {{income: {{kind: binary, positive: ">50K"}}, sex: class}}
defaults:
  train: {{epochs: 1, batch_size: 512}}
tasks:
"""
NODE = """  n{i}:
    data: census
    seed: {i}
    modules: {{mlp: {{type: mlp, hidden: [32]}}, head: {{type: linear, out: {out}}}}}
    loss: {{type: {loss}, target: {target}}}
"""


def _run(args: list[str], env: dict[str, str], tries: int = 4) -> float:
    """Seconds of a successful command; an embedded Ray that misses its 30 s start on a busy machine is
    started again (that try is not timed)."""
    for _ in range(tries):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "taskgraph", *args], env=env, capture_output=True, text=True)
        if done.returncode == 0:
            return time.perf_counter() - started
        if "did not start within" not in done.stderr:
            break
        print("  (Ray did not start in time on this busy machine: trying again)", flush=True)
    raise SystemExit(f"taskgraph {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--num-cpus", type=int, default=2)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.environ.get("PYTHONPATH", ""), str(HERE)])}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "data").mkdir()
        _census(root / "data" / "census.csv", args.rows)
        text = GRAPH.format(path=root / "data" / "census.csv")
        for i in range(args.nodes):
            binary = i % 2 == 0
            text += NODE.format(i=i, out=1 if binary else 2, loss="binary_cross_entropy" if binary else "cross_entropy",
                                target="income" if binary else "sex")
        (root / "graph.yaml").write_text(text)
        results = {}
        for step, extra in (("run", []), ("second run, 2 epochs", ["--set", "defaults.train.epochs=2"])):
            seconds = _run(["run", str(root / "graph.yaml"), "--run-dir", str(root / "runs"),
                            "--num-cpus", str(args.num_cpus), *extra], env)
            calls = sorted((root / "calls").iterdir()) if (root / "calls").exists() else []
            results[step] = {"wall_s": round(seconds, 1), "loads_so_far": len(calls),
                             "load_s_so_far": round(sum(float(c.read_text()) for c in calls), 1)}
            print(f"{step}: {json.dumps(results[step])}", flush=True)


if __name__ == "__main__":
    main()

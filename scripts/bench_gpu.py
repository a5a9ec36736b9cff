#!/usr/bin/env python3
"""GPU scheduling and GPU training through the real ``taskgraph run`` path (issue #18, GPU part).

Each workload runs three ways, one whole ``taskgraph run`` process each, on the embedded local Ray
(which finds the machine's GPUs itself):

  cpu      every node ``resources: {cpus: 1, gpus: 0}``: trains on one CPU core
  gpu1     every node ``gpus: 1``: one node at a time holds the GPU
  gpu0.25  every node ``gpus: 0.25``: Ray packs four nodes onto one GPU at once

Printed per run: wall time of the process, the median node's time (``started_at`` to ``ended_at``
in run.json), the most nodes that ran at once and, of those, the most that shared one GPU
(from run.json's ``gpu_ids`` and timestamps), the device each node reported, and the GPU's busy
share (NVML's utilisation counter sampled every 50 ms while the process ran; "busy" means a kernel
was running, not that the GPU was full) over the whole process and over the span when nodes ran.

Workloads:
  wide  8 independent nodes, each an MLP encoder (64 -> 2048 -> 2048) with a 10-class head on
        50,000 synthetic examples, batch 512, 3 epochs: enough arithmetic for a GPU to matter.
  dag   scripts/bench_peers.py's 20-node random DAG of small MLPs, each inheriting an upstream's
        encoder (the CPU benchmark of issue #18).

    python scripts/bench_gpu.py                          # both workloads, all three ways
    python scripts/bench_gpu.py --only wide --ways cpu   # runs anywhere (no GPU needed)

Without a GPU (or without NVML) the GPU ways are skipped with a message and busy share reads n/a.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_peers import dag_graph  # a sibling script, not a package

WAYS = {"cpu": 0.0, "gpu1": 1.0, "gpu0.25": 0.25}


def wide_graph(n_nodes: int = 8, examples: int = 50_000, hidden: int = 2048, epochs: int = 3, batch: int = 512) -> str:
    lines = ["name: gpu_wide", "seed: 0", "defaults:", "  resources: {cpus: 1, gpus: 0}",
             f"  train: {{epochs: {epochs}, batch_size: {batch}, optimizer: adam, lr: 1.0e-3}}",
             "data:", f"  shapes: {{loader: synthetic_shapes, n: {examples}, dim: 64, noise: 0.7}}", "tasks:"]
    for i in range(n_nodes):
        lines += [f"  w{i}:", "    data: shapes",
                  (f"    modules: {{encoder: {{type: mlp, in: 64, hidden: [{hidden}, {hidden}]}}, "
                   "head: {type: linear, out: 10}}"),
                  "    loss: {type: cross_entropy, target: label}", "    metrics: [accuracy]"]
    return "\n".join(lines) + "\n"


def with_gpus(graph: str, gpus: float) -> str:
    """The same graph with every node's default resources asking for ``gpus``."""
    old = "resources: {cpus: 1, gpus: 0}"
    if old not in graph:
        raise SystemExit("bench_gpu: the workload graph has no default resources line to change")
    return graph.replace(old, f"resources: {{cpus: 1, gpus: {gpus:g}}}", 1)


class GpuSampler:
    """NVML utilisation of GPU 0 every ``period`` seconds on a thread, with wall-clock stamps."""

    def __init__(self, period: float = 0.05) -> None:
        self.period = period
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # noqa: BLE001  (no NVML library, no driver or no GPU: busy share reads n/a)
            self._nvml = None

    @property
    def available(self) -> bool:
        return self._nvml is not None

    def __enter__(self) -> Self:
        if self.available:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            util = self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu
            self.samples.append((time.time(), int(util)))
            self._stop.wait(self.period)

    def busy_share(self, start: float | None = None, end: float | None = None) -> float | None:
        picked = [u for t, u in self.samples if (start is None or t >= start) and (end is None or t <= end)]
        return statistics.mean(picked) / 100 if picked else None

    def memory_used_mib(self) -> float | None:
        if not self.available:
            return None
        return self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used / 2**20


def gpu_count() -> int:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False)
        return sum(line.startswith("GPU ") for line in out.stdout.splitlines())
    except (OSError, subprocess.TimeoutExpired):
        return 0


def most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    best = now = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def run_once(graph: str, gpus: float, num_cpus: int, workdir: Path) -> dict:
    graph_file = workdir / "graph.yaml"
    graph_file.write_text(with_gpus(graph, gpus))
    run_dir = workdir / "runs"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "taskgraph", "run", str(graph_file), "--run-dir", str(run_dir),
               "--plain", "--num-cpus", str(num_cpus)]
    with GpuSampler() as sampler:
        started = time.time()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        ended = time.time()
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"bench_gpu: taskgraph run failed (exit {done.returncode})")
    run = json.loads(next(run_dir.rglob("run.json")).read_text())
    nodes = list(run["nodes"].values())
    spans = [(n["started_at"], n["ended_at"]) for n in nodes]
    per_gpu: dict[str, list[tuple[float, float]]] = {}
    for n in nodes:
        for gpu in n.get("gpu_ids") or []:
            per_gpu.setdefault(str(gpu), []).append((n["started_at"], n["ended_at"]))
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    return {
        "wall_s": ended - started,
        "node_s_median": statistics.median(e - s for s, e in spans),
        "nodes_at_once": most_at_once(spans),
        "on_one_gpu_at_once": max((most_at_once(v) for v in per_gpu.values()), default=0),
        "devices": sorted({(n.get("meta") or {}).get("device", "?") for n in nodes}),
        "busy_whole": sampler.busy_share(),
        "busy_nodes": sampler.busy_share(first, last),
        "metrics": {n["name"]: (n.get("meta") or {}).get("final") for n in nodes},
    }


def fmt_share(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="wide,dag", help="Comma-separated workloads: wide, dag.")
    parser.add_argument("--ways", default=",".join(WAYS), help="Comma-separated: cpu, gpu1, gpu0.25.")
    parser.add_argument("--num-cpus", type=int, default=min(8, os.cpu_count() or 1),
                        help="CPUs of the embedded Ray (every node asks for one).")
    parser.add_argument("--examples", type=int, default=50_000, help="Training examples of the wide workload.")
    parser.add_argument("--hidden", type=int, default=2048, help="Hidden width of the wide workload's MLP.")
    parser.add_argument("--epochs", type=int, default=3, help="Epochs of the wide workload.")
    parser.add_argument("--batch", type=int, default=512, help="Batch size of the wide workload (smaller: more, lighter steps).")
    parser.add_argument("--json", default="", help="Also write the raw results here.")
    args = parser.parse_args()
    workloads = {"wide": wide_graph(examples=args.examples, hidden=args.hidden, epochs=args.epochs, batch=args.batch),
                 "dag": dag_graph()[0]}
    gpus_here = gpu_count()
    results = {}
    print(f"bench_gpu: {gpus_here} GPU(s), --num-cpus {args.num_cpus}, {os.cpu_count()} cores")
    print("| workload | way | wall s | median node s | nodes at once | on one GPU at once | device | "
          "GPU busy (whole run) | GPU busy (while nodes ran) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.only.split(","):
        for way in args.ways.split(","):
            gpus = WAYS[way]
            if gpus and not gpus_here:
                print(f"| {name} | {way} | skipped: no GPU on this machine | | | | | | |")
                continue
            with tempfile.TemporaryDirectory(prefix=f"bench_gpu_{name}_") as tmp:
                r = run_once(workloads[name], gpus, args.num_cpus, Path(tmp))
            results[f"{name}/{way}"] = r
            print(f"| {name} | {way} | {r['wall_s']:.1f} | {r['node_s_median']:.2f} | {r['nodes_at_once']} | "
                  f"{r['on_one_gpu_at_once']} | {','.join(r['devices'])} | {fmt_share(r['busy_whole'])} | "
                  f"{fmt_share(r['busy_nodes'])} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

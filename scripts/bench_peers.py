#!/usr/bin/env python3
"""taskgraph through its real CLI against plain Ray tasks and Kedro's runners (issues #18, #19).

Every measurement is a whole process (interpreter start, imports, Ray start, exit), run
interleaved: each repetition runs every tool once, in a rotated order, so a busy neighbour slows
all of them alike. All tools train the same nodes with the same code (``train.loop.train_node``
on the same requests), so what differs is orchestration: taskgraph adds artifacts, cache
entries, TensorBoard files, progress and ``run.json``; plain Ray hands states as object refs and
writes nothing; Kedro's runners pass them in memory.

Workloads:
  dag      a 20-node random DAG, each node training a small MLP from its upstream's encoder;
           then (taskgraph) a partial rerun with 10 nodes changed and a no-change rerun; the
           peers have no cache, so their "partial rerun" trains the changed graph's 20 nodes.
  chain    a chain of 100 one-step nodes, each inheriting its predecessor's encoder.
  fanout   one root and 99 one-step children inheriting its encoder.
  (tool taskgraph-warm: `taskgraph run --warm` on a warm Ray that `taskgraph warm start` started
  once before the repetitions, outside the measured time, and `taskgraph warm stop` ends after.)
  handoff  a producer holding an S MB encoder (S = 100, 400, 1600) and a consumer that takes it
           (mode freeze): whole-run time, and the hand-off: from the producer's last training
           step (its final evaluation starts) to the consumer holding the weights (``inherit``
           returned), from timestamps taken in the processes themselves.

Timestamps come from a probe (a ``sitecustomize`` on the processes' PYTHONPATH) that wraps
taskgraph's functions by name when they are imported and appends spans to a file: it works on any
version of the code, so figures before and after a change are measured alike. The per-phase
split of a taskgraph cold run (the dag workload) is built from those spans and ``run.json``.

    python scripts/bench_peers.py                       # everything, 3 repetitions (~25 min on 2 cores)
    python scripts/bench_peers.py --only chain,fanout --reps 2
    python scripts/bench_peers.py --only handoff --sizes 100,400

Kedro runs only in its own environment, never as a project dependency: ``--kedro-python`` (or
``.venv-peers/bin/python`` in the repository, or ``$KEDRO_PYTHON``), e.g.
``python3 -m venv --system-site-packages .venv-peers && .venv-peers/bin/pip install kedro``.
Without one, Kedro's columns say "skipped".
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARM = "taskgraph-warm"  # `taskgraph run --warm` on a warm Ray started before the repetitions (not measured)
TG_TOOLS = ("taskgraph", "before", WARM)

# --------------------------------------------------------------------------- graphs

HEADER = "defaults:\n  resources: {cpus: 1, gpus: 0}\n"


def dag_graph(changed: frozenset[int] = frozenset(), n: int = 20, seed: int = 7) -> tuple[str, list[str]]:
    """20 nodes; node i inherits the encoder of one earlier node and waits for up to one more.
    ``changed`` nodes get another learning rate (the peers' and taskgraph's "edit")."""
    rng = random.Random(seed)
    lines = ["name: peers_dag", "seed: 0", HEADER.rstrip(),
             "  train: {epochs: 4, batch_size: 128, optimizer: adam, lr: 1.0e-3}",
             "data:", "  shapes: {loader: synthetic_shapes, n: 2000, dim: 64, noise: 0.7}", "tasks:"]
    names = [f"n{i:02d}" for i in range(n)]
    for i, name in enumerate(names):
        lines.append(f"  {name}:")
        lines.append("    data: shapes")
        if i:
            ups = sorted(rng.sample(names[:i], min(i, rng.randint(1, 2))))
            lines.append("    depends_on:")
            lines.append(f"      {ups[0]}: {{share: {{encoder: encoder}}, mode: finetune, lr_scale: 0.5}}")
            for other in ups[1:]:
                lines.append(f"      {other}: {{}}")
        binary = i % 2 == 1
        lines.append("    modules:")
        lines.append("      encoder: {type: mlp, in: 64, hidden: [128, 128]}")
        lines.append(f"      head: {{type: linear, out: {1 if binary else 10}}}")
        lines.append(f"    loss: {{type: {'binary_cross_entropy' if binary else 'cross_entropy'}, "
                     f"target: {'parity' if binary else 'label'}}}")
        lines.append("    metrics: [accuracy]")
        if i in changed:
            lines.append("    train: {lr: 2.0e-3}")
    return "\n".join(lines) + "\n", names


def one_step_graph(shape: str, n: int = 100) -> str:
    """``n`` nodes of one optimizer step each (80 training examples, batch 128, one epoch)."""
    lines = [f"name: peers_{shape}", "seed: 0", HEADER.rstrip(),
             "  train: {epochs: 1, batch_size: 128, optimizer: sgd, lr: 1.0e-2}",
             "data:", "  tiny: {loader: synthetic_shapes, n: 100, dim: 16}", "tasks:"]
    for i in range(n):
        lines.append(f"  s{i:03d}:")
        lines.append("    data: tiny")
        if i:
            up = f"s{i - 1:03d}" if shape == "chain" else "s000"
            lines.append(f"    depends_on: {{{up}: {{share: {{encoder: encoder}}}}}}")
        lines.append("    modules: {encoder: {type: mlp, in: 16, hidden: [32]}, head: {type: linear, out: 1}}")
        lines.append("    loss: {type: binary_cross_entropy, target: parity}")
    return "\n".join(lines) + "\n"


def handoff_graph(megabytes: int) -> str:
    """A producer whose encoder is one square ``width x width`` float32 layer of ``megabytes`` MB."""
    width = int((megabytes * 1e6 / 4) ** 0.5)
    return "\n".join([
        f"name: peers_handoff_{megabytes}", "seed: 0", HEADER.rstrip(),
        "  train: {epochs: 1, batch_size: 64, optimizer: sgd, lr: 1.0e-3}",
        "data:", "  tiny: {loader: synthetic_shapes, n: 80, dim: 16}", "tasks:",
        "  producer:", "    data: tiny",
        f"    modules: {{stem: {{type: linear, in: 16, out: {width}}}, "
        f"encoder: {{type: linear, in: {width}, out: {width}}}, head: {{type: linear, out: 1}}}}",
        "    loss: {type: binary_cross_entropy, target: parity}",
        "  consumer:", "    data: tiny",
        "    depends_on: {producer: {share: {stem: stem, encoder: encoder}, mode: freeze}}",
        f"    modules: {{stem: {{type: linear, in: 16, out: {width}}}, "
        f"encoder: {{type: linear, in: {width}, out: {width}}}, head: {{type: linear, out: 1}}}}",
        "    loss: {type: binary_cross_entropy, target: parity}",
    ]) + "\n"


# --------------------------------------------------------------------------- the probe

PROBE = r'''
"""bench_peers' probe: spans of taskgraph's functions, appended to $TG_BENCH_PROBE as JSON lines."""
import functools, importlib.abc, importlib.util, json, os, sys, threading, time

_OUT = os.environ.get("TG_BENCH_PROBE")
_local = threading.local()


def _rss():
    out = {}
    try:
        for line in open("/proc/self/status"):
            key = line.split(":")[0]
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssShmem"):
                out[key] = int(line.split()[1]) // 1024  # MB
    except OSError:
        pass
    return out


def emit(ev, t0, t1, **extra):
    rec = {"ev": ev, "t0": t0, "t1": t1, "pid": os.getpid(), "node": getattr(_local, "node", None), **extra}
    with open(_OUT, "a") as f:
        f.write(json.dumps(rec) + "\n")


def timed(ev, fn, node=None, rss=False):
    @functools.wraps(fn)
    def wrapper(*a, **k):
        if node is not None:
            _local.node = node(a, k)
        t0 = time.time()
        try:
            return fn(*a, **k)
        finally:
            emit(ev, t0, time.time(), **({"rss": _rss()} if rss else {}))
    return wrapper


def patch(obj, attr, ev, **kw):
    if hasattr(obj, attr):
        setattr(obj, attr, timed(ev, getattr(obj, attr), **kw))


def _runner(m):
    patch(m, "run_graph", "driver.run_graph", rss=True)
    patch(m, "build_jobs", "driver.build_jobs")
    patch(m, "node_job", "node_job", node=lambda a, k: a[0], rss=True)
    patch(m, "_mark_attempt", "attempt_marker")
    patch(m, "write_node", "write_node")
    patch(m, "_durable", "write_node")


def _loop(m):
    patch(m, "train_node", "train_node", node=lambda a, k: a[0].name, rss=True)
    patch(m, "load_data", "data")
    patch(m, "inherit", "inherit")
    patch(m, "evaluate", "evaluate")
    if hasattr(m, "NodeModel"):
        cls = m.NodeModel
        m.NodeModel = timed("build", lambda *a, **k: cls(*a, **k))


PATCHES = {
    "taskgraph.runner": _runner,
    "taskgraph.train.loop": _loop,
    "taskgraph.train.tracking": lambda m: patch(m, "open_loggers", "loggers"),
    "taskgraph.artifacts.cache": lambda m: (patch(m.NodeCache, "store", "cache_store"),
                                            patch(m.NodeCache, "restore", "cache_restore")),
    "taskgraph.execute.cluster": lambda m: (patch(m, "connect", "driver.ray_start"),
                                            patch(m.RaySession, "close", "driver.ray_shutdown")),
    "taskgraph.incremental": lambda m: patch(m, "decide_and_load", "driver.decide"),
    "taskgraph.execute.progress": lambda m: (patch(m.Reporter, "__call__", "progress"),
                                             patch(m.Reporter, "last", "progress")),
    # since the writer process: a node's files are written by ``write_node`` there (the runner's names above
    # are for older checkouts, which wrote them in the node's task)
    "taskgraph.artifacts.rundir": lambda m: (patch(m.RunDir, "write_run", "driver.write_run"),
                                             patch(m, "write_node", "write_node")),
    "taskgraph.observers": lambda m: patch(m.RunObservers, "finish", "driver.trace"),
}


class _Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname not in PATCHES:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            PATCHES[fullname](module)

        spec.loader.exec_module = exec_module
        return spec


if _OUT:
    sys.meta_path.insert(0, _Hook())
'''


def read_probe(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- the peers (run as subprocesses)


def _requests(graph: str):
    sys.path.insert(0, str(ROOT))
    from taskgraph.plan.graph import make_plan
    from taskgraph.spec.loader import load_spec

    try:  # taskgraph's torch-free request types when the code has them
        from taskgraph.train.request import Inheritance, NodeRequest, node_seed
    except ImportError:
        from taskgraph.train.loop import Inheritance, NodeRequest, node_seed
    spec, source = load_spec(graph)
    plan = make_plan(spec, source)
    out = []
    for name in plan.order:
        task = spec.tasks[name]
        inherits = tuple(Inheritance(local, up, remote, dep.mode, dep.lr_scale)
                         for up, dep in sorted(task.depends_on.items()) for local, remote in dep.share.items())
        request = NodeRequest(name, task, spec.data[task.data], node_seed(task.seed or 0, name), inherits)
        out.append((name, request, tuple(sorted(task.depends_on)), tuple(sorted({i.upstream for i in inherits}))))
    return out


def _train(request, names, *states):
    from taskgraph.train.loop import train_node

    given = dict(zip(names, states))
    return train_node(request, {n: given[n] for n in {i.upstream for i in request.inherits}}).state


def peer_ray(graph: str) -> None:
    """Plain Ray: one ``@ray.remote`` task per node, all submitted at once in topological order,
    upstream states passed as object refs (what a Ray user writes by hand)."""
    import logging

    import ray

    nodes = _requests(graph)
    for attempt in range(2):  # Ray's node may miss its 30 s start on a busy 2-core machine, as taskgraph retries
        try:
            ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
            break
        except Exception as exc:  # noqa: BLE001
            if "timed out during startup" not in str(exc) or attempt:
                raise
            ray.shutdown()
    remote = ray.remote(num_cpus=1)(_train)
    refs = {}
    for name, request, ups, _inputs in nodes:
        refs[name] = remote.remote(request, ups, *(refs[u] for u in ups))
    ray.get(list(refs.values()))
    ray.shutdown()


def peer_kedro(graph: str, runner: str) -> None:
    """Kedro: a node per task, states as in-memory datasets, one of Kedro's runners."""
    import functools
    import logging

    logging.disable(logging.WARNING)
    import torch
    from kedro.io import DataCatalog
    from kedro.pipeline import Pipeline, node
    from kedro.runner import ParallelRunner, SequentialRunner, ThreadRunner

    torch.set_num_threads(1)  # one core per node, as Ray gives each task
    nodes = _requests(graph)
    pipeline = Pipeline([
        node(functools.partial(_train, request, ups), inputs=[f"{u}_state" for u in ups] or None,
             outputs=f"{name}_state", name=name)
        for name, request, ups, _inputs in nodes
    ])
    cls = {"thread": ThreadRunner, "parallel": ParallelRunner, "sequential": SequentialRunner}[runner]
    kwargs = {"max_workers": os.cpu_count()} if runner in ("thread", "parallel") else {}
    cls(**kwargs).run(pipeline, DataCatalog())


# --------------------------------------------------------------------------- measuring


class Bench:
    def __init__(self, work: Path, kedro_python: str | None, keep: bool):
        self.work, self.kedro_python, self.keep = work, kedro_python, keep
        self.probe_dir = work / "probe"
        self.probe_dir.mkdir(parents=True, exist_ok=True)
        (self.probe_dir / "sitecustomize.py").write_text(PROBE)
        self.count = 0
        self.warm_up = False

    def env(self, root: Path = ROOT, **extra: str) -> dict[str, str]:
        return {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "token"),
                "TASKGRAPH_WARM_DIR": str(self.work / "warm"),  # the bench's own warm Ray, never the user's
                "PYTHONPATH": os.pathsep.join([str(self.probe_dir), str(root), os.environ.get("PYTHONPATH", "")]),
                **extra}

    def run(self, argv: list[str], python: str = sys.executable, root: Path = ROOT) -> tuple[float, list[dict], float]:
        """Wall seconds of one whole process, its probe spans and the time it was started."""
        self.count += 1
        probe = self.work / f"probe-{self.count}.jsonl"
        env = self.env(root, TG_BENCH_PROBE=str(probe))
        for attempt in range(3):  # Ray's 30 s start limit can pass on a 2-core machine shared by many
            probe.unlink(missing_ok=True)
            start = time.time()
            proc = subprocess.run([python, *argv], cwd=self.work, env=env, capture_output=True, text=True)
            took = time.time() - start
            startup = "timed out during startup" in proc.stderr or "did not start within" in proc.stderr
            if proc.returncode == 0 or not startup:
                break
            print(f"  (Ray did not start in time, load {os.getloadavg()[0]:.1f}: measuring again)", flush=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        return took, read_probe(probe), start

    def taskgraph(self, graph: Path, run_dir: Path, root: Path = ROOT, warm: bool = False):
        return self.run(["-m", "taskgraph", "run", str(graph), "--run-dir", str(run_dir), "--plain"]
                        + (["--warm"] if warm else []), root=root)

    def warm(self, command: str) -> None:
        """``taskgraph warm start|stop`` for tool taskgraph-warm: outside the measured time."""
        if command == "start" and self.warm_up:
            return
        argv = [sys.executable, "-m", "taskgraph", "warm", command] + (["--idle", "3h"] if command == "start" else [])
        done = subprocess.run(argv, cwd=self.work, env=self.env(), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"taskgraph warm {command} failed:\n{done.stdout}\n{done.stderr}")
        self.warm_up = command == "start"

    def ray(self, graph: Path):
        return self.run([__file__, "_ray", str(graph)])

    def kedro(self, graph: Path, runner: str):
        return self.run([__file__, "_kedro", str(graph), runner], python=self.kedro_python)


def handoff_seconds(spans: list[dict]) -> float | None:
    """Producer's last step (its last ``evaluate`` starts) to the consumer's ``inherit`` returning."""
    last_step = max((s["t0"] for s in spans if s["ev"] == "evaluate" and s["node"] == "producer"), default=None)
    held = max((s["t1"] for s in spans if s["ev"] == "inherit" and s["node"] == "consumer"), default=None)
    return None if last_step is None or held is None else held - last_step


def peak_rss(spans: list[dict]) -> dict[str, int]:
    """Peak resident memory (VmHWM, MB) of the driver and of the worker processes."""
    driver = [s["rss"].get("VmHWM", 0) for s in spans if s["ev"] == "driver.run_graph" and "rss" in s]
    workers = [s["rss"].get("VmHWM", 0) for s in spans if s["ev"] in ("node_job", "train_node") and "rss" in s
               and s["ev"] != "driver.run_graph"]
    return {"driver": max(driver, default=0), "worker": max(workers, default=0)}


def latest_run(run_root: Path) -> dict:
    runs = sorted(run_root.glob("*/*/run.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(runs[-1].read_text())


def phase_split(spans: list[dict], run: dict, spawned: float, ended: float) -> dict[str, float]:
    """Seconds per phase of one taskgraph cold run: driver phases on the driver's clock, worker
    phases summed over nodes (they overlap across workers: read them as CPU spent, not wall)."""
    def total(ev, pid=None):
        return sum(s["t1"] - s["t0"] for s in spans if s["ev"] == ev and (pid is None or s["pid"] == pid))

    runs = [s for s in spans if s["ev"] == "driver.run_graph"]
    if not runs:
        return {}
    driver = runs[0]["pid"]
    out = {"driver: process start, imports, parse and plan": runs[0]["t0"] - spawned,
           "driver: cache decision": total("driver.decide", driver),
           "driver: build_jobs": total("driver.build_jobs", driver),
           "driver: Ray start": total("driver.ray_start", driver),
           "driver: run.json writes": total("driver.write_run", driver),
           "driver: trace.json": total("driver.trace", driver),
           "driver: Ray shutdown": total("driver.ray_shutdown", driver),
           "driver: exit after run_graph": ended - runs[0]["t1"]}
    jobs = {s["node"]: s for s in spans if s["ev"] == "node_job"}
    nodes = run.get("nodes") or {}
    out["nodes: submit to node_job start (worker start, imports, inputs)"] = sum(
        jobs[n]["t0"] - float(nodes[n]["submitted_at"]) for n in jobs if nodes.get(n, {}).get("submitted_at"))
    for ev, label in [("attempt_marker", "attempt marker"), ("loggers", "loggers (TensorBoard writer)"),
                      ("data", "data load"), ("build", "model build"), ("inherit", "inherit (load + digest)"),
                      ("evaluate", "evaluation"),
                      ("write_node", "safetensors + manifest + metrics writes (in the writer process since 8144be3)"),
                      ("cache_store", "cache entry"), ("progress", "progress reports")]:
        out[f"nodes: {label}"] = total(ev)
    inner = sum(total(ev) for ev in ("data", "build", "inherit", "evaluate"))
    out["nodes: training steps"] = total("train_node") - inner
    out["nodes: node_job total"] = total("node_job")
    return out


def node_split(spans: list[dict], shape: str) -> dict[str, float]:
    """Per-node figures of a chain or fan-out run from the probe's spans (any tool that trains with
    ``train_node``): how many worker processes ran nodes (each a cold start: torch imported anew),
    and the node phase without Ray's start and the first node's imports. chain: the median link
    (a node's start to its child's) and gap (``train_node`` returning to the child's start: hand-on,
    scheduling, arguments), from the third node on; fan-out: the 99 children's span, first start
    to last end."""
    first: dict[str, dict] = {}
    train: dict[str, dict] = {}
    for span in spans:
        if span["node"] and span["ev"] in ("node_job", "train_node"):
            first.setdefault(span["node"], span)  # node_job when there is one (it starts first)
            if span["ev"] == "train_node":
                train.setdefault(span["node"], span)
    names = sorted(first)
    if len(names) < 4 or len(train) != len(names):
        return {}
    out = {"worker processes": float(len({first[n]["pid"] for n in names}))}
    if shape == "chain":
        out["link median (ms)"] = 1000 * statistics.median(
            first[b]["t0"] - first[a]["t0"] for a, b in zip(names[2:], names[3:]))
        out["gap median (ms)"] = 1000 * statistics.median(
            first[b]["t0"] - train[a]["t1"] for a, b in zip(names[2:], names[3:]))
    else:
        kids = names[1:]
        out["children: first start -> last end (s)"] = (
            max(max(first[n]["t1"], train[n]["t1"]) for n in kids) - min(first[n]["t0"] for n in kids))
    out["train_node median (ms)"] = 1000 * statistics.median(train[n]["t1"] - train[n]["t0"] for n in names[1:])
    return out


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, unit="s"):
    return "-" if value is None else f"{value:.2f} {unit}" if unit == "s" else f"{value:.0f} {unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="dag,chain,fanout,handoff")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sizes", default="100,400,1600", help="hand-off module sizes in MB")
    parser.add_argument("--handoff-reps", type=int, default=None, help="repetitions of the hand-off (default --reps)")
    parser.add_argument("--kedro-python", default=os.environ.get("KEDRO_PYTHON"))
    parser.add_argument("--before", type=Path, help="another checkout of taskgraph (e.g. `git worktree add` of the "
                        "commit before a change), measured as tool `before`, interleaved with this one")
    parser.add_argument("--no-warm", action="store_true", help="leave out tool taskgraph-warm (`taskgraph run --warm` "
                        "on a warm Ray started once before the repetitions, outside the measured time)")
    parser.add_argument("--json", help="also write every raw figure here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    kedro_python = args.kedro_python or next(
        (str(p) for p in (ROOT / ".venv-peers/bin/python", Path("/tmp/venv-peers/bin/python")) if p.exists()), None)
    if kedro_python and (not shutil.which(kedro_python)
                         or subprocess.run([kedro_python, "-c", "import kedro"], capture_output=True).returncode):
        kedro_python = None
    if not kedro_python:
        print("Kedro: skipped (no environment with kedro: pass --kedro-python or create .venv-peers, see --help)")

    work = Path(tempfile.mkdtemp(prefix="tg-peers-"))
    bench = Bench(work, kedro_python, args.keep)
    only = set(args.only.split(","))
    before = ["before"] if args.before else []
    before += [] if args.no_warm else ["taskgraph-warm"]  # taskgraph-like tools after "taskgraph"
    roots = {"taskgraph": ROOT, "taskgraph-warm": ROOT, "before": args.before.resolve() if args.before else ROOT}
    print(f"load average at start: {os.getloadavg()}; work folder {work}")
    if WARM in before:
        bench.warm("start")  # once, before every repetition and outside the measured time
    try:
        measure(args, bench, work, only, before, roots, kedro_python)
    finally:
        if bench.warm_up:  # before its folder goes (a keeper whose record is gone also stops itself)
            bench.warm("stop")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def measure(args, bench: Bench, work: Path, only: set, before: list, roots: dict, kedro_python) -> None:
    """Every repetition of every chosen workload, then the tables."""
    results: dict[str, dict[str, list]] = {}
    extra: dict[str, list] = {}

    def add(row, tool, value):
        results.setdefault(row, {}).setdefault(tool, []).append(value)

    def rotate(items, rep):
        return items[rep % len(items):] + items[: rep % len(items)]

    if "dag" in only:
        text, names = dag_graph()
        changed = frozenset(range(len(names) - 10, len(names)))  # the last 10 in order: closed under descendants
        edited, _ = dag_graph(changed)
        (work / "dag.yaml").write_text(text)
        (work / "dag_edited.yaml").write_text(edited)
        tools = ["ray", "taskgraph"] + before + (["kedro-thread"] if kedro_python else [])
        for rep in range(args.reps):
            for tool in rotate(tools, rep):
                load = os.getloadavg()[0]
                if tool in TG_TOOLS:
                    runs, root = work / f"runs-dag-{tool}-{rep}", roots[tool]
                    took, spans, spawned = bench.taskgraph(work / "dag.yaml", runs, root, warm=tool == WARM)
                    add("dag20 cold", tool, took)
                    extra.setdefault(f"phases {tool}", []).append(
                        phase_split(spans, latest_run(runs), spawned, spawned + took))
                    extra.setdefault(f"dag_rss {tool}", []).append(peak_rss(spans))
                    took2, spans2, _ = bench.taskgraph(work / "dag_edited.yaml", runs, root, warm=tool == WARM)
                    add("dag20 partial rerun (10 changed)", tool, took2)
                    trained = len({s["node"] for s in spans2 if s["ev"] == "node_job"})
                    extra.setdefault(f"partial_trained {tool}", []).append(trained)
                    took3, _s, _ = bench.taskgraph(work / "dag_edited.yaml", runs, root, warm=tool == WARM)
                    add("dag20 no-change rerun", tool, took3)
                    shutil.rmtree(runs, ignore_errors=True)
                elif tool == "ray":
                    add("dag20 cold", tool, bench.ray(work / "dag.yaml")[0])
                    add("dag20 partial rerun (10 changed)", tool, bench.ray(work / "dag_edited.yaml")[0])
                else:
                    add("dag20 cold", tool, bench.kedro(work / "dag.yaml", "thread")[0])
                    add("dag20 partial rerun (10 changed)", tool, bench.kedro(work / "dag_edited.yaml", "thread")[0])
                extra.setdefault("load", []).append(load)
                print(f"  dag rep {rep} {tool}: {results['dag20 cold'][tool][-1]:.2f}s (load {load:.2f})", flush=True)

    for shape in ("chain", "fanout"):
        if shape not in only:
            continue
        (work / f"{shape}.yaml").write_text(one_step_graph(shape))
        tools = ["ray", "taskgraph"] + before + (["kedro-thread"] if kedro_python else [])
        row = f"100-node {shape} of 1-step nodes"
        for rep in range(args.reps):
            for tool in rotate(tools, rep):
                load = os.getloadavg()[0]
                if tool in TG_TOOLS:
                    runs = work / f"runs-{shape}-{tool}-{rep}"
                    took, spans, _ = bench.taskgraph(work / f"{shape}.yaml", runs, roots[tool], warm=tool == WARM)
                    shutil.rmtree(runs, ignore_errors=True)
                elif tool == "ray":
                    took, spans, _ = bench.ray(work / f"{shape}.yaml")
                else:
                    took, spans, _ = bench.kedro(work / f"{shape}.yaml", "thread")
                add(row, tool, took)
                extra.setdefault(f"split {shape} {tool}", []).append(node_split(spans, shape))
                extra.setdefault("load", []).append(load)
                print(f"  {shape} rep {rep} {tool}: {took:.2f}s (load {load:.2f})", flush=True)

    if "handoff" in only:
        for size in [int(s) for s in args.sizes.split(",")]:
            (work / f"handoff{size}.yaml").write_text(handoff_graph(size))
            tools = ["ray", "taskgraph"] + before + (["kedro-sequential"] if kedro_python else [])
            for rep in range(args.handoff_reps or args.reps):
                for tool in rotate(tools, rep):
                    load = os.getloadavg()[0]
                    graph = work / f"handoff{size}.yaml"
                    if tool in TG_TOOLS:
                        runs = work / f"runs-handoff-{size}-{tool}-{rep}"
                        took, spans, _ = bench.taskgraph(graph, runs, roots[tool], warm=tool == WARM)
                        shutil.rmtree(runs, ignore_errors=True)
                    elif tool == "ray":
                        took, spans, _ = bench.ray(graph)
                    else:
                        took, spans, _ = bench.kedro(graph, "sequential")
                    add(f"{size} MB hand-off: whole run", tool, took)
                    add(f"{size} MB hand-off: last step -> weights held", tool, handoff_seconds(spans))
                    add(f"{size} MB hand-off: peak worker RSS", tool, peak_rss(spans)["worker"])
                    if tool in TG_TOOLS:
                        add(f"{size} MB hand-off: peak driver RSS", tool, peak_rss(spans)["driver"])
                    extra.setdefault("load", []).append(load)
                    print(f"  handoff {size} MB rep {rep} {tool}: {took:.2f}s, hand-off "
                          f"{fmt(handoff_seconds(spans))} (load {load:.2f})", flush=True)

    tools = ["ray", "taskgraph"] + before + ["kedro-thread", "kedro-sequential"]
    print(f"\n## Medians of {args.reps} interleaved repetitions (whole processes); ratio = tool / plain Ray")
    print(f"{'workload':<44} " + " ".join(f"{t:>22}" for t in tools))
    for row, by_tool in results.items():
        unit = "MB" if "RSS" in row else "s"
        base = median(by_tool.get("ray", []))
        cells = []
        for tool in tools:
            value = median(by_tool.get(tool, []))
            ratio = f" {value / base:4.2f}x" if value is not None and base and unit == "s" else ""
            cells.append(f"{fmt(value, unit)}{ratio}")
        print(f"{row:<44} " + " ".join(f"{c:>22}" for c in cells))
    for row, by_tool in results.items():  # against Kedro too: the runner that starts no Ray at all
        kedro = median(by_tool.get("kedro-thread") or by_tool.get("kedro-sequential") or [])
        if kedro and "RSS" not in row:
            print(f"{row}: / Kedro " + ", ".join(f"{tool} {median(by_tool[tool]) / kedro:.2f}x"
                                                  for tool in ["ray", "taskgraph"] + before if by_tool.get(tool)))
    for shape in ("chain", "fanout"):
        row = results.get(f"100-node {shape} of 1-step nodes")
        for tool in ["taskgraph"] + before:
            if row and row.get(tool) and row.get("ray"):
                diff = (median(row[tool]) - median(row["ray"])) / 100 * 1000
                print(f"{shape}: {tool} costs {diff:+.1f} ms a node over plain Ray")
    for shape in ("chain", "fanout"):
        splits = {t: extra[f"split {shape} {t}"] for t in tools if extra.get(f"split {shape} {t}")}
        if splits:
            print(f"\n## {shape}, per node from the probe (median over repetitions; no Ray start, no first-node imports)")
            print(f"  {'':<40} " + " ".join(f"{t:>16}" for t in splits))
            for key in next(iter(splits.values()))[0]:
                cells = [median([s.get(key) for s in v]) for v in splits.values()]
                print(f"  {key:<40} " + " ".join(f"{'-' if c is None else f'{c:.1f}':>16}" for c in cells))
    for tool in ["taskgraph"] + before:
        if extra.get(f"partial_trained {tool}"):
            print(f"{tool}: partial rerun trained {extra[f'partial_trained {tool}']} nodes (expected 10)")
        if extra.get(f"dag_rss {tool}"):
            print(f"{tool}: dag20 peak RSS (MB): {extra[f'dag_rss {tool}']}")
    phases = {tool: extra.get(f"phases {tool}") for tool in ["taskgraph"] + before if extra.get(f"phases {tool}")}
    if phases:
        print("\n## Cold dag20 run, per phase (median over repetitions; node phases summed over the 20 nodes)")
        print(f"  {'phase':<70} " + " ".join(f"{t:>10}" for t in phases))
        for key in next(iter(phases.values()))[0]:
            print(f"  {key:<70} " + " ".join(f"{median([p.get(key) for p in v]):9.2f}s" for v in phases.values()))
    if extra.get("load"):
        print(f"\nload average (1 min) at each measurement: min {min(extra['load']):.2f}, "
              f"median {median(extra['load']):.2f}, max {max(extra['load']):.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "extra": extra}, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_ray":
        peer_ray(sys.argv[2])
    elif len(sys.argv) > 3 and sys.argv[1] == "_kedro":
        peer_kedro(sys.argv[2], sys.argv[3])
    else:
        main()

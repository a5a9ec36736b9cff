"""Time per training step of a joint node with k tasks, every weighting method relative to equal weights.

Methods are measured side by side in one process, alternating within each round (equal first in
every round, so every ratio compares runs made seconds apart), over several rounds; the reported
time is the median over rounds of ``seconds_per_step`` from ``train_node`` (the training steps only:
batch sampling, forward, the method's backward, optimizer step; evaluation excluded).

    python scripts/bench_multitask.py                   # k=10 heads on a CoNLL-2000 BiLSTM trunk, CPU
    python scripts/bench_multitask.py --device cuda     # where a GPU is lent
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from taskgraph.spec.loader import parse_spec
from taskgraph.spec.weighting import GRADIENT_METHODS, LOSS_METHODS
from taskgraph.train.loop import NodeRequest, train_node

GRAPH = """
name: bench
seed: 0
defaults:
  train: {{epochs: 1, batch_size: {batch}, lr: 1.0e-3}}
data:
  conll: {{loader: conll2000, max_sentences: {sentences}, max_val_sentences: 8, vocab_size: 20000}}
tasks:
  joint:
    kind: multitask
    data: conll
    modules:
      embed: {{type: embedding, vocab: 20000, dim: {dim}}}
      trunk: {{type: bilstm, hidden: {hidden}}}
    heads:
{heads}
    weighting: {weighting}
"""


def request(k: int, weighting: str, args: argparse.Namespace) -> NodeRequest:
    heads = "\n".join(
        f"      t{i}: {{module: {{type: linear, out: {44 if i % 2 == 0 else 23}}}, "
        f"loss: {{type: cross_entropy, target: {'pos' if i % 2 == 0 else 'chunk'}}}}}"
        for i in range(k)
    )
    text = GRAPH.format(batch=args.batch, sentences=args.sentences, dim=args.dim, hidden=args.hidden,
                        heads=heads, weighting=weighting)
    spec, _ = parse_spec(text)
    node = spec.tasks["joint"]
    return NodeRequest("joint", node, spec.data["conll"], 0, sources=(("conll", spec.data["conll"]),))


def cases(levels: list[str]) -> list[tuple[str, str]]:
    out = [(m, f"{{method: {m}}}") for m in LOSS_METHODS]
    for m in GRADIENT_METHODS:
        if m == "accumulate":
            out.append((m, "{method: accumulate}"))
            continue
        for level in levels:
            out.append((f"{m}/{level[:4]}", f"{{method: {m}, level: {level}}}"))
            if m == "nash_mtl":  # torchjd's convex solves, against the default Newton solve
                out.append((f"{m}_cvxpy/{level[:4]}", f"{{method: {m}, level: {level}, solver: cvxpy}}"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sentences", type=int, default=640, help="Training sentences = steps x batch.")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--levels", default="representation,parameters")
    parser.add_argument("--only", default="", help="Comma-separated case names (default: all).")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1: steady timings on a shared machine; 0: leave).")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    todo = [c for c in cases(args.levels.split(",")) if not args.only or c[0] in args.only.split(",")]
    todo = [c for c in todo if c[0] != "equal"]
    requests = {name: request(args.k, w, args) for name, w in [("equal", "{method: equal}"), *todo]}
    train_node(requests["equal"], {}, device=device)  # warm-up: data load, allocator, threads
    times: dict[str, list[float]] = {name: [] for name in requests}
    ratios: dict[str, list[float]] = {name: [] for name in requests}
    started = time.perf_counter()
    for _ in range(args.rounds):
        base = train_node(requests["equal"], {}, device=device).metrics["seconds_per_step"]
        times["equal"].append(base)
        for name, _w in todo:
            t = train_node(requests[name], {}, device=device).metrics["seconds_per_step"]
            times[name].append(t)
            ratios[name].append(t / base)
    steps = -(-args.sentences // args.batch)
    print(f"joint node, k={args.k} tasks, BiLSTM trunk (emb {args.dim}, hidden {args.hidden}), batch {args.batch}, "
          f"{steps} steps/run, {args.rounds} rounds, device {device}, torch threads {torch.get_num_threads()}, "
          f"total {time.perf_counter() - started:.0f}s")
    print(f"{'method':<22} {'ms/step (median)':>17} {'x equal (median)':>17}  raw ms/step per round")
    for name in requests:
        med = statistics.median(times[name]) * 1e3
        ratio = statistics.median(ratios[name]) if ratios[name] else 1.0
        raw = ", ".join(f"{t * 1e3:.1f}" for t in times[name])
        print(f"{name:<22} {med:17.1f} {ratio:16.2f}x  {raw}")


if __name__ == "__main__":
    main()

"""CoNLL-2000 POS tagging + chunking as one joint node, trained with every weighting method.

For each method and seed: a fresh joint node (embedding + BiLSTM trunk, a POS head, a chunk head
reading the trunk and the POS head's output), trained on the first ``--sentences`` training
sentences and evaluated on the first ``--val-sentences`` test sentences. Prints POS accuracy and
chunk span F1 (conlleval) as mean ± std over seeds, with the difference to equal weights.

    python scripts/conll_methods.py                       # every method, 3 seeds (small budget, see --help)
    python scripts/conll_methods.py --sentences 8936 --epochs 10   # the full training set
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

GRAPH = """
name: conll_methods
seed: {seed}
defaults:
  train: {{epochs: {epochs}, batch_size: {batch}, lr: 2.0e-3}}
data:
  conll: {{loader: conll2000, max_sentences: {sentences}, max_val_sentences: {val}, vocab_size: {vocab}}}
tasks:
  tagger:
    kind: multitask
    data: conll
    modules:
      embed: {{type: embedding, vocab: {vocab}, dim: {dim}}}
      trunk: {{type: bilstm, hidden: {hidden}, dropout: 0.2}}
    heads:
      pos:   {{module: {{type: linear, out: 44}}, loss: {{type: cross_entropy, target: pos}}, metrics: [accuracy]}}
      chunk: {{module: {{type: linear, out: 23}}, loss: {{type: cross_entropy, target: chunk}},
              input: [trunk, pos], metrics: [span_f1]}}
    weighting: {weighting}
"""

METHODS = {
    "equal": "{method: equal}",
    "fixed_chunk2": "{method: fixed, weights: {chunk: 2.0}}",
    "uncertainty": "{method: uncertainty}",
    "dwa": "{method: dwa}",
    "gradnorm": "{method: gradnorm}",
    "rlw": "{method: rlw}",
    "famo": "{method: famo}",
    "mgda_ub/repr": "{method: mgda, level: representation}",
    "pcgrad/repr": "{method: pcgrad, level: representation}",
    "cagrad/repr": "{method: cagrad, level: representation}",
    "imtl_g/repr": "{method: imtl_g, level: representation}",
    "nash_mtl/repr": "{method: nash_mtl, level: representation}",
    "aligned_mtl/repr": "{method: aligned_mtl, level: representation}",
    "upgrad/repr": "{method: upgrad, level: representation}",
    "accumulate": "{method: accumulate}",
}


def one(job: tuple[str, int, dict]) -> tuple[str, int, dict]:
    name, seed, opts = job
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    from taskgraph.spec.loader import parse_spec
    from taskgraph.train.loop import NodeRequest, node_seed, train_node

    spec, _ = parse_spec(GRAPH.format(seed=seed, weighting=METHODS[name], **opts))
    node = spec.tasks["tagger"]
    request = NodeRequest("tagger", node, spec.data["conll"], node_seed(seed, "tagger"),
                          sources=(("conll", spec.data["conll"]),))
    started = time.perf_counter()
    out = train_node(request, {})
    final = out.metrics["final"]
    return name, seed, {"pos_acc": final["pos.accuracy"], "chunk_f1": final["chunk.span_f1"],
                        "ms_per_step": 1e3 * out.metrics["seconds_per_step"], "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sentences", type=int, default=1500)
    parser.add_argument("--val-sentences", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--dim", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--methods", default=",".join(METHODS), help="Comma-separated names from the list.")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--json", default="", help="Also write the raw results here.")
    args = parser.parse_args()
    opts = {"sentences": args.sentences, "val": args.val_sentences, "epochs": args.epochs, "batch": args.batch,
            "dim": args.dim, "hidden": args.hidden, "vocab": args.vocab}
    names = args.methods.split(",")
    jobs = [(name, seed, opts) for seed in range(args.seeds) for name in names]
    started = time.perf_counter()
    results: dict[str, dict[int, dict]] = {name: {} for name in names}
    with ProcessPoolExecutor(args.jobs) as pool:
        for name, seed, result in pool.map(one, jobs):
            results[name][seed] = result
            # one line per finished run, so a run stopped part-way still leaves its results
            print(f"{name} seed {seed}: POS {result['pos_acc']:.4f} chunk F1 {result['chunk_f1']:.4f} "
                  f"{result['ms_per_step']:.1f} ms/step {result['seconds']:.0f}s", flush=True)
    print(f"CoNLL-2000 joint node (POS + chunk), {args.sentences} train / {args.val_sentences} test sentences, "
          f"vocab {args.vocab}, emb {args.dim}, BiLSTM {args.hidden}, {args.epochs} epochs, batch {args.batch}, "
          f"{args.seeds} seeds, {args.jobs} processes; {time.perf_counter() - started:.0f}s")
    from taskgraph.report.ablation import mean_std

    base = results.get("equal", {})
    print("| method | POS accuracy (%) | chunk F1 (%) | Δ POS vs equal | Δ chunk vs equal | ms/step |")
    print("|---|---|---|---|---|---|")
    for name in names:
        runs = [results[name][s] for s in sorted(results[name])]
        row = []
        for key in ("pos_acc", "chunk_f1"):
            row.append(mean_std([100 * r[key] for r in runs], digits=2))
        for key in ("pos_acc", "chunk_f1"):
            if base and name != "equal":
                delta = statistics.mean(100 * r[key] for r in runs) - statistics.mean(100 * r[key] for r in base.values())
                row.append(f"{delta:+.2f}")
            else:
                row.append("–")
        ms = statistics.median(r["ms_per_step"] for r in runs)
        print(f"| {name} | " + " | ".join(row) + f" | {ms:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"options": opts, "seeds": args.seeds, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()

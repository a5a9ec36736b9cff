"""taskgraph's single-task training loop against a plain hand-written PyTorch loop, same model and data.

Both run the same epochs: a seeded permutation per epoch, forward, loss, zero_grad, backward,
Adam step, then an evaluation pass on the validation split. Runs alternate (plain, taskgraph,
plain, ...) in one process; the table shows median wall times over rounds and their ratio.

    python scripts/bench_step_overhead.py            # MLP on synthetic_shapes and a BiLSTM tagger on CoNLL-2000
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from taskgraph.spec.loader import parse_spec
from taskgraph.train.data import load_data
from taskgraph.train.loop import NodeRequest, train_node
from taskgraph.train.model import NodeModel

CASES = {
    "mlp": """
name: overhead
data:
  d: {loader: synthetic_shapes, n: 4000, dim: 64}
tasks:
  t:
    data: d
    modules: {encoder: {type: mlp, hidden: [128, 128]}, head: {type: linear, out: 10}}
    loss: {type: cross_entropy, target: label}
    train: {epochs: EPOCHS, batch_size: 128}
""",
    "bilstm": """
name: overhead
data:
  d: {loader: conll2000, max_sentences: 640, max_val_sentences: 64, vocab_size: 20000}
tasks:
  t:
    data: d
    modules: {embed: {type: embedding, vocab: 20000, dim: 64}, trunk: {type: bilstm, hidden: 64},
              head: {type: linear, out: 44}}
    loss: {type: cross_entropy, target: pos}
    train: {epochs: EPOCHS, batch_size: 32}
""",
}


def plain_loop(task, data, seed: int) -> float:
    """What one would write by hand: the same model class, data, batches and optimizer."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    splits = load_data(data)
    x, y = splits.train[task.input], splits.train[task.loss.target]
    xv, yv = splits.val[task.input], splits.val[task.loss.target]
    model = NodeModel(dict(task.modules), in_dim=x.shape[-1], where="plain")
    opt = torch.optim.Adam(model.parameters(), lr=task.train.lr)
    g = torch.Generator().manual_seed(seed)
    bs = task.train.batch_size
    for _ in range(task.train.epochs):
        model.train()
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), bs):
            idx = order[i : i + bs]
            out = model(x[idx])
            loss = F.cross_entropy(out.transpose(1, -1) if out.dim() > 2 else out, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            out = torch.cat([model(xv[i : i + 1024]) for i in range(0, len(xv), 1024)])
            F.cross_entropy(out.transpose(1, -1) if out.dim() > 2 else out, yv).item()
    {k: v.detach().numpy() for k, v in model.state_dict().items()}
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4, help="Epochs of the BiLSTM case.")
    parser.add_argument("--mlp-epochs", type=int, default=120, help="Epochs of the MLP case (0.5 ms steps: many).")
    parser.add_argument("--cases", default="mlp,bilstm")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1: steady on a shared machine).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()}, {args.rounds} rounds, whole runs (setup, epochs, evaluation)")
    print(f"{'case':<8} {'plain s':>8} {'taskgraph s':>12} {'ratio':>7}  rounds (plain/taskgraph)")
    for case in args.cases.split(","):
        epochs = args.mlp_epochs if case == "mlp" else args.epochs
        spec, _ = parse_spec(CASES[case].replace("EPOCHS", str(epochs)))
        task = spec.tasks["t"]
        request = NodeRequest("t", task, spec.data["d"], 0)
        train_node(request, {})  # warm-up: loads and caches the data, starts the allocator
        plain_loop(task, spec.data["d"], 0)
        plain, ours, ratios = [], [], []
        for _ in range(args.rounds):
            p = plain_loop(task, spec.data["d"], 0)
            started = time.perf_counter()
            train_node(request, {})
            t = time.perf_counter() - started
            plain.append(p)
            ours.append(t)
            ratios.append(t / p)
        raw = ", ".join(f"{p:.2f}/{t:.2f}" for p, t in zip(plain, ours))
        print(f"{case:<8} {statistics.median(plain):8.2f} {statistics.median(ours):12.2f} "
              f"{statistics.median(ratios):6.3f}x  {raw}")


if __name__ == "__main__":
    main()

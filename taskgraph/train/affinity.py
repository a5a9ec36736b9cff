"""Inter-task affinity by lookahead (TAG: Fifty et al. 2021, "Efficiently Identifying Task Groupings").

All tasks train together on one shared module (the encoder) with one head each. Every
``every`` steps, for each task i a lookahead step is taken on the shared parameters alone,
``theta' = theta - lookahead_lr * grad_theta L_i``, and every task j's loss on the same batch is
measured again. The affinity of i onto j is ``Z[i][j] = 1 - L_j(theta') / L_j(theta)``: positive
when a step for i also lowers j's loss, negative when it raises it. Averaged over the steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import functional_call

from taskgraph.errors import TrainError
from taskgraph.spec.models import Graph
from taskgraph.train.data import load_data
from taskgraph.train.losses import loss_function
from taskgraph.train.model import NodeModel
from taskgraph.train.modules import build_module

__all__ = ["AffinityResult", "task_affinity"]


@dataclass(frozen=True)
class AffinityResult:
    """``matrix[i][j]``: mean lookahead affinity of task ``tasks[i]`` onto task ``tasks[j]``."""

    tasks: tuple[str, ...]
    matrix: tuple[tuple[float, ...], ...]
    shared: str
    steps: int
    measured: int


def _check(spec: Graph, tasks: list[str], shared: str) -> None:
    first = spec.tasks[tasks[0]]
    for name in tasks:
        task = spec.tasks[name]
        if (task.data, task.input) != (first.data, first.input):
            raise TrainError(
                f"tasks.{name}: affinity needs shared inputs, but it reads '{task.data}.{task.input}' and "
                f"'{tasks[0]}' reads '{first.data}.{first.input}'. Pick tasks on the same data and input."
            )
        if shared not in task.modules:
            raise TrainError(f"tasks.{name}: no module '{shared}' to share. Its modules: {', '.join(task.modules)}. "
                             "Name the shared module with --shared.")
        if task.modules[shared] != first.modules[shared]:
            raise TrainError(f"tasks.{name}.modules.{shared} differs from tasks.{tasks[0]}.modules.{shared}. "
                             "Declare the same shared module in every task.")
        if len(task.modules) < 2:
            raise TrainError(f"tasks.{name}: needs a head after '{shared}' (the shared module feeds one head per task).")


def task_affinity(
    spec: Graph,
    tasks: list[str],
    shared: str,
    *,
    epochs: int = 3,
    batch_size: int | None = None,
    lr: float | None = None,
    lookahead_lr: float = 0.1,
    every: int = 2,
    seed: int = 0,
) -> AffinityResult:
    """Train ``tasks`` jointly on one ``shared`` module and measure TAG affinities along the way."""
    if len(tasks) < 2:
        raise TrainError("affinity needs at least two tasks.")
    _check(spec, tasks, shared)
    torch.manual_seed(seed)
    first = spec.tasks[tasks[0]]
    batch_size = batch_size or first.train.batch_size  # default: the first task's own training settings
    lr = lr or first.train.lr
    splits = load_data(spec.data[first.data])
    x = splits.field("train", first.input, f"tasks.{tasks[0]}")
    targets = [splits.field("train", spec.tasks[t].loss.target, f"tasks.{t}") for t in tasks]
    encoder = build_module(first.modules[shared], x.shape[-1], f"tasks.{tasks[0]}.modules.{shared}")
    with torch.no_grad():
        width = encoder(x[:2]).shape[-1]
    heads = torch.nn.ModuleList(
        NodeModel({k: v for k, v in spec.tasks[t].modules.items() if k != shared}, width, f"tasks.{t}")
        for t in tasks
    )
    params = list(encoder.parameters()) + list(heads.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    n_tasks, n = len(tasks), len(x)
    total = torch.zeros(n_tasks, n_tasks)
    measured = steps = 0
    g = torch.Generator().manual_seed(seed)

    loss_fns = [loss_function(spec.tasks[t].loss) for t in tasks]  # looked up once, not on every step

    def losses(batch_x: torch.Tensor, idx: torch.Tensor, shared_params: dict | None = None) -> list[torch.Tensor | None]:
        """Each task's loss on the batch (None where the task has no label in it)."""
        z = encoder(batch_x) if shared_params is None else functional_call(encoder, shared_params, (batch_x,))
        return [fn(heads[k](z), targets[k][idx]) for k, fn in enumerate(loss_fns)]

    for _epoch in range(epochs):
        order = torch.randperm(n, generator=g)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            batch_x = x[idx]
            if steps % every == 0:
                # Measured in eval mode: dropout masks would differ between the two losses and
                # drown the lookahead's effect in noise.
                encoder.eval(), heads.eval()
                eval_losses = losses(batch_x, idx)
                if all(l is not None for l in eval_losses):  # measurable where every task has a label
                    before = torch.stack([l.detach() for l in eval_losses])
                    theta = dict(encoder.named_parameters())
                    for i in range(n_tasks):
                        grads = torch.autograd.grad(eval_losses[i], list(theta.values()), retain_graph=True,
                                                    allow_unused=True)
                        ahead = {k: (p - lookahead_lr * gr if gr is not None else p).detach()
                                 for (k, p), gr in zip(theta.items(), grads)}
                        with torch.no_grad():
                            after = torch.stack(losses(batch_x, idx, ahead))
                        total[i] += 1.0 - after / before.clamp_min(1e-12)
                    measured += 1
                encoder.train(), heads.train()
            task_losses = losses(batch_x, idx)
            labelled = [spec.tasks[t].loss.weight * l for t, l in zip(tasks, task_losses) if l is not None]
            if not labelled:  # no task has a label in this batch
                continue
            loss = sum(labelled)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
    if measured == 0:
        raise TrainError("no affinity was measured: the data has fewer examples than one batch, or no measured batch "
                         "had a label for every task. Lower --batch-size.")
    matrix = (total / measured).tolist()
    return AffinityResult(tuple(tasks), tuple(tuple(float(v) for v in row) for row in matrix), shared, steps, measured)

"""The contract between a joint node's training step and its weighting method."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from taskgraph.train.registry import Registry

__all__ = ["WEIGHTINGS", "Method", "Step", "task_jacobian"]

WEIGHTINGS: Registry[type] = Registry("weighting method")


@dataclass
class Step:
    """One training step's graph, as a method sees it.

    ``reps`` are the trunk outputs (one per data source, attached to the trunk's graph); the heads
    read ``leaves``: detached copies when the method works on the representation, else ``reps``
    themselves. ``shared`` are the trainable trunk parameters, ``heads`` every other trainable one.
    """

    shared: list[nn.Parameter]
    heads: list[nn.Parameter]
    reps: list[torch.Tensor]
    leaves: list[torch.Tensor]
    #: The per-task losses as computed (before stacking), for per-task backward passes.
    parts: list[torch.Tensor] = field(default_factory=list)
    #: Per task, the input of its head (its own view of its source's leaf; on the representation
    #: level it keeps its ``.grad``) and the source's index in ``leaves``. Set for methods with
    #: ``task_views`` when no head reads another head: then one backward of the summed losses
    #: leaves each task's own gradient of the shared representation at its input, which gives the
    #: whole Jacobian (or, through a hook, its row norms) for the price of one backward.
    task_inputs: list[tuple[torch.Tensor, int]] = field(default_factory=list)
    #: The indices (in the method's task order) of the tasks whose losses this step carries, in
    #: the order of ``losses``, ``parts`` and ``task_inputs``: the tasks with a label in the batch.
    #: A task without one leaves the step: no Jacobian row, no weight, its state held. None: all.
    tasks: tuple[int, ...] | None = None

    def rows(self, k: int) -> list[int]:
        """The task indices of this step's losses (``tasks``, or all ``k``)."""
        return list(range(k)) if self.tasks is None else list(self.tasks)

    def finish_trunk(self) -> None:
        """Carry what reached the detached leaves through the trunk (representation-level methods)."""
        pairs = [(r, leaf.grad) for r, leaf in zip(self.reps, self.leaves)
                 if leaf is not r and leaf.grad is not None and r.requires_grad]  # a frozen trunk has no graph
        if pairs:
            torch.autograd.backward([r for r, _ in pairs], [g for _, g in pairs])

    def input_jacobian(self) -> torch.Tensor:
        """The ``k x n`` Jacobian of the losses w.r.t. the concatenated leaves, read from the
        ``task_inputs`` after one backward of the summed losses."""
        sizes = [leaf.numel() for leaf in self.leaves]
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        like = self.leaves[0]
        jac = like.new_zeros(len(self.task_inputs), sum(sizes))
        for i, (x, source) in enumerate(self.task_inputs):
            if x.grad is not None:
                jac[i, starts[source] : starts[source] + sizes[source]] = x.grad.reshape(-1)
        return jac

    def set_grads(self, params: list[torch.Tensor], flat: torch.Tensor) -> None:
        """Write one flat vector as the ``.grad`` of ``params`` (added to what is there)."""
        offset = 0
        for p in params:
            n = p.numel()
            g = flat[offset : offset + n].view_as(p)
            p.grad = g.clone() if p.grad is None else p.grad + g
            offset += n


def _flat(grads: tuple[torch.Tensor | None, ...], like: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([(g if g is not None else torch.zeros_like(x)).reshape(-1) for g, x in zip(grads, like)])


def task_jacobian(
    losses: list[torch.Tensor], inputs: list[torch.Tensor], extra: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-task gradients of ``inputs`` (rows of a ``k x n`` matrix) and the summed gradient of ``extra``.

    ``losses`` are the tasks' own scalars, not a stacked tensor: a backward from one element of a
    stack would run through every head (with zeros), k times over. One backward per task, each
    through that task's part of the graph only (its head; the trunk too when ``inputs`` are the
    trunk parameters). A vmapped backward (``is_grads_batched``) was measured slower on CPU.
    """
    rows, head = [], None
    targets = [*inputs, *extra]
    for loss in losses:
        grads = torch.autograd.grad(loss, targets, retain_graph=True, allow_unused=True)
        rows.append(_flat(grads[: len(inputs)], inputs))
        if extra:
            h = _flat(grads[len(inputs):], extra)
            head = h if head is None else head + h
    return torch.stack(rows), head


class Method(nn.Module):
    """A weighting or aggregation method. Parameters it owns (learned weights) join the optimizer."""

    #: Heads read detached copies of the trunk output (set per instance from the config).
    on_representation: bool = False
    #: The method reads each task's gradient of the trunk output at its head's input
    #: (``Step.task_inputs``), where the node allows it (no head reads another head).
    task_views: bool = False

    def __init__(self, config, tasks: list[str]):
        super().__init__()
        self.config, self.tasks, self.k = config, list(tasks), len(tasks)

    def backward(self, losses: torch.Tensor, step: Step) -> torch.Tensor | None:
        """Fill ``.grad`` of every trainable parameter from the ``k`` losses; return the loss weights
        used, or None where the update is no fixed weighting of the losses (aggregators)."""
        raise NotImplementedError

    #: The method reads every task's loss on the same batch after the optimizer step (FAMO): the
    #: loop then runs one more forward, without gradient, and calls ``after_step``.
    needs_losses_after_step: bool = False

    def after_step(self, losses: torch.Tensor, step: Step) -> None:
        """The losses of ``step``'s tasks on the same batch after ``optimizer.step()``."""

    def end_epoch(self, mean_losses: torch.Tensor) -> None:
        """Called with each task's mean training loss of the epoch (DWA reads these); NaN for a task
        that had no label in any batch of the epoch."""

    def summary(self) -> dict[str, float]:
        """What the method has learned, by task (``metrics.json``'s ``weighting_state``)."""
        return {}

    def weighted_backward(self, losses: torch.Tensor, weights: torch.Tensor, step: Step) -> torch.Tensor:
        (weights.detach() * losses).sum().backward()
        step.finish_trunk()
        return weights.detach()

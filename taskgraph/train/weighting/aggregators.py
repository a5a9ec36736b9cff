"""Gradient aggregators: per-task gradients of the shared part -> one update direction.

Each aggregator is a Gramian weighting (``solvers.py``, ``nash.py``): the float64 Gramian of the
Jacobian gives weights ``w`` and the update is ``w @ J``, formed in float64 and cast back
(``gramian.py``). MGDA, UPGrad, IMTL-G and Nash-MTL are solved here to their papers' conditions;
PCGrad, Aligned-MTL and CAGrad's inner problem are torchjd's, fed the float64 Gramian. The tests
(``tests/train/test_aggregator_oracles.py``) check each against its paper's definition.

``level: parameters`` builds the Jacobian of the losses w.r.t. the trunk parameters (one backward
per task); ``level: representation`` builds it w.r.t. the trunk output, aggregates there and sends
the result through the trunk once: MGDA-UB's trick, usable by every aggregator. When no head reads
another head, each head reads its own view of the trunk output, so one backward through the heads
fills every row (and the heads' gradients).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch

from taskgraph.train.weighting.base import WEIGHTINGS, Method, Step, task_jacobian
from taskgraph.train.weighting.gramian import combine, float64_copy, gramian
from taskgraph.train.weighting.nash import NashMTL
from taskgraph.train.weighting import solvers

__all__ = ["Aggregation", "Accumulate", "AGGREGATORS", "GramianAggregator"]

Weigh = Callable[[np.ndarray], np.ndarray]


class GramianAggregator:
    """``J (k x n) -> w @ J`` with ``w = weigh(J J^T)`` in float64; the result has ``J``'s dtype."""

    def __init__(self, weigh: Weigh):
        self.weigh = weigh

    def weights(self, jac: torch.Tensor, copy: torch.Tensor | None = None) -> torch.Tensor:
        gram = gramian(jac, copy).cpu().numpy()
        if not np.isfinite(gram).all():  # a NaN/inf gradient stays visible (the loop stops on it), not a solver error
            return torch.full((len(jac),), float("nan"), dtype=torch.float64)
        return torch.from_numpy(self.weigh(gram))

    def __call__(self, jac: torch.Tensor) -> torch.Tensor:
        copy = float64_copy(jac)
        return combine(self.weights(jac, copy), jac, copy)


def _stateless(weigh: Weigh) -> Weigh:
    return partial(solvers.on_nonzero, weigh)


def _builder(name: str) -> Callable[[Any, int], GramianAggregator]:
    def make(config: Any, k: int) -> GramianAggregator:
        if name == "nash_mtl":
            return GramianAggregator(NashMTL(max_norm=config.max_norm, update_weights_every=config.update_weights_every,
                                             solver=config.solver, ridge=config.ridge,
                                             optim_niter=config.optim_niter).weights)
        if name == "cagrad":
            return GramianAggregator(_stateless(partial(solvers.cagrad_weights, c=config.c)))
        if name == "upgrad":
            return GramianAggregator(_stateless(partial(solvers.upgrad_weights, reg_eps=config.reg_eps)))
        return GramianAggregator(_stateless({"mgda": solvers.mgda_weights, "pcgrad": solvers.pcgrad_weights,
                                             "imtl_g": solvers.imtl_g_weights,
                                             "aligned_mtl": solvers.aligned_mtl_weights}[name]))

    return make


#: Method name -> builder ``(config, k) -> aggregator``, a callable ``J -> update``.
AGGREGATORS = {name: _builder(name) for name in ("mgda", "pcgrad", "cagrad", "imtl_g", "nash_mtl", "aligned_mtl", "upgrad")}


class Aggregation(Method):
    """Jacobian of the shared part, aggregated (float64 Gramian weighting), written back as gradients."""

    def __init__(self, config, tasks: list[str]):
        super().__init__(config, tasks)
        self.on_representation = self.task_views = config.level == "representation"
        #: One aggregator per set of tasks with labels in the batch (``Step.tasks``): rows of tasks
        #: without labels are left out, and Nash-MTL keeps its solver state per set.
        self.aggregators: dict[tuple[int, ...], Any] = {}

    def backward(self, losses: torch.Tensor, step: Step) -> torch.Tensor | None:
        import warnings

        if not step.shared:  # the whole trunk is frozen (inherited with mode: freeze): nothing to aggregate
            losses.sum().backward()
            return None
        parts = step.parts or list(losses)
        if self.on_representation and step.task_inputs:  # one backward through the heads gives every row
            losses.sum().backward()
            jac, head = step.input_jacobian(), None
        elif self.on_representation:  # a head reads another head: per-task backwards through the heads
            jac, head = task_jacobian(parts, step.leaves, step.heads)
        else:  # one backward per task through its head and the trunk
            jac, head = task_jacobian(parts, step.shared, step.heads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # cvxpy's "problem is not DPP" note, once per step for Nash-MTL
            rows = tuple(step.rows(self.k))
            if rows not in self.aggregators:
                self.aggregators[rows] = AGGREGATORS[self.config.method](self.config, len(rows))
            direction = self.aggregators[rows](jac)
        if head is not None:
            step.set_grads(step.heads, head)
        if self.on_representation:  # the aggregated gradient of each leaf goes through the trunk once
            for leaf, grad in zip(step.leaves, direction.split([leaf.numel() for leaf in step.leaves])):
                leaf.grad = grad.view_as(leaf)
            step.finish_trunk()
        else:
            step.set_grads(step.shared, direction)
        return None  # the direction is not a fixed weighting of the losses

for _name in AGGREGATORS:
    WEIGHTINGS.register(_name)(Aggregation)


@WEIGHTINGS.register("accumulate")
class Accumulate(Method):
    """Gradient sharing by accumulation: one backward per task into the same ``.grad``, one update."""

    def backward(self, losses: torch.Tensor, step: Step) -> torch.Tensor:
        parts = step.parts or list(losses)
        for i, loss in enumerate(parts):
            loss.backward(retain_graph=i < len(parts) - 1)
        step.finish_trunk()
        return torch.ones(len(parts))

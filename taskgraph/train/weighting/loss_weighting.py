"""Loss weightings: the update is the gradient of a weighted sum of the task losses."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from taskgraph.errors import TrainError
from taskgraph.train.weighting.base import WEIGHTINGS, Method, Step, task_jacobian

__all__ = ["Equal", "Fixed", "Uncertainty", "DWA", "GradNorm", "RLW", "FAMO"]


def _scalars(k: int, value: float) -> list[torch.Tensor]:
    """One 0-d leaf per task, for per-task state an optimizer steps: a task without a label in the
    batch gets no ``.grad``, so the optimizer skips it (no momentum, no decay) and its state holds."""
    return [torch.full((), value, requires_grad=True) for _ in range(k)]


def _pick(values: list[torch.Tensor] | nn.ParameterList, rows: list[int], like: torch.Tensor) -> torch.Tensor:
    """``values`` of the step's tasks, detached, as a vector on ``like``'s device and dtype."""
    return torch.stack([values[i].detach() for i in rows]).to(like)


@WEIGHTINGS.register("equal")
class Equal(Method):
    """Sum of the losses: the baseline."""

    def backward(self, losses: torch.Tensor, step: Step) -> torch.Tensor:
        losses.sum().backward()
        step.finish_trunk()
        return torch.ones(len(losses))


@WEIGHTINGS.register("fixed")
class Fixed(Method):
    def __init__(self, config, tasks: list[str]):
        super().__init__(config, tasks)
        self.register_buffer("w", torch.tensor([config.weights.get(t, 1.0) for t in tasks]))

    def backward(self, losses: torch.Tensor, step: Step) -> torch.Tensor:
        return self.weighted_backward(losses, self.w[step.rows(self.k)].to(losses), step)


@WEIGHTINGS.register("uncertainty")
class Uncertainty(Method):
    """Kendall et al. 2018: ``sum_i L_i / (2 sigma_i^2) + log sigma_i`` with ``s_i = log sigma_i^2`` learned.

    One parameter per task (trained by the node's optimizer): a task without labels in the batch
    gets no gradient, and the optimizer leaves its ``s_i`` alone."""

    def __init__(self, config, tasks: list[str]):
        super().__init__(config, tasks)
        self.log_var = nn.ParameterList(nn.Parameter(torch.zeros(())) for _ in tasks)

    def backward(self, losses: torch.Tensor, step: Step) -> torch.Tensor:
        s = torch.stack([self.log_var[i] for i in step.rows(self.k)]).to(losses)
        (0.5 * torch.exp(-s) * losses + 0.5 * s).sum().backward()
        step.finish_trunk()
        return (0.5 * torch.exp(-s)).detach()

    def summary(self) -> dict[str, float]:
        return {f"{t}.log_var": float(v.detach()) for t, v in zip(self.tasks, self.log_var)}


@WEIGHTINGS.register("dwa")
class DWA(Method):
    """Liu et al. 2019: ``w_i = k softmax(r_i / T)``, ``r_i`` the ratio of the task's last two epochs'
    mean losses. A task without labels in an epoch keeps its ratio; equal weights until every task
    has one."""

    def __init__(self, config, tasks: list[str]):
        super().__init__(config, tasks)
        self.last = torch.full((self.k,), float("nan"))
        self.ratio = torch.full((self.k,), float("nan"))
        self.register_buffer("w", torch.ones(self.k))

    def end_epoch(self, mean_losses: torch.Tensor) -> None:
        new = mean_losses.detach().cpu().to(self.last.dtype)
        seen = ~torch.isnan(new)
        both = seen & ~torch.isnan(self.last)
        self.ratio[both] = new[both] / self.last[both].clamp_min(1e-12)
        self.last[seen] = new[seen]
        if not bool(torch.isnan(self.ratio).any()):
            self.w = self.k * F.softmax(self.ratio / self.config.temperature, dim=0)

    def backward(self, losses: torch.Tensor, step: Step) -> torch.Tensor:
        return self.weighted_backward(losses, self.w[step.rows(self.k)].to(losses), step)

    def summary(self) -> dict[str, float]:
        return {f"{t}.weight": float(v) for t, v in zip(self.tasks, self.w)}


@WEIGHTINGS.register("rlw")
class RLW(Method):
    """Lin et al. 2022: weights ``softmax(N(0, I))`` drawn every step (over the tasks with labels)."""

    def backward(self, losses: torch.Tensor, step: Step) -> torch.Tensor:
        w = F.softmax(torch.randn(len(losses), device=losses.device), dim=0)
        return self.weighted_backward(losses, w.to(losses), step)


@WEIGHTINGS.register("gradnorm")
class GradNorm(Method):
    """Chen et al. 2018, on the shared representation (the cheap variant LibMTL also offers).

    ``G_i = w_i ||dL_i/dz||``; the weights move to bring ``G_i`` to ``mean(G) * r_i^alpha``,
    ``r_i`` the task's relative inverse training rate, then are renormalised to sum to ``k``.
    The ``||dL_i/dz||`` come from the update's own backward (a hook on each head's input takes the
    norm of what passes), so GradNorm costs what equal weights cost; a node whose heads read other
    heads pays one backward per task through the heads on top. A task without labels in the batch
    takes no part in the step: its weight holds, the others keep their sum, and its initial loss
    ``L_i(0)`` is its first labelled batch's.
    """

    task_views = True

    def __init__(self, config, tasks: list[str]):
        super().__init__(config, tasks)
        self.w = _scalars(self.k, 1.0)  # not nn.Parameters: their own optimizer steps them
        self._opt = torch.optim.Adam(self.w, lr=config.lr)
        self.initial: list[torch.Tensor | None] = [None] * self.k

    def backward(self, losses: torch.Tensor, step: Step) -> torch.Tensor:
        rows = step.rows(self.k)
        for j, i in enumerate(rows):
            if self.initial[i] is None:
                self.initial[i] = losses[j].detach().clamp_min(1e-12)
        weights = _pick(self.w, rows, losses)
        if not any(rep.requires_grad for rep in step.reps):  # a frozen trunk: no shared gradient to balance
            return self.weighted_backward(losses, weights, step)
        if step.task_inputs:  # one backward: the update, and a hook on each head's input takes its norm
            found: list[torch.Tensor | None] = [None] * len(rows)

            def keep_norm(j: int) -> Callable[[torch.Tensor], None]:
                def hook(grad: torch.Tensor) -> None:
                    found[j] = torch.linalg.vector_norm(grad)
                return hook

            handles = [x.register_hook(keep_norm(j)) for j, (x, _) in enumerate(step.task_inputs)]
            out = self.weighted_backward(losses, weights, step)
            for handle in handles:
                handle.remove()
            zero = losses.new_zeros(())
            grad_norms = torch.stack([zero if n is None else n.to(losses) for n in found]) / weights  # ||dL_i/dz||
        else:  # a head reads another head: one backward per task through the heads, then the update
            jac, _ = task_jacobian(step.parts or list(losses), step.leaves, [])
            grad_norms = jac.norm(dim=1).to(losses)
            out = self.weighted_backward(losses, weights, step)
        # d/dw_i sum_j |w_j n_j - target_j| with the target held fixed, as the paper does.
        norms = weights * grad_norms.detach()
        ratio = losses.detach() / torch.stack([self.initial[i] for i in rows]).to(losses)
        target = norms.mean() * (ratio / ratio.mean()) ** self.config.alpha
        grad = torch.sign(norms - target) * grad_norms
        self._opt.zero_grad(set_to_none=True)
        for j, i in enumerate(rows):
            self.w[i].grad = grad[j].detach().to(self.w[i]).cpu()
        self._opt.step()
        with torch.no_grad():
            stepped = [self.w[i] for i in rows]
            for w in stepped:
                w.clamp_(min=1e-4)
            scale = float(weights.sum()) / float(sum(stepped))  # the step's tasks keep their sum (k when all)
            for w in stepped:
                w.mul_(scale)
        return out

    def summary(self) -> dict[str, float]:
        return {f"{t}.weight": float(w.detach()) for t, w in zip(self.tasks, self.w)}


@WEIGHTINGS.register("famo")
class FAMO(Method):
    """Liu et al. 2023, Algorithm 1: task logits ``xi``, ``z = softmax(xi)``, the update along
    ``sum_i c z_i grad log L_i`` with ``c = 1 / sum_i (z_i / L_i)``.

    After the optimizer step the loop hands back every task's loss on the same batch (one more
    forward, without gradient, with the same dropout masks), and the logits move by the gradient
    ``delta = J_softmax(xi)^T (log L(theta_t) - log L(theta_t+1))`` with weight decay ``gamma``
    and step size ``lr`` (beta), through Adam as in the official code (``FAMO.update``); the
    losses get its ``+ 1e-8`` before the log. A task without labels in the batch sits the step
    out: the softmax runs over the others, and its logit gets no gradient, so Adam leaves it alone.
    """

    needs_losses_after_step = True
    EPS = 1e-8

    def __init__(self, config, tasks: list[str]):
        super().__init__(config, tasks)
        self.xi = _scalars(self.k, 0.0)  # not nn.Parameters: their own optimizer steps them
        self._opt = torch.optim.Adam(self.xi, lr=config.lr, weight_decay=config.gamma)
        self._before: torch.Tensor | None = None

    def _log(self, losses: torch.Tensor, step: Step) -> torch.Tensor:
        values = losses.detach()
        if bool((values < 0).any()):
            names = [self.tasks[i] for i, v in zip(step.rows(self.k), values.tolist()) if v < 0]
            raise TrainError(f"famo weighs tasks by the log of their losses, but the loss of {', '.join(names)} is "
                             "negative. Use a non-negative loss or another weighting method.")
        return (values + self.EPS).log()

    def backward(self, losses: torch.Tensor, step: Step) -> torch.Tensor:
        self._before = self._log(losses, step)
        z = F.softmax(_pick(self.xi, step.rows(self.k), losses), dim=0)
        d = self._before.exp()  # L + eps
        weights = z / (d * (z / d).sum())  # c z_i / L_i, c = 1 / sum_j z_j / L_j: the paper's d_t
        return self.weighted_backward(losses, weights, step)

    def after_step(self, losses: torch.Tensor, step: Step) -> None:
        assert self._before is not None, "after_step without backward"
        delta = (self._before - self._log(losses, step)).cpu()
        logits = [self.xi[i] for i in step.rows(self.k)]
        with torch.enable_grad():
            grads = torch.autograd.grad(F.softmax(torch.stack(logits), dim=0), logits,
                                        grad_outputs=delta.to(logits[0].dtype))
        self._opt.zero_grad(set_to_none=True)
        for xi, grad in zip(logits, grads):
            xi.grad = grad
        self._opt.step()
        self._before = None

    def summary(self) -> dict[str, float]:
        return {f"{t}.logit": float(x.detach()) for t, x in zip(self.tasks, self.xi)}

"""Loss weightings: the update is the gradient of a weighted sum of the task losses."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from taskgraph.train.weighting.base import WEIGHTINGS, Method, Step, task_jacobian

__all__ = ["Equal", "Fixed", "Uncertainty", "DWA", "GradNorm", "RLW", "FAMO"]


@WEIGHTINGS.register("equal")
class Equal(Method):
    """Sum of the losses: the baseline."""

    def backward(self, losses: torch.Tensor, step: Step) -> torch.Tensor:
        losses.sum().backward()
        step.finish_trunk()
        return torch.ones(self.k)


@WEIGHTINGS.register("fixed")
class Fixed(Method):
    def __init__(self, config, tasks: list[str]):
        super().__init__(config, tasks)
        self.register_buffer("w", torch.tensor([config.weights.get(t, 1.0) for t in tasks]))

    def backward(self, losses: torch.Tensor, step: Step) -> torch.Tensor:
        return self.weighted_backward(losses, self.w.to(losses.device), step)


@WEIGHTINGS.register("uncertainty")
class Uncertainty(Method):
    """Kendall et al. 2018: ``sum_i L_i / (2 sigma_i^2) + log sigma_i`` with ``s_i = log sigma_i^2`` learned."""

    def __init__(self, config, tasks: list[str]):
        super().__init__(config, tasks)
        self.log_var = nn.Parameter(torch.zeros(self.k))

    def backward(self, losses: torch.Tensor, step: Step) -> torch.Tensor:
        s = self.log_var.to(losses.device)
        (0.5 * torch.exp(-s) * losses + 0.5 * s).sum().backward()
        step.finish_trunk()
        return (0.5 * torch.exp(-s)).detach()


@WEIGHTINGS.register("dwa")
class DWA(Method):
    """Liu et al. 2019: ``w_i = k softmax(r_i / T)``, ``r_i`` the ratio of the last two epochs' mean losses."""

    def __init__(self, config, tasks: list[str]):
        super().__init__(config, tasks)
        self.history: list[torch.Tensor] = []
        self.register_buffer("w", torch.ones(self.k))

    def end_epoch(self, mean_losses: torch.Tensor) -> None:
        self.history = [*self.history[-1:], mean_losses.detach().cpu()]
        if len(self.history) == 2:
            ratio = self.history[1] / self.history[0].clamp_min(1e-12)
            self.w = self.k * F.softmax(ratio / self.config.temperature, dim=0)

    def backward(self, losses: torch.Tensor, step: Step) -> torch.Tensor:
        return self.weighted_backward(losses, self.w.to(losses.device), step)


@WEIGHTINGS.register("rlw")
class RLW(Method):
    """Lin et al. 2022: weights ``softmax(N(0, I))`` drawn every step."""

    def backward(self, losses: torch.Tensor, step: Step) -> torch.Tensor:
        w = F.softmax(torch.randn(self.k, device=losses.device), dim=0)
        return self.weighted_backward(losses, w, step)


@WEIGHTINGS.register("gradnorm")
class GradNorm(Method):
    """Chen et al. 2018, on the shared representation (the cheap variant LibMTL also offers).

    ``G_i = w_i ||dL_i/dz||``; the weights move to bring ``G_i`` to ``mean(G) * r_i^alpha``,
    ``r_i`` the task's relative inverse training rate, then are renormalised to sum to ``k``.
    The ``||dL_i/dz||`` come from the update's own backward (a hook on each head's input takes the
    norm of what passes), so GradNorm costs what equal weights cost; a node whose heads read other
    heads pays one backward per task through the heads on top.
    """

    task_views = True

    def __init__(self, config, tasks: list[str]):
        super().__init__(config, tasks)
        self.w = torch.ones(self.k, requires_grad=True)  # not an nn.Parameter: its own optimizer steps it
        self._opt = torch.optim.Adam([self.w], lr=config.lr)
        self.initial: torch.Tensor | None = None

    def backward(self, losses: torch.Tensor, step: Step) -> torch.Tensor:
        if self.initial is None:
            self.initial = losses.detach().clamp_min(1e-12)
        weights = self.w.detach().clone().to(losses.device)
        if not any(rep.requires_grad for rep in step.reps):  # a frozen trunk: no shared gradient to balance
            return self.weighted_backward(losses, weights, step)
        if step.task_inputs:  # one backward: the update, and a hook on each head's input takes its norm
            found: list[torch.Tensor | None] = [None] * self.k

            def keep_norm(i: int) -> Callable[[torch.Tensor], None]:
                def hook(grad: torch.Tensor) -> None:
                    found[i] = torch.linalg.vector_norm(grad)
                return hook

            handles = [x.register_hook(keep_norm(i)) for i, (x, _) in enumerate(step.task_inputs)]
            out = self.weighted_backward(losses, weights, step)
            for handle in handles:
                handle.remove()
            zero = losses.new_zeros(())
            grad_norms = torch.stack([zero if n is None else n for n in found]) / weights  # ||dL_i/dz||
        else:  # a head reads another head: one backward per task through the heads, then the update
            jac, _ = task_jacobian(step.parts or list(losses), step.leaves, [])
            grad_norms = jac.norm(dim=1)
            out = self.weighted_backward(losses, weights, step)
        # d/dw_i sum_j |w_j n_j - target_j| with the target held fixed, as the paper does.
        norms = weights * grad_norms.detach()
        ratio = losses.detach() / self.initial
        target = norms.mean() * (ratio / ratio.mean()) ** self.config.alpha
        self._opt.zero_grad(set_to_none=True)
        self.w.grad = (torch.sign(norms - target) * grad_norms).cpu()
        self._opt.step()
        with torch.no_grad():
            self.w.clamp_(min=1e-4)
            self.w.mul_(self.k / self.w.sum())
        return out


@WEIGHTINGS.register("famo")
class FAMO(Method):
    """Liu et al. 2023: task logits ``xi``, ``z = softmax(xi)``, update along ``sum_i z_i log L_i``.

    The logits move so every task's log-loss falls at the same rate. The official code measures
    that rate on the same batch after the step (an extra forward); here it is the change since the
    previous step's batch, which keeps FAMO at one forward and one backward per step.
    """

    def __init__(self, config, tasks: list[str]):
        super().__init__(config, tasks)
        self.xi = torch.zeros(self.k, requires_grad=True)  # not an nn.Parameter: its own optimizer steps it
        self._opt = torch.optim.Adam([self.xi], lr=config.lr, weight_decay=config.gamma)
        self.previous: torch.Tensor | None = None

    def backward(self, losses: torch.Tensor, step: Step) -> torch.Tensor:
        eps = 1e-8
        current = losses.detach().clamp_min(eps)
        if self.previous is not None:
            delta = self.previous.log() - current.log()
            z = F.softmax(self.xi, dim=0)
            (grad,) = torch.autograd.grad(z, self.xi, grad_outputs=delta.to(z.device))
            self._opt.zero_grad(set_to_none=True)
            self.xi.grad = grad
            self._opt.step()
        self.previous = current
        z = F.softmax(self.xi.detach(), dim=0).to(losses.device)
        c = (z / current).sum()
        weights = z / (current * c)  # gradient of sum z_i log L_i / c
        return self.weighted_backward(losses, weights, step)

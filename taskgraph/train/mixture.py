"""Torch side of a joint node's ``mixture``: gates, cross-stitch units and the forward pass.

The parts (``spec.mixture.mixture_parts``) are built into the node's ``JointModel`` under their own
names, so edges share and freeze them like any module; ``Mixture`` only remembers the wiring. Its
forward is split at the shared representation: ``shared`` runs everything that serves all tasks and
returns one tensor (the mixture's input and every last-level expert output side by side on the last
dimension), ``task`` runs one task's own part on it (its gate's weighted sum; cross-stitch: its row
of the last unit). The training step puts a task's view between the two, so representation-level
gradient methods read each task's gradient of everything the tasks share.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from taskgraph.errors import TrainError
from taskgraph.spec.mixture import DSelectGateModule, GateModule, StitchUnitModule, mixture_parts, mixture_tasks
from taskgraph.spec.mixture import mixture_widths
from taskgraph.train.model import apply_module, takes_length

__all__ = ["Gate", "DSelectGate", "StitchUnit", "Mixture", "build_part"]


def _check_features(x: torch.Tensor, name: str) -> None:
    if not x.is_floating_point():
        raise TrainError(f"gate '{name}' reads {list(x.shape)} integer ids: a gate weighs experts from features. "
                         "Put an embedding under the node's `modules` (before the mixture).")


class Gate(nn.Linear):
    """Softmax weights over the experts, per example (per position for sequences)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(super().forward(x), dim=-1)


class DSelectGate(nn.Module):
    """DSelect-k (Hazimeh et al. 2021): ``k`` selectors, each a product of smooth steps over a binary
    code of the expert index, mixed by softmax weights. With a number of experts that is not a power
    of two, code ``c`` selects expert ``c mod n`` (instead of the paper's penalty), so the weights
    always sum to one."""

    def __init__(self, in_dim: int, experts: int, k: int, gamma: float, bits: int):
        super().__init__()
        self.k, self.bits, self.gamma = k, bits, gamma
        self.z_logits = nn.Linear(in_dim, k * bits)
        self.w_logits = nn.Linear(in_dim, k)
        with torch.no_grad():  # LibMTL's / the official code's initialisation
            for p in self.z_logits.parameters():
                p.uniform_(-gamma / 100, gamma / 100)
            for p in self.w_logits.parameters():
                p.uniform_(-0.05, 0.05)
        codes = torch.arange(2**bits)
        binary = ((codes[:, None] >> torch.arange(bits - 1, -1, -1)) & 1).bool()  # (2^bits, bits), MSB first
        fold = F.one_hot(codes % experts, experts).float()  # (2^bits, experts)
        self.register_buffer("binary", binary, persistent=False)
        self.register_buffer("fold", fold, persistent=False)

    def _smooth_step(self, t: torch.Tensor) -> torch.Tensor:
        g = self.gamma
        cubic = (-2 / g**3) * t**3 + (3 / (2 * g)) * t + 0.5
        return torch.where(t <= -g / 2, torch.zeros_like(t), torch.where(t >= g / 2, torch.ones_like(t), cubic))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        steps = self._smooth_step(self.z_logits(x).view(*lead, self.k, 1, self.bits))
        codes = torch.where(self.binary, steps, 1 - steps).prod(-1)  # (..., k, 2^bits), each row sums to 1
        selectors = codes @ self.fold.to(codes.dtype)  # (..., k, experts)
        weights = F.softmax(self.w_logits(x), dim=-1)  # (..., k)
        return (weights.unsqueeze(-1) * selectors).sum(-2)


class StitchUnit(nn.Module):
    """``alpha[t, s]``: the share of column ``s`` in task ``t``'s next input (Misra et al. 2016)."""

    def __init__(self, tasks: int, init: float):
        super().__init__()
        off = (1.0 - init) / (tasks - 1) if tasks > 1 else 0.0
        self.alpha = nn.Parameter(torch.full((tasks, tasks), off) + torch.eye(tasks) * (init - off))

    def mix(self, row: int, columns: list[torch.Tensor]) -> torch.Tensor:
        return sum(self.alpha[row, s] * h for s, h in enumerate(columns))  # type: ignore[return-value]


def build_part(config: Any, in_dim: int | None, where: str, build_module: Any) -> nn.Module:
    """A mixture part: a generated gate or unit, or a user expert (any registered module)."""
    if isinstance(config, StitchUnitModule):
        return StitchUnit(config.tasks, config.init)
    if isinstance(config, (GateModule, DSelectGateModule)):
        if in_dim is None:
            raise TrainError(f"{where}: cannot infer the gate's input width. Set `in:` on the module before it.")
        if isinstance(config, DSelectGateModule):
            return DSelectGate(in_dim, config.experts, config.k, config.gamma, config.bits)
        return Gate(in_dim, config.experts)
    return build_module(config, in_dim, where)


def _mix(weights: torch.Tensor, experts: list[torch.Tensor], names: list[str], gate: str) -> torch.Tensor:
    if weights.shape[-1] != len(experts):  # a wiring bug, not a user error: broadcasting would hide it
        raise AssertionError(f"gate '{gate}' has {weights.shape[-1]} weights for experts {names}")
    for out, name in zip(experts, names):
        if out.shape[:-1] != weights.shape[:-1]:
            raise TrainError(
                f"gate '{gate}' weighs experts per {list(weights.shape[:-1])} (its input's leading dimensions), but "
                f"expert '{name}' outputs {list(out.shape)}: experts must keep the batch (and time) dimensions of "
                "what they read. Pool in the heads, not in the experts, or pool before the mixture."
            )
    return (torch.stack(experts, dim=-1) * weights.unsqueeze(-2)).sum(-1)


class Mixture:
    """The wiring of a node's mixture over the modules built into ``model`` (a ``JointModel``)."""

    def __init__(self, node: Any, model: nn.ModuleDict, width: int | None, where: str, build_module: Any):
        self.config = node.mixture
        self.tasks = list(mixture_tasks(self.config, node.heads))
        self.parts = mixture_parts(self.config, self.tasks)
        dims, self.width = mixture_widths(self.config, self.tasks, width)
        for part in self.parts:
            model[part.name] = build_part(part.config, dims[part.name], f"{where}.mixture.{part.name}", build_module)
        self.shared_names = [p.name for p in self.parts if p.side == "shared"]
        self.task_names = [p.name for p in self.parts if p.side == "task"]
        self.levels = max(p.level for p in self.parts) + 1
        self._slices: dict[str, slice] = {}

    def _of(self, level: int, role: str) -> list[Any]:
        return [p for p in self.parts if p.level == level and p.role == role]

    def _pack(self, pieces: dict[str, torch.Tensor]) -> torch.Tensor:
        lead = {tuple(t.shape[:-1]) for t in pieces.values()}
        if len(lead) > 1:
            shapes = ", ".join(f"'{k}' {list(v.shape)}" for k, v in pieces.items())
            raise TrainError(f"the mixture's parts disagree on the batch (and time) dimensions: {shapes}. Experts and "
                             "columns must keep the leading dimensions of what they read; pool in the heads.")
        start = 0
        for key, tensor in pieces.items():
            self._slices[key] = slice(start, start + tensor.shape[-1])
            start += tensor.shape[-1]
        return torch.cat(list(pieces.values()), dim=-1)

    def _run(self, model: nn.ModuleDict, name: str, x: torch.Tensor, length: torch.Tensor | None) -> torch.Tensor:
        """An expert or column on ``x``, handed the batch's ``length`` if it takes it (a bilstm, a transformer)."""
        return apply_module(model[name], x, length, takes_length(model[name]))

    def shared(self, model: nn.ModuleDict, x: torch.Tensor, length: torch.Tensor | None = None) -> torch.Tensor:
        """Everything before the shared representation; returns it (one tensor, parts side by side).
        ``length``: the batch's sequence lengths, for experts that take them."""
        if self.config.type == "cross_stitch":
            return self._columns(model, x, length)
        paths = {"input": x}
        for level in range(self.levels):
            experts = self._of(level, "expert")
            outs = {p.name: self._run(model, p.name, paths[p.reads], length) for p in experts}
            if level == self.levels - 1:
                inputs = {f"in:{r}": paths[r] for r in dict.fromkeys(g.reads for g in self._of(level, "gate"))}
                for key in inputs:
                    _check_features(inputs[key], self._of(level, "gate")[0].name)
                return self._pack({**inputs, **{f"expert:{k}": v for k, v in outs.items()}})
            new = {}
            for gate in self._of(level, "gate"):
                own = [p.name for p in experts if gate.task is None or p.task in (None, gate.task)]
                _check_features(paths[gate.reads], gate.name)
                new[gate.task or "shared"] = _mix(model[gate.name](paths[gate.reads]), [outs[n] for n in own], own,
                                                  gate.name)
            paths = new
        raise AssertionError("unreachable: a mixture has at least one level")

    def _columns(self, model: nn.ModuleDict, x: torch.Tensor, length: torch.Tensor | None) -> torch.Tensor:
        columns = [x] * len(self.tasks)
        for level in range(self.levels):
            h = [self._run(model, p.name, c, length) for p, c in zip(self._of(level, "column"), columns)]
            if level == self.levels - 1:
                return self._pack({f"column:{t}": v for t, v in zip(self.tasks, h)})
            unit = model[self._of(level, "stitch")[0].name]
            columns = [unit.mix(i, h) for i in range(len(self.tasks))]
        raise AssertionError("unreachable: cross_stitch has at least one layer")

    def task(self, model: nn.ModuleDict, rep: torch.Tensor, task: str) -> torch.Tensor:
        """Task ``task``'s mixed features from the shared representation ``rep`` (or its view)."""
        level = self.levels - 1
        if self.config.type == "cross_stitch":
            unit = model[self._of(level, "stitch")[0].name]
            columns = [rep[..., self._slices[f"column:{t}"]] for t in self.tasks]
            return unit.mix(self.tasks.index(task), columns)
        gate = next(g for g in self._of(level, "gate") if g.task == task)
        own = [p.name for p in self._of(level, "expert") if p.task is None or p.task == task]
        weights = model[gate.name](rep[..., self._slices[f"in:{gate.reads}"]])
        return _mix(weights, [rep[..., self._slices[f"expert:{n}"]] for n in own], own, gate.name)

    def weights(self, model: nn.ModuleDict, x: torch.Tensor, length: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Each last-level gate's weights on input ``x`` (after the trunk): what each task draws on."""
        rep = self.shared(model, x, length)
        level = self.levels - 1
        return {g.task: model[g.name](rep[..., self._slices[f"in:{g.reads}"]]) for g in self._of(level, "gate")}

"""Soft-sharing trunks of a joint node (``mixture:``): experts mixed per task, or task columns stitched.

``mmoe`` (Ma et al. 2018): shared experts, one softmax gate per task. ``cgc`` and ``ple`` (Tang et
al. 2020): task-specific plus shared experts; ``ple`` stacks ``levels`` whose shared experts read a
shared path mixed by a shared gate. ``gate: dselect_k`` (Hazimeh et al. 2021) swaps the softmax for
k differentiable binary selectors. ``cross_stitch`` (Misra et al. 2016): one column per task, built
from the ``layers`` template, and after each layer a learned task-by-task linear unit mixes columns.

Every part is a named module of the node, so edges share, freeze or fine-tune experts and gates one
by one: experts keep their own names; the generated ones are ``gate_<task>`` (``gate<i>_<task>``
and ``gate<i>_shared`` at level i of ``ple``), ``<task>_<layer>`` and ``stitch_<layer>``.

The shared representation (what ``level: representation`` gradient methods and GradNorm read) is
the mixture's input side by side with every expert's output (``ple``: the last level's inputs and
experts); after it come only the per-task parts: the task gates (``cross_stitch``: the last unit).
Torch-free: shapes come from the configs, so ``validate`` checks widths and shared parts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
import re
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag

from taskgraph.spec.base import Frozen
from taskgraph.spec.components import ModuleConfig

__all__ = ["MixtureConfig", "GateModule", "DSelectGateModule", "StitchUnitModule", "Part", "MIXTURE_NAMES",
           "mixture_parts", "mixture_tasks", "mixture_widths", "check_mixture", "node_problems", "reads_mixture",
           "head_gate"]

Shape = tuple[int, ...]
Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$", max_length=100)]


# --------------------------------------------------------------------------- generated modules


class _Generated(Frozen):
    """A module the mixture makes itself; same interface as a user module config."""

    in_features: int | None = Field(None, alias="in", gt=0)

    def resolved_in(self, in_dim: int | None) -> int | None:
        return self.in_features if self.in_features is not None else in_dim


class GateModule(_Generated):
    """Softmax over ``experts`` from a linear map of the gate's input: weights that sum to one."""

    type: Literal["gate"] = "gate"
    experts: int = Field(gt=0)

    def output_dim(self, in_dim: int | None) -> int | None:
        return self.experts

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        width = self.resolved_in(in_dim)
        return None if width is None else {"weight": (self.experts, width), "bias": (self.experts,)}


class DSelectGateModule(_Generated):
    """DSelect-k: ``k`` selectors, each a smooth-step binary code over the experts, mixed by a softmax."""

    type: Literal["dselect_gate"] = "dselect_gate"
    experts: int = Field(gt=0)
    k: int = Field(gt=0)
    gamma: float = Field(gt=0.0)

    @property
    def bits(self) -> int:
        return max(1, math.ceil(math.log2(self.experts)))

    def output_dim(self, in_dim: int | None) -> int | None:
        return self.experts

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        width = self.resolved_in(in_dim)
        if width is None:
            return None
        return {"z_logits.weight": (self.k * self.bits, width), "z_logits.bias": (self.k * self.bits,),
                "w_logits.weight": (self.k, width), "w_logits.bias": (self.k,)}


class StitchUnitModule(_Generated):
    """A cross-stitch unit: ``alpha[t, s]``, how much of column ``s`` task ``t``'s next layer reads."""

    type: Literal["stitch_unit"] = "stitch_unit"
    tasks: int = Field(gt=0)
    init: float = Field(0.9, ge=0.0, le=1.0)

    def output_dim(self, in_dim: int | None) -> int | None:
        return in_dim

    def param_shapes(self, in_dim: int | None) -> dict[str, Shape] | None:
        return {"alpha": (self.tasks, self.tasks)}


# --------------------------------------------------------------------------- user configs


class _ExpertMixture(Frozen):
    tasks: tuple[Name, ...] | None = Field(
        None, min_length=1, description="The tasks that get a gate; default: the node's heads, in order.")
    gate: Literal["softmax", "dselect_k"] = Field("softmax", description="softmax gates, or DSelect-k selectors.")
    k: int = Field(2, ge=1, description="gate: dselect_k. Number of selectors (experts picked per example).")
    gamma: float = Field(1.0, gt=0.0, description="gate: dselect_k. Width of the smooth step.")

    def _gate(self, experts: int) -> GateModule | DSelectGateModule:
        if self.gate == "dselect_k":
            return DSelectGateModule(experts=experts, k=self.k, gamma=self.gamma)
        return GateModule(experts=experts)


class MMoEMixture(_ExpertMixture):
    """MMoE (Ma et al. 2018): experts shared by every task, a gate per task mixing them."""

    type: Literal["mmoe"]
    experts: dict[Name, ModuleConfig] = Field(min_length=1, description="The shared experts, by name: any module.")


class Level(Frozen):
    """One extraction level: experts shared by every task and experts of one task each."""

    shared: dict[Name, ModuleConfig] = Field(default_factory=dict)
    specific: dict[Name, dict[Name, ModuleConfig]] = Field(
        default_factory=dict, description="Task name -> that task's own experts.")


class CGCMixture(_ExpertMixture, Level):
    """CGC (Tang et al. 2020): shared and task-specific experts, a gate per task over its own and the shared."""

    type: Literal["cgc"]


class PLEMixture(_ExpertMixture):
    """PLE (Tang et al. 2020): stacked CGC levels; shared experts read a path mixed by a shared gate."""

    type: Literal["ple"]
    levels: tuple[Level, ...] = Field(min_length=1)


class CrossStitchMixture(Frozen):
    """Cross-stitch (Misra et al. 2016): a column per task from the ``layers`` template, mixed after each
    layer by a learned task-by-task unit."""

    type: Literal["cross_stitch"]
    tasks: tuple[Name, ...] | None = Field(None, min_length=1, description="One column each; default: the heads.")
    layers: dict[Name, ModuleConfig] = Field(min_length=1, description="Each column's layers, in order.")
    init: float = Field(0.9, ge=0.0, le=1.0, description="Initial weight of a column's own task (the rest spread).")


MixtureConfig = Annotated[
    Union[Annotated[MMoEMixture, Tag("mmoe")], Annotated[CGCMixture, Tag("cgc")],
          Annotated[PLEMixture, Tag("ple")], Annotated[CrossStitchMixture, Tag("cross_stitch")]],
    Discriminator(lambda v: v.get("type") if isinstance(v, dict) else getattr(v, "type", None)),
]

MIXTURE_NAMES = ("mmoe", "cgc", "ple", "cross_stitch")


# --------------------------------------------------------------------------- the parts, in build order


class Part(Frozen):
    """One named module of a mixture: what it is, where it sits and what it reads.

    ``reads``: ``"input"`` (the mixture's input), ``"<task>"``/``"shared"`` (a path of the previous
    level or layer). ``side``: ``shared`` parts come before the shared representation, ``task``
    parts after it (a task's gate, the last stitch unit). ``level``: 0-based level or layer.
    """

    name: str
    config: Any
    role: Literal["expert", "gate", "column", "stitch"]
    level: int
    reads: str
    task: str | None = None
    side: Literal["shared", "task"] = "shared"
    loc: tuple[str | int, ...] = ()


def _levels(mixture: Any) -> tuple[Level, ...]:
    if mixture.type == "mmoe":
        return (Level(shared=mixture.experts),)
    if mixture.type == "cgc":
        return (Level(shared=mixture.shared, specific=mixture.specific),)
    return mixture.levels


def _level_loc(mixture: Any, i: int) -> tuple[str | int, ...]:
    return ("levels", i) if mixture.type == "ple" else ()


def mixture_parts(mixture: Any, tasks: Iterable[str]) -> list[Part]:
    """Every module of ``mixture`` for ``tasks``, in the order they are built and run."""
    tasks = list(tasks)
    parts: list[Part] = []
    if mixture.type == "cross_stitch":
        layers = list(mixture.layers)
        for i, layer in enumerate(layers):
            for t in tasks:
                parts.append(Part(name=f"{t}_{layer}", config=mixture.layers[layer], role="column", level=i,
                                  reads="input" if i == 0 else t, task=t, loc=("layers", layer)))
            last = i == len(layers) - 1
            parts.append(Part(name=f"stitch_{layer}", config=StitchUnitModule(tasks=len(tasks), init=mixture.init),
                              role="stitch", level=i, reads="columns", side="task" if last else "shared",
                              loc=("layers", layer)))
        return parts
    levels = _levels(mixture)
    for i, level in enumerate(levels):
        last, first = i == len(levels) - 1, i == 0
        where = _level_loc(mixture, i)
        shared_key = "experts" if mixture.type == "mmoe" else "shared"
        for name, config in level.shared.items():
            parts.append(Part(name=name, config=config, role="expert", level=i, reads="input" if first else "shared",
                              loc=(*where, shared_key, name)))
        for t, experts in level.specific.items():
            for name, config in experts.items():
                parts.append(Part(name=name, config=config, role="expert", level=i, reads="input" if first else t,
                                  task=t, loc=(*where, "specific", t, name)))
        prefix = f"gate{i + 1}_" if mixture.type == "ple" else "gate_"
        for t in tasks:
            count = len(level.shared) + len(level.specific.get(t, {}))
            parts.append(Part(name=f"{prefix}{t}", config=mixture._gate(count), role="gate", level=i,
                              reads="input" if first else t, task=t, side="task" if last else "shared", loc=where))
        if not last:
            count = len(level.shared) + sum(len(e) for e in level.specific.values())
            parts.append(Part(name=f"{prefix}shared", config=mixture._gate(count), role="gate", level=i,
                              reads="input" if first else "shared", loc=where))
    return parts


def mixture_tasks(mixture: Any, heads: Iterable[str]) -> tuple[str, ...]:
    """The tasks that get a gate or a column: ``tasks:``, else the heads."""
    return tuple(mixture.tasks) if mixture.tasks else tuple(heads)


def mixture_widths(mixture: Any, tasks: Iterable[str], width: int | None) -> tuple[dict[str, int | None], int | None]:
    """(input width of every part, width of the mixed features a head reads), from the mixture's
    input ``width``; None where unknown. A level's output width is its first expert's (the gates
    mix experts of one width: ``check_mixture`` names one that differs)."""
    dims: dict[str, int | None] = {}
    path = width  # every path of a level has the previous level's width
    for level in sorted({p.level for p in mixture_parts(mixture, tasks)}):
        out: int | None = None
        for part in (p for p in mixture_parts(mixture, tasks) if p.level == level):
            dims[part.name] = part.config.resolved_in(path) if part.role != "stitch" else path
            if part.role in ("expert", "column") and out is None:
                out = part.config.output_dim(dims[part.name])
        path = out
    return dims, path


def check_mixture(mixture: Any, tasks: Iterable[str], width: int | None) -> list[tuple[tuple[str | int, ...], str]]:
    """Experts of one level whose output widths differ (their gates could not mix them), at their position."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    dims, _ = mixture_widths(mixture, tasks, width)
    first: dict[int, tuple[str, int]] = {}
    for part in mixture_parts(mixture, tasks):
        if part.role not in ("expert", "column"):
            continue
        out = part.config.output_dim(dims[part.name])
        if out is None:
            continue
        seen = first.setdefault(part.level, (part.name, out))
        if seen[1] != out:
            problems.append((part.loc, f"expert '{part.name}' outputs {out} values, expert '{seen[0]}' of the same "
                                       f"level {seen[1]}: a gate mixes them by weighted sum, so they need one width. "
                                       f"Make their outputs {seen[1]} wide (e.g. `out: {seen[1]}`)."))
    return problems


def _trunk_width(modules: dict[str, Any]) -> int | None:
    width: int | None = None
    for config in modules.values():
        width = config.output_dim(config.resolved_in(width))
    return width


def node_problems(node: Any, name_pattern: str, max_length: int) -> list[tuple[tuple[str | int, ...], str]]:
    """A joint node's mixture against its heads and modules: tasks, gates, names, expert widths."""
    from taskgraph.spec.models import suggest  # models imports this module

    problems: list[tuple[tuple[str | int, ...], str]] = []
    mixture = node.mixture
    if mixture is None:
        if not node.modules:
            problems.append((("modules",), "a joint node needs a trunk: at least one module under `modules`, "
                                           "or a `mixture` (mmoe, cgc, ple, cross_stitch)."))
        for head_name, head in node.heads.items():
            if head.gate is not None:
                problems.append((("heads", head_name, "gate"), "`gate` picks a task of the node's `mixture`, and this "
                                                                "node has none. Remove `gate`, or add a mixture."))
        return problems
    tasks = mixture_tasks(mixture, node.heads)
    for i, task in enumerate(tasks):
        if tasks.index(task) != i:
            problems.append((("mixture", "tasks", i), f"task '{task}' is listed twice."))
    levels = [] if mixture.type == "cross_stitch" else _levels(mixture)
    for li, level in enumerate(levels):
        where = ("mixture", *_level_loc(mixture, li))
        for task in level.specific:
            if task not in tasks:
                problems.append(((*where, "specific", task), f"unknown task '{task}'.{suggest(task, tasks)} "
                                                             "Specific experts belong to a task of the mixture."))
        for task in tasks:
            if not level.shared and not level.specific.get(task):
                problems.append((where or ("mixture",), f"task '{task}' has no expert at this level: add shared experts "
                                                        f"or experts under `specific: {{{task}: ...}}`."))
    if problems:  # a task without experts has no gate to build: stop before the parts
        return problems
    seen: dict[str, tuple[str | int, ...]] = {}
    taken = {**{n: ("modules", n) for n in node.modules}, **{n: ("heads", n) for n in node.heads}}
    for part in mixture_parts(mixture, tasks):
        loc = ("mixture", *part.loc)
        if part.name in taken or part.name in seen:
            other = taken.get(part.name) or seen[part.name]
            problems.append((loc, f"'{part.name}' ({part.role}) names two modules of this node (also "
                                  f"{'.'.join(map(str, other))}): every module needs its own name. Rename one."))
        elif len(part.name) > max_length or not re.match(name_pattern, part.name):
            problems.append((loc, f"the {part.role} module name '{part.name}' is not a valid module name (at most "
                                  f"{max_length} characters). Shorten the task or layer name."))
        seen.setdefault(part.name, loc)
    for head_name, head in node.heads.items():
        if head.input is not None:
            if head.gate is not None:
                problems.append((("heads", head_name, "gate"), "a head reads either `input` or a mixture `gate`, "
                                                                "not both. Remove one."))
            continue
        gate = head.gate or head_name
        if gate not in tasks:
            loc = ("heads", head_name, "gate") if head.gate else ("heads", head_name)
            what = f"unknown mixture task '{gate}'.{suggest(gate, tasks)}" if head.gate else (
                f"head '{head_name}' is not a task of the mixture, so it has no gate to read. Name one with "
                f"`gate: <task>` (tasks: {', '.join(tasks)}), or give it an `input`.")
            problems.append((loc, what))
    problems += [(("mixture", *loc), msg) for loc, msg in check_mixture(mixture, tasks, _trunk_width(node.modules))]
    return problems


def reads_mixture(node: Any, head: Any) -> bool:
    """Whether a head reads mixed features (no ``input`` of its own, in a node with a mixture)."""
    return node.mixture is not None and head.input is None


def head_gate(node: Any, name: str) -> str:
    """The mixture task whose features head ``name`` reads."""
    return node.heads[name].gate or name

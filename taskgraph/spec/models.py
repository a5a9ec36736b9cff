"""The graph file's schema: one ``Graph`` of named data sources and tasks with their dependencies.

``load_spec`` returns a *resolved* graph: ``defaults`` are merged into every task, so each
``Task`` carries its full ``train`` and ``resources`` and can be shipped to a worker alone.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from taskgraph.spec.base import Frozen, LocatedProblems, is_custom_ref
from taskgraph.spec.components import METRICS, DataConfig, LossConfig, ModuleConfig
from taskgraph.spec.mixture import MixtureConfig, mixture_parts, mixture_tasks, node_problems
from taskgraph.spec.serving import ServeSection
from taskgraph.spec.weighting import EqualWeighting, WeightingConfig

__all__ = ["parse_memory", "Resources", "TrainConfig", "Dependency", "Task", "Head", "Sampling", "MultiTaskNode", "Node",
           "Defaults", "Graph", "suggest"]

#: Names become folder and file names (``<run-dir>/<graph>/<timestamp>/<node>/``, cache index files,
#: ablation variants that join two task names): only characters safe in a path, and short enough
#: for filesystems' 255-byte limit on one name once suffixes are added.
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*$"
MAX_NAME_LENGTH = 100
#: Device names Windows refuses as file or folder names, in any case (graph and task names become folders).
_RESERVED_SHOWN = ("CON", "PRN", "AUX", "NUL", "COM1-9", "LPT1-9")
_RESERVED = frozenset({"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)})
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=MAX_NAME_LENGTH)]


def suggest(word: str, known: list[str] | set[str] | tuple[str, ...]) -> str:
    """``" Did you mean 'x'?"`` plus the sorted list of valid names, for error messages."""
    options = sorted(known)
    close = difflib.get_close_matches(word, options, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"{hint} Known: {', '.join(options) or '(none)'}."


_MEMORY_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
                 "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_memory(value: Any) -> int:
    """``"4GB"`` -> 4_000_000_000, ``"512MiB"`` -> 536_870_912, plain numbers are bytes (Ray's unit)."""
    if isinstance(value, bool):
        raise ValueError("memory must be a size such as 4GB, 512MiB or a number of bytes.")
    if isinstance(value, (int, float)):
        return int(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(value))
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _MEMORY_UNITS:
        raise ValueError(
            f"cannot read memory size {value!r}. Write a number with a unit: 4GB, 512MB, 2GiB (or bytes)."
        )
    return int(float(match.group(1)) * _MEMORY_UNITS[unit])


class Resources(Frozen):
    """What one node asks Ray for; ``gpus`` may be fractional to pack small nodes on one GPU.

    ``workers`` turns the node into data-parallel training (Ray Train's TorchTrainer): each of
    the ``workers`` processes gets ``cpus_per_worker``/``gpus_per_worker``, and the node's own
    ``cpus``/``gpus`` are not used. ``custom`` are Ray custom resources (``ray start --resources``),
    ``labels`` must all match a Ray node's labels (``ray start --labels``).
    """

    cpus: float = Field(1.0, ge=0.0)
    gpus: float = Field(0.0, ge=0.0)
    memory: int | None = Field(None, ge=0, description="Bytes of RAM Ray reserves for the node: 4GB, 512MiB, ...")
    custom: dict[str, float] = Field(default_factory=dict, description="Ray custom resources: {special_hw: 1}.")
    accelerator_type: str | None = Field(None, description="Ray accelerator type, e.g. A100, H100, T4.")
    labels: dict[str, str] = Field(default_factory=dict, description="Run only on Ray nodes with these labels.")
    workers: int | None = Field(None, ge=1, description="Data-parallel workers (Ray Train TorchTrainer).")
    cpus_per_worker: float | None = Field(None, ge=0.0)
    gpus_per_worker: float | None = Field(None, ge=0.0)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory_size(cls, value: Any) -> Any:
        return None if value is None else parse_memory(value)

    @field_validator("custom")
    @classmethod
    def _custom_not_builtin(cls, value: dict[str, float]) -> dict[str, float]:
        builtin = {"CPU": "cpus", "GPU": "gpus", "memory": "memory", "object_store_memory": "memory"}
        for key, amount in value.items():
            if key in builtin:
                raise ValueError(f"'{key}' is not a custom resource. Use `resources.{builtin[key]}` instead.")
            if amount < 0:
                raise ValueError(f"custom resource '{key}' is {amount}; amounts must be >= 0.")
        return value

    @model_validator(mode="after")
    def _per_worker_needs_workers(self) -> Resources:
        if self.workers is None:
            for key in ("cpus_per_worker", "gpus_per_worker"):
                if getattr(self, key) is not None:
                    raise ValueError(f"`{key}` needs `workers`. Add `workers: N` or use `cpus`/`gpus` instead.")
        return self


class TrainConfig(Frozen):
    """The training loop of one node (nanoGPT-style: few knobs, each with a reason)."""

    epochs: int = Field(3, ge=1)
    batch_size: int = Field(128, ge=1)
    optimizer: str = Field("adam", pattern=r"^(adam|adamw|sgd)$")
    lr: float = Field(1.0e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    grad_clip: float | None = Field(None, gt=0.0, description="Clip the global gradient norm to this value.")
    label_fraction: float = Field(
        1.0, gt=0.0, le=1.0, description="Train on this share of the labelled training examples (low-label studies)."
    )
    checkpoint_every: int | None = Field(
        None, ge=1, description="Save a checkpoint every N steps; a retried or resumed node continues from it."
    )
    select: Literal["last", "best"] = Field(
        "last", description="Keep the last epoch's weights, or the best epoch's by `monitor` on the validation split."
    )
    monitor: str | None = Field(
        None, description="Validation metric that picks the best epoch and drives `patience`: `loss` (default; a "
        "joint node's summed head losses), a metric of the task (`accuracy`), or `head.metric` on a joint node.",
    )
    mode: Literal["min", "max"] | None = Field(
        None, description="Whether lower or higher `monitor` is better (default: min for loss, mse and mae, else max)."
    )
    patience: int | None = Field(
        None, ge=1, description="Stop after this many epochs without a better `monitor` (early stopping)."
    )


class Dependency(Frozen):
    """An edge upstream -> this task. ``share`` maps *this task's* module name to the upstream's.

    ``mode``: ``init`` copies the upstream values then trains them normally, ``freeze`` keeps them
    fixed (bit-identical to the upstream's), ``finetune`` trains them at ``lr * lr_scale``.
    With no ``share`` the edge only orders the two tasks.
    """

    share: dict[Name, Name] = Field(default_factory=dict)
    mode: str = Field("init", pattern=r"^(init|freeze|finetune)$")
    lr_scale: float = Field(1.0, gt=0.0)

    @field_validator("share", mode="before")
    @classmethod
    def _list_means_same_names(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return {name: name for name in value}
        return value


class Task(Frozen):
    """One node of the graph: a model made of named modules applied in order, trained on one loss."""

    kind: Literal["single"] = "single"
    data: Name = Field(description="Name of an entry under the graph's `data`.")
    input: str = Field("x", description="Field of the data fed to the first module.")
    depends_on: dict[Name, Dependency] = Field(default_factory=dict)
    modules: dict[Name, ModuleConfig] = Field(min_length=1)
    loss: LossConfig
    metrics: tuple[str, ...] = ()
    resources: Resources | None = None
    train: TrainConfig | None = None
    cost: float | None = Field(None, gt=0.0, description="Estimated seconds, for the critical path.")
    seed: int | None = None

    @field_validator("depends_on", mode="before")
    @classmethod
    def _list_means_order_only(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return {name: {} for name in value}
        if isinstance(value, dict):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_metrics(value)

    def data_sources(self) -> tuple[str, ...]:
        """The data source the node reads (a joint node may read several)."""
        return (self.data,)

    def validation_names(self) -> list[str]:
        """The validation values the node reports each epoch: what ``train.monitor`` may name."""
        return ["loss", *(m for m in self.metrics if m != "loss")]


def _check_metrics(value: tuple[str, ...]) -> tuple[str, ...]:
    """Registered metric names, or user code ``"pkg.module:fn"`` (``fn(output, target) -> float``)."""
    for name in value:
        if name not in METRICS and not is_custom_ref(name):
            raise ValueError(f"unknown metric '{name}'.{suggest(name, METRICS)} Or name your own function as "
                             "\"package.module:fn\" (fn(output, target) -> float).")
    return value


class Head(Frozen):
    """One task of a joint node: a head module on the trunk (and/or other heads) with its own loss."""

    module: ModuleConfig
    loss: LossConfig
    input: tuple[Name, ...] | None = Field(
        None, description="Trunk modules or other heads whose outputs (concatenated) feed this head; "
        "default: the trunk's last module."
    )
    data: Name | None = Field(None, description="This task's data source; default: the node's `data`.")
    gate: Name | None = Field(
        None, description="The mixture task whose mixed features this head reads (its gate; its column in "
        "cross_stitch); default: the head's own name."
    )
    metrics: tuple[str, ...] = ()

    @field_validator("input", mode="before")
    @classmethod
    def _one_name_is_a_list(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_metrics(value)


class Sampling(Frozen):
    """How a joint node with several data sources fills a step: a batch from each source, sized by
    ``rule``: ``round_robin`` equal shares, ``proportional`` to the source sizes, ``temperature``
    proportional to size ** (1 / temperature) (T=1 proportional, T -> inf equal)."""

    rule: Literal["round_robin", "proportional", "temperature"] = "proportional"
    temperature: float = Field(2.0, gt=0.0)


class MultiTaskNode(Frozen):
    """A joint node: several tasks trained at once on one shared trunk, with a head each.

    ``modules`` is the trunk (applied in order); each head is also a named module, so a joint node
    hands its trunk or any head downstream, and inherits them from upstream, like a single-task node.
    A ``mixture`` (``spec.mixture``: MMoE, CGC, PLE, cross-stitch) after the trunk soft-shares it:
    each head reads its own task's mixed features, and experts and gates are named modules too.
    """

    kind: Literal["multitask"]
    data: Name = Field(description="The default data source of the heads.")
    input: str = Field("x", description="Field of the data fed to the trunk.")
    depends_on: dict[Name, Dependency] = Field(default_factory=dict)
    modules: dict[Name, ModuleConfig] = Field(
        default_factory=dict, description="The shared trunk, applied in order (may be empty before a mixture).")
    mixture: MixtureConfig | None = Field(None, description="Experts or task columns after the trunk.")
    heads: dict[Name, Head] = Field(min_length=1)
    weighting: WeightingConfig = EqualWeighting()
    sampling: Sampling = Sampling()
    resources: Resources | None = None
    train: TrainConfig | None = None
    cost: float | None = Field(None, gt=0.0, description="Estimated seconds, for the critical path.")
    seed: int | None = None

    _list_means_order_only = field_validator("depends_on", mode="before")(Task._list_means_order_only.__func__)

    @model_validator(mode="after")
    def _heads_resolve(self) -> MultiTaskNode:
        problems: list[tuple[tuple[str, ...], str]] = []
        clash = sorted(set(self.heads) & set(self.modules))
        for name in clash:
            problems.append((("heads", name), f"'{name}' names both a trunk module and a head. Rename one."))
        problems += node_problems(self, NAME_PATTERN, MAX_NAME_LENGTH)
        order = list(self.heads)
        for name, head in self.heads.items():
            for i, src in enumerate(head.input or ()):
                if src in self.modules:
                    continue
                if src == name:
                    problems.append((("heads", name, "input", i), "a head cannot read its own output."))
                elif src not in self.heads:
                    known = [*self.modules, *self.heads]
                    problems.append((("heads", name, "input", i), f"unknown module or head '{src}'.{suggest(src, known)}"))
                elif order.index(src) > order.index(name):
                    problems.append((("heads", name, "input", i),
                                     f"head '{src}' is declared after '{name}'. List '{src}' first under `heads`."))
                elif (self.heads[src].data or self.data) != (head.data or self.data):
                    problems.append((("heads", name, "input", i),
                                     f"head '{src}' reads data source '{self.heads[src].data or self.data}', this head "
                                     f"'{head.data or self.data}': a head can only read heads on the same batches."))
        if (getattr(self.weighting, "level", None) == "representation" or self.weighting.method == "gradnorm") \
                and self.modules:
            last = "mixture" if self.mixture else list(self.modules)[-1]
            for name, head in self.heads.items():
                for i, src in enumerate(head.input or ()):
                    if src in self.modules and src != last:
                        problems.append((("heads", name, "input", i),
                                         f"'{self.weighting.method}' works on the shared representation, the output "
                                         f"of '{last}'; this head reads '{src}'. "
                                         + ("Read the mixture (leave `input` out) or a head" if self.mixture else
                                            f"Read '{last}' or a head") + ", or use `level: parameters`."))
        weights = getattr(self.weighting, "weights", {}) or {}
        for task in weights:
            if task not in self.heads:
                problems.append((("weighting", "weights", task), f"unknown task '{task}'.{suggest(task, self.heads)}"))
        if problems:
            raise NameProblems([(loc, msg) for loc, msg in problems])
        return self

    @property
    def all_modules(self) -> dict[str, Any]:
        """Trunk modules, mixture parts (experts, gates, columns, stitch units), then heads, by name:
        what edges can share."""
        mixed = {} if self.mixture is None else {
            p.name: p.config for p in mixture_parts(self.mixture, mixture_tasks(self.mixture, self.heads))}
        return {**self.modules, **mixed, **{name: head.module for name, head in self.heads.items()}}

    def validation_names(self) -> list[str]:
        """``loss`` (the heads' summed losses), then ``head.loss`` and ``head.metric`` of every head."""
        names = ["loss"]
        for name, head in self.heads.items():
            names += [f"{name}.loss", *(f"{name}.{m}" for m in head.metrics if m != "loss")]
        return names

    def data_sources(self) -> tuple[str, ...]:
        """Every data source the node reads, its own first."""
        names = [self.data] + [h.data for h in self.heads.values() if h.data]
        return tuple(dict.fromkeys(names))


def _kind(value: Any) -> str:
    """Missing ``kind`` means a single-task node, so existing graph files stay valid."""
    raw = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return raw or "single"


Node = Annotated[
    Union[Annotated[Task, Tag("single")], Annotated[MultiTaskNode, Tag("multitask")]],
    Discriminator(_kind),
]


class Defaults(Frozen):
    """Values every task inherits unless it sets its own (merged field by field)."""

    resources: Resources = Resources()
    train: TrainConfig = TrainConfig()


class Graph(Frozen):
    """A whole graph file. Top-level ``x-...`` keys are dropped before validation (they hold YAML
    anchors for ``<<: *name`` merges); the JSON Schema allows them so editors do not flag them."""

    model_config = ConfigDict(json_schema_extra={"patternProperties": {"^x-": {}}})

    name: Name
    seed: int = 0
    defaults: Defaults = Defaults()
    data: dict[Name, DataConfig] = Field(default_factory=dict)
    tasks: dict[Name, Node]
    serve: ServeSection | None = Field(None, description="How `taskgraph serve` deploys the trained nodes.")

    @field_validator("tasks")
    @classmethod
    def _not_empty(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("the graph has no tasks. Add at least one entry under `tasks:`.")
        return value

    @model_validator(mode="after")
    def _names_resolve(self) -> Graph:
        problems: list[tuple[tuple[str, ...], str]] = []
        folded: dict[str, str] = {}
        for where, name in [(("name",), self.name)] + [(("tasks", n), n) for n in self.tasks]:
            if name.casefold() in _RESERVED:  # node and graph names become folder names
                problems.append((where, f"'{name}' is a reserved device name on Windows ({', '.join(_RESERVED_SHOWN)}): "
                                        "its run folder could not be made there. Rename it."))
        for name in self.tasks:  # node names become folder names
            first = folded.setdefault(name.casefold(), name)
            if first != name:
                problems.append((("tasks", name), f"tasks '{first}' and '{name}' differ only in case: on macOS and "
                                                  "Windows their run folders would be one. Rename one."))
        for name, task in self.tasks.items():
            if task.data not in self.data:
                problems.append(
                    (("tasks", name, "data"), f"unknown data source '{task.data}'.{suggest(task.data, self.data)}")
                )
            for head_name, head in getattr(task, "heads", {}).items():
                if head.data is not None and head.data not in self.data:
                    problems.append((("tasks", name, "heads", head_name, "data"),
                                     f"unknown data source '{head.data}'.{suggest(head.data, self.data)}"))
            for dep in task.depends_on:
                if dep == name:
                    problems.append((("tasks", name, "depends_on", dep), "a task cannot depend on itself."))
                elif dep not in self.tasks:
                    problems.append(
                        (("tasks", name, "depends_on", dep), f"unknown task '{dep}'.{suggest(dep, self.tasks)}")
                    )
        for name in (self.serve.nodes if self.serve else {}):
            if name not in self.tasks:
                problems.append((("serve", "nodes", name), f"unknown task '{name}'.{suggest(name, self.tasks)}"))
        if problems:
            raise NameProblems(problems)
        return self

    def resolved(self) -> Graph:
        """A copy with ``defaults`` merged into every task, so a task is complete on its own."""
        tasks = {}
        for name, task in self.tasks.items():
            tasks[name] = task.model_copy(
                update={
                    "train": _merge(self.defaults.train, task.train),
                    "resources": _merge(self.defaults.resources, task.resources),
                    "seed": task.seed if task.seed is not None else self.seed,
                }
            )
        return self.model_copy(update={"tasks": tasks})


NameProblems = LocatedProblems  # unknown names, cycles of heads, ...: each problem at its own position


def _merge(default: Frozen, override: Frozen | None) -> Any:
    if override is None:
        return default
    values = default.model_dump()
    values.update(override.model_dump(exclude_unset=True))
    return type(default).model_validate(values)

"""The graph file's schema: one ``Graph`` of named data sources and tasks with their dependencies.

``load_spec`` returns a *resolved* graph: ``defaults`` are merged into every task, so each
``Task`` carries its full ``train`` and ``resources`` and can be shipped to a worker alone.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from taskgraph.spec.base import Frozen
from taskgraph.spec.components import METRICS, DataConfig, LossConfig, ModuleConfig

__all__ = ["Resources", "TrainConfig", "Dependency", "Task", "Defaults", "Graph", "suggest"]

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


def suggest(word: str, known: list[str] | set[str] | tuple[str, ...]) -> str:
    """``" Did you mean 'x'?"`` plus the sorted list of valid names, for error messages."""
    options = sorted(known)
    close = difflib.get_close_matches(word, options, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"{hint} Known: {', '.join(options) or '(none)'}."


class Resources(Frozen):
    """What one node asks Ray for; ``gpus`` may be fractional to pack small nodes on one GPU."""

    cpus: float = Field(1.0, ge=0.0)
    gpus: float = Field(0.0, ge=0.0)


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
        for name in value:
            if name not in METRICS:
                raise ValueError(f"unknown metric '{name}'.{suggest(name, METRICS)}")
        return value


class Defaults(Frozen):
    """Values every task inherits unless it sets its own (merged field by field)."""

    resources: Resources = Resources()
    train: TrainConfig = TrainConfig()


class Graph(Frozen):
    """A whole graph file."""

    name: Name
    seed: int = 0
    defaults: Defaults = Defaults()
    data: dict[Name, DataConfig] = Field(default_factory=dict)
    tasks: dict[Name, Task]

    @field_validator("tasks")
    @classmethod
    def _not_empty(cls, value: dict[str, Task]) -> dict[str, Task]:
        if not value:
            raise ValueError("the graph has no tasks. Add at least one entry under `tasks:`.")
        return value

    @model_validator(mode="after")
    def _names_resolve(self) -> Graph:
        problems: list[tuple[tuple[str, ...], str]] = []
        for name, task in self.tasks.items():
            if task.data not in self.data:
                problems.append(
                    (("tasks", name, "data"), f"unknown data source '{task.data}'.{suggest(task.data, self.data)}")
                )
            for dep in task.depends_on:
                if dep == name:
                    problems.append((("tasks", name, "depends_on", dep), "a task cannot depend on itself."))
                elif dep not in self.tasks:
                    problems.append(
                        (("tasks", name, "depends_on", dep), f"unknown task '{dep}'.{suggest(dep, self.tasks)}")
                    )
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


class NameProblems(ValueError):
    """Raised inside validation with a location per problem, so each gets its own line number."""

    def __init__(self, problems: list[tuple[tuple[str, ...], str]]):
        self.problems = problems
        super().__init__("; ".join(msg for _, msg in problems))


def _merge(default: Frozen, override: Frozen | None) -> Any:
    if override is None:
        return default
    values = default.model_dump()
    values.update(override.model_dump(exclude_unset=True))
    return type(default).model_validate(values)

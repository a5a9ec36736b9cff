"""Trained nodes read back from a run directory: ``load_node(run_dir, node)``, ``load_graph(run_dir)``.

A node comes back as a ``TrainedNode``: its torch module (``NodeModel`` or ``JointModel``) in eval
mode, holding the weights the node ended with (its own and what it inherited: a node's
``params.safetensors`` holds every module it ran with), and what a caller needs to feed it and
read it: the node's spec, its input field and per-example shape, and one ``HeadInfo`` per task
(target, loss, what its output means). Nothing is unpickled: the graph is ``graph.yaml``, the
weights safetensors, checked in full against the node's ``manifest.json`` (sha256 and size, written
when the node finished) before use, so a damaged or edited file is refused, never served.

Sits above ``artifacts`` (it builds ``train`` models from ``artifacts`` files), beside the runner.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskgraph.artifacts import store
from taskgraph.artifacts.manifest import DamagedArtifact
from taskgraph.artifacts.rundir import GRAPH, RunDir
from taskgraph.errors import ArtifactError, TaskgraphError
from taskgraph.spec.models import suggest

if TYPE_CHECKING:
    import torch

    from taskgraph.spec.models import Graph

__all__ = ["HeadInfo", "InputInfo", "TrainedNode", "TrainedGraph", "load_node", "load_graph", "output_kind"]

#: What a head's output means, from its loss: how ``predict`` turns raw outputs into answers.
_KINDS = {
    "cross_entropy": "classes", "crf": "tags", "ctc": "sequence_classes", "binary_cross_entropy": "probability",
    "mse": "values", "l1": "values", "huber": "values", "infonce": "embedding", "adversarial": "classes",
}


def output_kind(loss_type: str) -> str:
    """``classes`` (softmax over the last axis), ``probability`` (sigmoid of one logit), ``tags`` (a crf
    head's Viterbi path), ``values`` (regression), ``embedding``; ``raw`` for user losses."""
    return _KINDS.get(loss_type, "raw")


@dataclass(frozen=True)
class InputInfo:
    """The field a node reads and one example's shape (``[64]`` features, ``[T, 16]`` token rows)."""

    field: str
    shape: tuple[int, ...] | None  # None: a run written before shapes were recorded
    dtype: str | None
    width: int | None = None  # the last axis as the first module saw it (from the weights for older runs)


@dataclass(frozen=True)
class HeadInfo:
    """One task of a node: the single task of a plain node (named after the node) or a joint head."""

    name: str
    target: str
    loss: str
    kind: str  # output_kind(loss)
    width: int | None  # outputs per position (classes, tags, values)
    metrics: tuple[str, ...]
    labels: tuple[str, ...] | None = None  # class names, where the data config names them
    data: str | None = None  # the data source this task was trained on


@dataclass
class TrainedNode:
    """A finished node, ready to use: ``outputs = trained(x)`` or ``trained.predict({"x": x})``."""

    name: str
    module: torch.nn.Module
    spec: Any  # taskgraph.spec.models.Task | MultiTaskNode
    input: InputInfo
    heads: dict[str, HeadInfo]
    metrics: dict[str, Any] = field(default_factory=dict)  # the node's metrics.json
    run_dir: str = ""

    @property
    def joint(self) -> bool:
        return self.spec.kind == "multitask"

    @property
    def inputs(self) -> tuple[InputInfo, ...]:
        return (self.input,)

    def outputs(self, x: torch.Tensor, length: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Raw outputs (logits, potentials, values) per head, by head name, without gradients.
        ``length`` (padded sequences) goes to the modules that take it, as in training."""
        import torch

        with torch.no_grad():
            if not self.joint:
                return {self.name: self.module(x, length)}
            model, spec = self.module, self.spec
            outs = model.run_trunk(x, length)
            for name, head in spec.heads.items():
                outs[name] = model.run_head(name, model.head_input(outs, name, head), length)  # trunk, heads or mixture
            return {name: outs[name] for name in spec.heads}

    __call__ = outputs

    def predict(self, batch: Mapping[str, Any] | torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        """Answers per head: ``class`` (and ``probabilities``) for classifiers, ``probability`` and
        ``class`` for a binary head, ``class`` (the Viterbi path) for a crf head, ``value`` for
        regression, ``embedding`` otherwise. ``batch`` is a dict holding the input field (and
        ``length`` for padded sequences) or the input tensor itself."""
        from taskgraph.train.predict import answers

        x, length = self._input_of(batch)
        raw = self.outputs(x, length)
        return {name: answers(raw[name], self.heads[name].kind, length) for name in raw}

    def _input_of(self, batch: Mapping[str, Any] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        import torch

        if isinstance(batch, Mapping):
            if self.input.field not in batch:
                raise TaskgraphError(f"node '{self.name}' reads field '{self.input.field}'; the batch has "
                                     f"{', '.join(sorted(batch)) or 'no fields'}. Pass it under '{self.input.field}'.")
            x, length = batch[self.input.field], batch.get("length")
        else:
            x, length = batch, None
        x = torch.as_tensor(x)
        return x, (None if length is None else torch.as_tensor(length))


@dataclass
class TrainedGraph(Mapping[str, TrainedNode]):
    """Every finished node of a run, in plan order; ``graph["pos"]`` is one ``TrainedNode``."""

    spec: Graph
    nodes: dict[str, TrainedNode]
    order: tuple[str, ...]
    upstream: dict[str, tuple[str, ...]]
    run_dir: str = ""

    def __getitem__(self, name: str) -> TrainedNode:
        if name not in self.nodes:
            raise TaskgraphError(f"{self.run_dir}: no trained node '{name}'.{suggest(name, self.nodes)}")
        return self.nodes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)


def read_graph(run_dir: str | os.PathLike[str], overrides: tuple[str, ...] = ()) -> tuple[RunDir, Graph]:
    """The run folder and the resolved graph it ran (``graph.yaml``, with ``--set`` style ``overrides``:
    other data for evaluation); one-line errors otherwise."""
    from taskgraph.spec.loader import parse_spec
    from taskgraph.spec.yamltext import decode

    if not store.exists(run_dir):
        raise ArtifactError(f"{run_dir}: no such run directory. Pass the folder `taskgraph run` printed, "
                            "e.g. runs/quickstart/20250101-120000.")
    folder = RunDir.open(run_dir)
    path = store.join(folder.path, GRAPH)
    if not store.exists(path):
        raise ArtifactError(f"{folder.path} has no {GRAPH}: the run did not start. Pass a finished run folder.")
    spec, _source = parse_spec(decode(store.read_bytes(path), str(path)), file=str(path), overrides=overrides)
    return folder, spec


def load_node(run_dir: str | os.PathLike[str], node: str, *, device: str | torch.device = "cpu",
              _read: tuple[RunDir, Graph] | None = None) -> TrainedNode:
    """The trained module of ``node`` in ``run_dir`` (eval mode, on ``device``) with its config.

    The node's files are checked in full against its manifest first; a missing, unfinished or
    damaged node is an ``ArtifactError`` naming the file and what to do.
    """
    folder, spec = _read or read_graph(run_dir)
    if node not in spec.tasks:
        raise ArtifactError(f"{folder.path}: the graph has no node '{node}'.{suggest(node, spec.tasks)}")
    task = spec.tasks[node]
    if not folder.node_complete(node):
        raise ArtifactError(f"node '{node}' did not finish in {folder.path} (no weights). "
                            f"Train it: `taskgraph resume {folder.path}`.")
    try:
        if folder.manifest(node) is not None:
            folder.verify_node(node)  # both files in full: nothing damaged is served
        metrics = folder.read_metrics(node)
        state = folder.read_params(node)
    except DamagedArtifact as exc:
        raise ArtifactError(f"node '{node}': {exc}; refusing to load it. Retrain it: "
                            f"`taskgraph run <graph> --force {node}`.") from None
    from taskgraph.train.predict import build_trained_module, infer_width

    info = _input_info(task, metrics)
    where = str(store.join(folder.path, node, "params.safetensors"))
    width = info.width if info.width is not None else infer_width(task, state, where)
    module = build_trained_module(node, task, state, width, where)
    info = InputInfo(info.field, info.shape, info.dtype, width)
    module.to(device)
    module.eval()
    return TrainedNode(node, module, task, info, _heads(node, task, spec), metrics, str(folder.path))


def load_graph(run_dir: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> TrainedGraph:
    """Every finished node of a run (nodes that failed or never ran are left out)."""
    from taskgraph.plan.graph import make_plan

    folder, spec = read_graph(run_dir)
    plan = make_plan(spec)
    nodes = {name: load_node(run_dir, name, device=device, _read=(folder, spec))
             for name in plan.order if folder.node_complete(name)}
    if not nodes:
        raise ArtifactError(f"{folder.path}: no node finished. Train the graph first (`taskgraph resume {folder.path}`).")
    return TrainedGraph(spec, nodes, tuple(plan.order), {n: tuple(plan.nodes[n].upstream) for n in plan.order},
                        str(folder.path))


def _input_info(task: Any, metrics: dict[str, Any]) -> InputInfo:
    recorded = metrics.get("input") if isinstance(metrics.get("input"), dict) else {}
    shape = recorded.get("shape")
    return InputInfo(task.input, None if shape is None else tuple(int(s) for s in shape), recorded.get("dtype"),
                     recorded.get("width"))


def _heads(name: str, task: Any, spec: Graph) -> dict[str, HeadInfo]:
    if task.kind != "multitask":
        last = list(task.modules.values())[-1]
        return {name: _head(name, task.loss, last, task.metrics, task.data, spec)}
    return {h: _head(h, head.loss, head.module, head.metrics, head.data or task.data, spec)
            for h, head in task.heads.items()}


def _head(name: str, loss: Any, module: Any, metrics: tuple[str, ...], data: str, spec: Graph) -> HeadInfo:
    width = module.output_dim(None) if hasattr(module, "output_dim") else None
    return HeadInfo(name, loss.target, loss.type, output_kind(loss.type), width, tuple(metrics),
                    _labels(spec.data.get(data), loss.target), data)


def _labels(data: Any, target: str) -> tuple[str, ...] | None:
    """Class names where the data config states them (a table label's ``classes``)."""
    for label in getattr(data, "labels", None) or ():
        if getattr(label, "field", None) == target and getattr(label, "classes", None):
            return tuple(label.classes)
    return None

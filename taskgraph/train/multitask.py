"""Train one joint node: a shared trunk, a head per task, the node's weighting method.

Each step draws a batch from every data source (sizes set by the node's ``sampling`` rule),
runs the trunk once per source, every head on its source, and hands the per-task losses to the
weighting method, which does the backward pass (``taskgraph.train.weighting``). Like
``train_node`` this knows nothing of Ray or run directories.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from taskgraph.errors import TrainError
from taskgraph.spec.models import MultiTaskNode
from taskgraph.train.data import Split, evaluate_batches, load_data, subsample, trim_padding
from taskgraph.train import loop
from taskgraph.train.loop import NodeOutput, NodeRequest, Report, _optimizer, final_metrics, inherit, pick_device
from taskgraph.train.losses import loss_function
from taskgraph.train.metrics import compute_metric
from taskgraph.train.model import NodeModel, apply_module, state_to_numpy, takes_length
from taskgraph.train.mixture import Mixture
from taskgraph.train.modules import build_module, reverse_gradient
from taskgraph.train.predict import input_record
from taskgraph.train.selection import Selection
from taskgraph.train.shapes import check_input
from taskgraph.train.weighting import Step, build_weighting

__all__ = ["JointModel", "MIXED", "train_joint_node", "batch_shares", "task_loss"]


#: Where ``run_trunk`` keeps a mixture's shared representation (no module name can be this).
MIXED = "<mixture>"


class JointModel(nn.ModuleDict):
    """Trunk modules, mixture parts, then heads, all by name (state keys ``trunk.lstm.weight_ih_l0``,
    ``gate_pos.weight``, ``pos.weight``).

    With a ``mixture``, ``run_trunk`` also returns the mixture's shared representation under
    ``MIXED`` (then ``_last``): the output every head's own part starts from (``head_input``)."""

    load_module = NodeModel.load_module

    def __init__(self, node: MultiTaskNode, in_dim: int, where: str):
        super().__init__()
        width: int | None = in_dim
        outs: dict[str, int | None] = {}
        for name, config in node.modules.items():
            self[name] = build_module(config, width, f"{where}.modules.{name}")
            width = outs[name] = config.output_dim(config.resolved_in(width))
        self._trunk_names = list(node.modules)
        self._head_names = list(node.heads)
        self.mixture = None if node.mixture is None else Mixture(node, self, width, where, build_module)
        self._last = MIXED if self.mixture else self._trunk_names[-1]
        self._gates = {name: head.gate or name for name, head in node.heads.items() if head.input is None}
        for name, head in node.heads.items():
            if self.mixture is not None and head.input is None:
                in_w = self.mixture.width
            else:
                widths = [outs.get(src) for src in (head.input or (self._last,))]
                in_w = None if any(w is None for w in widths) else sum(widths)  # type: ignore[arg-type]
            self[name] = build_module(head.module, in_w, f"{where}.heads.{name}.module")
            outs[name] = head.module.output_dim(head.module.resolved_in(in_w))
        self._wants_length = {name: takes_length(module) for name, module in self.items()}

    @property
    def shared_names(self) -> list[str]:
        """Modules before the shared representation: the trunk and the mixture's shared parts."""
        return self._trunk_names + (self.mixture.shared_names if self.mixture else [])

    @property
    def task_names(self) -> list[str]:
        """Modules after it: a mixture's per-task parts (last gates, last stitch unit) and the heads."""
        return (self.mixture.task_names if self.mixture else []) + self._head_names

    def run_trunk(self, x: torch.Tensor, length: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Every trunk module's output by name; modules that take ``length`` get it (``NodeModel``)."""
        outs = {}
        for name in self._trunk_names:
            x = outs[name] = apply_module(self[name], x, length, self._wants_length[name])
        if self.mixture is not None:
            outs[MIXED] = self.mixture.shared(self, x, length)
        return outs

    def mixed(self, rep: torch.Tensor, head: str) -> torch.Tensor:
        """Head ``head``'s mixed features from the shared representation (or a view of it)."""
        assert self.mixture is not None
        return self.mixture.task(self, rep, self._gates[head])

    def head_input(self, outs: dict[str, torch.Tensor], name: str, head: Any,
                   rep: torch.Tensor | None = None) -> torch.Tensor:
        """What head ``name`` reads: its ``input`` outputs side by side (default: the trunk's last
        module), or its task's mixed features, from ``rep`` (a view of the shared representation) if given."""
        if self.mixture is not None and head.input is None:
            return self.mixed(outs[MIXED] if rep is None else rep, name)
        inputs = [outs[src] for src in (head.input or (self._last,))]
        return inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=-1)

    def run_head(self, name: str, x: torch.Tensor, length: torch.Tensor | None = None) -> torch.Tensor:
        """Head ``name`` on ``x``, handed ``length`` if it takes it."""
        return apply_module(self[name], x, length, self._wants_length[name])


def batch_shares(sizes: list[int], batch_size: int, rule: str, temperature: float) -> list[int]:
    """Examples per source in one step's batch: equal shares, proportional to size, or to size^(1/T)."""
    if rule == "round_robin":
        raw = [1.0] * len(sizes)
    elif rule == "proportional":
        raw = [float(n) for n in sizes]
    else:
        raw = [float(n) ** (1.0 / temperature) for n in sizes]
    total = sum(raw)
    return [max(1, round(batch_size * r / total)) for r in raw]


def task_loss(output: torch.Tensor, target: torch.Tensor, config: Any, fn: Callable | None = None) -> torch.Tensor | None:
    """The head's loss over the entries that have a label (the one rule of ``losses.loss_function``);
    None when none has, so the task leaves this step. ``fn`` is ``loss_function(config)``, looked up
    once per node rather than on every step."""
    return (fn or loss_function(config))(output, target)


def reads_module(node: MultiTaskNode, head: Any) -> bool:
    """An ``infonce`` head whose ``target`` is another module's output, not a data field."""
    return head.loss.type == "infonce" and head.loss.target in node.all_modules


class _Joint:
    """The node being trained: model, sources and heads wired together for ``step`` and ``evaluate``."""

    def __init__(self, node: MultiTaskNode, model: JointModel):
        self.node, self.model = node, model
        self.heads_of: dict[str, list[str]] = {}
        for name, head in node.heads.items():
            self.heads_of.setdefault(head.data or node.data, []).append(name)
        self.loss_fns = {name: loss_function(head.loss) for name, head in node.heads.items()}
        self.module_target = {name: reads_module(node, head) for name, head in node.heads.items()}
        #: No head reads another head, so each task's gradient of the trunk output is the gradient
        #: that reaches its own head's input (see ``Step.task_inputs``).
        self.separable = not any(src in node.heads for head in node.heads.values() for src in (head.input or ()))
        self.shared = [p for n in model.shared_names for p in model[n].parameters() if p.requires_grad]
        self.heads = [p for n in model.task_names for p in model[n].parameters() if p.requires_grad]

    def reads_mixture(self, head: Any) -> bool:
        return self.model.mixture is not None and head.input is None

    def head_input(self, outs: dict[str, torch.Tensor], head: Any, name: str = "",
                   rep: torch.Tensor | None = None) -> torch.Tensor:
        """What a head reads (``JointModel.head_input``)."""
        return self.model.head_input(outs, name, head, rep)

    def losses(self, batches: dict[str, Split], representation: bool, views: bool) -> tuple[torch.Tensor, Step]:
        """The stacked losses of the tasks that have a label in these batches, and the ``Step`` a
        method needs for them (``Step.tasks`` names them). With ``views`` (see ``Step.task_inputs``)
        each such task gets its own view of the representation."""
        node, model = self.node, self.model
        found: dict[str, torch.Tensor] = {}
        reps, leaves = [], []
        own_inputs: dict[str, tuple[torch.Tensor, int]] = {}
        separable = views and self.separable
        for index, (source, heads) in enumerate(self.heads_of.items()):
            batch = batches[source]
            length = batch.get("length")
            outs = model.run_trunk(batch[node.input], length)
            rep = outs[model._last]
            leaf = rep.detach().requires_grad_(True) if representation else rep
            outs[model._last] = leaf
            reps.append(rep)
            leaves.append(leaf)
            for name in heads:
                head = node.heads[name]
                if separable and self.reads_mixture(head):  # the task's view sits before its gate
                    view = leaf.view_as(leaf)
                    if representation:
                        view.retain_grad()
                    own_inputs[name] = (view, index)
                    x = self.head_input(outs, head, name, view)
                else:
                    x = self.head_input(outs, head, name)
                if separable and not self.reads_mixture(head):
                    x = x.view_as(x)
                    if representation:
                        x.retain_grad()
                    own_inputs[name] = (x, index)
                if head.loss.type == "adversarial":
                    x = reverse_gradient(x, head.loss.scale)
                outs[name] = model.run_head(name, x, length)  # run even without labels: a later head may read it
                target = outs[head.loss.target] if self.module_target[name] else batch[head.loss.target]
                loss = task_loss(outs[name], target, head.loss, self.loss_fns[name])
                if loss is not None:
                    found[name] = loss
        rows = tuple(i for i, name in enumerate(node.heads) if name in found)
        parts = [found[name] for name in node.heads if name in found]
        task_inputs = [own_inputs[name] for name in node.heads if name in found] if separable else []
        stacked = torch.stack(parts) if parts else leaves[0].new_zeros(0)
        return stacked, Step(self.shared, self.heads, reps, leaves, parts, task_inputs, rows)

    @torch.no_grad()
    def evaluate(self, val: dict[str, Split], batch_size: int) -> dict[str, float]:
        node, model = self.node, self.model
        was_training = model.training
        model.eval()
        result: dict[str, float] = {}
        for source, heads in self.heads_of.items():
            if source not in val:  # a test split that only some sources have
                continue

            def forward(batch: Split, heads: list[str] = heads) -> dict[str, torch.Tensor]:
                length = batch.get("length")
                outs, got = model.run_trunk(batch[node.input], length), {}
                for name in heads:
                    head = node.heads[name]
                    outs[name] = got[f"out:{name}"] = model.run_head(name, self.head_input(outs, head, name), length)
                    if self.module_target[name]:
                        got[f"target:{name}"] = outs[head.loss.target]
                return got

            # sequence data: shortest first, each batch cut to its longest sentence (as in training)
            outputs = evaluate_batches(val[source], [node.input], batch_size, forward)
            for name in heads:
                head = node.heads[name]
                output = outputs[f"out:{name}"]
                target = outputs[f"target:{name}"] if self.module_target[name] else val[source][head.loss.target]
                loss = task_loss(output, target, head.loss, self.loss_fns[name])  # None: no labelled example
                result[f"{name}.loss"] = float("nan") if loss is None else float(loss.item())
                for metric in head.metrics:
                    if metric != "loss":
                        result[f"{name}.{metric}"] = compute_metric(metric, output, target)
        model.train(was_training)
        return result


def _load_sources(request: NodeRequest, node: MultiTaskNode,
                  where: str) -> tuple[dict[str, Split], dict[str, Split], dict[str, Split]]:
    """Train, validation and (for the sources that have one) test splits, by source."""
    configs = dict(request.sources) or {node.data: request.data}
    train, val, test = {}, {}, {}
    for source in node.data_sources():
        if source not in configs:
            raise TrainError(f"{where}: data source '{source}' was not handed to this node. This is a bug.")
        splits = load_data(configs[source], request.data_cache)
        train[source] = subsample(splits.train, node.train.label_fraction, request.seed)
        val[source] = splits.val
        if splits.test is not None:
            test[source] = splits.test
        needed = [node.input] + [h.loss.target for h in node.heads.values() if (h.data or node.data) == source
                                 and not reads_module(node, h)]
        for key in needed:
            splits.field("train", key, where), splits.field("val", key, where)
            if splits.test is not None:
                splits.field("test", key, where)
    return train, val, test


def _first_modules(node: MultiTaskNode) -> dict[str, Any]:
    """The modules that read the node's input: the trunk, or (no trunk) the mixture's first expert."""
    if node.modules or node.mixture is None:
        return dict(node.modules)
    first = next(iter(node.all_modules.items()))
    return {first[0]: first[1]}


def _rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    return torch.get_rng_state(), (torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


def _losses_again(joint: _Joint, batches: dict[str, Split], rng: tuple[torch.Tensor, torch.Tensor | None],
                  device: torch.device) -> torch.Tensor:
    """The losses on ``batches`` once more, without gradient, drawing the random numbers (dropout)
    the step's own forward drew; the training's random stream goes on as if this never ran."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
        torch.set_rng_state(rng[0])
        if rng[1] is not None:
            torch.cuda.set_rng_state(rng[1], device)
        return joint.losses(batches, False, False)[0]


def train_joint_node(
    request: NodeRequest,
    upstream_states: dict[str, dict[str, np.ndarray]],
    report: Report | None = None,
    device: torch.device | None = None,
) -> NodeOutput:
    """Train a joint node from its request and the states of the upstream nodes it inherits from."""
    node, where = request.task, f"tasks.{request.name}"
    assert isinstance(node, MultiTaskNode)
    device = device or pick_device(node.resources.gpus if node.resources else 0.0)
    torch.manual_seed(request.seed)
    train, val, test = _load_sources(request, node, where)
    first = train[node.data][node.input]
    for source, split in train.items():  # the user-data boundary in words (train.shapes)
        check_input(where, request.name, node.input, split[node.input], None, None, _first_modules(node),
                    {"training": len(split[node.input]), "validation": len(val[source][node.input])})
    model = JointModel(node, in_dim=first.shape[-1], where=where)
    frozen, lr_scale, inherited = inherit(model, request, upstream_states, where)
    model.to(device)
    train = {s: {k: v.to(device) for k, v in split.items()} for s, split in train.items()}
    val = {s: {k: v.to(device) for k, v in split.items()} for s, split in val.items()}

    method = build_weighting(node.weighting, list(node.heads)).to(device)
    optimizer = _optimizer(node, model, frozen, lr_scale)
    if list(method.parameters()):
        optimizer.add_param_group({"params": list(method.parameters()), "lr": node.train.lr, "weight_decay": 0.0})
    joint = _Joint(node, model)

    cfg = node.train
    sources = list(train)
    sizes = [len(train[s][node.input]) for s in sources]
    shares = batch_shares(sizes, cfg.batch_size, node.sampling.rule, node.sampling.temperature)
    steps_per_epoch = max(1, math.ceil(sum(sizes) / cfg.batch_size))
    generator = torch.Generator().manual_seed(request.seed)
    orders = {s: torch.randperm(n, generator=generator) for s, n in zip(sources, sizes)}
    cursor = dict.fromkeys(sources, 0)

    def next_batch(source: str, size: int) -> Split:
        n = len(orders[source])
        if cursor[source] + size > n:  # a smaller source starts a new pass
            orders[source], cursor[source] = torch.randperm(n, generator=generator), 0
        idx = orders[source][cursor[source] : cursor[source] + size].to(device)
        cursor[source] += size
        return trim_padding({k: v[idx] for k, v in train[source].items()})

    steps, unlabelled, history, step_seconds = 0, 0, [], 0.0
    total_steps, next_report = cfg.epochs * steps_per_epoch, 0.0
    k = len(node.heads)
    selection = Selection(node, request.name)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        for name in frozen:
            model[name].eval()
        started = time.perf_counter()
        totals, counts = torch.zeros(k, device=device), torch.zeros(k, device=device)
        for _ in range(steps_per_epoch):
            batches = {s: next_batch(s, min(size, n)) for s, size, n in zip(sources, shares, sizes)}
            rng = _rng_state(device) if method.needs_losses_after_step else None
            losses, step = joint.losses(batches, method.on_representation, method.task_views)
            rows = step.rows(k)
            if not rows:  # no task has a label in these batches: nothing to learn from, no update
                unlabelled += 1
                continue
            if not bool(torch.isfinite(losses).all()):
                bad = [list(node.heads)[i] for i, v in zip(rows, losses.tolist()) if not math.isfinite(v)]
                raise TrainError(
                    f"node '{request.name}': loss of task(s) {', '.join(bad)} is not finite at epoch {epoch}, "
                    f"step {steps + 1} (weighting {node.weighting.method}). Lower the learning rate or check the data.",
                    node=request.name,
                )
            optimizer.zero_grad(set_to_none=True)
            method.backward(losses, step)
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            if rng is not None:  # the same batch, the same dropout masks, the new parameters
                method.after_step(_losses_again(joint, batches, rng, device), step)
            totals[rows] += losses.detach()
            counts[rows] += 1
            steps += 1
            if report and time.perf_counter() >= next_report:  # throttled, as the single-task loop
                next_report = time.perf_counter() + loop.STEP_REPORT_S
                report({"kind": "step", "node": request.name, "epoch": epoch, "epochs": cfg.epochs, "step": steps,
                        "total_steps": total_steps, "loss": float(losses.detach().sum().item())})
        epoch_seconds = time.perf_counter() - started
        step_seconds += epoch_seconds
        mean_losses = totals / counts  # NaN for a task without a label in any batch of the epoch
        method.end_epoch(mean_losses)
        result = joint.evaluate(val, max(cfg.batch_size, 256))
        seen = {h: float(v) for h, v, c in zip(node.heads, mean_losses.tolist(), counts.tolist()) if c > 0}
        row = {"epoch": epoch, "step": steps, "seconds": epoch_seconds,
               "train_loss": sum(seen.values()),
               **{f"train_{h}.loss": v for h, v in seen.items()},
               **{f"val_{k}": v for k, v in result.items()}}
        history.append(row)
        if report:
            report({"kind": "epoch", "node": request.name, "epoch": epoch, "epochs": cfg.epochs,
                    "total_steps": total_steps, **row})
        if selection.update(row, model):
            break

    final = final_metrics(selection.finish(model, history), request.name)
    scored = {}
    if test:  # once, with the kept weights
        scored = {"test": joint.evaluate({s: {f: v.to(device) for f, v in split.items()} for s, split in test.items()},
                                         max(cfg.batch_size, 256)),
                  "test_examples": {s: len(v[node.input]) for s, v in test.items()}}
    metrics = {"final": final, "history": history, "weighting": node.weighting.method,
               "input": input_record(node.input, first), **selection.summary(), **scored,
               "seconds_per_step": step_seconds / max(steps, 1), "unlabelled_steps": unlabelled,
               "weighting_state": method.summary(),
               "train_examples": dict(zip(sources, sizes)),
               "val_examples": {s: len(v[node.input]) for s, v in val.items()}}
    return NodeOutput(state_to_numpy(model), metrics, inherited, str(device), steps)

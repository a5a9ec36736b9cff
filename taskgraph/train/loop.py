"""Train one node: build its model, take in what it inherits, train, evaluate, hand back its state.

This is the function a Ray worker runs for a node. It knows nothing of Ray or run directories:
it takes a ``NodeRequest`` and the upstream states, and returns a ``NodeOutput``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from taskgraph.errors import TrainError
from taskgraph.spec.models import Task
from taskgraph.train.checkpoint import Checkpointer
from taskgraph.train.data import Splits, evaluate_batches, load_data, subsample, trim_padding
from taskgraph.train.losses import compute_loss, loss_function
from taskgraph.train.metrics import compute_metric
from taskgraph.train.model import NodeModel, digest, module_state, state_to_numpy
from taskgraph.train.predict import input_record
from taskgraph.train.request import Inheritance, NodeRequest, node_seed
from taskgraph.train.selection import Selection
from taskgraph.train.shapes import check_input, first_batch_error

__all__ = ["Inheritance", "NodeRequest", "NodeOutput", "train_node", "pick_device", "node_seed"]

Report = Callable[[dict[str, Any]], None]

#: At most one in-epoch ``step`` report per this many seconds (progress bars, batch-loss curves).
STEP_REPORT_S = 0.25
#: On a GPU, how often (in steps) the running loss sum is checked for NaN/inf: a sync per step costs.
FINITE_CHECK_EVERY = 50


class Provenance(list):
    """The records of a node's inherited modules. Their sha256 digests are taken on a thread while
    the node trains (hashlib releases the GIL): hashing a 400 MB module before the first step
    would hold the node back by as long as the hand-off itself. ``wait`` returns the full list;
    a pickled ``Provenance`` (a Ray Train worker's output) waits and travels as that plain list."""

    def __init__(self) -> None:
        super().__init__()
        self._pending: list[tuple[dict[str, str], dict[str, np.ndarray]]] = []
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def add(self, record: dict[str, str], state: dict[str, np.ndarray]) -> None:
        self.append(record)
        self._pending.append((record, state))

    def start(self) -> Provenance:
        if self._pending:
            self._thread = threading.Thread(target=self._hash, name="taskgraph-inherited-digest", daemon=True)
            self._thread.start()
        return self

    def _hash(self) -> None:
        try:
            for record, state in self._pending:
                record["sha256"] = digest(state)
        except BaseException as exc:  # noqa: BLE001 -- re-raised by wait(), on the node's own thread
            self._error = exc
        self._pending = []

    def wait(self) -> list[dict[str, str]]:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return list(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (self.wait(),))


@dataclass
class NodeOutput:
    """What a trained node hands back. ``inherited`` (the provenance records of the modules it took
    in, with their sha256) waits for the digests on first read: the runner reads it while writing
    the node's files, after the state has gone to the children, so hashing a large inherited module
    never holds back a child's start."""

    state: dict[str, np.ndarray]
    metrics: dict[str, Any]
    provenance: list[dict[str, str]] = field(default_factory=list)  # may still be hashing: read ``inherited``
    device: str = "cpu"
    steps: int = 0

    @property
    def inherited(self) -> list[dict[str, str]]:
        if isinstance(self.provenance, Provenance):
            self.provenance = self.provenance.wait()
        return self.provenance


def pick_device(gpus: float) -> torch.device:
    """The GPU Ray assigned when the node asked for one and CUDA is there; else the CPU.

    Ray sets CUDA_VISIBLE_DEVICES for the task, so the assigned GPU is always ``cuda:0`` here.
    Fake GPU resources (tests, CPU-only clusters) fall back to the CPU.
    """
    if gpus > 0 and torch.cuda.is_available():
        return torch.device("cuda", 0)
    return torch.device("cpu")


def _optimizer(task: Task, model: NodeModel, frozen: set[str], lr_scale: dict[str, float]) -> torch.optim.Optimizer:
    cfg = task.train
    groups: dict[float, list[torch.nn.Parameter]] = {}
    for name, module in model.items():
        if name in frozen:
            continue
        groups.setdefault(cfg.lr * lr_scale.get(name, 1.0), []).extend(module.parameters())
    params = [{"params": p, "lr": lr} for lr, p in groups.items()]
    if not any(group["params"] for group in params):
        raise TrainError("every module of this node is frozen: nothing to train. Use mode: init or finetune.")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def inherit(
    model: torch.nn.ModuleDict, request: NodeRequest, upstream_states: dict[str, dict[str, np.ndarray]], where: str
) -> tuple[set[str], dict[str, float], list[dict[str, str]]]:
    """Load every inherited module into ``model`` and apply its mode.

    Returns the frozen module names, the per-module lr scales (finetune) and the provenance
    records (source and sha256 of what was loaded) that ``run.json`` shows. Used by single-task
    and joint nodes alike, so both honour the modes the same way.

    Empties ``upstream_states`` once everything is loaded: the model has its own copies, and in a
    chain's task (``execute.stream``) this dict holds the only reference to the parent's arrays,
    freed here rather than when the node ends (with a 400 MB module, a third copy beside the
    model's and the object store's for the whole of its training).
    """
    frozen: set[str] = set()
    lr_scale: dict[str, float] = {}
    inherited = Provenance()
    for inh in request.inherits:
        state = module_state(upstream_states[inh.upstream], inh.remote)
        model.load_module(inh.local, state, f"{where}.depends_on.{inh.upstream}")
        inherited.add({"module": inh.local, "from": f"{inh.upstream}.{inh.remote}", "mode": inh.mode}, state)
        if inh.mode == "freeze":
            frozen.add(inh.local)
        elif inh.mode == "finetune":
            lr_scale[inh.local] = inh.lr_scale
    for name in frozen:
        model[name].requires_grad_(False)
    upstream_states.clear()  # the digests still read what they need: ``Provenance`` keeps its modules
    return frozen, lr_scale, inherited.start()


def final_metrics(history: list[dict[str, Any]], node: str) -> dict[str, float]:
    """The last epoch's validation values (``val_`` prefix dropped); non-finite ones fail the node."""
    final = {k.removeprefix("val_"): v for k, v in history[-1].items() if k.startswith("val_")}
    if not all(math.isfinite(v) for v in final.values()):
        raise TrainError(f"node '{node}': validation metrics are not finite: {final}.", node=node)
    return final


def test_metrics(splits: Splits, score: Callable[[dict[str, torch.Tensor]], dict[str, float]],
                 fields: tuple[str, ...], where: str) -> dict[str, Any]:
    """``{"test": metrics, "test_examples": n}`` scored once with the kept weights, or ``{}`` when the
    data has no test split."""
    if splits.test is None:
        return {}
    for key in fields:
        splits.field("test", key, where)
    return {"test": score(splits.test), "test_examples": len(next(iter(splits.test.values())))}


@torch.no_grad()
def evaluate(model: NodeModel, task: Task, x: torch.Tensor, y: torch.Tensor, batch_size: int,
             lengths: torch.Tensor | None = None) -> dict[str, float]:
    """Loss and the task's metrics on a whole split, in eval mode; sequence data (``lengths``) in
    batches cut to their longest sequence, as in training (``evaluate_batches``); modules that take
    ``length`` get it."""
    was_training = model.training
    model.eval()
    split = {"input": x} if lengths is None else {"input": x, "length": lengths}
    output = evaluate_batches(split, ["input"], batch_size,
                              lambda batch: {"out": model(batch["input"], batch.get("length"))})["out"]
    model.train(was_training)
    loss = compute_loss(output, y, task.loss)  # None: no labelled example in the split
    result = {"loss": float("nan") if loss is None else float(loss.item())}
    for metric in task.metrics:
        if metric != "loss":
            result[metric] = compute_metric(metric, output, y)
    return result


def train_node(
    request: NodeRequest,
    upstream_states: dict[str, dict[str, np.ndarray]],
    report: Report | None = None,
    device: torch.device | None = None,
    shard: tuple[int, int] | None = None,
    wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
) -> NodeOutput:
    """Train one node from its request and the states of the upstream nodes it inherits from
    (``upstream_states`` is emptied once they are loaded: ``inherit``).

    Data-parallel training (``train.distributed``) passes ``shard=(rank, world_size)`` to train on
    this worker's share of the examples, and ``wrap`` (DDP) for the training forward pass.
    """
    if request.task.kind == "multitask":  # joint node: shared trunk, a head per task
        from taskgraph.train.multitask import train_joint_node

        return train_joint_node(request, upstream_states, report, device)
    task, where = request.task, f"tasks.{request.name}"
    device = device or pick_device(task.resources.gpus if task.resources else 0.0)
    torch.manual_seed(request.seed)

    try:
        splits: Splits = load_data(request.data, request.data_cache)
    except TrainError as exc:  # the loader's own words, with the node and data source they are about
        raise TrainError(f"{where} (data '{task.data}'): {exc}", node=request.name) from exc
    train = subsample(splits.train, task.train.label_fraction, request.seed)
    if shard is not None:
        from taskgraph.train.distributed import shard_split

        train = shard_split(train, *shard, where=where)
    for key in (task.input, task.loss.target):  # clear errors for fields the data lacks
        splits.field("train", key, where), splits.field("val", key, where)
    x_train, y_train = train[task.input], train[task.loss.target]
    x_val, y_val = splits.val[task.input], splits.val[task.loss.target]
    lengths = train.get("length")  # sequence data: each batch is cut to its longest sequence
    val_lengths = splits.val.get("length")
    check_input(where, request.name, task.input, x_train, task.loss.target, y_train, task.modules,
                {"training": len(x_train), "validation": len(x_val)})

    model = NodeModel(dict(task.modules), in_dim=x_train.shape[-1], where=where)
    frozen, lr_scale, inherited = inherit(model, request, upstream_states, where)

    model.to(device)
    x_train, y_train, x_val, y_val = (t.to(device) for t in (x_train, y_train, x_val, y_val))
    lengths = lengths.to(device) if lengths is not None else None
    val_lengths = val_lengths.to(device) if val_lengths is not None else None
    optimizer = _optimizer(task, model, frozen, lr_scale)
    net = wrap(model) if wrap else model  # the forward used for training; evaluation uses the plain model
    cfg = task.train
    n, steps, history = len(x_train), 0, []
    generator = torch.Generator().manual_seed(request.seed)
    total_steps = cfg.epochs * math.ceil(n / cfg.batch_size)
    next_step_report = 0.0  # in-epoch progress, by the clock: loss.item() waits for the GPU
    checkpoints = Checkpointer(request.checkpoint_dir, cfg.checkpoint_every, request.name)
    on_cpu = device.type == "cpu"
    loss_fn = loss_function(task.loss)
    selection = Selection(task, request.name)
    where_loss = f"task loss {task.loss.type} on '{task.loss.target}'"

    def not_finite(value: float, epoch: int, at: str) -> TrainError:
        return TrainError(
            f"node '{request.name}': loss is {value} at epoch {epoch}, {at} ({where_loss}). "
            "Lower the learning rate or check the data.",
            node=request.name,
        )

    start_epoch, skip_batches, total, batches = 1, 0, (0.0 if on_cpu else torch.zeros((), device=device)), 0
    resumed = checkpoints.restore(model, optimizer, generator)
    fitted = resumed is not None  # the first batch of this node: shape errors said in words
    if resumed is not None:
        start_epoch, skip_batches, steps = resumed["epoch"], resumed["batch"], resumed["step"]
        history, batches = resumed["history"], resumed["batches"]
        selection.restore(resumed.get("selection"))
        total = resumed["total"] if on_cpu else torch.tensor(resumed["total"], device=device)
    for epoch in range(start_epoch, cfg.epochs + 1):
        model.train()
        for name in frozen:  # frozen modules keep eval behaviour: no dropout, no batch-norm updates
            model[name].eval()
        started = time.perf_counter()
        if epoch != start_epoch or resumed is None:
            total, batches = (0.0 if on_cpu else torch.zeros((), device=device)), 0
        epoch_generator = generator.get_state()
        order = torch.randperm(n, generator=generator).to(device)
        for batch, i in enumerate(range(0, n, cfg.batch_size)):
            if epoch == start_epoch and batch < skip_batches:
                continue  # done before the checkpoint we resumed from
            idx = order[i : i + cfg.batch_size]
            xb, yb, lb = x_train[idx], y_train[idx], None
            if lengths is not None:
                cut = trim_padding({"input": xb, "target": yb, "length": lengths[idx]})
                xb, yb, lb = cut["input"], cut["target"], cut["length"]
            try:
                output = net(xb, lb)
                loss = loss_fn(output, yb)
            except Exception as exc:  # the first batch: a shape mistake in the data, said in words
                said = None if fitted else first_batch_error(exc, where, request.name, task.input, xb,
                                                                task.loss.target, yb, task.modules)
                if said is None:
                    raise
                raise said from exc
            fitted = True
            if loss is None:  # no example of this batch has a label: nothing to learn from, no update
                if wrap is None:
                    continue
                loss = output.sum() * 0.0  # DDP: every rank must join the step's all-reduce; this one adds nothing
            if on_cpu:  # a float per step is free on the CPU: check every step, name the exact one
                value = loss.item()
                if not math.isfinite(value):
                    raise not_finite(value, epoch, f"step {steps + 1}")
                total += value
            else:  # no sync per step on a GPU: a non-finite loss makes the running sum non-finite
                total += loss.detach()
                if (steps + 1) % FINITE_CHECK_EVERY == 0 and not torch.isfinite(total):
                    raise not_finite(float(total), epoch, f"steps {steps + 2 - FINITE_CHECK_EVERY}-{steps + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            batches += 1
            steps += 1
            if report and time.perf_counter() >= next_step_report:
                next_step_report = time.perf_counter() + STEP_REPORT_S
                report({"kind": "step", "node": request.name, "epoch": epoch, "epochs": cfg.epochs,
                        "step": steps, "total_steps": total_steps, "loss": float(loss.item())})
            if checkpoints.due(steps):
                checkpoints.save({
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "epoch_generator": epoch_generator, "torch_rng": torch.get_rng_state(),
                    "epoch": epoch, "batch": batch + 1, "step": steps, "history": history,
                    "batches": batches, "total": float(total), "selection": selection.checkpoint(),
                })
        if not on_cpu and not math.isfinite(float(total)):  # the steps since the last periodic check
            raise not_finite(float(total), epoch, f"a step after step {steps - steps % FINITE_CHECK_EVERY}")
        val = evaluate(model, task, x_val, y_val, max(cfg.batch_size, 1024), val_lengths)
        row = {"epoch": epoch, "step": steps, "train_loss": float(total) / max(batches, 1),
               "seconds": time.perf_counter() - started, **{f"val_{k}": v for k, v in val.items()}}
        history.append(row)
        if report:
            report({"kind": "epoch", "node": request.name, "epoch": epoch, "epochs": cfg.epochs,
                    "total_steps": total_steps, **row})
        if selection.update(row, model):
            break

    final = final_metrics(selection.finish(model, history), request.name)
    test = test_metrics(splits, lambda split: evaluate(
        model, task, split[task.input].to(device), split[task.loss.target].to(device), max(cfg.batch_size, 1024),
        split["length"].to(device) if "length" in split else None), (task.input, task.loss.target), where)
    metrics = {"final": final, "history": history, "train_examples": n, "val_examples": len(x_val),
               "input": input_record(task.input, x_train), **selection.summary(), **test,
               "resumed_from_step": resumed["step"] if resumed else None,
               **({"checkpoint_discarded": checkpoints.discarded} if checkpoints.discarded else {})}
    return NodeOutput(state_to_numpy(model), metrics, inherited, str(device), steps)

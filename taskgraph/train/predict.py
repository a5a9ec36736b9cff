"""A finished node's model rebuilt from its weights, and its raw outputs turned into answers.

``build_trained_module`` makes the node's ``NodeModel`` or ``JointModel`` as training made it and
loads the whole saved state (strict: every name and shape must match). ``answers`` reads a head's
raw output the way the metrics do (argmax, logit > 0, a crf head's Viterbi path).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from taskgraph.errors import ArtifactError
from taskgraph.train.crf import viterbi
from taskgraph.train.model import NodeModel

__all__ = ["build_trained_module", "answers", "infer_width", "input_record", "score_node", "predict_split"]


def input_record(field: str, x: torch.Tensor) -> dict[str, Any]:
    """What ``metrics.json`` keeps of a node's input, so the model can be rebuilt and fed without
    the data: the field, one example's shape, the dtype and the width the first module was built for."""
    return {"field": field, "shape": list(x.shape[1:]), "dtype": str(x.dtype).removeprefix("torch."),
            "width": int(x.shape[-1])}


def build_trained_module(name: str, task: Any, state: dict[str, np.ndarray], width: int | None,
                         where: str) -> torch.nn.Module:
    """The node's model with ``state`` loaded; ``width`` is the input's last axis as training saw it
    (inferred from the weights' shapes for runs that did not record it)."""
    if width is None:
        width = infer_width(task, state, where)
    at = f"tasks.{name}"
    if task.kind == "multitask":
        from taskgraph.train.multitask import JointModel

        model: torch.nn.Module = JointModel(task, in_dim=width, where=at)
    else:
        model = NodeModel(dict(task.modules), in_dim=width, where=at)
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or extra or wrong:
        detail = "; ".join(part for part in (
            f"missing {missing[:5]}" if missing else "", f"unexpected {extra[:5]}" if extra else "",
            f"other shapes for {wrong[:5]}" if wrong else "") if part)
        raise ArtifactError(f"{where} does not fit node '{name}' of this graph.yaml ({detail}). "
                            "Was the run folder edited? Retrain the node.")
    model.load_state_dict({k: torch.from_numpy(np.array(v, copy=True)) for k, v in state.items()})
    return model


def infer_width(task: Any, state: dict[str, np.ndarray], where: str) -> int:
    """The input width whose parameter shapes (from the module configs alone) match the saved ones."""
    modules = dict(task.modules)
    candidates = sorted({int(d) for v in state.values() for d in np.shape(v)} | {1})
    for width in candidates:
        current: int | None = width
        fits, checked = True, False
        for name, config in modules.items():
            shapes = config.param_shapes(current)
            if shapes is None:
                break
            saved = {k[len(name) + 1:]: tuple(np.shape(v)) for k, v in state.items() if k.startswith(f"{name}.")}
            if shapes != saved:
                fits = False
                break
            checked = True
            current = config.output_dim(config.resolved_in(current))
        if fits and checked:
            return width
    raise ArtifactError(f"{where}: the input width of this node cannot be read from its weights (a run from "
                        "before input shapes were recorded, with user modules). Retrain the node.")


def answers(output: torch.Tensor, kind: str, length: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """One head's answers from its raw output (see ``TrainedNode.predict``)."""
    if kind == "tags" and output.dim() >= 4:  # crf potentials (batch, time, tags, tags)
        lengths = length if length is not None else torch.full((output.shape[0],), output.shape[1])
        return {"class": viterbi(output, lengths.to(output.device))}
    if kind in ("classes", "sequence_classes"):
        return {"class": output.argmax(dim=-1), "probabilities": output.softmax(dim=-1)}
    if kind == "probability":
        logit = output.squeeze(-1) if output.shape[-1:] == (1,) else output
        return {"probability": torch.sigmoid(logit), "class": (logit > 0).long()}
    if kind == "values":
        return {"value": output.squeeze(-1) if output.shape[-1:] == (1,) else output}
    return {"embedding" if kind == "embedding" else "output": output}


def score_node(task: Any, model: torch.nn.Module, splits: dict[str, dict[str, torch.Tensor]],
               device: str | torch.device = "cpu") -> dict[str, float]:
    """A node's loss and metrics on one split per data source, by the code training validates with
    (same batch sizes, same cutting of sequence batches), so a node scored on its validation split
    gives the run's own values."""
    splits = {s: {k: v.to(device) for k, v in split.items()} for s, split in splits.items()}
    batch = task.train.batch_size if task.train else 128
    if task.kind == "multitask":
        from taskgraph.train.multitask import _Joint

        return _Joint(task, model).evaluate(splits, max(batch, 256))
    from taskgraph.train.loop import evaluate

    split = splits[task.data] if task.data in splits else next(iter(splits.values()))
    return evaluate(model, task, split[task.input], split[task.loss.target], max(batch, 1024), split.get("length"))


def predict_split(node: Any, split: dict[str, torch.Tensor], batch_size: int, device: str | torch.device = "cpu",
                  on_batch: Any = None) -> dict[str, dict[str, torch.Tensor]]:
    """``node.predict`` over a whole split, batch by batch (sequence batches cut to their longest
    sentence, as evaluation does), in the split's order; ``on_batch(done, total)`` after each batch."""
    from taskgraph.train.data import evaluate_batches

    field = node.input.field
    fields = {k: v.to(device) for k, v in split.items() if k in (field, "length")}
    total, done = len(fields[field]), [0]

    def forward(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raw = node.outputs(batch[field], batch.get("length"))  # packed sequences, as in evaluation
        done[0] += len(batch[field])
        if on_batch is not None:
            on_batch(done[0], total)
        return raw

    raw = evaluate_batches(fields, [field], batch_size, forward)
    length = fields.get("length")
    return {head: answers(output, node.heads[head].kind, length) for head, output in raw.items()}

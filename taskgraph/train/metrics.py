"""Evaluation metrics a task may list (``metrics: [accuracy]``), computed on whole splits."""

from __future__ import annotations

from collections.abc import Callable

import torch

from taskgraph.train.crf import viterbi
from taskgraph.train.registry import Registry

__all__ = ["METRIC_FNS", "compute_metric", "predictions", "match_target", "iob_spans", "IGNORE"]

MetricFn = Callable[[torch.Tensor, torch.Tensor], float]
METRIC_FNS: Registry[MetricFn] = Registry("metric")


def match_target(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A head with one output predicts a scalar per example: drop its last axis to match the target."""
    if output.dim() == target.dim() + 1 and output.shape[-1] == 1:
        return output.squeeze(-1)
    return output


def predictions(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Class predictions: argmax over classes, logit > 0 for a one-output (binary) head, or the
    Viterbi path of a ``crf`` head's potentials ``(batch, time, tags, tags)``."""
    if output.dim() == target.dim() + 2 and target.dim() == 2:
        return viterbi(output, (target != IGNORE).sum(dim=1))
    output = match_target(output, target)
    if output.dim() == target.dim():
        return (output > 0).long()
    return output.argmax(dim=-1)


#: Label value of padding and missing labels (torch's ``ignore_index``): metrics skip it.
IGNORE = -100


def _labelled(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened predictions and labels where a label exists (integer targets != -100, float
    targets not NaN: the losses' rule, so a binary task with missing labels scores its labelled rows)."""
    pred, true = pred.flatten(), target.flatten()
    keep = ~torch.isnan(true) if true.is_floating_point() else true != IGNORE
    return pred[keep], true[keep].long()


@METRIC_FNS.register("accuracy")
def accuracy(output: torch.Tensor, target: torch.Tensor) -> float:
    pred, true = _labelled(predictions(output, target), target)
    return (pred == true).float().mean().item() if len(true) else float("nan")


@METRIC_FNS.register("macro_f1")
def macro_f1(output: torch.Tensor, target: torch.Tensor) -> float:
    pred, true = _labelled(predictions(output, target), target)
    scores = []
    for cls in torch.unique(torch.cat([pred, true])):
        tp = ((pred == cls) & (true == cls)).sum().item()
        fp = ((pred == cls) & (true != cls)).sum().item()
        fn = ((pred != cls) & (true == cls)).sum().item()
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(sum(scores) / max(len(scores), 1))


def _regression(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    output = match_target(output, target)
    if target.is_floating_point():  # NaN: a missing label, left out as the losses leave it out
        keep = ~torch.isnan(target)
        return output[keep] - target[keep].to(output.dtype)
    return output - target.to(output.dtype)


@METRIC_FNS.register("mse")
def mse(output: torch.Tensor, target: torch.Tensor) -> float:
    return _regression(output, target).pow(2).mean().item()


@METRIC_FNS.register("mae")
def mae(output: torch.Tensor, target: torch.Tensor) -> float:
    return _regression(output, target).abs().mean().item()


def iob_spans(labels: list[int]) -> set[tuple[int, int, int]]:
    """(type, start, end) chunks of one IOB sequence with O=0, B-k=2k+1, I-k=2k+2, as conlleval reads it:
    an I-k that does not continue a k chunk starts one, and any other tag ends the open chunk."""
    spans: set[tuple[int, int, int]] = set()
    open_type, start = None, 0
    for i, tag in enumerate([*labels, 0]):  # a final O closes the last chunk
        kind = None if tag <= 0 else (tag - 1) // 2
        begins = tag > 0 and (tag % 2 == 1 or kind != open_type)
        if open_type is not None and (tag <= 0 or begins):
            spans.add((open_type, start, i))
            open_type = None
        if begins:
            open_type, start = kind, i
    return spans


@METRIC_FNS.register("span_f1")
def span_f1(output: torch.Tensor, target: torch.Tensor) -> float:
    """Micro F1 over chunks (conlleval's FB1 / 100): a chunk counts when its type and both ends match.

    ``output`` is ``(sentences, time, tags)``, a crf head's potentials (decoded by Viterbi) or
    predicted ids; ``target`` ``(sentences, time)``
    with -100 on padding, which is dropped before chunks are read.
    """
    if output.dim() == target.dim() + 2:  # a crf head: its Viterbi paths
        pred = predictions(output, target)
    else:
        pred = output.argmax(dim=-1) if output.dim() == target.dim() + 1 else output
    if target.dim() == 1:
        pred, target = pred[None], target[None]
    found = correct = gold = 0
    for p_row, t_row in zip(pred.long().tolist(), target.long().tolist()):
        keep = [i for i, t in enumerate(t_row) if t != IGNORE]
        p_spans = iob_spans([p_row[i] for i in keep])
        t_spans = iob_spans([t_row[i] for i in keep])
        found, gold, correct = found + len(p_spans), gold + len(t_spans), correct + len(p_spans & t_spans)
    if correct == 0:
        return 0.0
    precision, recall = correct / found, correct / gold
    return 2 * precision * recall / (precision + recall)


def compute_metric(name: str, output: torch.Tensor, target: torch.Tensor) -> float:
    return float(METRIC_FNS.get(name)(output, target))


@METRIC_FNS.register("binary_f1")
def binary_f1(output: torch.Tensor, target: torch.Tensor) -> float:
    """F1 of the positive class: rare events (boundaries) where accuracy rewards always saying no."""
    pred, target = predictions(output, target).flatten(), target.flatten()
    keep = ~torch.isnan(target) if target.is_floating_point() else target != IGNORE  # missing labels
    pred, true = pred[keep].bool(), target[keep] > 0.5
    tp = (pred & true).sum().item()
    fp = (pred & ~true).sum().item()
    fn = (~pred & true).sum().item()
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def _ranking_pairs(output: torch.Tensor, target: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(scores, 0/1 labels) per ranking problem: one for a binary head (its logit), one per class
    (one-vs-rest on the softmax) for a multi-class head; missing labels (-100, NaN) left out."""
    out = match_target(output, target)
    if out.dim() == target.dim():  # one logit per example: binary
        keep = ~torch.isnan(target) if target.is_floating_point() else target != IGNORE
        return [(out[keep].flatten().double(), (target[keep].flatten() > 0.5).long())]
    probs = out.softmax(dim=-1).reshape(-1, out.shape[-1]).double()
    true = target.flatten()
    keep = true != IGNORE if not true.is_floating_point() else ~torch.isnan(true)
    probs, true = probs[keep], true[keep].long()
    return [(probs[:, k], (true == k).long()) for k in range(probs.shape[-1])]


def _auc(scores: torch.Tensor, labels: torch.Tensor) -> float | None:
    """ROC AUC as the Mann-Whitney U statistic: ties count one half (average ranks). None when one
    class is absent (the AUC is undefined there)."""
    pos, neg = int(labels.sum()), int((1 - labels).sum())
    if pos == 0 or neg == 0:
        return None
    order = torch.argsort(scores)
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=scores.dtype)
    _, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).to(scores.dtype)
    average = ends - (counts.to(scores.dtype) - 1) / 2  # mean rank of each run of equal scores
    ranks[order] = average[inverse]
    return float((ranks[labels == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _average_precision(scores: torch.Tensor, labels: torch.Tensor) -> float | None:
    """Sum over thresholds (each distinct score, high to low) of (recall gained) x precision, as
    scikit-learn's ``average_precision_score`` (no interpolation). None without a positive."""
    pos = int(labels.sum())
    if pos == 0:
        return None
    order = torch.argsort(scores, descending=True, stable=True)
    s, y = scores[order], labels[order].double()
    tp, seen = torch.cumsum(y, 0), torch.arange(1, len(y) + 1, dtype=torch.float64)
    last = torch.ones(len(s), dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]  # the last example of each run of equal scores is a threshold
    tp, seen = tp[last], seen[last]
    precision, recall = tp / seen, tp / pos
    gained = torch.diff(recall, prepend=torch.zeros(1, dtype=torch.float64))
    return float((gained * precision).sum())


def _mean_over_pairs(fn: Callable[[torch.Tensor, torch.Tensor], float | None], output: torch.Tensor,
                     target: torch.Tensor) -> float:
    values = [v for v in (fn(s, y) for s, y in _ranking_pairs(output, target)) if v is not None]
    return float(sum(values) / len(values)) if values else float("nan")


@METRIC_FNS.register("auc")
def auc(output: torch.Tensor, target: torch.Tensor) -> float:
    """ROC AUC of a binary head's logit; for a multi-class head the mean one-vs-rest AUC over the
    classes present (macro), on softmax probabilities."""
    return _mean_over_pairs(_auc, output, target)


@METRIC_FNS.register("average_precision")
def average_precision(output: torch.Tensor, target: torch.Tensor) -> float:
    """Average precision (area under the precision-recall steps); one-vs-rest macro for multi-class."""
    return _mean_over_pairs(_average_precision, output, target)

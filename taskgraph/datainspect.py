"""What a loader produced, in words (``taskgraph data inspect``): split sizes, each field's dtype and
shape, label distributions and the share of missing labels (-100 for ids, NaN for floats: the
conventions of docs/data.md), so a user sees the data before a node trains on it."""

from __future__ import annotations

from typing import Any

import torch

from taskgraph.errors import TrainError
from taskgraph.train.data import load_data
from taskgraph.train.metrics import IGNORE

__all__ = ["describe"]

#: Labels with more distinct values than this show a range, not a table.
MAX_CLASSES_SHOWN = 12


def describe(name: str, config: Any, targets: dict[str, list[str]]) -> list[str]:
    """Lines describing data source ``name``; ``targets``: field -> tasks that predict it."""
    try:
        splits = load_data(config)
    except TrainError as exc:
        raise TrainError(f"data '{name}': {exc}") from exc
    train, val = splits.train, splits.val
    lines = [f"{name} (loader {config.loader}): train {_count(train)} examples, val {_count(val)}"]
    for field in train:
        t, v = train[field], val.get(field)
        shape = "x".join(str(s) for s in t.shape[1:]) or "scalar"
        if "length" in train and t.dim() >= 2 and field != "length":
            shape += " (padded: see length)"
        role = f"  target of {', '.join(targets[field])}" if field in targets else ""
        lines.append(f"  {field:<12} {str(t.dtype).removeprefix('torch.'):<8} per example {shape}{role}")
        if field in targets:
            for split_name, split in (("train", train), ("val", val)):
                if field in split:
                    lines.append(f"    {split_name:<5} {_labels(split[field], _inside(split, field))}")
        elif field == "length":
            lines.append(f"    lengths: {_range(t.float())} (train), longest val {int(v.max()) if v is not None and len(v) else 0}")
        else:
            lines.append(f"    values: {_range(t.float()) if t.numel() else 'none'}")
    missing = sorted(set(targets) - set(train))
    if missing:
        lines.append(f"  (no field {', '.join(missing)}: a task's target the loader does not give)")
    return lines


def _count(split: dict[str, torch.Tensor]) -> str:
    return f"{len(next(iter(split.values()))):,}" if split else "0"


def _range(values: torch.Tensor) -> str:
    finite = values[torch.isfinite(values)]
    if not finite.numel():
        return "no finite value"
    return (f"min {finite.min().item():.4g}, max {finite.max().item():.4g}, mean {finite.mean().item():.4g}, "
            f"std {finite.std().item() if finite.numel() > 1 else 0.0:.4g}")


def _inside(split: dict[str, torch.Tensor], field: str) -> torch.Tensor | None:
    """For a padded sequence field next to ``length``: which positions are inside a sentence (padding is
    not a missing label)."""
    values, lengths = split[field], split.get("length")
    if lengths is None or values.dim() < 2 or field == "length":
        return None
    steps = torch.arange(values.shape[1])
    return steps[None, :] < lengths[:, None]


def _labels(values: torch.Tensor, inside: torch.Tensor | None = None) -> str:
    """``missing 12.5%; 0: 40 (57%), 1: 30 (43%)`` (entries, so token labels count tokens; padding is
    left out where ``inside`` says which positions are real)."""
    flat = values[inside] if inside is not None else values.reshape(-1)
    if flat.is_floating_point():
        missing = torch.isnan(flat)
    else:
        missing = flat == IGNORE
    present = flat[~missing]
    share = missing.float().mean().item() if flat.numel() else 0.0
    head = f"{present.numel():,} labelled, missing {share:.1%}"
    if not present.numel():
        return head
    classes, counts = torch.unique(present, return_counts=True)
    if flat.is_floating_point() and len(classes) > 2:
        return f"{head}; {_range(present.float())}"
    if len(classes) > MAX_CLASSES_SHOWN:
        top = counts.argsort(descending=True)[:5]
        shown = ", ".join(f"{_value(classes[i])}: {counts[i].item():,}" for i in top.tolist())
        return f"{head}; {len(classes)} classes, most frequent {shown}"
    total = counts.sum().item()
    shown = ", ".join(f"{_value(c)}: {n:,} ({n / total:.0%})" for c, n in zip(classes, counts.tolist()))
    return f"{head}; {shown}"


def _value(value: torch.Tensor) -> str:
    number = value.item()
    return f"{number:g}" if isinstance(number, float) else str(number)

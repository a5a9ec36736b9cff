"""Which epoch's weights a node keeps (``train.select``) and when it stops early (``train.patience``).

``select: last`` (the default) keeps what the last epoch ended with, as before. ``select: best``
keeps a copy of the weights of the epoch whose validation ``monitor`` was best and puts them back
at the end, so the node's state, its reported metrics and any test score are those of one epoch.
``patience: N`` stops training after N epochs without a better ``monitor``. Single-task and joint
nodes share this, and a checkpoint carries the kept copy, so a resumed node selects the same epoch.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from taskgraph.errors import TrainError

__all__ = ["Selection", "monitored_names", "lower_is_better"]

_LOWER = ("loss", "mse", "mae")


def lower_is_better(name: str) -> bool:
    """Losses and errors go down; every other metric (accuracy, F1, AUC, user metrics) goes up."""
    return name.rsplit(".", 1)[-1] in _LOWER


def monitored_names(task: Any) -> list[str]:
    """The validation values a node reports each epoch (what ``monitor`` may name)."""
    return task.validation_names()


class Selection:
    """Tracks the monitored value over epochs; keeps the best weights when ``select: best``."""

    def __init__(self, task: Any, node: str):
        cfg = task.train
        self.keep_best = cfg.select == "best"
        self.patience = cfg.patience
        self.monitor = cfg.monitor or "loss"
        self.active = self.keep_best or self.patience is not None
        known = monitored_names(task)
        if self.active and self.monitor not in known:
            from taskgraph.spec.models import suggest

            raise TrainError(f"node '{node}': train.monitor '{self.monitor}' is not a validation value of this "
                             f"node.{suggest(self.monitor, known)}", node=node)
        self.lower = cfg.mode == "min" if cfg.mode else lower_is_better(self.monitor)
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.stopped_at: int | None = None

    def value(self, row: dict[str, Any]) -> float:
        """The monitored value of one history row (``val_`` keys); ``loss`` of a joint node is the sum."""
        key = f"val_{self.monitor}"
        if key in row:
            return float(row[key])
        return float(sum(v for k, v in row.items() if k.startswith("val_") and k.endswith(".loss")))

    def update(self, row: dict[str, Any], model: torch.nn.Module) -> bool:
        """Record one epoch's validation row; True when training should stop (patience ran out)."""
        if not self.active:
            return False
        value, epoch = self.value(row), int(row["epoch"])
        better = self.best_value is None or (math.isfinite(value) and (
            value < self.best_value if self.lower else value > self.best_value))
        if better:
            self.best_value, self.best_epoch = value, epoch
            if self.keep_best:
                self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if self.patience is not None and self.best_epoch is not None and epoch - self.best_epoch >= self.patience:
            self.stopped_at = epoch
            return True
        return False

    def finish(self, model: torch.nn.Module, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Put the kept weights back; returns the history rows whose validation values the node reports
        (the selected epoch's row last, so ``final_metrics`` reads it)."""
        if self.keep_best and self.best_state is not None:
            model.load_state_dict(self.best_state)
            return [row for row in history if row["epoch"] == self.best_epoch]
        return history

    def summary(self) -> dict[str, Any]:
        """What ``metrics.json`` records about the choice (empty for the default ``select: last``)."""
        if not self.active:
            return {}
        return {"select": "best" if self.keep_best else "last", "monitor": self.monitor,
                "selected_epoch": self.best_epoch if self.keep_best else None, "best_value": self.best_value,
                "stopped_early_at": self.stopped_at}

    # Checkpoints: the kept copy and the running best travel with the node's other state.
    def checkpoint(self) -> dict[str, Any]:
        return {"best_value": self.best_value, "best_epoch": self.best_epoch,
                **({"best_state": self.best_state} if self.best_state is not None else {})}

    def restore(self, saved: dict[str, Any] | None) -> None:
        if not saved:
            return
        self.best_value, self.best_epoch = saved.get("best_value"), saved.get("best_epoch")
        self.best_state = saved.get("best_state")

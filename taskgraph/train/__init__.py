"""Training layer (torch): module/loss/metric/loader registries and the loop that trains one node.

The names below load lazily: ``taskgraph.train.request`` (what a driver builds and submits) must
import without torch, and importing any submodule runs this file first.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Inheritance", "NodeOutput", "NodeRequest", "node_seed", "train_node"]


def __getattr__(name: str) -> Any:
    if name in ("Inheritance", "NodeRequest", "node_seed"):
        from taskgraph.train import request

        return getattr(request, name)
    if name in ("NodeOutput", "train_node"):
        from taskgraph.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'taskgraph.train' has no attribute {name!r}")

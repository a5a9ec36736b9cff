"""How a joint node turns its per-task losses into one update (``weighting: {method: ...}``).

The contract (LibMTL's): a ``Method`` gets the per-task losses and a ``Step`` (the shared
parameters, the trunk outputs and what the heads read) and performs the backward pass, so
``optimizer.step()`` follows. Loss weightings live in ``loss_weighting.py``, gradient
aggregators in ``aggregators.py``; both register here under the spec's ``method`` names.
"""

from __future__ import annotations

from typing import Any

from taskgraph.train.weighting.base import WEIGHTINGS, Method, Step, task_jacobian
from taskgraph.train.weighting import aggregators, loss_weighting  # noqa: F401,E402  (register)

__all__ = ["WEIGHTINGS", "Method", "Step", "build_weighting", "task_jacobian"]


def build_weighting(config: Any, tasks: list[str]) -> Method:
    """The method a node's ``weighting`` names, for its tasks in order."""
    return WEIGHTINGS.get(config.method)(config, tasks)

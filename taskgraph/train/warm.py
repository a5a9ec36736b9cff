"""What a fresh worker process pays once, before its first node can take a step: run ahead of time
on idle workers (the scheduler's ``warm``), so a child that starts on another worker than its
parent does not pay it on the critical path.

Importing torch and the training loop is only part of it: torch's first optimizer imports
``torch._dynamo`` (``torch.optim.Optimizer.__init__`` goes through ``torch._compile``), which pulls
in sympy and torch.distributed: 1.5-2 s on an idle core, 15-20 s on a busy 2-core machine. In a
chain whose nodes alternate between two workers (the child starts while its parent writes its
files), the second worker paid that inside its first node's training.
"""

from __future__ import annotations

__all__ = ["warm_up"]


def warm_up() -> None:
    """Import the training loop and take one optimizer step on a one-weight model (CPU only)."""
    import torch

    import taskgraph.train.loop  # noqa: F401 -- the node's own imports

    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # imports torch._dynamo, once per process
    model(torch.zeros(1, 1)).sum().backward()
    optimizer.step()

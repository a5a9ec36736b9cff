"""Data-parallel training of one node on several workers, through Ray Train's ``TorchTrainer``.

A node with ``resources: {workers: N, gpus_per_worker: 1}`` runs here instead of ``train_node``
directly: its Ray task only coordinates (it holds no CPU), and N Train workers each run the same
``train_node`` on their shard of the examples with the model wrapped in DDP, so gradients are
averaged every step. Every worker loads the inherited parameters itself (they arrive as arguments
through the object store); rank 0's result comes back through a small actor and goes downstream
like any node's state.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Any

import numpy as np
import torch

from taskgraph.errors import TaskgraphError, TrainError

__all__ = ["shard_split", "train_node_distributed"]


def shard_split(split: dict[str, torch.Tensor], rank: int, world: int, where: str = "") -> dict[str, torch.Tensor]:
    """Worker ``rank``'s equal share of a split (strided, remainder dropped).

    Equal shares matter: every worker must take the same number of steps, or DDP's all-reduce
    waits forever for the worker that stopped early.
    """
    n = len(next(iter(split.values())))
    per_worker = n // world
    if per_worker == 0:
        raise TrainError(
            f"{where}: {n} training examples cannot be split over {world} workers. "
            "Lower `resources.workers` or use more data (label_fraction)."
        )
    idx = torch.arange(rank, per_worker * world, world)
    return {k: v[idx] for k, v in split.items()}


class _ResultBox:
    """Holds rank 0's output until the coordinator takes it (a Train worker's own objects die with it)."""

    def __init__(self) -> None:
        self.value: Any = None

    def put(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value


def _worker_loop(config: dict[str, Any]) -> None:
    """Runs in each Ray Train worker."""
    import ray
    import ray.train
    import ray.train.torch

    from taskgraph.train.loop import train_node

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    out = train_node(
        config["request"],
        config["inputs"],
        device=ray.train.torch.get_device(),
        shard=(rank, world),
        wrap=ray.train.torch.prepare_model,
    )
    out.metrics["workers"] = world
    if rank == 0:
        ray.get(config["box"].put.remote(out))
    ray.train.report({"steps": out.steps})


def train_node_distributed(request: Any, upstream_states: dict[str, dict[str, np.ndarray]]) -> Any:
    """Train one node on ``resources.workers`` Ray Train workers; returns rank 0's ``NodeOutput``."""
    import ray

    try:
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
    except ImportError as exc:
        raise TrainError(
            f"node '{request.name}' asks for `workers`, which needs Ray Train: pip install 'ray[train]==2.60.*' "
            "on every machine of the cluster (the project's Dockerfile installs it).",
            node=request.name,
        ) from exc

    res = request.task.resources
    gpus = res.gpus_per_worker or 0.0
    per_worker: dict[str, float] = {"CPU": 1.0 if res.cpus_per_worker is None else res.cpus_per_worker}
    if gpus:
        per_worker["GPU"] = gpus
    if res.memory:
        per_worker["memory"] = float(res.memory)
    per_worker.update(res.custom)
    scaling: dict[str, Any] = {"num_workers": res.workers, "use_gpu": gpus > 0, "resources_per_worker": per_worker}
    if res.accelerator_type:
        scaling["accelerator_type"] = res.accelerator_type
    if res.labels:
        scaling["label_selector"] = dict(res.labels)
    if getattr(request, "checkpoint_dir", None):
        # Mid-node checkpoints are per process; ranks resuming from different steps would deadlock DDP.
        request = dataclasses.replace(request, checkpoint_dir=None)

    box = ray.remote(num_cpus=0)(_ResultBox).remote()
    storage = os.environ.get("TASKGRAPH_TRAIN_STORAGE") or os.path.join(tempfile.gettempdir(), "taskgraph-train")
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"request": request, "inputs": upstream_states, "box": box},
        scaling_config=ScalingConfig(**scaling),
        run_config=RunConfig(name=f"taskgraph-{request.name}-{os.getpid()}", storage_path=storage),
    )
    try:
        trainer.fit()
    except Exception as exc:
        cause = _root_cause(exc)
        if isinstance(cause, TaskgraphError):
            raise cause from exc
        raise TrainError(
            f"node '{request.name}': data-parallel training on {res.workers} workers failed: "
            f"{type(cause).__name__}: {cause}",
            node=request.name,
        ) from exc
    out = ray.get(box.get.remote())
    ray.kill(box)
    if out is None:
        raise TrainError(f"node '{request.name}': rank 0 returned no result.", node=request.name)
    return out


def _root_cause(exc: BaseException) -> BaseException:
    """The user's exception inside Ray Train's wrappers (TrainingFailedError -> worker error -> cause)."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, TaskgraphError):
            return exc
        nxt = getattr(exc, "cause", None) or exc.__cause__
        errors = getattr(exc, "worker_failures", None) or getattr(exc, "errors", None)
        if nxt is None and isinstance(errors, dict) and errors:
            nxt = next(iter(errors.values()))
        if nxt is None:
            return exc
        exc = nxt
    return exc

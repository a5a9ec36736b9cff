"""The Ray Serve deployments: one per trained node, and the router in front of them.

``NodeServer`` holds one node's model (loaded in the replica from the run directory, checked
against its manifest like every load) and answers batches: ``@serve.batch`` gathers concurrent
requests for up to ``batch_wait_ms``, at most ``max_batch_size`` examples, and runs them as one
forward pass. Requests whose examples differ in shape (sentence lengths) run side by side, each
unpadded, so an answer never depends on what else was in the batch; a request's ``length`` goes
to the modules that take it (a BiLSTM packs by it), as in training. A joint node answers every
head; heads that read other heads run after them, inside the node's own forward.

``GraphRouter`` is the HTTP ingress: it checks the JSON request (``codec``), cuts it into
batch-sized pieces and sends them to the requested nodes' deployments through their deployment
handles at once (Serve model composition), then puts the answers back together.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
from ray import serve
from ray.serve.handle import DeploymentHandle

from taskgraph.errors import TaskgraphError
from taskgraph.serve.codec import NodeInput, RequestError, parse_request, to_json

__all__ = ["NodeServer", "GraphRouter"]


def _examples(items: list[dict[str, Any]]) -> int:
    """A batch's size in examples, not requests: ``max_batch_size`` bounds one forward pass."""
    return sum(len(item["x"]) for item in items)


@serve.deployment
class NodeServer:
    """One node's model behind dynamic batching."""

    def __init__(self, run_dir: str, node: str, max_batch_size: int, batch_wait_s: float, threads: int):
        import torch

        from taskgraph.trained import load_node

        torch.set_num_threads(max(1, threads))  # replicas share the machine: no oversubscription
        self.device = "cuda" if torch.cuda.is_available() else "cpu"  # Ray hides GPUs not reserved
        self.trained = load_node(run_dir, node, device=self.device)
        self.kinds = {name: head.kind for name, head in self.trained.heads.items()}
        self.answer.set_max_batch_size(max_batch_size)
        self.answer.set_batch_wait_timeout_s(batch_wait_s)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005, batch_size_fn=_examples)
    async def answer(self, items: list[dict[str, Any]]) -> list[dict[str, dict[str, np.ndarray]]]:
        return self.answer_now(items)

    def answer_now(self, items: list[dict[str, Any]]) -> list[dict[str, dict[str, np.ndarray]]]:
        """Each item's answers per head, running items of one shape as one forward pass."""
        import torch

        from taskgraph.train.predict import answers

        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault((item["x"].shape[1:], item["x"].dtype.str), []).append(i)
        results: list[Any] = [None] * len(items)
        for members in groups.values():
            x = torch.from_numpy(np.concatenate([items[i]["x"] for i in members])).to(self.device)
            lengths = None
            if any(items[i]["length"] is not None for i in members):  # a request without: every step counts
                steps = x.shape[1]
                lengths = torch.from_numpy(np.concatenate([
                    items[i]["length"] if items[i]["length"] is not None else np.full(len(items[i]["x"]), steps)
                    for i in members]))
            outputs = self.trained.outputs(x, lengths)
            start = 0
            for i in members:
                n, item = len(items[i]["x"]), items[i]
                length = None if item["length"] is None else torch.from_numpy(item["length"]).to(self.device)
                result = {}
                for head, out in outputs.items():
                    part = out[start : start + n]
                    found = answers(part, self.kinds[head], length)
                    if item["raw"]:
                        found = {**found, "output": part}
                    result[head] = {k: v.detach().cpu().numpy() for k, v in found.items()}
                results[i] = result
                start += n
        return results

    async def __call__(self, item: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
        return await self.answer(item)


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000)
class GraphRouter:
    """HTTP in, JSON out: ``GET /`` describes the served nodes, ``POST /`` answers a request."""

    def __init__(self, graph: str, served: dict[str, NodeInput], max_batch: dict[str, int],
                 handles: dict[str, DeploymentHandle]):
        self.graph, self.served, self.max_batch, self.handles = graph, served, max_batch, handles

    async def __call__(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        if request.method == "GET":
            return JSONResponse({"graph": self.graph, "nodes": {n: i.describe() for n, i in self.served.items()}})
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return JSONResponse({"error": f"the request body is not JSON ({exc}). Send a JSON object."}, 400)
        try:
            return JSONResponse({"nodes": await self.answer(body)})
        except (TaskgraphError, IndexError) as exc:  # a request the model refuses (an id past a vocabulary)
            return JSONResponse({"error": _message(exc)}, 400)

    async def answer(self, body: Any) -> dict[str, Any]:
        """Every requested node's answers, the nodes queried concurrently, large batches in pieces."""
        request = parse_request(body, self.served)
        pieces: dict[str, list[Any]] = {}
        for node in request.nodes:
            x = request.arrays[self.served[node].field]
            step = self.max_batch[node]
            pieces[node] = [
                self.handles[node].remote({"x": x[i : i + step], "raw": request.raw,
                                           "length": None if request.length is None else request.length[i : i + step]})
                for i in range(0, len(x), step)
            ]
        try:
            done = {node: await asyncio.gather(*parts) for node, parts in pieces.items()}
        except Exception as exc:  # a replica's error arrives wrapped (RayTaskError): answer with its cause
            cause = getattr(exc, "cause", None) or exc.__cause__
            if isinstance(cause, (TaskgraphError, IndexError)):
                raise RequestError(_message(cause)) from exc
            raise
        return {node: to_json(_join(parts)) for node, parts in done.items()}


def _join(parts: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    if len(parts) == 1:
        return parts[0]
    return {head: {key: np.concatenate([p[head][key] for p in parts]) for key in parts[0][head]} for head in parts[0]}


def _message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, IndexError):
        return f"an input id is past a table of the model ({text}). Send ids the node was trained with."
    return text

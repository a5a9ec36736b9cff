"""JSON in, JSON out: a request's inputs as arrays checked against what each node reads, and answers as lists.

A request is ``{"inputs": {FIELD: batch}, "nodes": [...], "length": [...], "raw": false}``:
``inputs`` holds a batch (a list of examples) per input field the requested nodes read (``x``,
``tokens``); ``nodes`` defaults to every served node; ``length`` gives each padded sequence's
true length (a crf head's best path stops there); ``raw`` adds each head's raw output (logits,
potentials). Anything else is a ``RequestError``: one line, sent back as HTTP 400. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from taskgraph.errors import TaskgraphError
from taskgraph.export import has_time_axis
from taskgraph.spec.models import suggest

__all__ = ["NodeInput", "Request", "RequestError", "parse_request", "to_json", "EXAMPLE"]

EXAMPLE = '{"inputs": {"x": [[0.1, 0.2, ...]]}, "nodes": ["NODE"]}'


class RequestError(TaskgraphError):
    """The request cannot be answered as sent (HTTP 400); the message says what to change."""


@dataclass(frozen=True)
class NodeInput:
    """What a served node reads: its input field, one example's shape (axis 0 free for sequences)
    and dtype, and its heads' output kinds (``classes``, ``tags``, ...)."""

    field: str
    shape: tuple[int, ...] | None
    dtype: str
    heads: dict[str, str]

    @property
    def sequence(self) -> bool:
        return has_time_axis(self.shape, self.dtype)

    def describe(self) -> dict[str, Any]:
        shape: list[Any] = list(self.shape or ())
        if self.sequence:
            shape[0] = "length"
        return {"input": self.field, "shape": ["batch", *shape], "dtype": self.dtype, "heads": self.heads}


@dataclass
class Request:
    nodes: list[str]
    arrays: dict[str, np.ndarray]  # by input field
    length: np.ndarray | None = None
    raw: bool = False
    sizes: dict[str, int] = field(default_factory=dict)


def _array(name: str, value: Any, node: str, info: NodeInput) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=info.dtype)
    except (ValueError, TypeError, OverflowError):
        raise RequestError(f"inputs.{name} is not a rectangular array of {info.dtype} numbers: send a list of "
                           "examples of one shape (pad sequences to one length and send `length`).") from None
    want = info.shape
    if want is not None:
        fixed = want[1:] if info.sequence else want
        got = array.shape[2:] if info.sequence else array.shape[1:]
        if array.ndim != len(want) + 1 or tuple(got) != tuple(fixed) or (info.sequence and array.shape[1] < 1):
            shape = ", ".join(["batch", *(["length"] if info.sequence else []), *map(str, fixed)])
            raise RequestError(f"inputs.{name} has shape {list(array.shape)}; node '{node}' reads ({shape}). "
                               "Send a list of examples, even for one example.")
    if array.ndim < 1 or array.shape[0] < 1:
        raise RequestError(f"inputs.{name} is empty: send a list of at least one example.")
    return array


def parse_request(body: Any, served: dict[str, NodeInput]) -> Request:
    """The request, checked: known nodes, each node's input present with the right shape and dtype."""
    if not isinstance(body, dict):
        raise RequestError(f"the request body must be a JSON object, like {EXAMPLE}.")
    unknown = sorted(set(body) - {"inputs", "nodes", "length", "raw"})
    if unknown:
        raise RequestError(f"unknown request key '{unknown[0]}'.{suggest(unknown[0], ['inputs', 'length', 'nodes', 'raw'])}")
    nodes = body.get("nodes", list(served))
    if isinstance(nodes, str):
        nodes = [nodes]
    if not isinstance(nodes, list) or not nodes or not all(isinstance(n, str) for n in nodes):
        raise RequestError("`nodes` must be a list of node names (or leave it out for every served node).")
    for node in nodes:
        if node not in served:
            raise RequestError(f"node '{node}' is not served here.{suggest(node, served)}")
    inputs = body.get("inputs")
    if not isinstance(inputs, dict):
        raise RequestError(f"`inputs` must map each input field to a batch of examples, like {EXAMPLE}.")
    arrays: dict[str, np.ndarray] = {}
    for node in dict.fromkeys(nodes):
        info = served[node]
        if info.field not in inputs:
            raise RequestError(f"node '{node}' reads input '{info.field}'; the request has "
                               f"{', '.join(sorted(inputs)) or 'no inputs'}. Send it as inputs.{info.field}.")
        if info.field not in arrays:
            arrays[info.field] = _array(info.field, inputs[info.field], node, info)
    sizes = {f: int(a.shape[0]) for f, a in arrays.items()}
    length = body.get("length")
    if length is not None:
        length = _lengths(length, arrays, nodes, served)
    raw = body.get("raw", False)
    if not isinstance(raw, bool):
        raise RequestError("`raw` must be true or false.")
    return Request(list(dict.fromkeys(nodes)), arrays, length, raw, sizes)


def _lengths(value: Any, arrays: dict[str, np.ndarray], nodes: list[str], served: dict[str, NodeInput]) -> np.ndarray:
    seq = [a for f, a in arrays.items() if any(served[n].field == f and served[n].sequence for n in nodes)]
    if not seq:
        raise RequestError("`length` is for sequence inputs; the requested nodes read none. Leave it out.")
    try:
        length = np.asarray(value, dtype=np.int64)
    except (ValueError, TypeError, OverflowError):
        raise RequestError("`length` must be a list of integers, one per example.") from None
    batch, steps = seq[0].shape[0], seq[0].shape[1]
    if length.shape != (batch,) or length.min() < 1 or length.max() > steps:
        raise RequestError(f"`length` must hold one integer per example ({batch}), each from 1 to the padded "
                           f"length {steps}.")
    return length


def to_json(value: Any) -> Any:
    """Tensors and arrays as (nested) lists, recursively through dicts."""
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value

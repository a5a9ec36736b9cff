"""Trained nodes applied to data without training: ``evaluate`` (metrics) and ``predict`` (answers).

Both read a run folder with ``taskgraph.trained`` (verified weights, no unpickling) and data through
the same loaders and evaluation code as training (``train.loop.evaluate``, the joint node's
``evaluate``, batches cut to their longest sequence), so evaluating a node on the split it was
validated on gives the run's own numbers. Data is the node's own source, another source of the
graph (``--data NAME``), a file given to the node's generic loader as its test split
(``--data FILE``), or the graph's sources changed with ``--set``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskgraph.errors import TaskgraphError
from taskgraph.spec.models import suggest
from taskgraph.trained import TrainedNode, load_node, read_graph

__all__ = ["Scores", "evaluate_run", "predict_node", "node_data", "write_predictions", "SPLITS"]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Scores:
    """One node's metrics on one split of its data; ``recorded``: what the run itself reported there."""

    node: str
    split: str
    data: str
    metrics: dict[str, float]
    examples: int
    recorded: dict[str, float] | None


def node_data(spec: Any, node: str, data: str | None) -> tuple[dict[str, Any], str, str | None]:
    """The data configs a node reads, by source name, with ``data`` applied; the words for it; and
    the split a file implies (``test``). ``data``: None (the node's own), a source of the graph, or
    a file for the node's generic loader (table, conll, arrays) read as its test split."""
    task = spec.tasks[node]
    own = {s: spec.data[s] for s in task.data_sources()}
    if data is None:
        return own, ", ".join(own), None
    if data in spec.data:
        return {s: spec.data[data] for s in own}, data, None
    path = Path(data).expanduser()
    if path.exists() or any(sep in data for sep in "/\\") or path.suffix:
        if not path.is_file():
            raise TaskgraphError(f"--data {data}: no such file. Name a data source of the graph "
                                 f"({', '.join(spec.data)}) or an existing file.")
        configs = {}
        for source, config in own.items():
            if config.loader == "conll2000":  # a preset of the generic conll loader: same vocabulary, tags
                from taskgraph.train.datasets.conll2000 import as_conll

                config = as_conll(config)
            if "test" not in type(config).model_fields:
                raise TaskgraphError(f"--data {data}: node '{node}' reads '{source}' ({config.loader}), which cannot "
                                     "take a file; files work with the table, conll and arrays loaders. Name a data "
                                     "source of the graph, or change this one with --set data.NAME.OPTION=VALUE.")
            configs[source] = config.model_copy(update={"test": str(path.absolute())})
        return configs, str(path), "test"
    raise TaskgraphError(f"--data {data}: not a data source of the graph nor a file.{suggest(data, spec.data)}")


def _splits(node: TrainedNode, configs: dict[str, Any], split: str, words: str) -> dict[str, dict[str, Any]]:
    """The split of every source the node reads, with the fields it needs checked (one-line errors)."""
    from taskgraph.train.data import load_data

    out = {}
    for source, config in configs.items():
        where = f"node '{node.name}', data '{words if len(configs) == 1 else source}'"
        splits = load_data(config)
        modules = getattr(node.spec, "all_modules", {})  # an infonce target may name a module
        for name in [node.input.field] + [h.target for h in node.heads.values() if h.data == source]:
            if name not in modules:
                splits.field(split, name, where)
        out[source] = splits.split(split, where)
    return out


def evaluate_run(run_dir: str | os.PathLike[str], nodes: list[str] | None = None, data: str | None = None,
                 overrides: tuple[str, ...] = (), split: str | None = None, device: str = "cpu") -> list[Scores]:
    """Metrics of trained nodes (default: every finished node) on ``split`` (default ``val``, ``test``
    for a file) of their data, computed as training computed them."""
    from taskgraph.train.predict import score_node

    folder, spec = read_graph(run_dir, overrides)
    names = nodes or [n for n in spec.tasks if folder.node_complete(n)]
    results = []
    for name in names:
        node = load_node(run_dir, name, device=device, _read=(folder, spec))
        configs, words, implied = node_data(spec, name, data)
        chosen = split or implied or "val"
        splits = _splits(node, configs, chosen, words)
        metrics = score_node(node.spec, node.module, splits, device)
        recorded = node.metrics.get("final") if chosen == "val" else node.metrics.get("test") if chosen == "test" \
            else None
        examples = sum(len(s[node.input.field]) for s in splits.values())
        results.append(Scores(name, chosen, words, metrics, examples, recorded if data is None and not overrides
                              else None))
    return results


def predict_node(run_dir: str | os.PathLike[str], node: str, data: str | None = None, overrides: tuple[str, ...] = (),
                 split: str | None = None, device: str = "cpu", batch_size: int = 1024,
                 on_batch: Callable[[int, int], None] | None = None) -> tuple[dict[str, Any], str, str]:
    """Answers of one node for every example of a split: ``{"head.class": array, ...}`` (numpy, in the
    data's order; sequences padded, with ``length``), the data's description and the split."""
    import numpy as np

    from taskgraph.train.predict import predict_split

    folder, spec = read_graph(run_dir, overrides)
    trained = load_node(run_dir, node, device=device, _read=(folder, spec))
    configs, words, implied = node_data(spec, node, data)
    chosen = split or implied or "val"
    splits = _splits(trained, configs, chosen, words)
    source = next(iter(splits))  # a joint node: the node's own source (heads on other sources: theirs)
    answers = predict_split(trained, splits[source], batch_size, device, on_batch)
    columns = {f"{head}.{key}": value.cpu().numpy() for head, got in answers.items() for key, value in got.items()}
    if "length" in splits[source]:
        columns["length"] = splits[source]["length"].cpu().numpy()
    return {k: np.ascontiguousarray(v) for k, v in columns.items()}, words, chosen


def write_predictions(columns: dict[str, Any], output: Path) -> None:
    """``.npz`` (one array per column), ``.parquet`` or ``.jsonl`` (one row per example; sequence
    answers cut to the example's length, probabilities as lists)."""
    import numpy as np

    suffix = output.suffix.lower()
    if suffix == ".npz":
        with open(output, "wb") as handle:
            np.savez(handle, **columns)
        return
    rows = _rows(columns)
    if suffix == ".jsonl":
        import json

        with open(output, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
        return
    import pandas as pd

    pd.DataFrame(rows).to_parquet(output, index=False)


def _rows(columns: dict[str, Any]) -> list[dict[str, Any]]:
    n = len(next(iter(columns.values())))
    lengths = columns.get("length")
    rows = []
    for i in range(n):
        row = {}
        for name, values in columns.items():
            value = values[i]
            if lengths is not None and name != "length" and getattr(value, "ndim", 0) >= 1:
                value = value[: int(lengths[i])]
            row[name] = value.tolist() if hasattr(value, "tolist") else value
        rows.append(row)
    return rows


OUTPUT_SUFFIXES = (".parquet", ".jsonl", ".npz")

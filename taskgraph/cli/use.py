"""Commands that use a finished run's trained nodes: evaluate, predict, export, serve."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from taskgraph.cli.common import PlainOpt, _check_writable, _echo, _writing
from taskgraph.errors import TaskgraphError

RunArg = Annotated[Path, typer.Argument(help="A run folder printed by `taskgraph run`.", show_default=False)]
DataOpt = Annotated[
    Optional[str],
    typer.Option("--data", help="A data source of the graph, or a file for the node's table/conll/arrays loader "
                 "(read as its test split)."),
]
SplitOpt = Annotated[
    Optional[str], typer.Option("--split", help="train, val or test (default: val; test for a --data file).")
]
DataSetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Change the run's data: --set data.NAME.OPTION=VALUE (repeatable)."),
]
RunDirArg = Annotated[str, typer.Argument(help="A run folder (`taskgraph run` prints it).", show_default=False)]


def _check_split(split: str | None) -> None:
    from taskgraph.apply import SPLITS

    if split is not None and split not in SPLITS:
        raise TaskgraphError(f"--split {split}: not a split. Use one of {', '.join(SPLITS)}.")


def _check_sets(set_: list[str] | None) -> tuple[str, ...]:
    """Only data may change: a changed task would not be the model that was trained."""
    for item in set_ or []:
        if not item.startswith("data."):
            raise TaskgraphError(f"--set {item}: only data.NAME.OPTION=VALUE may change here (the nodes are what was "
                                 "trained). To change a task, run the graph again.")
    return tuple(set_ or ())


def evaluate(
    run_folder: RunArg,
    node: Annotated[Optional[list[str]], typer.Option("--node", "-n", help="Only this node (repeatable).")] = None,
    data: DataOpt = None,
    set_: DataSetOpt = None,
    split: SplitOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Metrics of trained nodes on a split of their data, or on other data, without training.

    On the split the run validated on (the default) the numbers equal the run's own.
    """
    from taskgraph.apply import evaluate_run

    _check_split(split)
    scores = evaluate_run(run_folder, node, data, _check_sets(set_), split)
    if as_json:
        _echo(json.dumps({s.node: {"split": s.split, "data": s.data, "examples": s.examples, "metrics": s.metrics}
                          for s in scores}, indent=2))
        return
    _echo(f"{'node':<16} {'split':<6} {'examples':>8}  metrics")
    for s in scores:
        _echo(f"{s.node:<16} {s.split:<6} {s.examples:>8}  " + ", ".join(f"{k}={v:.4f}" for k, v in s.metrics.items()))


def predict(
    run_folder: RunArg,
    node: Annotated[str, typer.Option("--node", "-n", help="The node whose answers to write.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="preds.parquet, preds.jsonl or preds.npz.")],
    data: DataOpt = None,
    set_: DataSetOpt = None,
    split: SplitOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Examples per batch.")] = 1024,
    plain: PlainOpt = False,
) -> None:
    """Answers of a trained node for every example of a split: class and probabilities, probability or
    value per head (sequence answers per token), in the data's order."""
    from taskgraph.apply import OUTPUT_SUFFIXES, predict_node, write_predictions

    _check_split(split)
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise TaskgraphError(f"-o {output}: write .parquet, .jsonl or .npz (the format follows the suffix).")
    _check_writable(output.parent if str(output.parent) else Path("."))
    if sys.stderr.isatty() and not plain:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            job = bar.add_task(f"predicting {node}", total=None)
            columns, words, chosen = predict_node(
                run_folder, node, data, _check_sets(set_), split, batch_size=batch_size,
                on_batch=lambda done, total: bar.update(job, completed=done, total=total))
    else:
        columns, words, chosen = predict_node(run_folder, node, data, _check_sets(set_), split, batch_size=batch_size)
    with _writing(output):
        write_predictions(columns, output)
    n = len(next(iter(columns.values())))
    _echo(f"wrote {output}: {n} examples of {words} ({chosen}), columns {', '.join(columns)}")


def export_(
    run_dir: RunDirArg,
    node: Annotated[str, typer.Option("--node", "-n", help="The node to export.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="model.pt2 (torch.export) or model.onnx.",
                                         show_default=False)],
) -> None:
    """Export a trained node to a file that runs without taskgraph (.pt2: torch.export; .onnx: ONNX)."""
    from taskgraph.export import FORMATS, export_node
    from taskgraph.trained import load_node

    if output.suffix.lower() not in FORMATS:
        raise TaskgraphError(f"-o {output}: name the file .pt2 (torch.export) or .onnx (ONNX).")
    trained = load_node(run_dir, node)
    with _writing(output):
        done = export_node(trained, output)
    shape = ", ".join(map(str, done.input_shape))
    lengths = ", length (batch) int64" if done.lengths else ""
    _echo(f"{done.path}: {done.format}, {done.bytes / 1e6:.2f} MB; input {done.input_name} ({shape}){lengths}; "
          f"outputs {', '.join(done.outputs)}; max |exported - eager| {done.max_difference:.1e}")
    if done.note:
        _echo(f"note: {done.note}")


def serve(
    run_dir: RunDirArg,
    nodes: Annotated[Optional[str], typer.Option("--nodes", help="Serve only these nodes (comma-separated).")] = None,
    replicas: Annotated[Optional[int], typer.Option("--replicas", min=1, help="Replicas per node.")] = None,
    cpus: Annotated[Optional[float], typer.Option("--cpus", min=0.0, help="CPUs per replica.")] = None,
    gpus: Annotated[Optional[float], typer.Option("--gpus", min=0.0, help="GPUs per replica.")] = None,
    max_batch_size: Annotated[Optional[int], typer.Option("--max-batch-size", min=1,
                                                          help="Most examples per forward pass.")] = None,
    batch_wait_ms: Annotated[Optional[float], typer.Option("--batch-wait-ms", min=0.0,
                                                           help="How long a replica waits to fill a batch.")] = None,
    host: Annotated[str, typer.Option("--host", help="Where HTTP listens (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="The HTTP port.")] = 8000,
    address: Annotated[Optional[str], typer.Option(help="An existing Ray cluster (default: embedded local Ray).")] = None,
    num_cpus: Annotated[Optional[int], typer.Option(help="CPUs of the embedded local Ray (default: all).")] = None,
) -> None:
    """Serve a run's trained nodes over HTTP on Ray Serve (JSON in, JSON out) until Ctrl-C.

    Replicas, GPUs and batching per node come from these flags, else the graph's `serve:` section.
    """
    import time

    from taskgraph.serve.app import prepare, start
    from taskgraph.spec.serving import Deployment

    names = [n.strip() for n in nodes.split(",") if n.strip()] if nodes else None
    flags = Deployment(replicas=replicas, cpus=cpus, gpus=gpus, max_batch_size=max_batch_size,
                       batch_wait_ms=batch_wait_ms)
    prepared = prepare(run_dir, names, flags)
    serving = start(prepared, host=host, port=port, address=address, num_cpus=num_cpus)
    try:
        _echo(f"serving {', '.join(prepared.served)} of {prepared.run_dir} at {serving.url} (Ctrl-C stops)")
        for name, d in prepared.deployments.items():
            _echo(f"  {name}: {d.replicas} replica(s), {d.cpus:g} CPU / {d.gpus:g} GPU each, batches of up to "
                  f"{d.max_batch_size} examples within {d.batch_wait_ms:g} ms")
        first = next(iter(prepared.served.values()))
        _echo(f"  try: curl {serving.url}   (describes the inputs)")
        _echo(f"       curl -X POST {serving.url} -d '{{\"inputs\": {{\"{first.field}\": [...]}}}}'")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        _echo("stopping.")
    finally:
        serving.stop()

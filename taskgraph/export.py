"""A trained node as a file that runs without taskgraph: ``torch.export`` (``.pt2``) or ONNX (``.onnx``).

The node becomes one program: its input tensor in, its output out (a tensor for a single-task
node, a dict of head outputs for a joint node; heads that read heads run in order inside). The
batch axis is dynamic, and so is the time axis of sequence inputs (token ids, or float inputs
of rank 3), so one file serves any batch size and sentence length. ``nn.LSTM`` is traced
through torch's while-loop decomposition (``torch.export._patches``): the default one unrolls
the sequence and fixes its length.

A sequence node whose modules read the batch's lengths (``forward(x, length=None)``: the
``bilstm`` packs by them, the ``transformer`` masks padding) takes them as a second input,
``length`` (``(batch,)`` int64), so a padded batch of unequal sentences gets the eager model's
outputs; packing itself cannot be traced, so the ``bilstm`` computes the same values by masking
while it is exported (``BiLSTM.by_mask``). Unpadded data passes each row's full length.

Every file is checked before it is kept: it is loaded back (``torch.export.load``, or an
onnxruntime session) and run on an input of another batch size and length than the one it was
traced with; unless its outputs equal the eager model's within ``tolerance``, nothing is written.
Sits beside ``trained`` (which rebuilds the model) above ``artifacts``; the CLI wires it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskgraph.errors import TaskgraphError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from taskgraph.trained import InputInfo, TrainedNode

__all__ = ["Exported", "ExportError", "FORMATS", "export_node", "node_program", "example_inputs", "example_lengths",
           "run_file", "has_time_axis", "takes_lengths"]

#: Output formats by file suffix.
FORMATS = {".pt2": "torch.export", ".onnx": "onnx"}
#: Largest difference from the eager model an exported file may show (float32 outputs).
TOLERANCE = 1e-5


class ExportError(TaskgraphError):
    """The node cannot be exported in the asked format, or the exported file does not match eager."""


@dataclass(frozen=True)
class Exported:
    """What ``export_node`` wrote: the file, its size, which axes stay free, the check it passed."""

    path: Path
    format: str
    bytes: int
    input_name: str
    input_shape: tuple[str | int, ...]  # "batch", "length" for free axes, sizes for fixed ones
    outputs: tuple[str, ...]  # head names (a single-task node: the node's name)
    max_difference: float  # eager vs exported, on an input of another batch size and length
    note: str = ""
    lengths: bool = False  # a second input `length` (batch,) int64: each row's number of valid steps


def takes_lengths(trained: TrainedNode) -> bool:
    """Whether the exported node takes ``length`` beside its input: a sequence input, and a module
    of the node that reads lengths (``takes_length``; the containers that only hand them on aside)."""
    from taskgraph.train.layers import Sequential
    from taskgraph.train.model import NodeModel, takes_length

    if not has_time_axis(trained.input.shape, trained.input.dtype):
        return False
    return any(takes_length(m) for m in trained.module.modules() if not isinstance(m, (NodeModel, Sequential)))


def node_program(trained: TrainedNode, lengths: bool = False) -> nn.Module:
    """The node as one ``nn.Module``: a tensor out for a single-task node, ``{head: tensor}`` for a
    joint node, computed by the node's own ``outputs`` (so export and eager cannot drift apart);
    ``forward(x, length)`` when ``lengths``."""
    from torch import nn

    class NodeProgram(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = trained.module  # registers the parameters with the program

        def forward(self, x: torch.Tensor) -> Any:
            out = trained.outputs(x)
            return out if trained.joint else out[trained.name]

    class NodeProgramWithLengths(NodeProgram):
        def forward(self, x: torch.Tensor, length: torch.Tensor) -> Any:  # type: ignore[override]
            out = trained.outputs(x, length)
            return out if trained.joint else out[trained.name]

    return (NodeProgramWithLengths() if lengths else NodeProgram()).eval()


def _dtype(info: InputInfo) -> torch.dtype:
    import torch

    name = info.dtype or "float32"
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ExportError(f"input '{info.field}' has dtype '{name}', which torch does not know. Retrain the node.")
    return dtype


def _example_shape(info: InputInfo) -> tuple[int, ...]:
    if info.shape is None or info.dtype is None:  # runs before metrics.json recorded the input
        raise ExportError(f"this run did not record the shape and dtype of input '{info.field}' (it predates "
                          "that record). Train the node again (`taskgraph run GRAPH --force NODE`) to export it.")
    return tuple(info.shape)


def has_time_axis(shape: tuple[int, ...] | None, dtype: str | None) -> bool:
    """Whether one example's axis 0 is time: integer ids ``(time[, channels])`` or float frames
    ``(time, features)``; a flat float vector ``(features,)`` has none."""
    if not shape:
        return False
    integer = (dtype or "float32").startswith(("int", "uint", "bool"))
    return integer or len(shape) >= 2


def _time_axis(info: InputInfo, shape: tuple[int, ...]) -> bool:
    return has_time_axis(shape, info.dtype)


def example_lengths(batch: int, length: int) -> torch.Tensor:
    """Unequal lengths up to ``length`` (the longest row full, the others shorter, down to 1): a padded
    batch in which outputs differ wherever padding is read."""
    import torch

    return torch.tensor([max(length - 2 * i, 1) for i in range(batch)], dtype=torch.int64)


def example_inputs(info: InputInfo, batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """An input of ``batch`` examples (``length`` steps for sequences): ids 0/1 (padding and the
    first id, valid for every table), normal floats otherwise."""
    import torch

    shape = list(_example_shape(info))
    if shape and _time_axis(info, tuple(shape)):
        shape[0] = length
    generator = torch.Generator().manual_seed(seed)
    dtype = _dtype(info)
    if dtype.is_floating_point:
        return torch.randn((batch, *shape), generator=generator).to(dtype)
    return torch.randint(0, 2, (batch, *shape), generator=generator, dtype=dtype)


@contextlib.contextmanager
def _recurrent_loops() -> Iterator[None]:
    """LSTM/GRU traced as a while loop, so the time axis can stay dynamic (torch >= 2.10)."""
    try:
        from torch.export._patches import register_gru_while_loop_decomposition, register_lstm_while_loop_decomposition
    except ImportError:  # an older torch: the default decomposition (length fixed, then refused below)
        yield
        return
    with register_lstm_while_loop_decomposition(), register_gru_while_loop_decomposition():
        yield


def _trace(program: nn.Module, info: InputInfo, lengths: bool) -> tuple[Any, tuple[str | int, ...], str]:
    """``torch.export.export`` with a free batch (and time) axis; a model that fixes its sequence
    length (a user module that flattens time, say) is exported at that length, and said so.
    ``lengths``: the program also takes ``length`` (batch,), sharing the input's batch axis."""
    import torch
    from torch.export import Dim

    shape = _example_shape(info)
    sequence = bool(shape) and _time_axis(info, shape)
    batch = Dim("batch")

    def args(steps: int) -> tuple[torch.Tensor, ...]:
        x = example_inputs(info, 3, steps)
        return (x, example_lengths(3, steps)) if lengths else (x,)

    def dynamic(axes: dict[int, Any]) -> tuple[dict[int, Any], ...]:
        return (axes, {0: batch}) if lengths else (axes,)

    with _recurrent_loops():
        try:
            return (torch.export.export(program, args(7), dynamic_shapes=dynamic(
                        {0: batch, 1: Dim("length")} if sequence else {0: batch}), strict=False),
                    ("batch", "length", *shape[1:]) if sequence else ("batch", *shape), "")
        except torch._dynamo.exc.UserError as exc:  # a constraint violation: an axis cannot stay free
            if not sequence or "length" not in str(exc):
                raise ExportError(f"torch.export cannot give '{info.field}' a free batch axis: "
                                  f"{str(exc).strip().splitlines()[0]}") from None
        ep = torch.export.export(program, args(shape[0]), dynamic_shapes=dynamic({0: batch}), strict=False)
        return ep, ("batch", *shape), f"the model fixes the sequence length at {shape[0]} (as trained)"


def _onnx_modules() -> None:
    missing = []
    for module in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ExportError(f"ONNX export needs {', '.join(missing)}, not installed here. "
                          "Install them with `pip install 'taskgraph[export]'`, or export to .pt2 instead.")


def run_file(path: Path, x: torch.Tensor, outputs: tuple[str, ...], joint: bool,
             length: torch.Tensor | None = None) -> dict[str, Any]:
    """Run an exported file as a user would (no taskgraph model involved): ``{output: numpy array}``.
    ``length``: the second input of a file that takes one (``Exported.lengths``)."""
    import numpy as np

    args = (x,) if length is None else (x, length)
    if path.suffix == ".onnx":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {spec.name: value.numpy() for spec, value in zip(session.get_inputs(), args)}
        values = session.run(None, feed)
        return dict(zip(outputs, (np.asarray(v) for v in values)))
    import torch

    with torch.no_grad():
        out = torch.export.load(str(path)).module()(*args)
    return {k: v.numpy() for k, v in out.items()} if joint else {outputs[0]: out.numpy()}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch.export and the ONNX exporter narrate (deprecations, skipped torchvision ops, progress):
    the user gets our one line instead. Errors still propagate."""
    import logging
    import warnings

    loggers = [logging.getLogger(name) for name in ("torch", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def _write(ep: Any, path: Path, fmt: str, outputs: tuple[str, ...], input_names: list[str]) -> None:
    import torch

    if fmt == "torch.export":
        torch.export.save(ep, str(path))
        return
    with _recurrent_loops():
        program = torch.onnx.export(ep, dynamo=True, input_names=input_names, output_names=list(outputs),
                                    verbose=False)
    program.save(str(path))


def export_node(trained: TrainedNode, output: str | os.PathLike[str], *, tolerance: float = TOLERANCE) -> Exported:
    """Export one trained node to ``output`` (``.pt2`` or ``.onnx``), after checking the file.

    The file is written beside ``output`` under a temporary name, loaded back and compared with the
    eager model on an input it was not traced with; only a file within ``tolerance`` replaces ``output``.
    """
    import numpy as np
    import torch

    path = Path(output)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ExportError(f"cannot export to '{path.name}': name the file .pt2 (torch.export) or .onnx (ONNX).")
    if fmt == "onnx":
        _onnx_modules()
    lengths = takes_lengths(trained)
    if lengths and trained.input.field == "length":
        raise ExportError(f"node '{trained.name}' reads a field named 'length' and its modules take lengths: the "
                          "exported inputs would share one name. Rename the field in the data.")
    program = node_program(trained, lengths)
    outputs = tuple(trained.heads) if trained.joint else (trained.name,)
    with torch.no_grad(), _quiet():
        ep, input_shape, note = _trace(program, trained.input, lengths)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    temp_path = Path(temp)
    try:
        with _quiet():
            _write(ep, temp_path, fmt, outputs, [trained.input.field, *(["length"] if lengths else [])])
        fixed = _example_shape(trained.input)[0] if len(input_shape) > 1 else 1
        steps = 5 if "length" in input_shape else fixed
        probe = example_inputs(trained.input, 5, steps, seed=1)
        probe_lengths = example_lengths(5, steps) if lengths else None
        got = run_file(temp_path, probe, outputs, trained.joint, probe_lengths)
        with torch.no_grad():
            want = trained.outputs(probe, probe_lengths)
        worst = max(float(np.max(np.abs(got[k] - want[k].numpy()), initial=0.0)) for k in outputs)
        if not worst <= tolerance:
            raise ExportError(f"the exported {fmt} program of node '{trained.name}' differs from the trained model "
                              f"by {worst:.3g} (> {tolerance:g}) on a test input; nothing was written. "
                              "Please report this with the graph file.")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp_path, 0o666 & ~umask)  # mkstemp's 0600 would make the file private to its writer
        os.replace(temp_path, path)
    finally:
        temp_path.unlink(missing_ok=True)
    return Exported(path, fmt, path.stat().st_size, trained.input.field, input_shape, outputs, worst, note, lengths)

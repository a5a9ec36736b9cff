"""Parameters as safetensors files, written and read without copying the tensors.

The bytes are exactly those of ``safetensors.numpy.save`` (tests compare them for every dtype),
so files stay readable by any safetensors reader. What differs is the path: the library's
``save`` builds the whole file in a buffer and copies it into ``bytes`` (two copies of a 400 MB
module before it is hashed), and ``save_file`` would leave the digest to a second pass reading
the file back; ``write_params`` streams the arrays' memory to the file (a large file through one
8 MB buffer, past the page cache: ``store.write_chunks``), hashing each piece as it goes, so a
node's digest is taken once, while writing. ``parse_params`` returns read-only
views into the bytes it was given (as ``safetensors.numpy.load`` does, without its per-tensor
copies), after checking the header against the buffer: a file from anywhere is data, never code.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np

from taskgraph.artifacts import store
from taskgraph.errors import ArtifactError

__all__ = ["write_params", "parse_params", "params_chunks"]

#: numpy dtype -> safetensors dtype, ordered as the format's Rust writer lays tensors out
#: (larger dtype first by its enum order, then by name).
_DTYPES = {
    "uint64": "U64", "int64": "I64", "float64": "F64", "float32": "F32", "uint32": "U32", "int32": "I32",
    "float16": "F16", "uint16": "U16", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
}
_RANK = {code: rank for rank, code in enumerate(_DTYPES.values())}
_NUMPY = {code: np.dtype(name) for name, code in _DTYPES.items()}


def _flat(array: np.ndarray) -> np.ndarray:
    """The array's bytes as a flat little-endian uint8 view (a copy only if it was not contiguous)."""
    array = np.ascontiguousarray(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array.reshape(-1).view(np.uint8)


def params_chunks(state: dict[str, np.ndarray]) -> Iterator[memoryview]:
    """The safetensors file of ``state``, as pieces: the header, then each tensor's own memory."""
    entries = []
    for name, value in state.items():
        array = np.asarray(value)
        code = _DTYPES.get(array.dtype.name)
        if code is None:
            raise ArtifactError(f"parameter '{name}' has dtype {array.dtype}, which safetensors cannot store.")
        entries.append((_RANK[code], name, code, array))
    entries.sort(key=lambda e: (e[0], e[1]))
    header: dict[str, Any] = {}
    offset = 0
    for _rank, name, code, array in entries:
        size = array.size * array.dtype.itemsize
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    yield memoryview(struct.pack("<Q", len(text)) + text)
    for _rank, _name, _code, array in entries:
        if array.size:
            yield memoryview(_flat(array))


def write_params(location: store.Location, state: dict[str, np.ndarray]) -> dict[str, Any]:
    """Write ``state`` as safetensors (atomically, synced); returns its manifest record
    (``{"sha256", "size"}`` of the bytes written, hashed while writing)."""
    sha256, size = store.write_chunks(location, params_chunks(state))
    return {"sha256": sha256, "size": size}


def parse_params(data: bytes | memoryview) -> dict[str, np.ndarray]:
    """The tensors of a safetensors buffer, as read-only views into it (no copies).

    The header must describe the buffer exactly: known dtypes, offsets that tile the data in
    order, sizes that match the shapes; anything else is an ``ArtifactError``.
    """
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
    if len(view) < 8:
        raise ArtifactError("not a safetensors buffer: shorter than its 8-byte header length")
    (length,) = struct.unpack("<Q", view[:8])
    if length > len(view) - 8:
        raise ArtifactError(f"not a safetensors buffer: header of {length} bytes in {len(view)}")
    try:
        header = json.loads(bytes(view[8 : 8 + length]))
    except ValueError as exc:
        raise ArtifactError(f"not a safetensors buffer: header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ArtifactError("not a safetensors buffer: header is not an object")
    header.pop("__metadata__", None)
    base, out, spans = 8 + length, {}, []
    for name, info in header.items():
        try:
            dtype, shape = _NUMPY[info["dtype"]], tuple(int(d) for d in info["shape"])
            begin, end = (int(v) for v in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ArtifactError(f"not a safetensors buffer: bad entry for '{name}'") from None
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if min(shape, default=0) < 0 or end - begin != count * dtype.itemsize or begin < 0:
            raise ArtifactError(f"not a safetensors buffer: '{name}' has {end - begin} bytes for shape {list(shape)}")
        if base + end > len(view):
            raise ArtifactError(f"not a safetensors buffer: '{name}' ends past the end of the data")
        spans.append((begin, end))
        array = np.frombuffer(view, dtype=dtype.newbyteorder("<"), count=count, offset=base + begin)
        out[name] = array.reshape(shape)
    spans.sort()
    position = 0
    for begin, end in spans:
        if begin != position:
            raise ArtifactError("not a safetensors buffer: tensors overlap or leave gaps")
        position = end
    if base + position != len(view):
        raise ArtifactError(f"not a safetensors buffer: {len(view) - base - position} bytes after the tensors")
    return out

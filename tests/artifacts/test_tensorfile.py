"""Parameter files streamed from the arrays: the bytes of safetensors, hashed while written, no copies."""

from __future__ import annotations

import hashlib
import tracemalloc

import numpy as np
import pytest
from safetensors.numpy import load, save

from taskgraph.artifacts.rundir import PARAMS, write_node
from taskgraph.artifacts.tensorfile import parse_params, write_params
from taskgraph.errors import ArtifactError

DTYPES = [np.bool_, np.uint8, np.int8, np.int16, np.uint16, np.float16, np.int32, np.uint32, np.float32,
          np.float64, np.int64, np.uint64]


def random_states(count: int):
    rng = np.random.default_rng(0)
    yield {}
    yield {f"m.k{i}": np.ones(3, dtype) for i, dtype in enumerate(DTYPES)}  # every dtype, in one file
    for _ in range(count):
        state = {}
        for i in range(int(rng.integers(1, 7))):
            shape = tuple(int(d) for d in rng.integers(0, 4, size=int(rng.integers(0, 3))))
            dtype = DTYPES[int(rng.integers(len(DTYPES)))]
            state[f"mod{rng.integers(3)}.w{i}"] = np.asarray(rng.random(shape) * 10).astype(dtype)
        yield state


def test_files_are_byte_identical_to_safetensors_and_digested_while_written(tmp_path):
    for state in random_states(40):
        expected = save(state)
        record = write_params(tmp_path / "p.safetensors", state)
        assert (tmp_path / "p.safetensors").read_bytes() == expected, sorted(state)
        assert record == {"sha256": hashlib.sha256(expected).hexdigest(), "size": len(expected)}
        parsed, reference = parse_params(expected), load(expected)
        assert parsed.keys() == reference.keys()
        for key, value in reference.items():
            assert parsed[key].dtype == value.dtype and parsed[key].shape == value.shape
            assert np.array_equal(parsed[key], value)
            assert not parsed[key].flags.writeable  # views of the bytes, as safetensors gives


def test_writing_a_node_makes_no_copy_of_its_parameters(tmp_path):
    state = {"encoder.weight": np.ones((2500, 1000), np.float32), "head.bias": np.zeros(3, np.float32)}  # 10 MB
    tracemalloc.start()
    try:
        manifest = write_node(tmp_path / "node", state, {"final": {}})
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"writing 10 MB of parameters allocated {peak} bytes"
    assert manifest[PARAMS]["sha256"] == hashlib.sha256((tmp_path / "node" / PARAMS).read_bytes()).hexdigest()


@pytest.mark.parametrize("damage", ["gap", "overlap", "trailing", "dtype", "short"])
def test_a_header_that_does_not_tile_the_buffer_is_refused(damage):
    data = bytearray(save({"a": np.arange(4, dtype=np.int32), "b": np.ones(2, np.float32)}))
    n = int.from_bytes(data[:8], "little")
    header = bytes(data[8 : 8 + n])
    if damage == "trailing":
        data += b"\0\0\0\0"
    elif damage == "short":
        data = data[:-1]
    else:
        old = {"gap": b'"data_offsets":[8,24]', "overlap": b'"data_offsets":[8,24]', "dtype": b'"I32"'}[damage]
        new = {"gap": b'"data_offsets":[12,28]', "overlap": b'"data_offsets":[4,20]', "dtype": b'"X32"'}[damage]
        assert old in header, header
        data[8 : 8 + n] = header.replace(old, new, 1)
    with pytest.raises(ArtifactError, match="not a safetensors buffer"):
        parse_params(bytes(data))

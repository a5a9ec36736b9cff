"""The ``arrays`` loader: named arrays from ``.npz``, ``.safetensors`` or ``.npy`` files, each a field.

Nothing is unpickled (``np.load(allow_pickle=False)``; safetensors holds no code): an ``.npz``
with object arrays is refused with a message saying how to save it instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from taskgraph.errors import TrainError
from taskgraph.spec.filedata import ArraysData
from taskgraph.train.data import Split, Splits, split_by_fraction
from taskgraph.train.datasets.files import open_file, unknown

__all__ = ["load_arrays", "read_arrays"]


def _npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:  # object arrays need pickle: refused
        raise TrainError(f"{path}: cannot be read without unpickling ({exc}). Save plain numeric arrays "
                         "(np.save / np.savez with numbers, not Python objects).") from exc
    except OSError as exc:
        raise TrainError(f"{path}: not a .npy file ({exc}).") from exc


def _tensor(array: np.ndarray | torch.Tensor, where: str) -> torch.Tensor:
    """Floats as float32, integers as int64, booleans as float 0/1 (binary targets)."""
    tensor = torch.as_tensor(np.ascontiguousarray(array)) if isinstance(array, np.ndarray) else array
    if tensor.dtype == torch.bool:
        return tensor.float()
    if tensor.is_floating_point():
        return tensor.float()
    if tensor.dtype.is_complex:
        raise TrainError(f"{where}: complex arrays are not supported.")
    return tensor.long()


def read_arrays(path: Path) -> dict[str, torch.Tensor]:
    """Every array of one ``.npz`` or ``.safetensors`` file, or of a folder of ``<field>.npy`` files."""
    if path.is_dir():
        files = sorted(path.glob("*.npy"))
        if not files:
            raise TrainError(f"{path}: a folder of arrays needs <field>.npy files; found none.")
        return {f.stem: _tensor(_npy(f), str(f)) for f in files}
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {name: _tensor(archive[name], f"{path}[{name}]") for name in archive.files}
        except ValueError as exc:
            raise TrainError(f"{path}: holds an array that cannot be read without unpickling ({exc}). Save plain "
                             "numeric arrays.") from exc
        except OSError as exc:
            raise TrainError(f"{path}: not an .npz archive ({exc}).") from exc
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return {k: _tensor(v, f"{path}[{k}]") for k, v in load_file(str(path)).items()}
        except (SafetensorError, OSError) as exc:
            raise TrainError(f"{path}: not a safetensors file ({exc}).") from exc
    if suffix == ".npy":
        raise TrainError(f"{path}: one .npy file holds one array; name each field's file with "
                         "`npy: {field: file.npy}`, or give a folder of <field>.npy files.")
    raise TrainError(f"{path}: expected a .npz or .safetensors file or a folder of .npy files.")


def _checked(fields: Split, config: ArraysData, where: str) -> Split:
    """Only the fields asked for; every field as long as the others."""
    if config.fields is not None:
        for name in config.fields:
            if name not in fields:
                raise unknown("field", name, sorted(fields), f"{where}: fields")
        fields = {name: fields[name] for name in config.fields}
    sizes = {name: len(t) if t.dim() else 0 for name, t in fields.items()}
    if len(set(sizes.values())) > 1:
        raise TrainError(f"{where}: arrays of different lengths (first dimension): "
                         f"{', '.join(f'{k}={v}' for k, v in sorted(sizes.items()))}. Every field needs one row per example.")
    if not fields:
        raise TrainError(f"{where}: no arrays.")
    return fields


def load_arrays(config: ArraysData) -> Splits:
    """Named arrays as fields; ``train``/``val`` files, or one source split by ``val_fraction``."""
    if config.npy:
        fields = {name: _tensor(_npy(open_file(file, "arrays", f"npy.{name}")), file) for name, file in config.npy}
        return split_by_fraction(_checked(fields, config, "npy"), config.val_fraction, config.seed, config.test_fraction)
    files = config.files()
    read = {opt: _checked(read_arrays(open_file(p, "arrays", opt)), config, p) for opt, p in files.items()}
    if "val" in read:  # test, when given, is checked below
        missing = sorted(set(read["train"]) - set(read["val"]))
        if missing:
            raise TrainError(f"{files['val']}: no array '{missing[0]}', which {files['train']} has. "
                             f"Arrays: {', '.join(sorted(read['val']))}.")
        splits = Splits(train=read["train"], val={k: read["val"][k] for k in read["train"]})
    else:
        splits = split_by_fraction(read.get("path") or read["train"], config.val_fraction, config.seed,
                                   config.test_fraction)
    if "test" not in read:
        return splits
    missing = sorted(set(splits.train) - set(read["test"]))
    if missing:
        raise TrainError(f"{files['test']}: no array '{missing[0]}', which the training arrays have. "
                         f"Arrays: {', '.join(sorted(read['test']))}.")
    return Splits(train=splits.train, val=splits.val, test={k: read["test"][k] for k in splits.train})

"""The ``arrays`` loader: .npz, .safetensors and .npy files written here; nothing unpickled."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter
from safetensors.numpy import save_file

from taskgraph.errors import TrainError
from taskgraph.spec.components import DataConfig
from taskgraph.train.data import load_data


def _config(**kw):
    return TypeAdapter(DataConfig).validate_python({"loader": "arrays", **kw})


X = np.arange(20, dtype=np.float64).reshape(10, 2)
Y = np.arange(10, dtype=np.int32) % 3
FLAG = np.arange(10) % 2 == 0


def test_npz_and_safetensors_files_as_train_and_val(tmp_path):
    np.savez(tmp_path / "train.npz", x=X, y=Y, flag=FLAG)
    save_file({"x": X[:4], "y": Y[:4], "flag": FLAG[:4]}, str(tmp_path / "val.safetensors"))
    splits = load_data(_config(train=str(tmp_path / "train.npz"), val=str(tmp_path / "val.safetensors")))
    assert splits.train["x"].dtype == torch.float32 and splits.train["y"].dtype == torch.int64
    assert splits.train["flag"].dtype == torch.float32 and splits.train["flag"][:2].tolist() == [1.0, 0.0]
    assert torch.equal(splits.val["x"], torch.tensor(X[:4], dtype=torch.float32))
    only = load_data(_config(train=str(tmp_path / "train.npz"), val=str(tmp_path / "val.safetensors"),
                             fields=["x", "y"]))
    assert set(only.train) == {"x", "y"}
    with pytest.raises(TrainError, match=r"train.npz: fields: no field 'yy'. Did you mean 'y'\? Fields: flag, x, y"):
        load_data(_config(path=str(tmp_path / "train.npz"), fields=["yy"]))


def test_npy_mapping_and_folder_split_by_seeded_fraction(tmp_path):
    np.save(tmp_path / "feats.npy", X)
    np.save(tmp_path / "labels.npy", Y)
    config = _config(npy={"x": str(tmp_path / "feats.npy"), "y": str(tmp_path / "labels.npy")}, val_fraction=0.3, seed=2)
    a, b = load_data(config), load_data(_config(**config.model_dump()))
    assert len(a.train["x"]) == 7 and len(a.val["y"]) == 3 and torch.equal(a.val["x"], b.val["x"])
    folder = tmp_path / "arrays"
    folder.mkdir()
    np.save(folder / "x.npy", X)
    np.save(folder / "y.npy", Y)
    c = load_data(_config(path=str(folder), val_fraction=0.3, seed=2))
    assert torch.equal(c.val["x"], a.val["x"]) and torch.equal(c.train["y"], a.train["y"])
    assert {str(p.name) for p in config.reads()} == {"feats.npy", "labels.npy"}


def test_pickled_arrays_are_refused_and_lengths_checked(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(TrainError, match="cannot be read without unpickling"):
        load_data(_config(npy={"x": str(tmp_path / "obj.npy")}))
    np.savez(tmp_path / "bad.npz", x=X, y=Y[:5])
    with pytest.raises(TrainError, match="different lengths.*x=10, y=5"):
        load_data(_config(path=str(tmp_path / "bad.npz")))
    with pytest.raises(TrainError, match="one .npy file holds one array"):
        np.save(tmp_path / "one.npy", X)
        load_data(_config(path=str(tmp_path / "one.npy")))

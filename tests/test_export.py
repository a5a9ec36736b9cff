"""`taskgraph export`: .pt2 (torch.export) and .onnx files that run without taskgraph and give the
eager model's outputs within 1e-5, on a quickstart-like node, a text-like (embedding/BiLSTM/CRF)
node fed a padded batch of sentences of unequal lengths (and another padded length than it was
traced with) with those lengths as its second input, and a joint node (every head)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import taskgraph
from taskgraph.cli import main
from tests.served_graph import inputs

#: Runs the exported files in a fresh interpreter where importing taskgraph fails.
RUNNER = r"""
import sys

class NoTaskgraph:
    def find_spec(self, name, path=None, target=None):
        if name == "taskgraph" or name.startswith("taskgraph."):
            raise ImportError("taskgraph is blocked in this process")

sys.meta_path.insert(0, NoTaskgraph())
import json
import numpy as np
import onnxruntime
import torch

out = {}
for job in json.loads(sys.argv[1]):
    args = [np.load(path) for path in job["inputs"]]  # x, and length where the file takes it
    if job["file"].endswith(".pt2"):
        result = torch.export.load(job["file"]).module()(*map(torch.from_numpy, args))
        result = result if isinstance(result, dict) else {"out": result}
        out.update({job["file"] + ":" + k: v.detach().numpy() for k, v in result.items()})
    else:
        session = onnxruntime.InferenceSession(job["file"], providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        values = session.run(None, {i.name: a for i, a in zip(session.get_inputs(), args)})
        out.update({job["file"] + ":" + (k if len(names) > 1 else "out"): v for k, v in zip(names, values)})
np.savez(sys.argv[2], **out)
print("taskgraph imported:", any(m.split(".")[0] == "taskgraph" for m in sys.modules))
"""

NODES = ("up", "tagger", "joint")


@pytest.mark.slow
def test_exported_files_run_without_taskgraph_and_equal_eager(served_run, tmp_path, capsys):
    data = inputs(served_run)
    jobs, eager = [], {}
    length = data["tagger.length"]
    assert len(set(length.tolist())) > 1 and length.max() <= data["tagger"].shape[1]  # padded, unequal lengths
    np.save(tmp_path / "tagger.length.npy", length)
    for node in NODES:
        x = data[node]
        np.save(tmp_path / f"{node}.npy", x)
        trained = taskgraph.load_node(served_run, node)
        lengths = torch.from_numpy(length) if node == "tagger" else None
        eager[node] = {k: v.numpy() for k, v in trained.outputs(torch.from_numpy(x), lengths).items()}
        if node == "tagger":  # the BiLSTM packs by length: reading the padding would give other outputs
            unpacked = trained.outputs(torch.from_numpy(x))["tagger"].numpy()
            assert np.abs(unpacked - eager[node]["tagger"]).max() > 1e-3
        inputs_of = [str(tmp_path / f"{node}.npy")] + ([] if lengths is None else [str(tmp_path / "tagger.length.npy")])
        for suffix in (".pt2", ".onnx"):
            path = tmp_path / f"{node}{suffix}"
            assert main(["export", str(served_run), "--node", node, "-o", str(path)]) == 0
            line = capsys.readouterr().out
            assert f"{path}:" in line and "max |exported - eager|" in line
            if (node, suffix) == ("tagger", ".pt2"):  # the line names the free axes and the lengths input
                assert "input x (batch, length), length (batch) int64;" in line, line
            elif node == "up":  # no sequence, no lengths input
                assert "length (batch)" not in line, line
            umask = os.umask(0)
            os.umask(umask)
            assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as any file the user writes, not mkstemp's 0600
            jobs.append({"file": str(path), "inputs": inputs_of, "node": node})
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(jobs), str(tmp_path / "out.npz")],
                          check=False, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "taskgraph imported: False" in done.stdout
    got = np.load(tmp_path / "out.npz")
    assert data["tagger"].shape[1] != 7  # traced with 7 steps: the files must take the data's own length
    for job in jobs:
        node = job["node"]
        for head, want in eager[node].items():
            key = f"{job['file']}:{head if node == 'joint' else 'out'}"
            assert got[key].shape == want.shape, key
            np.testing.assert_allclose(got[key], want, rtol=0, atol=1e-5, err_msg=key)


def test_export_refuses_bad_input_in_one_line(served_run, tmp_path, capsys, monkeypatch):
    cases = [
        (["--node", "uup", "-o", str(tmp_path / "m.pt2")], "Did you mean 'up'?"),
        (["--node", "up", "-o", str(tmp_path / "m.h5")], "name the file .pt2 (torch.export) or .onnx"),
    ]
    for args, expected in cases:
        assert main(["export", str(served_run), *args]) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert main(["export", str(tmp_path / "nowhere"), "--node", "up", "-o", str(tmp_path / "m.pt2")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    assert main(["export", str(served_run), "--node", "up", "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "ONNX export needs onnxscript" in err and "pip install 'taskgraph[export]'" in err
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".m-*"))


def older_run(run: Path, tmp_path: Path, node: str = "up") -> Path:
    """A copy of the run as taskgraph wrote it before metrics.json recorded the input's shape and dtype
    (and before manifests)."""
    import shutil

    copy = tmp_path / "older"
    shutil.copytree(run, copy)
    metrics = json.loads((copy / node / "metrics.json").read_text())
    metrics.pop("input")
    for name in ("metrics.json", "manifest.json"):
        (copy / node / name).unlink()
    (copy / node / "metrics.json").write_text(json.dumps(metrics))
    return copy


def test_a_run_without_the_input_record_is_refused_with_the_fix(served_run, tmp_path, capsys):
    run = older_run(served_run, tmp_path)
    assert main(["export", str(run), "--node", "up", "-o", str(tmp_path / "m.pt2")]) == 2
    err = capsys.readouterr().err
    assert "did not record the shape and dtype of input 'x'" in err and "--force NODE" in err
    assert not (tmp_path / "m.pt2").exists()

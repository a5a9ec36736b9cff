"""load_node / load_graph: a finished run's nodes come back as eval-mode modules with their weights,
checked against their manifests, and reproduce the run's own validation metrics."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import taskgraph
from taskgraph.errors import TaskgraphError

pytestmark = pytest.mark.slow  # one real run on the shared local Ray, then every test reads it

#: One single-task chain (up -> down, frozen encoder), a joint node whose second head reads the first, and a
#: tiny text tagger (embedding, BiLSTM, CRF chunk head) on CoNLL files written by the fixture.
GRAPH = """
name: use
seed: 0
defaults:
  train: {epochs: 2, batch_size: 64}
data:
  shapes: {loader: synthetic_shapes, n: 400, dim: 16, classes: 4, test_fraction: 0.2}
  words: {loader: conll, train: WORDS/train.txt, val: WORDS/val.txt, test: WORDS/test.txt,
          labels: {chunk: {column: 1, span: true}}}
tasks:
  up:
    data: shapes
    modules:
      encoder: {type: mlp, hidden: [16]}
      head: {type: linear, out: 4}
    loss: {type: cross_entropy, target: label}
    metrics: [accuracy, macro_f1, auc, "tests.usermetrics:error_rate"]
  tagger:
    data: words
    train: {epochs: 1, batch_size: 4, lr: 0.01}   # still learning: answers depend on every detail
    modules:
      embed: {type: embedding, vocab: 20, dim: 8}
      lstm: {type: bilstm, hidden: 8}
      head: {type: crf, out: 5}
    loss: {type: crf, target: chunk}
    metrics: [span_f1, accuracy]
  down:
    data: shapes
    depends_on: {up: {share: [encoder], mode: freeze}}
    modules:
      encoder: {type: mlp, hidden: [16]}
      head: {type: linear, out: 1}
    loss: {type: binary_cross_entropy, target: parity}
    metrics: [accuracy]
  joint:
    kind: multitask
    data: shapes
    modules:
      trunk: {type: mlp, hidden: [16]}
    heads:
      cls: {module: {type: linear, out: 4}, loss: {type: cross_entropy, target: label}, metrics: [accuracy]}
      par: {module: {type: linear, out: 1}, loss: {type: binary_cross_entropy, target: parity},
            input: [trunk, cls], metrics: [accuracy, auc, average_precision]}
"""


def _conll(folder: Path, sentences: int, seed: int) -> str:
    """Noun phrases 'the|a ADJ* NOUN' between verbs: chunk tags B-NP/I-NP/O (sentences of 2-9 words)."""
    import random

    rng, lines = random.Random(seed), []
    for _ in range(sentences):
        for _ in range(rng.randint(1, 3)):
            lines += [f"{rng.choice(['the', 'a'])} B-NP"] + [f"{w} I-NP" for w in rng.sample(["big", "red"], rng.randint(0, 1))]
            lines += [f"{rng.choice(['dog', 'cat', 'car'])} I-NP", f"{rng.choice(['runs', 'sees', 'and'])} O"]
        lines.append("")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def trained_run(ray_local, tmp_path_factory) -> Path:
    """The graph above, trained once for every test of this module."""
    folder = tmp_path_factory.mktemp("use")
    for name, n, seed in (("train", 40, 0), ("val", 12, 1), ("test", 12, 2)):
        (folder / f"{name}.txt").write_text(_conll(folder, n, seed))
    graph = folder / "use.yaml"
    graph.write_text(textwrap.dedent(GRAPH).lstrip().replace("WORDS", str(folder)), encoding="utf-8")
    result = taskgraph.run(taskgraph.load(graph), run_root=folder / "runs", tensorboard=False)
    assert result.ok
    return Path(result.run_dir)


def _val(run: Path):
    from taskgraph.train.data import load_data

    spec = taskgraph.load_graph(run).spec
    return load_data(spec.data["shapes"]).val


def test_load_node_gives_eval_module_with_saved_weights_and_config(trained_run):
    from safetensors.numpy import load_file

    node = taskgraph.load_node(trained_run, "down")
    assert not node.module.training
    saved = load_file(str(trained_run / "down" / "params.safetensors"))
    state = node.module.state_dict()
    assert set(state) == set(saved)
    for key, value in saved.items():
        assert np.array_equal(state[key].numpy(), value)
    up = load_file(str(trained_run / "up" / "params.safetensors"))  # the frozen, inherited encoder
    assert np.array_equal(state["encoder.layers.0.weight"].numpy(), up["encoder.layers.0.weight"])
    assert node.input.field == "x" and node.input.shape == (16,) and node.input.width == 16
    assert node.heads["down"].kind == "probability" and node.heads["down"].target == "parity"
    assert node.spec.loss.type == "binary_cross_entropy"


def test_loaded_nodes_reproduce_the_runs_validation_metrics(trained_run):
    from taskgraph.train.metrics import compute_metric

    val = _val(trained_run)
    graph = taskgraph.load_graph(trained_run)
    assert set(graph) == {"joint", "up", "down", "tagger"}
    for name, node in graph.items():
        if name == "tagger":
            continue  # sequence data: see test_evaluate_equals_the_runs_metrics_on_validation_and_test
        final = node.metrics["final"]
        outputs = node(val["x"])
        for head, output in outputs.items():
            info = node.heads[head]
            prefix = f"{head}." if node.joint else ""
            for metric in info.metrics:
                got = compute_metric(metric, output, val[info.target])
                assert got == pytest.approx(final[f"{prefix}{metric}"], abs=1e-6), (name, head, metric)
    answers = graph["joint"].predict({"x": val["x"]})
    assert set(answers) == {"cls", "par"}
    assert answers["cls"]["probabilities"].shape == (len(val["x"]), 4)
    accuracy = (answers["par"]["class"] == val["parity"].long()).float().mean().item()
    assert accuracy == pytest.approx(graph["joint"].metrics["final"]["par.accuracy"], abs=1e-6)


def test_damaged_weights_unknown_node_and_missing_folder_are_refused(trained_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    params = copy / "up" / "params.safetensors"
    os.chmod(params, stat.S_IWUSR | stat.S_IRUSR)
    data = bytearray(params.read_bytes())
    data[-1] ^= 0xFF  # one weight's last byte: same size, other bytes
    params.write_bytes(bytes(data))
    with pytest.raises(TaskgraphError, match=r"node 'up'.*damaged.*sha256"):
        taskgraph.load_node(copy, "up")
    assert taskgraph.load_node(copy, "down").name == "down"  # the others still load
    with pytest.raises(TaskgraphError, match=r"no node 'dwn'\. Did you mean 'down'\?"):
        taskgraph.load_node(trained_run, "dwn")
    with pytest.raises(TaskgraphError, match="no such run directory"):
        taskgraph.load_node(tmp_path / "nowhere", "up")
    with pytest.raises(TaskgraphError, match="reads field 'x'"):
        taskgraph.load_node(trained_run, "up").predict({"tokens": torch.zeros(2, 16)})


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    from taskgraph.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_equals_the_runs_metrics_on_validation_and_test(trained_run, capsys):
    import json

    code, out, _ = _cli(["evaluate", trained_run, "--json"], capsys)
    assert code == 0
    got = json.loads(out)
    assert set(got) == {"up", "down", "joint", "tagger"}
    for name, scored in got.items():
        recorded = json.loads((trained_run / name / "metrics.json").read_text())
        assert scored["split"] == "val"
        assert scored["metrics"] == pytest.approx(recorded["final"], abs=1e-6), name
    assert "tests.usermetrics:error_rate" in got["up"]["metrics"] and "par.auc" in got["joint"]["metrics"]
    code, out, _ = _cli(["evaluate", trained_run, "--split", "test", "--json", "-n", "joint", "-n", "tagger"], capsys)
    for name, scored in json.loads(out).items():
        recorded = json.loads((trained_run / name / "metrics.json").read_text())["test"]
        assert scored["metrics"] == pytest.approx(recorded, abs=1e-6), name


def test_predictions_reproduce_the_runs_metrics(trained_run, tmp_path, capsys):
    import json

    import pandas as pd

    from taskgraph.train.data import load_data
    from taskgraph.train.metrics import span_f1

    spec = taskgraph.load_graph(trained_run).spec
    val = load_data(spec.data["shapes"]).val
    code, out, _ = _cli(["predict", trained_run, "-n", "joint", "-o", tmp_path / "joint.npz"], capsys)
    assert code == 0 and "80 examples" in out
    joint = np.load(tmp_path / "joint.npz")
    final = json.loads((trained_run / "joint" / "metrics.json").read_text())["final"]
    assert (joint["cls.class"] == val["label"].numpy()).mean() == pytest.approx(final["cls.accuracy"], abs=1e-6)
    assert (joint["par.class"] == val["parity"].numpy()).mean() == pytest.approx(final["par.accuracy"], abs=1e-6)
    assert np.allclose(joint["cls.probabilities"].sum(axis=1), 1.0, atol=1e-5)
    # the tagger's Viterbi paths give its span F1, on the test file, written as parquet rows cut to length
    code, out, _ = _cli(["predict", trained_run, "-n", "tagger", "--split", "test", "-o", tmp_path / "t.parquet"], capsys)
    assert code == 0
    rows = pd.read_parquet(tmp_path / "t.parquet")
    test = load_data(spec.data["words"]).test
    assert [len(r) for r in rows["tagger.class"]] == test["length"].tolist()
    paths = torch.full_like(test["chunk"], 0)
    for i, row in enumerate(rows["tagger.class"]):
        paths[i, : len(row)] = torch.as_tensor(list(row))
    recorded = json.loads((trained_run / "tagger" / "metrics.json").read_text())["test"]
    assert span_f1(paths, test["chunk"]) == pytest.approx(recorded["span_f1"], abs=1e-6)
    code, out, _ = _cli(["predict", trained_run, "-n", "down", "-o", tmp_path / "d.jsonl"], capsys)
    first = json.loads((tmp_path / "d.jsonl").read_text().splitlines()[0])
    assert set(first) == {"down.probability", "down.class"} and first["down.class"] == int(first["down.probability"] > 0.5)


def test_bad_input_to_evaluate_and_predict_is_one_line_and_exit_2(trained_run, tmp_path, capsys):
    cases = [
        (["evaluate", trained_run, "-n", "dwn"], "no node 'dwn'. Did you mean 'down'?"),
        (["evaluate", tmp_path / "nowhere"], "no such run directory"),
        (["evaluate", trained_run, "--split", "dev"], "--split dev: not a split"),
        (["evaluate", trained_run, "-n", "down", "--data", "shapez"], "Did you mean 'shapes'?"),
        (["evaluate", trained_run, "-n", "up", "--data", "words"], "data 'words': the data has no field 'label'"),
        (["evaluate", trained_run, "-n", "up", "--data", tmp_path / "new.csv"], "no such file"),
        (["predict", trained_run, "-n", "up", "-o", tmp_path / "p.txt"], "write .parquet, .jsonl or .npz"),
        (["evaluate", trained_run, "--set", "tasks.up.seed=3"], "only data.NAME.OPTION=VALUE"),
    ]
    for args, words in cases:
        code, _out, err = _cli(args, capsys)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, (args, err)

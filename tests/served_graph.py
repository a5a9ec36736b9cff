"""A tiny trained run for the export and serve tests: every kind of node they must handle.

``up`` is the quickstart's shape (an MLP encoder and a class head), ``down`` inherits its encoder
(a chain), ``tagger`` is text-like (word ids -> embedding -> BiLSTM -> CRF, padded sentences of
several lengths), ``joint`` a joint node whose second head reads the first (heads reading heads).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

GRAPH = """
name: served
seed: 0
defaults:
  train: {epochs: 1, batch_size: 64}
data:
  shapes: {loader: synthetic_shapes, n: 400, dim: 16, classes: 4}
  words: {loader: arrays, path: WORDS}
tasks:
  up:
    data: shapes
    modules:
      encoder: {type: mlp, hidden: [16]}
      head: {type: linear, out: 4}
    loss: {type: cross_entropy, target: label}
  down:
    data: shapes
    depends_on: {up: {share: [encoder], mode: freeze}}
    modules:
      encoder: {type: mlp, hidden: [16]}
      head: {type: linear, out: 1}
    loss: {type: binary_cross_entropy, target: parity}
  tagger:
    data: words
    modules:
      embed: {type: embedding, vocab: 30, dim: 8}
      trunk: {type: bilstm, hidden: 6}
      head: {type: crf, out: 5}
    loss: {type: crf, target: tag}
  joint:
    kind: multitask
    data: shapes
    modules:
      trunk: {type: mlp, hidden: [16]}
    heads:
      cls: {module: {type: linear, out: 4}, loss: {type: cross_entropy, target: label}}
      par: {module: {type: linear, out: 1}, loss: {type: binary_cross_entropy, target: parity}, input: [trunk, cls]}
"""


def write_words(path: Path, n: int = 120, steps: int = 9, vocab: int = 30) -> Path:
    """Padded sentences of 3..9 word ids (0 is padding) with a tag per word (-100 past the end)."""
    rng = np.random.default_rng(0)
    length = rng.integers(3, steps + 1, n)
    x = rng.integers(1, vocab, (n, steps))
    tag = x % 5
    for i, k in enumerate(length):
        x[i, k:], tag[i, k:] = 0, -100
    np.savez(path, x=x.astype(np.int64), tag=tag.astype(np.int64), length=length.astype(np.int64))
    return path


def train_served(folder: Path) -> Path:
    """Train the graph above (seconds) and return its run folder."""
    import taskgraph

    words = write_words(folder / "words.npz")
    graph = folder / "served.yaml"
    graph.write_text(textwrap.dedent(GRAPH).lstrip().replace("WORDS", str(words)), encoding="utf-8")
    result = taskgraph.run(taskgraph.load(graph), run_root=folder / "runs", tensorboard=False)
    assert result.ok, result.records
    return Path(result.run_dir)


def inputs(run: Path) -> dict[str, np.ndarray]:
    """Validation inputs of both data sources, by node: what the tests send."""
    import taskgraph
    from taskgraph.train.data import load_data

    spec = taskgraph.load_graph(run).spec
    shapes, words = load_data(spec.data["shapes"]).val, load_data(spec.data["words"]).val
    x, w = shapes["x"][:7].numpy(), words["x"][:6].numpy()
    return {"up": x, "down": x, "joint": x, "tagger": w, "tagger.length": words["length"][:6].numpy()}

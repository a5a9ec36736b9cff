"""Missing labels, end to end: a batch without labels takes no part in the update (single-task
nodes skip it) instead of a zero loss that poses as a gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from taskgraph.spec.loader import parse_spec
from taskgraph.train.data import load_data
from taskgraph.train.loop import NodeRequest, train_node
from taskgraph.train.model import NodeModel


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


MASKED = """
name: masked
seed: 0
data:
  toy: {loader: "tests.train.masked_data:load"}
tasks:
"""


def test_single_task_node_masks_integer_bce_labels_and_skips_unlabelled_batches():
    spec, _ = parse_spec(MASKED + """
  clf:
    data: toy
    train: {epochs: 1, batch_size: 2}
    modules: {encoder: {type: mlp, hidden: [8]}, head: {type: linear, out: 1}}
    loss: {type: binary_cross_entropy, target: y}
""")
    task = spec.tasks["clf"]
    out = train_node(NodeRequest("clf", task, spec.data["toy"], 0), {})
    splits = load_data(spec.data["toy"])
    y = splits.train["y"]
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    with_labels = sum(int((y[order[i : i + 2]] != -100).any()) for i in range(0, len(y), 2))
    assert 0 < with_labels < len(y) // 2 and out.steps == with_labels  # the others were skipped, not zero steps
    model = NodeModel(dict(task.modules), in_dim=6, where="t")
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in out.state.items()})
    with torch.no_grad():
        logits = model(splits.val["x"]).squeeze(-1)
    keep = splits.val["y"] != -100
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[keep], splits.val["y"][keep].float())
    assert out.metrics["final"]["loss"] == pytest.approx(expected.item(), rel=1e-5)

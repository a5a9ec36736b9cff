"""The losses added for joint nodes, against hand-computed values or torch references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pydantic import TypeAdapter

from taskgraph.errors import TrainError
from taskgraph.spec.components import LossConfig
from taskgraph.train.losses import compute_loss
from taskgraph.train.modules import reverse_gradient

LOSS = TypeAdapter(LossConfig)


def loss(config: dict, output, target):
    return compute_loss(output, target, LOSS.validate_python(config))


def test_cross_entropy_by_hand_with_label_smoothing_and_ignored_labels():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0], [5.0, 1.0]])
    target = torch.tensor([0, 1, -100])
    got = loss({"type": "cross_entropy", "target": "y", "label_smoothing": 0.2}, logits, target)
    # smoothing 0.2 over 2 classes: target distribution (0.9, 0.1); the -100 row is skipped.
    lp0 = torch.log_softmax(logits[0], 0)
    row0 = -(0.9 * lp0[0] + 0.1 * lp0[1])
    row1 = -(0.1 * math.log(0.5) + 0.9 * math.log(0.5))
    assert got.item() == pytest.approx(((row0 + row1) / 2).item(), rel=1e-5)


def test_multilabel_binary_cross_entropy_by_hand():
    logits = torch.tensor([[0.0, 2.0]])
    target = torch.tensor([[1.0, 0.0]])
    got = loss({"type": "binary_cross_entropy", "target": "y"}, logits, target)
    expected = (math.log(2) + (2 + math.log1p(math.exp(-2)))) / 2
    assert got.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("kind,expected", [("mse", (0.25 + 4) / 2), ("l1", (0.5 + 2) / 2), ("huber", (0.125 + 1.5) / 2)])
def test_regression_losses_by_hand(kind, expected):
    out, target = torch.tensor([[1.5], [0.0]]), torch.tensor([1.0, 2.0])
    assert loss({"type": kind, "target": "y"}, out, target).item() == pytest.approx(expected)


def test_ctc_matches_torch_and_a_hand_computed_case():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 4, generator=g)
    target = torch.tensor([[1, 2, -100], [3, 3, 1]])
    got = loss({"type": "ctc", "target": "y"}, logits, target)
    ref = F.ctc_loss(logits.log_softmax(-1).transpose(0, 1), torch.tensor([[1, 2, 0], [3, 3, 1]]),
                     torch.tensor([6, 6]), torch.tensor([2, 3]), blank=0, zero_infinity=True)
    assert got.item() == pytest.approx(ref.item(), rel=1e-5)
    # One frame, one label, uniform over 2 classes: the only path emits the label, p = 1/2.
    one = loss({"type": "ctc", "target": "y"}, torch.zeros(1, 1, 2), torch.tensor([[1]]))
    assert one.item() == pytest.approx(math.log(2), rel=1e-5)


def test_adversarial_head_reverses_the_gradient_reaching_the_trunk():
    feature = torch.tensor([[1.0, -1.0]], requires_grad=True)
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    config = {"type": "adversarial", "target": "domain", "scale": 0.5}
    out = reverse_gradient(feature, 0.5) @ weight
    loss(config, out, torch.tensor([0])).backward()
    reversed_grad = feature.grad.clone()
    feature.grad = None
    F.cross_entropy(feature @ weight, torch.tensor([0])).backward()
    assert torch.allclose(reversed_grad, -0.5 * feature.grad)


def test_infonce_by_hand_and_its_bound():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    config = {"type": "infonce", "target": "z", "temperature": 1.0, "symmetric": False}
    # cosine scores: diagonal 1, off-diagonal 0: loss = -log(e / (e + 1)).
    assert loss(config, a, a).item() == pytest.approx(-math.log(math.e / (math.e + 1)), rel=1e-6)
    # Mutual information bound: log(batch) - loss >= 0 for aligned pairs; random pairs give about log(batch).
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    aligned = loss({**config, "temperature": 0.1}, x, x).item()
    shuffled = loss({**config, "temperature": 0.1}, x, x[torch.randperm(64, generator=g)]).item()
    assert aligned < 0.5 < math.log(64) - 1 < shuffled


def test_infonce_pools_sequences_and_names_the_width_fix():
    config = {"type": "infonce", "target": "trunk"}
    assert torch.isfinite(loss(config, torch.randn(3, 5, 4), torch.randn(3, 5, 4)))
    with pytest.raises(TrainError, match="out: 6"):
        loss(config, torch.randn(3, 4), torch.randn(3, 6))

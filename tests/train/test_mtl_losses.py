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


# Missing labels: one rule for every built-in loss (integer -100 / the loss's ignore index, float NaN),
# and the masked loss is the loss over the labelled entries only.
ELEMENTWISE = {
    "binary_cross_entropy": lambda o, t: F.binary_cross_entropy_with_logits(o, t.float()),
    "mse": lambda o, t: F.mse_loss(o, t.float()),
    "l1": lambda o, t: F.l1_loss(o, t.float()),
    "huber": lambda o, t: F.huber_loss(o, t.float()),
}


@pytest.mark.parametrize("integer", [True, False])
@pytest.mark.parametrize("kind", sorted(ELEMENTWISE))
def test_elementwise_losses_mask_missing_labels(kind, integer):
    g = torch.Generator().manual_seed(3)
    out = torch.randn(4, 5, 1, generator=g)  # one output per position: squeezed to the target's shape
    target = torch.randint(0, 2, (4, 5), generator=g)
    keep = torch.rand(4, 5, generator=g) > 0.4
    missing = target.masked_fill(~keep, -100) if integer else target.float().masked_fill(~keep, float("nan"))
    got = loss({"type": kind, "target": "y"}, out, missing)
    expected = ELEMENTWISE[kind](out.squeeze(-1)[keep], target[keep])
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("integer", [True, False])
def test_multilabel_bce_masks_single_labels(integer):
    out = torch.tensor([[0.0, 2.0, -1.0]])
    target = torch.tensor([[1, -100, 0]]) if integer else torch.tensor([[1.0, float("nan"), 0.0]])
    expected = (math.log(2) + math.log1p(math.exp(-1))) / 2  # the labelled first and third entries
    assert loss({"type": "binary_cross_entropy", "target": "y"}, out, target).item() == pytest.approx(expected)


@pytest.mark.parametrize("integer", [True, False])
@pytest.mark.parametrize("kind", ["cross_entropy", "adversarial"])
def test_class_losses_mask_missing_labels(kind, integer):
    g = torch.Generator().manual_seed(4)
    out = torch.randn(3, 6, 5, generator=g)
    target = torch.randint(0, 5, (3, 6), generator=g)
    keep = torch.rand(3, 6, generator=g) > 0.5
    missing = target.masked_fill(~keep, -100) if integer else target.float().masked_fill(~keep, float("nan"))
    got = loss({"type": kind, "target": "y"}, out, missing)
    assert got.item() == pytest.approx(F.cross_entropy(out[keep], target[keep]).item(), rel=1e-6)


def test_a_loss_with_its_own_ignore_index_masks_that_index():
    out, target = torch.tensor([[2.0, 0.0], [0.0, 3.0]]), torch.tensor([0, 7])
    got = loss({"type": "cross_entropy", "target": "y", "ignore_index": 7}, out, target)
    assert got.item() == pytest.approx(F.cross_entropy(out[:1], target[:1]).item())


def test_infonce_drops_examples_whose_target_is_missing():
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    b_missing = b.clone()
    b_missing[2, 1] = float("nan")  # one missing entry: the whole example leaves the batch
    config = {"type": "infonce", "target": "z"}
    keep = torch.tensor([True, True, False, True, True])
    assert loss(config, a, b_missing).item() == pytest.approx(loss(config, a[keep], b[keep]).item(), rel=1e-6)


def test_ctc_padding_is_not_a_missing_label():
    """-100 pads CTC label sequences to one length; an all-padding row is an empty transcription
    (a label: the all-blank path), so CTC keeps every example."""
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 4, 3, generator=g)
    got = loss({"type": "ctc", "target": "y"}, logits, torch.tensor([[1, 2], [-100, -100]]))
    ref = F.ctc_loss(logits.log_softmax(-1).transpose(0, 1), torch.tensor([[1, 2], [0, 0]]), torch.tensor([4, 4]),
                     torch.tensor([2, 0]), blank=0, zero_infinity=True)
    assert got.item() == pytest.approx(ref.item(), rel=1e-6)


@pytest.mark.parametrize("kind", ["cross_entropy", "adversarial", *sorted(ELEMENTWISE)])
@pytest.mark.parametrize("integer", [True, False])
def test_a_batch_without_labels_has_no_loss(kind, integer):
    """Not NaN (a mean over nothing) and not a zero that would pose as a gradient: no loss at all."""
    out = torch.randn(2, 3, 4 if kind in ("cross_entropy", "adversarial") else 1, requires_grad=True)
    target = torch.full((2, 3), -100) if integer else torch.full((2, 3), float("nan"))
    assert loss({"type": kind, "target": "y"}, out, target) is None


def test_a_head_of_the_wrong_width_names_the_fix():
    with pytest.raises(TrainError, match="out: 1"):
        loss({"type": "mse", "target": "r"}, torch.randn(4, 3), torch.randn(4))

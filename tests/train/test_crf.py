"""The linear-chain CRF against brute force over every tag path, masked by length; metrics decode it."""

from __future__ import annotations

import itertools

import pytest
import torch

from taskgraph.errors import TrainError
from taskgraph.spec.losses import CRFLoss
from taskgraph.train.crf import crf_nll, lengths_of, viterbi
from taskgraph.train.losses import compute_loss
from taskgraph.train.metrics import IGNORE, accuracy, iob_spans, span_f1
from taskgraph.train.text_modules import CRF

TAGS = 3


def _crf(seed: int = 0) -> tuple[CRF, torch.Tensor]:
    torch.manual_seed(seed)
    crf = CRF(5, TAGS)
    with torch.no_grad():
        crf.transitions.normal_(0.0, 1.5)
        crf.start.normal_(0.0, 1.5)
    return crf, torch.randn(2, 4, 5)


def _score(crf: CRF, x: torch.Tensor, path: tuple[int, ...]) -> float:
    """Written from the CRF's definition, not from its potentials: start + emissions + transitions."""
    emissions = crf.emit(x)
    total = crf.start[path[0]] + emissions[0, path[0]]
    for t in range(1, len(path)):
        total = total + crf.transitions[path[t - 1], path[t]] + emissions[t, path[t]]
    return float(total)


def _brute_force(crf: CRF, x: torch.Tensor, length: int) -> dict[tuple[int, ...], float]:
    return {p: _score(crf, x[:length], p) for p in itertools.product(range(TAGS), repeat=length)}


@torch.no_grad()
def test_log_likelihood_equals_brute_force_over_every_path():
    crf, x = _crf()
    lengths = torch.tensor([4, 2])
    tags = torch.tensor([[2, 0, 1, 1], [1, 2, 0, 0]])
    nll = crf_nll(crf(x), tags, lengths)
    for b in range(2):
        scores = _brute_force(crf, x[b], int(lengths[b]))
        log_z = torch.logsumexp(torch.tensor(list(scores.values()), dtype=torch.float64), 0).item()
        gold = scores[tuple(tags[b, : lengths[b]].tolist())]
        assert nll[b].item() == pytest.approx(log_z - gold, abs=1e-4)


@torch.no_grad()
def test_viterbi_equals_the_best_path_by_brute_force():
    for seed in range(5):
        crf, x = _crf(seed)
        lengths = torch.tensor([4, 3])
        paths = viterbi(crf(x), lengths)
        for b in range(2):
            n = int(lengths[b])
            scores = _brute_force(crf, x[b], n)
            assert tuple(paths[b, :n].tolist()) == max(scores, key=scores.get)
            assert (paths[b, n:] == 0).all()


@torch.no_grad()
def test_padding_past_the_length_changes_nothing():
    crf, x = _crf()
    lengths, tags = torch.tensor([2, 4]), torch.tensor([[1, 2, 0, 0], [0, 1, 2, 1]])
    potentials = crf(x)
    noisy = potentials.clone()
    noisy[0, 2:] = torch.randn_like(noisy[0, 2:]) * 100  # sentence 0 has two words
    assert torch.allclose(crf_nll(potentials, tags, lengths), crf_nll(noisy, tags, lengths))
    assert torch.equal(viterbi(potentials, lengths), viterbi(noisy, lengths))
    assert crf_nll(potentials[:1], tags[:1], torch.tensor([0])).item() == 0.0  # an empty sentence


def test_crf_loss_is_per_labelled_token_and_trains():
    crf, x = _crf()
    target = torch.tensor([[2, 0, 1, 1], [1, 2, IGNORE, IGNORE]])
    config = CRFLoss(type="crf", target="chunk")
    loss = compute_loss(crf(x), target, config)
    expected = crf_nll(crf(x), target, torch.tensor([4, 2])).sum() / 6
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    optimizer = torch.optim.Adam(crf.parameters(), lr=0.1)
    for _ in range(100):
        optimizer.zero_grad()
        compute_loss(crf(x), target, config).backward()
        optimizer.step()
    assert accuracy(crf(x).detach(), target) == 1.0  # the Viterbi path learns the labels


def test_crf_loss_refuses_labels_missing_inside_a_sentence_and_a_non_crf_head():
    crf, x = _crf()
    config = CRFLoss(type="crf", target="chunk")
    with pytest.raises(TrainError, match="inside a sentence.*cross_entropy"):
        compute_loss(crf(x), torch.tensor([[2, IGNORE, 1, 1], [1, 2, 0, 0]]), config)
    with pytest.raises(TrainError, match=r"type: crf, out: TAGS"):
        compute_loss(torch.randn(2, 4, TAGS), torch.zeros(2, 4, dtype=torch.long), config)
    assert lengths_of(torch.tensor([[0, 1, IGNORE]])).tolist() == [2]


def test_span_f1_and_accuracy_read_the_viterbi_path_not_the_emissions():
    """Emissions favour B-0 B-0 (two chunks); a -inf transition B-0 -> B-0 leaves B-0 I-0 (one chunk)."""
    emissions = torch.tensor([[[0.0, 2.0, 1.0], [0.0, 2.0, 1.9]]])  # O, B-0, I-0
    transitions = torch.zeros(3, 3)
    transitions[1, 1] = -1e4
    potentials = emissions[:, :, None, :] + transitions
    potentials[:, 0] = emissions[:, :1, None, :].expand(-1, -1, 3, -1)[:, 0]
    target = torch.tensor([[1, 2]])  # gold: one chunk B-0 I-0
    assert viterbi(potentials, torch.tensor([2])).tolist() == [[1, 2]]
    assert span_f1(potentials, target) == 1.0 and accuracy(potentials, target) == 1.0
    assert span_f1(emissions, target) == 0.0  # per-position argmax would find two wrong chunks
    assert iob_spans([1, 1]) == {(0, 0, 1), (0, 1, 2)}


def test_a_batch_without_labels_has_no_crf_loss():
    """The missing-labels rule of every loss: no labelled entry, no loss (the caller skips the update)."""
    crf, x = _crf()
    config = CRFLoss(type="crf", target="chunk")
    assert compute_loss(crf(x), torch.full((2, 4), IGNORE), config) is None

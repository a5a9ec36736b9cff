"""Metrics ignore padding, and chunk F1 follows conlleval's span definition."""

from __future__ import annotations

import pytest
import torch

from taskgraph.train.metrics import compute_metric, iob_spans

# Chunk types: 0 = NP, 1 = VP.  O = 0, B-NP = 1, I-NP = 2, B-VP = 3, I-VP = 4.


def one_hot(ids: list[list[int]], classes: int = 5) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(ids).clamp(min=0), classes).float()


def test_spans_follow_conlleval():
    assert iob_spans([1, 2, 0, 3, 4, 4]) == {(0, 0, 2), (1, 3, 6)}
    assert iob_spans([2, 2, 1]) == {(0, 0, 2), (0, 2, 3)}  # I- after O starts a chunk; B- always does
    assert iob_spans([1, 4]) == {(0, 0, 1), (1, 1, 2)}  # I- of another type starts a new chunk


def test_span_f1_by_hand_and_padding_is_ignored():
    gold = torch.tensor([[1, 2, 0, 3, 4, -100], [3, 0, 1, -100, -100, -100]])
    pred = [[1, 2, 0, 3, 0, 1], [3, 0, 3, 1, 1, 1]]  # padding predictions are junk on purpose
    # gold chunks: NP(0,2) VP(3,5) | VP(0,1) NP(2,3) = 4; predicted: NP(0,2) VP(3,4) | VP(0,1) VP(2,3) = 4
    # correct: NP(0,2), VP(0,1) = 2  -> precision 0.5, recall 0.5, F1 0.5
    assert compute_metric("span_f1", one_hot(pred), gold) == pytest.approx(0.5)
    assert compute_metric("span_f1", one_hot([[1, 2, 0, 3, 4, 0], [3, 0, 1, 0, 0, 0]]), gold) == 1.0


def test_accuracy_and_macro_f1_ignore_padding():
    target = torch.tensor([[1, 0, -100, -100]])
    output = one_hot([[1, 1, 4, 4]])
    assert compute_metric("accuracy", output, target) == pytest.approx(0.5)
    # classes 0 and 1 only: class 1 F1 = 2/3, class 0 F1 = 0.
    assert compute_metric("macro_f1", output, target) == pytest.approx(1 / 3)

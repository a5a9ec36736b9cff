"""auc and average_precision against values worked by hand (scikit-learn's documented examples), and
user metrics named as "pkg.module:fn"."""

from __future__ import annotations

import math

import pytest
import torch

import taskgraph
from taskgraph.errors import SpecError
from taskgraph.train.metrics import compute_metric

Y = torch.tensor([0.0, 0.0, 1.0, 1.0])
SCORES = torch.tensor([0.1, 0.4, 0.35, 0.8])  # roc_auc_score and average_precision_score's docstring example


def test_auc_and_average_precision_match_known_values():
    assert compute_metric("auc", SCORES, Y) == pytest.approx(0.75)
    assert compute_metric("average_precision", SCORES, Y) == pytest.approx(0.8333333333)
    ties = torch.tensor([0.5, 0.5, 0.5, 0.9])  # a tied positive/negative pair counts one half
    assert compute_metric("auc", ties, Y) == pytest.approx(0.75)
    assert compute_metric("average_precision", ties, Y) == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)
    # a one-output head's logits (batch, 1); a missing label (NaN) is left out
    logits = torch.tensor([[-2.0], [0.3], [-0.1], [3.0], [9.0]])
    assert compute_metric("auc", logits, torch.tensor([0.0, 0.0, 1.0, 1.0, float("nan")])) == pytest.approx(0.75)
    assert math.isnan(compute_metric("auc", SCORES, torch.ones(4)))  # one class only: undefined


def test_multiclass_is_the_one_vs_rest_macro_mean():
    target = torch.tensor([0, 1, 2, 2, -100])
    perfect = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 2, 0]), 3).float() * 5
    assert compute_metric("auc", perfect, target) == pytest.approx(1.0)
    assert compute_metric("average_precision", perfect, target) == pytest.approx(1.0)
    # classes 0 and 1 exchanged: class 0's one positive ties two negatives and loses to one (AUC 1/3),
    # class 1 the same, class 2 stays perfect
    swapped = perfect[:, [1, 0, 2]]
    assert compute_metric("auc", swapped, target) == pytest.approx((1 / 3 + 1 / 3 + 1) / 3)


def test_user_metrics_are_accepted_and_unknown_names_say_how(write_graph):
    text = """
        name: m
        data: {d: {loader: synthetic_shapes, n: 40, dim: 4}}
        tasks:
          t:
            data: d
            modules: {head: {type: linear, out: 10}}
            loss: {type: cross_entropy, target: label}
            metrics: [auc, "tests.usermetrics:error_rate"]
    """
    assert taskgraph.load(write_graph(text)).tasks["t"].metrics == ("auc", "tests.usermetrics:error_rate")
    with pytest.raises(SpecError, match=r"unknown metric 'acc'.*\"package\.module:fn\""):
        taskgraph.load(write_graph(text.replace("auc,", "acc,")))
    assert compute_metric("tests.usermetrics:error_rate", torch.eye(3) * 4, torch.tensor([0, 1, 0])) == \
        pytest.approx(1 / 3)

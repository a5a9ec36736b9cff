"""The CAGrad / Nash-MTL toy problem (scripts/toy_pareto.py): the objective, and MGDA / UPGrad reaching the front."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "toy_pareto.py"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """2-vectors: threads only add contention on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def toy():
    spec = importlib.util.spec_from_file_location("toy_pareto", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_toy_objective_by_hand(toy):
    # Upper half (x2 = 4): c1 = tanh(2), c2 = 0, only the log-valleys count.
    x1, x2 = 1.0, 4.0
    f1 = (math.log(abs(0.5 * (-x1 - 7) - math.tanh(-x2))) + 6) * math.tanh(2)
    f2 = (math.log(abs(0.5 * (-x1 + 3) + math.tanh(-x2) + 2)) + 6) * math.tanh(2)
    assert torch.allclose(toy.toy_losses(torch.tensor([x1, x2])), torch.tensor([f1, f2]), rtol=1e-5)
    # Lower half (x2 = -8): the quadratics, whose minima x1 = 7 and x1 = -7 bound the Pareto set.
    c2 = math.tanh(4.0)
    assert torch.allclose(toy.toy_losses(torch.tensor([7.0, -8.0])), torch.tensor([-20 * c2, (196 / 10 - 20) * c2]))


def test_pareto_set_is_the_segment_between_the_two_minima(toy):
    front = toy.pareto_set(n=201)
    assert front[:, 1].sub(-8.0).abs().max() < 0.5  # c2 = tanh(-x2 / 2) tilts it a little below x2 = -8
    assert -7.2 < front[:, 0].min() < -6.8 and 6.8 < front[:, 0].max() < 7.2


@pytest.mark.parametrize("method", ["mgda", "upgrad"])
def test_mgda_and_upgrad_reach_the_pareto_front(toy, method):
    path = toy.run(method, (-8.5, -5.0), steps=300, lr=0.05)
    end = path[-1]
    assert toy.pareto_stationarity(path[0]) > 0.3  # the start is not stationary
    assert toy.reached(end, toy.pareto_set(n=301), tol=0.05), (end, toy.pareto_stationarity(end))

"""Ablation statistics on hand-made numbers: paired gains, the test, negative transfer, the chart."""

from __future__ import annotations

import math

import pytest

from taskgraph.report.ablation import format_table, paired_test, plot_gains, summarize


def _rows(with_values, without_values, metric="accuracy", fraction=1.0, edge=("a", "b")):
    rows = []
    for seed, (w, wo) in enumerate(zip(with_values, without_values)):
        for flag, value in ((True, w), (False, wo)):
            rows.append({"upstream": edge[0], "downstream": edge[1], "fraction": fraction, "seed": seed,
                         "with_edge": flag, "metric": metric, "value": value})
    return rows


def test_gain_is_paired_by_seed_with_mean_and_std():
    (gain,) = summarize(_rows([0.80, 0.82, 0.90], [0.70, 0.71, 0.81]))
    assert gain.gain_mean == pytest.approx((0.10 + 0.11 + 0.09) / 3)
    assert gain.gain_std == pytest.approx(0.01)
    assert gain.test == "paired t-test" and gain.p_value < 0.01  # consistent gains: significant
    assert not gain.negative and gain.verdict() == "helps"


def test_negative_transfer_is_flagged_and_lower_is_better_flips_the_sign():
    (acc,) = summarize(_rows([0.60, 0.61, 0.59], [0.70, 0.72, 0.69]))
    assert acc.negative and acc.verdict().startswith("NEGATIVE TRANSFER")
    (loss,) = summarize(_rows([0.30, 0.31, 0.29], [0.50, 0.52, 0.49], metric="loss"))
    assert loss.gain_mean > 0 and not loss.negative  # lower loss with the edge: it helps


def test_unpaired_seeds_are_dropped_and_groups_split_by_fraction():
    rows = _rows([0.8, 0.9], [0.7, 0.8]) + _rows([0.6, 0.5], [0.5, 0.4], fraction=0.1)
    rows.append({"upstream": "a", "downstream": "b", "fraction": 1.0, "seed": 9, "with_edge": True,
                 "metric": "accuracy", "value": 0.0})
    gains = summarize(rows)
    assert [(g.fraction, len(g.with_edge)) for g in gains] == [(0.1, 2), (1.0, 2)]


def test_paired_test_edge_cases():
    p, test = paired_test([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])  # identical differences: t undefined
    assert test == "sign-flip (exact)" and p == pytest.approx(0.25)  # 2 of 8 sign patterns
    assert paired_test([1.0, 1.0], [1.0, 1.0])[0] == 1.0
    assert math.isnan(paired_test([1.0], [0.0])[0])


def test_table_and_chart(tmp_path):
    gains = summarize(_rows([0.8, 0.82, 0.9], [0.7, 0.71, 0.81]) + _rows([0.6, 0.61, 0.59], [0.7, 0.72, 0.69],
                                                                          edge=("c", "b")))
    table = format_table(gains)
    assert "a -> b" in table and "c -> b" in table and "NEGATIVE TRANSFER" in table and "± " in table
    path = plot_gains(gains, tmp_path / "gains.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_test_split_gains_are_shown_apart_in_the_table_and_the_chart(tmp_path, monkeypatch):
    """Issue 14: test metrics apart from validation everywhere, ablate included: their own block of
    the table (columns still aligned under the header) and their own panel of the chart."""
    from matplotlib.figure import Figure

    gains = summarize(_rows([0.8, 0.82, 0.9], [0.7, 0.71, 0.81])
                      + _rows([0.5, 0.52, 0.49], [0.6, 0.61, 0.62], metric="test accuracy"))
    lines = format_table(gains).splitlines()
    heading = next(i for i, line in enumerate(lines) if line.startswith("test split"))
    assert [" accuracy " in line for line in lines[2:heading]] == [True]
    assert [" test accuracy " in line for line in lines[heading + 1:-1]] == [True]
    column = lines[0].index("with edge") + len("with edge")  # right-aligned column: ends where its title ends
    assert all(line[column - 1].isdigit() and line[column] == " " for line in (lines[2], lines[heading + 1])), lines
    drawn: list[Figure] = []
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: drawn.append(self))
    plot_gains(gains, tmp_path / "gains.png")
    heights = [[round(bar.get_height(), 6) for bar in ax.patches] for ax in drawn[0].axes]
    assert heights == [[round(gains[0].gain_mean, 6)], [round(gains[1].gain_mean, 6)]]  # validation | test
    assert gains[1].gain_mean < 0 < gains[0].gain_mean

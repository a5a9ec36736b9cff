"""Dependency pictures of a run: nodes coloured by status, with durations, in every format."""

from __future__ import annotations

from taskgraph.report.dependency import STATUS_FILL, render, to_ascii, to_dot, to_mermaid, write_picture
from taskgraph.report.rundata import load_run
from tests.report.fake_run import make_run


def _view(tmp_path):
    return load_run(make_run(tmp_path, {"finetune": "cached", "scratch": "failed"}))


def test_text_formats_carry_status_and_duration(tmp_path):
    view = _view(tmp_path)
    status, durations = view.status(), view.durations()
    ascii_ = to_ascii(view.spec, view.plan, status, durations)
    assert "pretrain [cpu] done 3.5s" in ascii_.replace("  ", " ")
    assert "failed" in ascii_ and "cached" in ascii_
    mermaid = to_mermaid(view.spec, view.plan, status, durations)
    assert 'pretrain["pretrain<br/>done 3.5s"]:::done' in mermaid
    assert "classDef failed fill:" in mermaid and "scratch" in mermaid
    dot = to_dot(view.spec, view.plan, status, durations)
    assert f'"scratch" [label="scratch\\nfailed 3.0s", fillcolor="{STATUS_FILL["failed"]}"' in dot


def test_plan_pictures_are_coloured_by_resource_kind(tmp_path):
    view = _view(tmp_path)
    assert ":::cpu" in to_mermaid(view.spec, view.plan) and ":::done" not in to_mermaid(view.spec, view.plan)


def test_svg_and_png(tmp_path):
    view = _view(tmp_path)
    svg = render(view.spec, view.plan, "svg", view.status(), view.durations()).decode()
    for text in ("pretrain", "finetune", "scratch", "done 3.5s", "encoder (finetune x0.1)", STATUS_FILL["failed"]):
        assert text in svg
    png = tmp_path / "run.png"
    assert write_picture(view.spec, view.plan, png, status=view.status()) == ""
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""Gantt lanes, the observed critical path and the Chrome trace, from a hand-made run directory."""

from __future__ import annotations

import json

from taskgraph.report.gantt import critical_path, gantt_svg, lanes
from taskgraph.report.rundata import NodeRun, load_run
from taskgraph.report.trace import chrome_trace
from tests.report.fake_run import T0, make_run


def test_critical_path_follows_the_upstream_that_ended_last(tmp_path):
    view = load_run(make_run(tmp_path))
    assert critical_path(view.nodes, view.upstream) == ["pretrain", "finetune"]


def test_one_lane_per_worker_and_extra_rows_when_a_gpu_is_shared():
    nodes = {
        "a": NodeRun("a", "done", T0, T0, T0 + 5, host="h", pid=1),
        "b": NodeRun("b", "done", T0, T0 + 6, T0 + 8, host="h", pid=1),
        "c": NodeRun("c", "done", T0, T0 + 1, T0 + 4, host="h", pid=2, gpu_ids=("0",)),
        "d": NodeRun("d", "done", T0, T0 + 2, T0 + 3, host="h", pid=3, gpu_ids=("0",)),  # shares GPU 0 with c
    }
    names, bars = lanes(nodes, T0)
    lane_of = {b.node: names[b.lane] for b in bars}
    assert lane_of["a"] == lane_of["b"] == "h pid 1"
    assert lane_of["c"] == "h GPU 0" and lane_of["d"] == "h GPU 0 #2"
    assert len(names) == 3


def test_gantt_svg_shows_every_node_that_ran_and_marks_the_critical_path(tmp_path):
    view = load_run(make_run(tmp_path, {"scratch": "failed"}))
    svg = gantt_svg(view.nodes, view.upstream)
    for name in ("pretrain", "finetune", "scratch"):
        assert f'data-node="{name}"' in svg
    finetune = svg[svg.index('data-node="finetune"'):]
    assert 'stroke="#dc2626"' in finetune[: finetune.index("</g>")]
    scratch = svg[svg.index('data-node="scratch"'):]
    assert "ValueError: boom" in scratch[: scratch.index("</g>")]  # the error in the tooltip


def test_labels_of_short_bars_never_cover_a_neighbour_in_their_lane():
    """A long bar then two short ones back to back in one lane (as in a digits run): each label
    sits inside its bar, beside it in free space, or is left to the tooltip; none overlaps."""
    import re

    nodes = {
        "align": NodeRun("align", "done", T0, T0, T0 + 9.5, host="h", pid=1),
        "speaker_id": NodeRun("speaker_id", "done", T0, T0 + 9.6, T0 + 10.5, host="h", pid=1),
        "spoken_digit": NodeRun("spoken_digit", "done", T0, T0 + 10.6, T0 + 12.7, host="h", pid=1),
        "written_digit": NodeRun("written_digit", "done", T0, T0 + 9.6, T0 + 14.0, host="h", pid=2),
    }
    svg = gantt_svg(nodes, {})
    spans = []  # (lane y, left, right) of every bar and every label
    for group in re.findall(r'<g class="bar" data-node="[^"]+">.*?</g>', svg, flags=re.S):
        rect = re.search(r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="22"', group)
        bx, by, bw = map(float, rect.groups())
        spans.append((by, bx, bx + bw, "bar"))
        text = re.search(r'<text x="([\d.]+)" y="[\d.]+" text-anchor="(\w+)"[^>]*>([^<]+)</text>', group)
        if text:
            tx, anchor, label = float(text.group(1)), text.group(2), text.group(3)
            tw = 7 * len(label)
            left, right = (tx, tx + tw) if anchor == "start" else (tx - tw, tx)
            if not (bx <= left and right <= bx + bw):  # outside its bar: must not touch anything else
                spans.append((by, left, right, "label"))
    labels = [s for s in spans if s[3] == "label"]
    assert labels  # the short bars' labels were placed somewhere
    for lab in labels:
        for other in spans:
            if other is not lab and other[0] == lab[0]:
                assert lab[2] <= other[1] or other[2] <= lab[1], (lab, other)


def test_chrome_trace_has_a_slice_per_node_queue_waits_and_dependency_flows(tmp_path):
    view = load_run(make_run(tmp_path))
    epochs = [{"node": "pretrain", "kind": "epoch", "epoch": 1, "time": T0 + 2.0, "seconds": 1.0, "train_loss": 1.0}]
    trace = json.loads(json.dumps(chrome_trace(view.run, view.upstream, epochs)))  # JSON-serialisable
    slices = {e["name"]: e for e in trace["traceEvents"] if e["ph"] == "X" and e.get("cat") != "queue"}
    assert {"pretrain", "finetune", "scratch", "epoch 1"} <= set(slices)
    start = view.run["started_at"]
    assert slices["pretrain"]["ts"] == round((T0 + 0.5 - start) * 1e6, 1)
    assert slices["pretrain"]["dur"] == 3.5e6
    assert slices["epoch 1"]["tid"] == slices["pretrain"]["tid"]
    assert slices["pretrain"]["tid"] == slices["finetune"]["tid"] != slices["scratch"]["tid"]
    queued = [e for e in trace["traceEvents"] if e.get("cat") == "queue"]
    assert {e["name"] for e in queued} == {"pretrain queued", "finetune queued", "scratch queued"}
    flows = [e for e in trace["traceEvents"] if e["ph"] in ("s", "f")]
    assert [e["ph"] for e in flows] == ["s", "f"] and flows[0]["id"] == flows[1]["id"]
    names = {e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M"}
    assert {"driver", "host hostA", "hostA pid 11", "hostA pid 12"} <= names

"""TAG affinity on a constructed case whose answer is known: a and b related, c unrelated."""

from __future__ import annotations

from taskgraph.affinity import measure_affinity
from taskgraph.plan.graph import make_plan
from taskgraph.report.affinity import suggest_structure
from taskgraph.spec.loader import load_spec, parse_spec

GRAPH = """
name: constructed
data:
  toy: {loader: "tests.train.affinity_data:load", n: 2000, dim: 16}
tasks:
""" + "".join(
    f"""  {t}:
    data: toy
    modules: {{encoder: {{type: mlp, hidden: [32]}}, head: {{type: linear, out: 1}}}}
    loss: {{type: binary_cross_entropy, target: {t}}}
"""
    for t in "abc"
)


def test_related_tasks_have_high_affinity_and_are_grouped(write_graph, tmp_path):
    spec, _ = load_spec(write_graph(GRAPH))
    report = measure_affinity(spec, out_dir=tmp_path, epochs=10, every=2, lookahead_lr=0.5, lr=3e-3, batch_size=64)
    z = dict(zip(report.tasks, report.matrix))
    idx = {t: i for i, t in enumerate(report.tasks)}
    ab = z["a"][idx["b"]] + z["b"][idx["a"]]
    assert ab > 0
    assert ab > 5 * abs(z["a"][idx["c"]] + z["c"][idx["a"]])
    assert ab > 5 * abs(z["b"][idx["c"]] + z["c"][idx["b"]])
    assert set(report.suggestion.groups) == {("a", "b"), ("c",)}
    # the suggestion is a graph file the user can start from: it validates and plans
    text = (tmp_path / "suggested.yaml").read_text()
    suggested, source = parse_spec(text, file="suggested.yaml")
    make_plan(suggested, source)
    assert suggested.tasks["a_b"].kind == "multitask" and set(suggested.tasks["a_b"].heads) == {"a", "b"}
    assert (tmp_path / "affinity.json").is_file()


def test_one_way_affinity_becomes_a_chain():
    # a step on x helps y a lot, never the reverse; z is unrelated
    matrix = [[0.1, 0.08, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 0.1]]
    s = suggest_structure(["x", "y", "z"], matrix)
    assert s.groups == (("x",), ("y",), ("z",))
    assert [(s.groups[a], s.groups[b]) for a, b in s.chains] == [(("x",), ("y",))]


def test_affinity_cli_writes_the_suggestion_and_refuses_unshared_inputs(write_graph, tmp_path, capsys):
    from taskgraph.cli import main

    path = write_graph(GRAPH)
    assert main(["affinity", str(path), "--epochs", "1", "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "lookahead affinity" in out and "group" in out
    assert (tmp_path / "out" / "suggested.yaml").is_file()

    other = GRAPH.replace("data:\n", "data:\n  other: {loader: synthetic_shapes, n: 100, dim: 32}\n", 1)
    other = other.replace("    data: toy\n    modules: {encoder: {type: mlp, hidden: [32]}, head: {type: linear, out: 1}}\n"
                          "    loss: {type: binary_cross_entropy, target: c}",
                          "    data: other\n    modules: {encoder: {type: mlp, hidden: [32]}, head: {type: linear, out: 1}}\n"
                          "    loss: {type: binary_cross_entropy, target: parity}")
    assert main(["affinity", str(write_graph(other, "other.yaml")), "-o", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "tasks.c: affinity needs shared inputs" in err and "Pick tasks on the same data" in err

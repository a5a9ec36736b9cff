"""Zero lines of Python: graphs on a user's CSV (two label columns) and on CoNLL-2002-style
column files train end to end on the shared local Ray, with the generic loaders alone."""

from __future__ import annotations

import json
import random

import pytest

import taskgraph

CSV_GRAPH = """
name: census
data:
  people:
    loader: table
    path: {path}
    features: ["num_*", job]
    labels:
      income: {{kind: binary, positive: ">50K"}}
      grade: class
    split_column: part
defaults:
  train: {{epochs: 2, batch_size: 32}}
tasks:
  income:
    data: people
    modules: {{encoder: {{type: mlp, hidden: [16]}}, head: {{type: linear, out: 1}}}}
    loss: {{type: binary_cross_entropy, target: income}}
    metrics: [accuracy]
  grade:
    data: people
    depends_on: {{income: {{share: [encoder], mode: finetune}}}}
    modules: {{encoder: {{type: mlp, hidden: [16]}}, head: {{type: linear, out: 3}}}}
    loss: {{type: cross_entropy, target: grade}}
    metrics: [accuracy]
"""

CONLL_GRAPH = """
name: ner
data:
  dutch: {{loader: conll, train: {train}, val: {val}, labels: {{ner: {{column: -1, span: true}}}}, vocab_size: 60}}
defaults:
  train: {{epochs: 2, batch_size: 8}}
tasks:
  tagger:
    data: dutch
    modules:
      embed: {{type: embedding, vocab: 60, dim: 8}}
      trunk: {{type: bilstm, hidden: 8}}
      head: {{type: linear, out: 5}}
    loss: {{type: cross_entropy, target: ner}}
    metrics: [span_f1, accuracy]
"""


def _census_csv(path, n=160):
    rng = random.Random(0)
    lines = ["num_age,num_hours,job,income,grade,part"]
    for i in range(n):
        age, hours, job = rng.randint(18, 70), rng.randint(10, 60), rng.choice(["clerk", "smith", "cook"])
        income = ">50K" if age + hours > 80 else "<=50K"
        grade = "" if i % 5 == 0 else ["low", "mid", "high"][min(2, (age - 18) // 18)]  # a fifth unlabelled
        lines.append(f"{age},{hours},{job},{income},{grade},{'val' if i % 4 == 0 else 'train'}")
    path.write_text("\n".join(lines) + "\n")


def _conll(path, sentences, seed):
    rng = random.Random(seed)
    names, places, words = ["Jan", "Piet", "Marie"], ["Amsterdam", "Gent"], ["zegt", "dat", "de", "in", "was"]
    lines = ["-DOCSTART- -DOCSTART- O", ""]
    for _ in range(sentences):
        for _ in range(rng.randint(3, 7)):
            kind = rng.random()
            if kind < 0.2:
                lines.append(f"{rng.choice(names)} N B-PER")
            elif kind < 0.3:
                lines += [f"{rng.choice(places)} N B-LOC", "Zuid N I-LOC"]
            else:
                lines.append(f"{rng.choice(words)} V O")
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_csv_with_two_label_columns_trains_without_code(ray_local, write_graph, tmp_path):
    _census_csv(tmp_path / "people.csv")
    spec = taskgraph.load(write_graph(CSV_GRAPH.format(path=tmp_path / "people.csv")))
    result = taskgraph.run(spec, run_root=tmp_path / "runs")
    assert result.ok
    for node in ("income", "grade"):
        final = json.loads((result.run_dir / node / "metrics.json").read_text())["final"]
        assert 0.0 <= final["accuracy"] <= 1.0


@pytest.mark.slow
def test_conll_2002_style_files_train_without_code(ray_local, write_graph, tmp_path):
    _conll(tmp_path / "ned.train", 40, seed=0)
    _conll(tmp_path / "ned.testa", 10, seed=1)
    spec = taskgraph.load(write_graph(CONLL_GRAPH.format(train=tmp_path / "ned.train", val=tmp_path / "ned.testa")))
    result = taskgraph.run(spec, run_root=tmp_path / "runs")
    assert result.ok
    final = json.loads((result.run_dir / "tagger" / "metrics.json").read_text())["final"]
    assert 0.0 <= final["span_f1"] <= 1.0 and 0.0 <= final["accuracy"] <= 1.0


def test_node_key_follows_the_table_file_content(write_graph, tmp_path):
    from taskgraph.plan.graph import make_plan
    from taskgraph.plan.keys import node_keys

    _census_csv(tmp_path / "people.csv")
    spec = taskgraph.load(write_graph(CSV_GRAPH.format(path=tmp_path / "people.csv")))
    before = node_keys(spec, make_plan(spec))
    text = (tmp_path / "people.csv").read_text()
    (tmp_path / "people.csv").write_text(text.replace("<=50K", "XX", 1))
    after = node_keys(spec, make_plan(spec))
    assert before["income"] != after["income"] and before["grade"] != after["grade"]


def test_list_loaders_verbose_prints_each_option_with_its_description(capsys):
    from taskgraph.cli import main

    assert main(["list", "loaders", "-v"]) == 0
    out = capsys.readouterr().out
    assert "  table " in out and "      split_column: str | None = None  Column saying each row's split" in out
    assert "      labels: tuple[ConllColumn, ...] = ()  Tag columns" in out
    assert "      npy: tuple[tuple[str, str], ...] = ()" in out
    assert main(["list", "loaders"]) == 0 and "split_column" not in capsys.readouterr().out


def test_validate_names_a_target_or_input_the_loader_does_not_give(write_graph, tmp_path):
    from taskgraph.cli import main

    _census_csv(tmp_path / "people.csv")
    text = CSV_GRAPH.format(path=tmp_path / "people.csv")
    assert main(["validate", str(write_graph(text))]) == 0
    bad = write_graph(text.replace("target: grade", "target: grad").replace("    data: people\n    modules", "    data: people\n    input: features\n    modules", 1), "bad.yaml")
    from taskgraph.errors import PlanError

    with pytest.raises(PlanError) as caught:
        taskgraph.load(bad)
    message = str(caught.value)
    assert "tasks.income.input: data source 'people' (table) has no field 'features'." in message
    assert "tasks.grade.loss.target: data source 'people' (table) has no field 'grad'. Did you mean 'grade'? " \
           "Known: grade, income, x." in message
    assert f"{bad}:" in message

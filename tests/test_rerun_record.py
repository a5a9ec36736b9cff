"""The no-change rerun's fast path (``cli.fast``, ``taskgraph.rerun``): it writes and prints what the
full path does, and every change that could make its kept record stale sends it down the full path.

The cache is filled as ``test_cached_rerun`` fills it (no Ray, no training); the first ``run``
(full path) keeps the record, the ones after it may replay.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from taskgraph.cli import main
from taskgraph.cli.fast import fast_run, parse_run
from taskgraph.plan.graph import make_plan
from taskgraph.plan.keys import key_recipe, keys_from_recipe, node_keys
from taskgraph.rerun import RECORDS, read_record, record_digest
from taskgraph.spec import load_spec
from tests.test_cached_rerun import GRAPH, ROOT, fill_cache

TABLE_GRAPH = """
name: table_rerun
data:
  people: {loader: table, path: people.csv, labels: {y: class}}
defaults:
  train: {epochs: 1, batch_size: 8}
tasks:
  a: {data: people, modules: {encoder: {type: mlp, in: 2, hidden: [4]}, head: {type: linear, out: 2}}, loss: {type: cross_entropy, target: y}}
  b: {data: people, depends_on: {a: {share: [encoder]}}, modules: {encoder: {type: mlp, in: 2, hidden: [4]}, head: {type: linear, out: 2}}, loss: {type: cross_entropy, target: y}}
"""


@pytest.fixture
def cached(tmp_path, monkeypatch):
    """A graph whose every node is cached under ``runs`` in the working folder, and its ``run`` argv."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("TASKGRAPH_WARM", raising=False)
    monkeypatch.delenv("TASKGRAPH_RUN_DIR", raising=False)

    def make(text: str = GRAPH, *extra: str) -> list[str]:
        (tmp_path / "graph.yaml").write_text(text)
        spec, _ = load_spec("graph.yaml", tuple(v for k, v in itertools.pairwise(extra) if k == "--set"))
        fill_cache(spec, tmp_path / "runs", tmp_path / "work")
        return ["run", "graph.yaml", "--run-dir", "runs", "--plain", *extra]

    return make


def _runs(tmp_path: Path, name: str) -> list[Path]:
    return sorted((tmp_path / "runs" / name).iterdir())


def _same(text: str) -> str:
    """Output with the run folder's name and the wall time blanked."""
    return re.sub(r"\d{8}-\d{6}(-\d+)?", "RUN", re.sub(r"wall time [\d.]+s", "wall time Xs", text))


def test_the_fast_path_prints_and_writes_what_the_full_path_does(cached, tmp_path, capsys):
    argv = cached()
    assert fast_run(argv) is None  # no record yet: nothing printed, nothing written
    assert capsys.readouterr().out == "" and not (tmp_path / "runs" / "rerun").exists()
    assert main(argv) == 0  # the full path, which keeps the record
    full = capsys.readouterr()
    assert len(list((tmp_path / "runs" / ".cache" / RECORDS).iterdir())) == 1
    assert fast_run(argv) == 0
    fast = capsys.readouterr()
    assert _same(fast.out) == _same(full.out) and fast.err == full.err == ""
    assert "  cached   a: loss=0.5000" in fast.out

    slow_dir, fast_dir = _runs(tmp_path, "rerun")
    files = sorted(str(p.relative_to(slow_dir)) for p in slow_dir.rglob("*"))
    assert files == sorted(str(p.relative_to(fast_dir)) for p in fast_dir.rglob("*"))
    for name in files:
        if (slow_dir / name).is_file() and name not in ("run.json", "trace.json"):
            assert (slow_dir / name).read_bytes() == (fast_dir / name).read_bytes(), name
    runs = [json.loads((d / "run.json").read_text()) for d in (slow_dir, fast_dir)]
    for run, folder in zip(runs, (slow_dir, fast_dir)):
        assert run.pop("run_dir") == str(folder.relative_to(tmp_path))
        assert run.pop("started_at") <= run.pop("ended_at")
    assert runs[0] == runs[1] and runs[0]["status"] == "done"
    traces = [json.loads((d / "trace.json").read_text()) for d in (slow_dir, fast_dir)]
    assert [sorted(e) for e in traces[0]["traceEvents"]] == [sorted(e) for e in traces[1]["traceEvents"]]


def test_a_no_change_rerun_imports_neither_typer_nor_pydantic(cached, tmp_path):
    argv = cached()
    code = ("import sys; from taskgraph.cli import main;"
            f"rc = main({argv!r});"
            "print('RC', rc, 'IMPORTED', sorted(m for m in ('typer', 'pydantic', 'yaml', 'ray', 'torch') "
            "if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first, second = (subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                                    env=env, timeout=120, check=False) for _ in range(2))
    assert "RC 0 IMPORTED ['pydantic', 'typer'" in first.stdout, first.stdout + first.stderr  # the full path
    assert "RC 0 IMPORTED []" in second.stdout, second.stdout + second.stderr
    assert [p.name for p in _runs(tmp_path, "rerun")] != [] and len(_runs(tmp_path, "rerun")) == 2


def _kept(argv: list[str], capsys) -> None:
    assert main(argv) == 0 and fast_run(argv) == 0  # the record is kept and replays
    capsys.readouterr()


def test_an_edited_graph_or_other_overrides_take_the_full_path(cached, tmp_path, capsys):
    argv = cached(GRAPH, "--set", "tasks.a.train.epochs=1")
    _kept(argv, capsys)
    before = len(_runs(tmp_path, "rerun"))
    assert fast_run([*argv[:-2], "--set", "tasks.a.train.epochs=2"]) is None  # another override
    assert fast_run(argv[:-2]) is None  # no override
    (tmp_path / "graph.yaml").write_text(GRAPH.replace("hidden: [8]}, head: {type: linear, out: 4}",
                                                       "hidden: [8]}, head: {type: linear, out: 4, bias: false}"))
    assert fast_run(argv) is None  # an edit (a new key for a): validated and trained again
    (tmp_path / "graph.yaml").write_text(GRAPH + "\n# a comment\n")
    assert fast_run(argv) is None  # any byte changes the digest, even a comment
    assert len(_runs(tmp_path, "rerun")) == before and capsys.readouterr().out == ""


def test_a_graph_edited_while_it_runs_keeps_no_record_of_the_old_one(cached, tmp_path, capsys, monkeypatch):
    import taskgraph.cli.running as running

    argv = cached()
    edited = GRAPH.replace("hidden: [8]}, head: {type: linear, out: 4}",
                           "hidden: [8]}, head: {type: linear, out: 4, bias: false}")
    before = running._run_and_report

    def edit_during(*args, **kwargs):
        before(*args, **kwargs)
        (tmp_path / "graph.yaml").write_text(edited)  # saved while the nodes trained

    monkeypatch.setattr(running, "_run_and_report", edit_during)
    assert main(argv) == 0
    assert fast_run(argv) is None  # the old graph's record is not kept under the new bytes
    (tmp_path / "graph.yaml").write_text(GRAPH)
    assert fast_run(argv) == 0  # under the bytes it validated
    capsys.readouterr()


def test_bad_yaml_after_a_kept_record_is_still_one_line_and_exit_2(cached, tmp_path, capsys):
    argv = cached()
    _kept(argv, capsys)
    (tmp_path / "graph.yaml").write_text(GRAPH.replace("epochs: 1", "epochs: [1"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("graph.yaml:") and "1 problem found." in err and "Traceback" not in err


def test_a_changed_data_file_or_a_missing_one_take_the_full_path(cached, tmp_path, capsys):
    (tmp_path / "people.csv").write_text("f1,f2,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20)))
    argv = cached(TABLE_GRAPH)
    _kept(argv, capsys)
    spec, _ = load_spec("graph.yaml")
    plan = make_plan(spec)
    record = read_record("runs", record_digest(Path("graph.yaml")))
    assert record is not None and record.present == (str(tmp_path / "people.csv"),)
    keys = node_keys(spec, plan)
    assert keys_from_recipe(json.loads(json.dumps(key_recipe(spec, plan)))) == keys == keys_from_recipe(record.recipe)
    with (tmp_path / "people.csv").open("a") as f:
        f.write("99,1,0\n")  # same graph, new data: the kept recipe gives new keys, not in the cache
    assert keys_from_recipe(record.recipe) == node_keys(spec, plan) != keys
    assert fast_run(argv) is None
    (tmp_path / "people.csv").unlink()
    assert fast_run(argv) is None  # the full path names the missing file
    assert main(argv) == 2 and "people.csv" in capsys.readouterr().err


MNIST_GRAPH = """
name: searched
data:
  digits: {loader: mnist, max_train: 10, max_val: 10}
tasks:
  a: {data: digits, modules: {encoder: {type: mlp, hidden: [4]}, head: {type: linear, out: 10}}, loss: {type: cross_entropy, target: digit}}
"""


def test_a_data_set_folder_appearing_earlier_on_the_search_path_takes_the_full_path(cached, tmp_path, capsys,
                                                                                  monkeypatch):
    monkeypatch.delenv("TASKGRAPH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the fetch folder: first on the search path
    monkeypatch.setattr("taskgraph.spec.data.DEFAULT_DATA", tmp_path / "staged")  # then the staged copy
    (tmp_path / "staged" / "mnist").mkdir(parents=True)
    (tmp_path / "staged" / "mnist" / "train-images-idx3-ubyte").write_bytes(b"staged")
    argv = cached(MNIST_GRAPH)
    _kept(argv, capsys)
    record = read_record("runs", record_digest(Path("graph.yaml")))
    assert record is not None and record.present == (str(tmp_path / "staged" / "mnist"),)
    fetched = tmp_path / "xdg" / "taskgraph" / "data" / "mnist"
    staged = str(tmp_path / "staged" / "mnist")
    assert record.probes == (("dir", (str(fetched), staged), staged),)
    fetched.mkdir(parents=True)  # `taskgraph data fetch mnist`: other data, taken from now on
    assert fast_run(argv) is None
    fetched.rmdir()
    assert fast_run(argv) == 0


USER_GRAPH = """
name: user_loader
data:
  mine: {loader: "userdata:load", table: extra.csv, sep: ","}
tasks:
  a: {data: mine, modules: {encoder: {type: mlp, in: 3, hidden: [4]}, head: {type: linear, out: 2}}, loss: {type: cross_entropy, target: y}}
"""


def test_a_file_a_user_loader_argument_starts_naming_takes_the_full_path(cached, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "userdata.py").write_text("def load(table, sep):\n    raise NotImplementedError\n")
    argv = cached(USER_GRAPH)
    _kept(argv, capsys)
    (tmp_path / "extra.csv").write_text("x\n")  # now an argument names a file: hashed into the key
    assert fast_run(argv) is None
    (tmp_path / "extra.csv").unlink()
    assert fast_run(argv) == 0
    (tmp_path / "userdata.py").write_text("def load(table, sep):\n    return {}\n")  # the loader's code
    assert fast_run(argv) is None


def test_code_libraries_environment_and_a_damaged_record_change_the_digest(cached, tmp_path, capsys, monkeypatch):
    argv = cached()
    _kept(argv, capsys)
    digest = record_digest(Path("graph.yaml"))
    changes = {  # each alone: (what changes, whether the record is another one)
        "TASKGRAPH_DATA": (lambda m: m.setenv("TASKGRAPH_DATA", str(tmp_path)), True),
        "spec code": (lambda m: m.setattr("taskgraph.rerun._code_digest", lambda: "edited"), True),
        "pydantic": (lambda m: m.setattr("taskgraph.rerun._LIBRARIES", ("pydantic", "yaml", "json")), True),
        "training code": (lambda m: m.setattr("taskgraph.plan.keys.code_version", lambda: "edited"), False),
    }
    for name, (change, other_record) in changes.items():
        with monkeypatch.context() as m:
            change(m)
            assert (record_digest(Path("graph.yaml")) != digest) == other_record, name
            assert fast_run(argv) is None, name  # another record (none), or the same one with new keys
    assert record_digest(Path("graph.yaml")) == digest and fast_run(argv) == 0
    path = tmp_path / "runs" / ".cache" / RECORDS / f"{digest}.json"
    kept = path.read_bytes()
    path.write_bytes(kept[:-40])  # torn
    assert read_record("runs", digest) is None and fast_run(argv) is None
    path.write_bytes(kept.replace(b"name: rerun", b"name: rerux"))  # one byte of graph.yaml changed
    assert b"name: rerux" in path.read_bytes() and read_record("runs", digest) is None and fast_run(argv) is None
    capsys.readouterr()
    assert main(argv) == 0 and fast_run(argv) == 0  # the full path kept a sound one again


def test_a_damaged_cache_entry_is_left_to_the_full_path(cached, tmp_path, capsys):
    argv = cached()
    _kept(argv, capsys)
    spec, _ = load_spec("graph.yaml")
    key = node_keys(spec, make_plan(spec))["c"]
    metrics = tmp_path / "runs" / ".cache" / "nodes" / key[:2] / key / "metrics.json"
    metrics.chmod(0o644)
    metrics.write_text('{"final": {"loss": 0.1}}')
    assert fast_run(argv) is None and metrics.exists()  # nothing evicted or printed here
    assert capsys.readouterr().err == ""


def test_only_the_plainest_run_command_lines_take_the_fast_path(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("TASKGRAPH_WARM", raising=False)
    monkeypatch.delenv("TASKGRAPH_RUN_DIR", raising=False)
    args = parse_run(["run", "--set=a=1", "g.yaml", "--no-tensorboard", "--run-dir=r", "--set", "b=2", "--plain"])
    assert args is not None and (str(args.graph), args.run_dir, args.overrides, args.plain, args.tensorboard) == (
        "g.yaml", "r", ("a=1", "b=2"), True, False)
    for argv in (["validate", "g.yaml"], ["run"], ["run", "a.yaml", "b.yaml"], ["run", "g.yaml", "--help"],
                 ["run", "g.yaml", "--only", "a"], ["run", "g.yaml", "--cpu-only"], ["run", "g.yaml", "--set"],
                 ["run", "g.yaml", "--address", "auto"], ["run", "g.yaml", "--no-cache"], ["run", "g.yaml", "--"],
                 ["run", "g.yaml", "--run-dir", "s3://bucket/runs"], ["run", "g.yaml", "--plain=1"]):
        assert parse_run(argv) is None, argv
    assert parse_run(["run", "g.yaml", "--warm"]) is not None  # nothing to train: the warm Ray is not reached
    monkeypatch.setenv("TASKGRAPH_WARM_IDLE", "soon")
    assert parse_run(["run", "g.yaml", "--warm"]) is None  # the full path says what is wrong with it
    monkeypatch.setenv("TASKGRAPH_RUN_DIR", "elsewhere")
    assert parse_run(["run", "g.yaml"]).run_dir == "elsewhere"  # type: ignore[union-attr]
    for name in ("RAY_ADDRESS", "TASKGRAPH_WARM"):
        monkeypatch.setenv(name, "1")
        assert parse_run(["run", "g.yaml"]) is None
        monkeypatch.delenv(name)

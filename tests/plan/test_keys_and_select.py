"""Cache keys change exactly when a node's result could change; selections parse as documented."""

from __future__ import annotations

import pytest

from taskgraph.plan import make_plan
from taskgraph.plan.keys import node_keys
from taskgraph.plan.select import SelectionError, select
from taskgraph.spec import parse_spec

GRAPH = """
name: keys
data:
  shapes: {loader: synthetic_shapes, n: 100, dim: 8}
tasks:
  a: {data: shapes, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 4}}, loss: {type: cross_entropy, target: label}}
  b: {data: shapes, depends_on: {a: {share: [encoder]}}, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 1}}, loss: {type: mse, target: parity}}
  c: {data: shapes, depends_on: [b], modules: {head: {type: linear, in: 8, out: 1}}, loss: {type: mse, target: parity}}
  d: {data: shapes, modules: {head: {type: linear, in: 8, out: 1}}, loss: {type: mse, target: coarse}}
"""


def keys(*overrides, text=GRAPH):
    spec, source = parse_spec(text, overrides=list(overrides))
    return node_keys(spec, make_plan(spec, source))


def changed(before, after):
    return {n for n in before if before[n] != after[n]}


def test_keys_are_stable():
    assert keys() == keys()


def test_changing_one_node_changes_it_and_its_descendants_only():
    base = keys()
    assert changed(base, keys("tasks.a.train.epochs=9")) == {"a", "b", "c"}
    assert changed(base, keys("tasks.b.train.lr=0.1")) == {"b", "c"}
    assert changed(base, keys("tasks.d.seed=3")) == {"d"}
    assert changed(base, keys("seed=5")) == {"a", "b", "c", "d"}
    assert changed(base, keys("data.shapes.n=200")) == {"a", "b", "c", "d"}
    assert changed(base, keys("tasks.b.depends_on.a.mode=freeze")) == {"b", "c"}


def test_cosmetic_fields_do_not_change_keys():
    base = keys()
    assert keys("tasks.a.cost=100", "tasks.a.resources.cpus=2", "tasks.a.train.checkpoint_every=10") == base


def test_data_file_content_is_part_of_the_key(tmp_path):
    data_file = tmp_path / "data.txt"
    data_file.write_text("one")
    text = GRAPH + f"  e: {{data: mine, modules: {{head: {{type: linear, in: 2, out: 1}}}}, loss: {{type: mse, target: y}}}}\n"
    text = text.replace("data:\n", f"data:\n  mine: {{loader: 'tests.faults:nothing', path: '{data_file}'}}\n", 1)
    first = keys(text=text)
    data_file.write_text("two")
    second = keys(text=text)
    assert changed(first, second) == {"e"}


def test_built_in_loaders_are_keyed_on_the_files_they_read(tmp_path, monkeypatch):
    """digit_pairs reads root/fsdd and root/mnist, not a folder of its own: a changed MNIST file
    must change its key. conll2000's relative root is the repository's, wherever the run starts."""
    from taskgraph.plan.keys import data_fingerprint
    from taskgraph.spec.data import Conll2000Data, DigitPairsData

    for name in ("fsdd", "mnist"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "file.bin").write_bytes(b"one")
    pairs = DigitPairsData(loader="digit_pairs", root=str(tmp_path))
    assert pairs.reads() == (tmp_path / "fsdd", tmp_path / "mnist")
    first = data_fingerprint(pairs)
    (tmp_path / "mnist" / "file.bin").write_bytes(b"two")
    assert first != "generated" and data_fingerprint(pairs) != first
    monkeypatch.setenv("TASKGRAPH_DATA", str(tmp_path))  # no root: each data set's default folder
    default = DigitPairsData(loader="digit_pairs")
    assert default.reads() == (tmp_path / "fsdd", tmp_path / "mnist")
    before = data_fingerprint(default)
    (tmp_path / "fsdd" / "file.bin").write_bytes(b"three")
    assert before != "generated" and data_fingerprint(default) != before

    conll = Conll2000Data(loader="conll2000")
    monkeypatch.chdir(tmp_path)
    from taskgraph.train.datasets.conll2000 import resolve_root

    assert conll.reads() == (resolve_root(conll.root),) and conll.reads()[0].is_absolute()


@pytest.fixture(scope="module")
def plan():
    spec, source = parse_spec(GRAPH)
    return make_plan(spec, source)


def test_selection_syntax(plan):
    assert select(plan, "b") == {"b"}
    assert select(plan, "b+") == {"b", "c"}
    assert select(plan, "+b") == {"a", "b"}
    assert select(plan, "+b+") == {"a", "b", "c"}
    assert select(plan, "a,d") == {"a", "d"}
    assert select(plan, "[cd]") == {"c", "d"}
    assert select(plan, "all") == {"a", "b", "c", "d"}
    assert select(plan, None) == set()


def test_unknown_selection_suggests(plan):
    with pytest.raises(SelectionError, match=r"--only 'bb\+': no node named 'bb'. Did you mean 'b'\?"):
        select(plan, "bb+", "--only")


# --------------------------------------------------------------- user code and data the key covers
USER = GRAPH.replace("data:\n", "data:\n  mine: {loader: 'LOADER', ARGS}\n", 1) + (
    "  e: {data: mine, modules: {head: {type: linear, in: 2, out: 1}}, loss: {type: mse, target: y}}\n"
)


def user_graph(loader: str, args: str = "n: 3") -> str:
    return USER.replace("LOADER", loader).replace("ARGS", args)


@pytest.fixture
def user_pkg(tmp_path, monkeypatch):
    """A user package on sys.path, with a unique name (the import system caches by name)."""
    name = f"userpkg_{tmp_path.name.replace('-', '_')}"
    root = tmp_path / "src" / name
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "data.py").write_text("def load(**kw):\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    return name, root


def test_editing_a_user_loader_changes_the_key_of_its_nodes(user_pkg):
    name, root = user_pkg
    first = keys(text=user_graph(f"{name}.data:load"))
    (root / "data.py").write_text("def load(**kw):\n    return 2  # a changed loader\n")
    assert changed(first, keys(text=user_graph(f"{name}.data:load"))) == {"e"}


def test_user_code_is_located_without_importing_it(user_pkg):
    """A package that fails on import does not break keys (the driver never runs user code),
    and its module's source is still hashed."""
    name, root = user_pkg
    (root / "__init__.py").write_text("raise RuntimeError('import-time failure')\n")
    text = user_graph(f"{name}.data:load")
    first = keys(text=text)
    (root / "data.py").write_text("def load(**kw):\n    return 3\n")
    assert changed(first, keys(text=text)) == {"e"}
    module = text.replace("head: {type: linear, in: 2, out: 1}", f"head: {{type: '{name}.data:Head', in: 2}}")
    assert keys(text=module)  # a module reference in the package: found, not imported


def test_a_missing_user_module_is_a_clear_error():
    from taskgraph.plan.usercode import UserCodeError

    with pytest.raises(UserCodeError, match=r"^data\.mine\.loader: 'no_such_pkg_xyz\.data:load' names module "
                                            r"'no_such_pkg_xyz\.data', which is not on this machine's Python path"):
        keys(text=user_graph("no_such_pkg_xyz.data:load"))


def test_every_path_like_loader_argument_is_fingerprinted(tmp_path):
    """A CSV under any argument name (not only root/path/files), at any depth, and files the
    loader declares in reads_files: a changed byte changes the key."""
    table, extra, nested = tmp_path / "table.csv", tmp_path / "vocab.txt", tmp_path / "labels.csv"
    for f in (table, extra, nested):
        f.write_text("a,b\n1,0\n")
    args = (f"table: '{table}', options: {{labels: ['{nested}']}}, sep: ',', here: '.', "
            f"reads_files: ['{extra}']")
    text = user_graph("tests.faults:nothing", args)
    for f in (table, extra, nested):
        before = keys(text=text)
        f.write_text("a,b\n1,1\n")  # a label flipped
        assert changed(before, keys(text=text)) == {"e"}, f


def test_reads_files_is_not_passed_to_the_loader(tmp_path):
    from taskgraph.spec.data import CustomData

    config = CustomData(loader="tests.faults:nothing", table=str(tmp_path), reads_files=[str(tmp_path / "x")], sep="/")
    assert config.model_extra == {"table": str(tmp_path), "sep": "/"}
    assert config.reads() == (tmp_path, tmp_path / "x")  # "/" is no data path

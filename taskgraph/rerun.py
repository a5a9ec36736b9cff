"""A no-change rerun without typer, pydantic or the spec models: the validated graph kept as JSON.

Most of a no-change ``taskgraph run`` (~0.9 s) went before the first cache lookup: typer building
its commands (its option coercion imports pydantic), pydantic building the spec models' validators,
and validating the graph. What a rerun needs from all that is small: the graph's name, its plan, its
resolved YAML (``graph.yaml``), the recipe of its cache keys (``plan.keys.key_recipe``), the data
paths that must exist and what the looks for data found (``spec.data.probes_made``: the folder a
data set search took, whether a loader argument names a file). ``write_record`` keeps that as JSON
in the run root's cache after a run that finished, under ``record_digest``: a digest of everything
that could change it (the graph file's path and bytes, the working folder, the ``--set`` overrides,
the variables data paths are read from, the taskgraph code that validates and plans, the installed
pydantic and PyYAML, the Python).

``cli.fast`` looks the record up by that digest, recomputes the keys from the recipe (every data
file, user code file and the training code fingerprinted now, as on the full path) and, only when
every node has a sound cache entry and every look for data finds the same, ``replay`` writes the run
folder as ``runner.run_graph`` does for an all-cached graph (``tests/test_rerun_record.py`` compares
the two folders). Anything else (no record, a damaged one, a data file missing, a node to train)
takes the full path, which validates, reports errors and evicts damaged entries as it always did.
Records are JSON, never pickles.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskgraph.plan.graph import NodePlan, Plan

if TYPE_CHECKING:
    from taskgraph.artifacts.cache import NodeCache
    from taskgraph.spec.models import Graph

__all__ = ["RECORDS", "snapshot", "record_digest", "write_record", "read_record", "Replayed", "replay", "sound_keys"]

#: Bumped when what a record holds changes, so an older record is never misread.
RECORD_SCHEMA = 3
#: The records' folder in the run root's cache (``<run-dir>/.cache/graphs``), and how many it keeps.
RECORDS, KEEP = "graphs", 16

_PACKAGE = Path(__file__).resolve().parent
#: The code whose output a record holds: validation, planning, keys' recipe, ``graph.yaml`` and this file.
_CODE = ("spec", "plan", "runner.py", "rerun.py", "errors.py", "__init__.py")
#: Libraries whose behaviour a record depends on: an upgrade rewrites these files (new stamp, new digest).
_LIBRARIES = ("pydantic", "pydantic_core", "yaml", "_yaml")
#: Variables that data paths are read from (``spec.data``: ~, ``$TASKGRAPH_DATA``, the fetch folder).
_ENVIRONMENT = ("HOME", "TASKGRAPH_DATA", "XDG_CACHE_HOME")


def _code_digest() -> str:
    """sha256 over taskgraph's own validating and planning code (names and bytes)."""
    h = hashlib.sha256()
    for part in _CODE:
        top = _PACKAGE / part
        files = sorted(top.rglob("*.py")) if top.is_dir() else [top]
        for path in files:
            h.update(str(path.relative_to(_PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _library_stamps() -> dict[str, list[Any] | None]:
    """Where each library is installed and its entry file's size and modification time, found
    without importing it (importing pydantic is a large share of what the record saves)."""
    import importlib.util

    stamps: dict[str, list[Any] | None] = {}
    for name in _LIBRARIES:
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            found = None
        origin = found.origin if found is not None else None
        if origin and os.path.isfile(origin):
            st = os.stat(origin)
            stamps[name] = [origin, st.st_size, st.st_mtime_ns]
        else:
            stamps[name] = None
    return stamps


def snapshot(graph: str | os.PathLike[str], overrides: Sequence[str]) -> tuple[bytes | None, str | None]:
    """The graph file's bytes, to validate, and the digest a record of them is kept under, taken
    together before validating. (None, None) when the file cannot be read (the loader says why);
    (bytes, None) when the digest cannot be taken (a working folder removed): no record then."""
    try:
        raw = Path(graph).read_bytes()
    except OSError:
        return None, None
    try:
        return raw, record_digest(graph, overrides, raw)
    except OSError:
        return raw, None


def record_digest(graph: str | os.PathLike[str], overrides: Sequence[str] = (), raw: bytes | None = None) -> str:
    """The digest a record is kept under: equal only when validating ``graph`` (whose bytes are
    ``raw``, read here if not given) with ``overrides`` here would give the same record. Raises
    ``OSError`` when the file cannot be read."""
    text = Path(graph).read_bytes() if raw is None else raw
    inputs = {
        "schema": RECORD_SCHEMA,
        "graph": str(graph),
        "bytes": hashlib.sha256(text).hexdigest(),
        "cwd": os.getcwd(),
        "overrides": list(overrides),
        "environment": {name: os.environ.get(name) for name in _ENVIRONMENT},
        "code": _code_digest(),
        "libraries": _library_stamps(),
        "python": [sys.version, sys.prefix],
        "package": str(_PACKAGE),  # the staged data's default folder is found next to it
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _records(run_root: str | os.PathLike[str]) -> Path:
    """``<run-dir>/.cache/graphs`` (a local run root: ``file://`` stripped)."""
    from taskgraph.artifacts import store

    return Path(store.normalize(run_root)) / ".cache" / RECORDS


# --------------------------------------------------------------------------- writing (full path)


def _fixed_reads(config: Any) -> bool:
    """Whether the paths a data source reads follow from its config, the working folder, the
    variables in ``_ENVIRONMENT`` and what its looks for data found (``spec.data.probes_made``,
    looked at again on replay): every loader taskgraph knows; an unknown kind keeps no record."""
    from taskgraph.spec.data import Conll2000Data, CustomData, _DataBase, _RealDataBase
    from taskgraph.spec.filedata import FILE_LOADERS

    if isinstance(config, (CustomData, *FILE_LOADERS, _RealDataBase, Conll2000Data)):
        return True
    return type(config).reads is _DataBase.reads  # generated data: reads nothing


def _must_exist(spec: Graph) -> list[str] | None:
    """The paths ``spec.presence.check_data_present`` requires (None: a source ``_fixed_reads`` refuses)."""
    from taskgraph.spec.data import CustomData
    from taskgraph.spec.filedata import FILE_LOADERS, user_path

    paths: list[str] = []
    for name in sorted({name for task in spec.tasks.values() for name in task.data_sources()}):
        config = spec.data.get(name)
        if config is None or not _fixed_reads(config):
            return None
        if isinstance(config, CustomData):
            continue
        files = ([user_path(text) for text in config.files().values()] if isinstance(config, FILE_LOADERS)
                 else config.reads())
        paths += [str(path) for path in files]
    return paths


def write_record(spec: Graph, plan: Plan, digest: str, run_root: str | os.PathLike[str]) -> Path | None:
    """Keep what a no-change rerun needs, under ``digest`` (``record_digest``, taken before ``spec``
    was validated: a graph file or code edited during the run gets no record of the old one). Best
    effort: a graph whose data paths are not fixed, a remote run root or a failed write keeps none."""
    from taskgraph.artifacts import store
    from taskgraph.plan.keys import key_recipe
    from taskgraph.runner import dump_graph

    from taskgraph.spec.data import probes_made

    if store.is_remote(run_root):
        return None
    with probes_made() as probes:
        present = _must_exist(spec)
        recipe = key_recipe(spec, plan)
    if present is None:
        return None
    body = {"name": spec.name, "plan": plan.to_dict(), "graph_yaml": dump_graph(spec), "recipe": recipe,
            "present": present, "probes": sorted(set(probes))}
    record = {"schema": RECORD_SCHEMA, "digest": digest, "sha256": _body_digest(body), "body": body}
    try:
        folder = _records(run_root)
        path = store.write_bytes(folder / f"{digest}.json", json.dumps(record, sort_keys=True).encode())
        _prune(folder)
    except OSError:
        return None
    return Path(path)


def _body_digest(body: dict[str, Any]) -> str:
    """sha256 of a record's body as canonical JSON: a record changed on disk (a flipped bit in its
    ``graph.yaml`` text) is refused, as damaged cache entries are, never replayed."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _prune(folder: Path) -> None:
    """Keep the ``KEEP`` newest records: one per edit of a graph would otherwise pile up."""
    entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in entries[KEEP:]:
        old.unlink(missing_ok=True)


# --------------------------------------------------------------------------- reading (fast path)


@dataclass(frozen=True)
class Record:
    """A kept record, checked: what ``replay`` needs of a validated graph."""

    name: str
    plan: Plan
    graph_yaml: str
    recipe: dict[str, Any]
    present: tuple[str, ...]
    #: The looks for data made while validating (``spec.data.Probe``): kind, paths looked at, what was found.
    probes: tuple[tuple[str, tuple[str, ...], str], ...] = ()


def _plan(data: dict[str, Any]) -> Plan:
    """``Plan.to_dict`` read back: the same plan, without planning."""
    nodes = {n: NodePlan(n, p["stage"], p["cost"], tuple(p["upstream"]), tuple(p["downstream"]),
                         p["on_critical_path"]) for n, p in data["nodes"].items()}
    return Plan(data["graph"], tuple(data["order"]), tuple(tuple(s) for s in data["stages"]),
                tuple(data["critical_path"]), data["critical_cost"], data["total_cost"], nodes)


def read_record(run_root: str | os.PathLike[str], digest: str) -> Record | None:
    """The record kept under ``digest``; None when there is none or it is damaged in any way."""
    try:
        kept = json.loads((_records(run_root) / f"{digest}.json").read_bytes())
        if kept["schema"] != RECORD_SCHEMA or kept["digest"] != digest or kept["sha256"] != _body_digest(kept["body"]):
            return None
        data = kept["body"]
        plan = _plan(data["plan"])
        recipe, present = data["recipe"], data["present"]
        names = [node["name"] for node in recipe["nodes"]]
        if names != list(plan.order) or set(plan.nodes) != set(names) or not isinstance(data["graph_yaml"], str):
            return None
        probes = tuple((kind, tuple(paths), found) for kind, paths, found in data["probes"])
        if not isinstance(data["name"], str) or not all(isinstance(p, str) for p in present):
            return None
        if not all(kind in ("dir", "exists") and paths and all(isinstance(p, str) for p in paths)
                   and isinstance(found, str) for kind, paths, found in probes):
            return None
        return Record(data["name"], plan, data["graph_yaml"], recipe, tuple(present), probes)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _look(kind: str, paths: tuple[str, ...]) -> str:
    """A probe made again, as ``spec.data`` makes it: the folder ``data_root`` would take now
    ("dir"), or the path if it exists now, else "" ("exists")."""
    if kind == "dir":
        return next((path for path in paths if os.path.isdir(path)), paths[0])
    return paths[0] if os.path.exists(paths[0]) else ""


def sound_keys(record: Record, cache: NodeCache) -> dict[str, str] | None:
    """Every node's key when its data is all here and every node has a sound cache entry; else None.

    Nothing is evicted here: the full path that follows a None checks again, reports and evicts.
    """
    from taskgraph.errors import TaskgraphError
    from taskgraph.plan.keys import keys_from_recipe

    if not all(os.path.exists(path) for path in record.present):
        return None
    if any(_look(kind, paths) != found for kind, paths, found in record.probes):
        return None  # a data set folder or a file a loader argument names appeared or went
    try:
        keys = keys_from_recipe(record.recipe)
    except (TaskgraphError, OSError, ValueError, KeyError, TypeError):
        return None  # e.g. user code no longer found: the full path says so
    if any(not cache.present(key) or cache.check(key) is not None for key in keys.values()):
        return None
    return keys


@dataclass
class Replayed:
    """What ``replay`` wrote: the fields of ``runner.RunResult`` the CLI prints."""

    run_dir: Path | str
    records: dict[str, Any]
    wall_seconds: float
    ok: bool = True


def replay(record: Record, keys: dict[str, str], cache: NodeCache, run_root: str | os.PathLike[str], *,
           tensorboard: bool = True, on_update: Callable[[Any], None] | None = None,
           on_progress: Callable[[dict[str, Any]], None] | None = None) -> Replayed:
    """A run of a graph whose nodes are all cached (``sound_keys``), written as ``run_graph`` writes
    one: the run folder, ``graph.yaml``, every node linked in from the cache, ``run.json`` (running,
    then done), the cache's index and ``trace.json``."""
    from taskgraph.artifacts.rundir import RunDir, run_state
    from taskgraph.execute.records import NodeRecord
    from taskgraph.observers import RunObservers

    plan, name = record.plan, record.name
    run_dir = RunDir.create(run_root, name)
    observers = RunObservers(run_dir, name, {n: plan.nodes[n].upstream for n in plan.order}, on_progress,
                             tensorboard=tensorboard)
    run_dir.write_graph(record.graph_yaml)
    started = time.time()
    state = run_state(name, run_dir.path, plan.order, plan.critical_path, keys, started)
    records: dict[str, Any] = {}
    for node in plan.order:
        meta = cache.restore(keys[node], run_dir.node_dir(node))
        records[node] = NodeRecord(node, status="cached", host=meta.get("host"), meta=meta)
        state["nodes"][node] = records[node].to_dict()
        if on_update:
            on_update(records[node])
    run_dir.write_run(state)
    cache.remember(name, {n: keys[n] for n in plan.order})
    state["ended_at"] = time.time()
    state["status"] = "done"
    state["nodes"] = {node: state["nodes"][node] for node in plan.order}
    run_dir.write_run(state)
    observers.finish(state, ok=True)
    return Replayed(run_dir.path, records, state["ended_at"] - started)

"""Cache keys: what a node's result depends on, hashed, so unchanged nodes are never recomputed.

A node's key is sha256 over canonical JSON of: its resolved config (minus cosmetic fields such as
``cost`` and ``resources``, which change where and when it runs, not what it learns), its data
source's config and content fingerprint, the version of the training code, the source files of the
user code it names (``"pkg.module:name"`` in the node or in its data source: ``plan.usercode``),
its seed (part of the config) and the keys of its upstream nodes. Changing one node therefore changes its key and its
descendants' keys, and nothing else. Pure apart from reading file contents for fingerprints;
no Ray or torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskgraph.plan.usercode import ref_files

if TYPE_CHECKING:
    from taskgraph.plan.graph import Plan
    from taskgraph.spec.models import Graph

__all__ = ["node_keys", "key_recipe", "keys_from_recipe", "code_version", "data_fingerprint", "reads_fingerprint",
           "canonical_digest", "COSMETIC_FIELDS"]

#: Task fields that do not change what a node learns (DVC excludes such fields from its keys too).
COSMETIC_FIELDS = frozenset({"cost", "resources", "depends_on"})
#: Bumped when the key recipe itself changes, so old caches are never misread.
KEY_SCHEMA = 2

_PACKAGE = Path(__file__).resolve().parents[1]


def canonical_digest(obj: Any) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace): equal values, equal digests."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _tree_digest(paths: Iterable[Path], relative_to: Path | None = None) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        name = str(path.relative_to(relative_to)) if relative_to else str(path)
        h.update(name.encode() + b"\0")
        h.update(_file_digest(path).encode())
    return h.hexdigest()


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    """Content digest, memoised per process on (path, size, mtime) so a rerun hashes nothing twice."""
    st = path.stat()
    memo = (str(path), st.st_size, st.st_mtime_ns)
    if memo not in _FILE_DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
        _FILE_DIGESTS[memo] = h.hexdigest()
    return _FILE_DIGESTS[memo]


def code_version() -> str:
    """Digest of taskgraph's training code (``taskgraph/train/**.py``).

    Coarse on purpose: any change to how nodes train invalidates cached results; a change to
    the CLI, the scheduler or the report does not.
    """
    return _tree_digest((_PACKAGE / "train").rglob("*.py"), relative_to=_PACKAGE)


def data_fingerprint(config: Any) -> str:
    """What the data source reads: its declared ``version`` if any, else a digest of the files the
    loader reads (``config.reads()``, the same paths the loader opens)."""
    version = getattr(config, "version", None)
    return f"version:{version}" if version else reads_fingerprint(config.reads())


def reads_fingerprint(paths: Iterable[Path]) -> str:
    """Digest of the files under ``paths`` (folders walked; missing paths skipped), "generated" when none:
    ``data_fingerprint`` apart from the config, so a recorded recipe (``key_recipe``) fingerprints the same."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += [p for p in path.rglob("*") if p.is_file()]
        elif path.is_file():
            files.append(path)
    return _tree_digest(files) if files else "generated"


#: Options added after keys were first stored: left out of the key while at their default, so adding
#: them kept every existing key (a value other than the default is part of the key as usual).
_TRAIN_DEFAULTS = {"select": "last", "monitor": None, "mode": None, "patience": None}
_DATA_DEFAULTS = {"test_fraction": 0.0, "test": None, "test_value": None, "official_test": "val", "train_val_fraction": 0.1}


def _without_defaults(config: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if not (k in defaults and v == defaults[k])}


def _code_digests(config: Any, where: str) -> dict[str, str]:
    """``{ref: digest of its defining file}`` for every user-code reference in a config dump."""
    return {ref: _file_digest(path) for ref, path in ref_files(config, where).items()}


def node_keys(spec: Graph, plan: Plan) -> dict[str, str]:
    """Cache key of every node, in plan order (upstream keys feed downstream ones)."""
    return keys_from_recipe(key_recipe(spec, plan))


def key_recipe(spec: Graph, plan: Plan) -> dict[str, Any]:
    """What the keys are computed from, as plain JSON, before anything on disk is read: each node's
    config, edges, upstream and data sources in plan order; each source's config, declared
    ``version`` and the paths it reads. ``keys_from_recipe`` does the reading (data files, user
    code, the training code), so a no-change rerun that kept the recipe (``taskgraph.rerun``)
    still fingerprints every file, without pydantic."""
    # One dump of the whole graph, sliced per task and data source: the same values as dumping each
    # model, but only the Graph's serializer is needed (the spec models build theirs lazily, and
    # each one built costs ~10-200 ms).
    dumped_graph = spec.model_dump(mode="json", by_alias=True)
    nodes: list[dict[str, Any]] = []
    data: dict[str, dict[str, Any]] = {}
    for name in plan.order:
        task = spec.tasks[name]
        dumped_task = dumped_graph["tasks"][name]
        config = {k: v for k, v in dumped_task.items() if k not in COSMETIC_FIELDS}
        if isinstance(config.get("train"), dict):  # how often to checkpoint does not change the result
            train = {k: v for k, v in config["train"].items() if k != "checkpoint_every"}
            config["train"] = _without_defaults(train, _TRAIN_DEFAULTS)
        sources = sorted(set(task.data_sources()))
        for source in sources:
            if source not in data:
                data_config = spec.data[source]
                version = getattr(data_config, "version", None)
                data[source] = {"config": _without_defaults(dumped_graph["data"][source], _DATA_DEFAULTS),
                                "version": version or None,
                                "reads": [] if version else [str(p) for p in data_config.reads()]}
        nodes.append({"name": name, "task": config,
                      "edges": {up: dumped_task["depends_on"][up] for up in sorted(task.depends_on)},
                      "upstream": list(plan.nodes[name].upstream), "data": sources})
    return {"nodes": nodes, "data": data}


def keys_from_recipe(recipe: dict[str, Any]) -> dict[str, str]:
    """The cache keys of a ``key_recipe``: reads the data files, the user code it names and
    taskgraph's training code now, so a changed file changes the key even with a kept recipe."""
    code = code_version()
    data_digests: dict[str, str] = {}
    keys: dict[str, str] = {}
    for node in recipe["nodes"]:
        name = node["name"]
        sources = {}
        for source in node["data"]:
            if source not in data_digests:
                entry = recipe["data"][source]
                content = (f"version:{entry['version']}" if entry["version"]
                           else reads_fingerprint(Path(p) for p in entry["reads"]))
                data_digests[source] = canonical_digest(
                    {"config": entry["config"], "content": content,
                     "code": _code_digests(entry["config"], f"data.{source}")}
                )
            sources[source] = data_digests[source]
        keys[name] = canonical_digest(
            {
                "schema": KEY_SCHEMA,
                "task": node["task"],
                "edges": node["edges"],
                "upstream": {up: keys[up] for up in node["upstream"]},
                "data": sources,
                "code": code,
                "user_code": _code_digests(node["task"], f"tasks.{name}"),
            }
        )
    return keys

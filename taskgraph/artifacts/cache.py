"""The result cache: finished nodes stored by cache key, shared by every run under one ``--run-dir``.

Layout: ``<run-dir>/.cache/nodes/<key[:2]>/<key>/`` (loaded data sources: ``.cache/data/``, see
``train.datacache``; the graphs a no-change rerun replays: ``.cache/graphs/``, see ``taskgraph.rerun``)
with ``params.safetensors``, ``metrics.json``,
``node.json`` (what the run record needs) and ``manifest.json`` (each file's sha256 and size,
recorded when it was written). An entry is created by renaming a complete temp folder into place,
so it is either whole or absent. Run folders hard-link the cached files (a copy where links are
impossible), so a cached node costs no disk and no copy; the files are sealed read-only and never
written again (``artifacts.store``), so no run can change another run's artifacts.

On an object store (``--run-dir s3://bucket/runs``) there are no links and no folder renames: an
entry's files are uploaded (each upload is atomic) and its ``manifest.json`` goes last, so an entry
without a manifest is unfinished and never served; run folders get copies. Mid-node checkpoints
(``partial``) stay off there: they are rewritten every few steps, a poor fit for uploads.

Entries are verified on use: ``check`` (sizes, and the small JSON files in full) before a node is
called cached, the parameters' digest whenever they are read for a downstream node. A damaged
entry is reported (one line naming the node and the file), evicted and its node recomputed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskgraph.artifacts import store
from taskgraph.artifacts.files import params_from_bytes, read_json
from taskgraph.artifacts.manifest import (
    MANIFEST, DamagedArtifact, Digest, IntegrityWarning, check_sizes, digest, read_manifest, read_verified,
)
from taskgraph.artifacts.rundir import METRICS, NODE_FILES, PARAMS, RunDir

if TYPE_CHECKING:  # a cached rerun never loads tensors: numpy is imported by the functions that do
    import numpy as np

__all__ = ["NodeCache", "NODE_META"]

NODE_META = "node.json"
_FILES = (*NODE_FILES, NODE_META)


class NodeCache:
    """Finished node results keyed by cache key."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root: Path | str = store.normalize(root)  # a Path locally, the URL on an object store
        self.remote = isinstance(self.root, str)
        #: Keys whose damaged entry this object evicted (so ``status`` can say why a node reruns).
        self.evicted: set[str] = set()

    @classmethod
    def for_run_root(cls, run_root: str | os.PathLike[str]) -> NodeCache:
        """The cache of a ``--run-dir``: a local path (``file://`` URLs included) or an object store URL."""
        return cls(store.join(run_root, ".cache"))

    def entry(self, key: str) -> Path | str:
        return store.join(self.root, "nodes", key[:2], key)

    def data_folder(self) -> Path | None:
        """Where the run's workers share loaded data sources (``train.datacache``), one file per source
        version; None on an object store (each worker loads its data itself there)."""
        return None if self.remote else Path(self.root) / "data"

    def partial(self, key: str) -> Path | None:
        """Where an unfinished node keeps its checkpoints (survives a killed worker or driver);
        None on an object store (no mid-node checkpoints there)."""
        return None if self.remote else Path(self.root) / "partial" / key

    def check(self, key: str) -> DamagedArtifact | None:
        """What is wrong with a present entry (None when it is sound): the manifest lists every file,
        every size matches, and ``node.json`` and ``metrics.json`` (small) match their digests.
        The parameters' digest is checked when they are read (``load_state``)."""
        entry = self.entry(key)
        try:
            manifest = read_manifest(entry, _FILES)
            check_sizes(entry, manifest, _FILES)
            for name in (NODE_META, METRICS):
                read_verified(store.join(entry, name), manifest[name])
        except DamagedArtifact as exc:
            return exc
        return None

    def present(self, key: str) -> bool:
        """An entry folder exists (sound or not: ``check`` says which). On an object store: its
        manifest, written last (files without one are an unfinished upload, not an entry)."""
        if self.remote:
            return store.exists(store.join(self.entry(key), MANIFEST))
        return Path(self.entry(key)).is_dir()

    def has(self, key: str) -> bool:
        """A sound entry exists."""
        return self.present(key) and self.check(key) is None

    def evict(self, key: str, node: str, damage: DamagedArtifact) -> None:
        """Report a damaged entry in one line and remove it, so its node is recomputed.

        Renamed aside first, so no reader ever sees half an entry; run folders that link its
        files keep theirs (the links are separate names).
        """
        warnings.warn(f"node '{node}': cached result {damage.path} is damaged ({damage.what}); "
                      "evicted it, the node will be recomputed.", IntegrityWarning, stacklevel=2)
        self.evicted.add(key)
        if self.remote:  # the manifest first: from then on nobody takes the rest for an entry
            store.remove(store.join(self.entry(key), MANIFEST))
            store.remove(self.entry(key), recursive=True)
            return
        entry = Path(self.entry(key))
        aside = entry.with_name(f".evicted-{key[:12]}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(entry, aside)
        except OSError:
            return  # already gone: another run evicted it first
        shutil.rmtree(aside, ignore_errors=True)

    def store(self, key: str, node_dir: str | os.PathLike[str], meta: dict[str, Any], files: dict[str, Digest]) -> None:
        """Publish a finished node's artifacts under its key (first writer wins; links, no copies).

        ``files`` is the node's manifest as ``write_node`` returned it: digests of the bytes
        written, so nothing is read back here.
        """
        if self.present(key):
            damage = self.check(key)
            if damage is None:
                return
            self.evict(key, str(meta.get("node", "?")), damage)
        if self.remote:
            self._upload(key, node_dir, meta, files)
            return
        node_dir = Path(node_dir)
        entry = Path(self.entry(key))
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{key[:12]}."))
        try:
            for name in NODE_FILES:
                store.replace_link(node_dir / name, tmp / name)
            check_sizes(tmp, files, NODE_FILES)  # the files linked are the files written
            meta_data = store.json_bytes(meta)
            store.write_bytes(tmp / NODE_META, meta_data)
            store.write_json(tmp / MANIFEST, {**{n: files[n] for n in NODE_FILES}, NODE_META: digest(meta_data)})
            for name in (*_FILES, MANIFEST):
                store.seal(tmp / name)
            try:
                os.rename(tmp, entry)
            except OSError:  # another worker published the same key first: same content
                pass
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(self.partial(key), ignore_errors=True)

    def _upload(
        self, key: str, node_dir: str | os.PathLike[str], meta: dict[str, Any], files: dict[str, Digest]
    ) -> None:
        """``store`` on an object store: copies of the node's files, then node.json, the manifest last."""
        entry = self.entry(key)
        for name in NODE_FILES:
            store.write_bytes(store.join(entry, name), read_verified(store.join(node_dir, name), files[name]))
        meta_data = store.json_bytes(meta)
        store.write_bytes(store.join(entry, NODE_META), meta_data)
        manifest = {**{n: files[n] for n in NODE_FILES}, NODE_META: digest(meta_data)}
        store.write_json(store.join(entry, MANIFEST), manifest)  # last: from now on the entry exists

    def adopt(self, key: str, run_dir: RunDir, name: str) -> bool:
        """Publish node ``name`` of a run folder under ``key`` when its files are complete and match
        the folder's manifest in full (``taskgraph resume`` after the cache was deleted: nothing
        finished is retrained). A damaged node is reported and left to retrain; returns whether
        the node was adopted. The caller checks that ``key`` is the key the folder's node had.
        """
        if self.has(key):
            return True
        if not run_dir.node_complete(name) or not store.exists(store.join(run_dir.node_dir(name), MANIFEST)):
            return False  # unfinished, or written before manifests: nothing to verify it against
        try:
            files = run_dir.verify_node(name)
            metrics = run_dir.read_metrics(name)
        except DamagedArtifact as damage:
            warnings.warn(f"node '{name}': {damage.path} is damaged ({damage.what}); the node will be retrained.",
                          IntegrityWarning, stacklevel=2)
            return False
        record = (run_dir.read_run().get("nodes") or {}).get(name) or {}
        meta = {k: metrics.get(k) for k in ("final", "inherited", "device", "steps", "resumed_from_step")}
        meta.update({k: metrics[k] for k in ("test", "selected_epoch") if metrics.get(k) is not None})
        self.store(key, run_dir.node_dir(name), {**meta, "node": name, "host": record.get("host"),
                                                 "trained_at": record.get("ended_at")}, files)
        return self.has(key)

    def restore(self, key: str, node_dir: str | os.PathLike[str]) -> dict[str, Any]:
        """Place a cached node's artifacts into a run folder; returns its stored meta.

        Each file becomes a new name of the cached one (replacing any leftover of an interrupted
        try by a rename), and the folder gets the node's manifest, so it is checked when read.
        """
        entry = self.entry(key)
        manifest = read_manifest(entry, _FILES)
        meta = self._meta(entry, manifest)
        if self.remote or store.is_remote(node_dir):  # copies, verified as read
            for name in (PARAMS, MANIFEST, METRICS):  # as write_node: metrics last
                data = (store.json_bytes({n: manifest[n] for n in NODE_FILES}) if name == MANIFEST
                        else read_verified(store.join(entry, name), manifest[name]))
                store.write_bytes(store.join(node_dir, name), data)
            return meta
        node_dir = Path(node_dir)
        node_dir.mkdir(parents=True, exist_ok=True)
        for name in (PARAMS, MANIFEST, METRICS):  # as write_node: metrics last
            if name == MANIFEST:
                # unsynced: a copy of the entry's own (synced) manifest; a torn one is refused on read
                store.write_json(node_dir / MANIFEST, {n: manifest[n] for n in NODE_FILES}, sync=False)
            else:
                store.replace_link(Path(entry) / name, node_dir / name)
        return meta

    def meta(self, key: str) -> dict[str, Any]:
        """The entry's ``node.json``, verified against its manifest."""
        entry = self.entry(key)
        return self._meta(entry, read_manifest(entry, _FILES))

    @staticmethod
    def _meta(entry: Path | str, manifest: dict[str, Digest]) -> dict[str, Any]:
        import json

        return json.loads(read_verified(store.join(entry, NODE_META), manifest[NODE_META]))

    def load_state(self, key: str) -> dict[str, np.ndarray]:
        """The cached parameters, hashed as they are read: ``DamagedArtifact`` unless they are the
        bytes that were stored, so no node ever inherits damaged weights."""
        entry = self.entry(key)
        data = read_verified(store.join(entry, PARAMS), read_manifest(entry, _FILES)[PARAMS])
        return params_from_bytes(data)

    def usable_state(self, key: str, node: str) -> dict[str, np.ndarray] | None:
        """``load_state`` for a sound entry; None (after evicting a damaged one) otherwise."""
        if not self.present(key):
            return None
        damage = self.check(key)
        if damage is None:
            try:
                return self.load_state(key)
            except DamagedArtifact as exc:
                damage = exc
        self.evict(key, node, damage)
        return None

    # The index remembers each graph node's last key, so `status` can say *why* a node reruns.
    def _index_path(self, graph: str) -> Path | str:
        return store.join(self.root, "index", f"{graph}.json")

    def last_keys(self, graph: str) -> dict[str, str]:
        path = self._index_path(graph)
        if not store.exists(path):
            return {}
        try:
            keys = read_json(path)
        except Exception:  # noqa: BLE001 - a damaged index only loses the "why" of status
            return {}
        return keys if isinstance(keys, dict) else {}

    def remember(self, graph: str, keys: dict[str, str]) -> None:
        store.write_json(self._index_path(graph), {**self.last_keys(graph), **keys})

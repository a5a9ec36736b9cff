"""``taskgraph data fetch|list``: the example data sets from their public sources, checked, in the
layout the loaders read, in the folder the loaders search (``spec.data.search_path``).

``fetch`` downloads into ``<home>/.downloads`` (resumable ``.part`` files), converts into a hidden
temporary folder, checks every sum the registry records, writes ``MANIFEST.sha256`` and a README
(source, licence) and only then renames the folder into place: a data set is whole or absent.
Standard library only (plus platformdirs through ``fetch_home``): no Ray, no torch.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from taskgraph.fetch import registry as _registry
from taskgraph.fetch.convert import CONVERSIONS, RAW_ONLY
from taskgraph.fetch.download import FetchError, download, sha256_of
from taskgraph.fetch.registry import DataSet
from taskgraph.spec.data import fetch_home, search_path

__all__ = ["FetchError", "fetch", "installed", "Installed", "manifest_text", "known"]

MANIFEST = "MANIFEST.sha256"
_NOT_LISTED = {"README.md", MANIFEST}


def known() -> dict[str, DataSet]:
    """The registry (looked up on each call, so tests can serve their own)."""
    return _registry.REGISTRY


def _dataset(name: str) -> DataSet:
    sets = known()
    if name not in sets:
        import difflib

        close = difflib.get_close_matches(name, list(sets), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise FetchError(f"no example data set '{name}'.{hint} Known: {', '.join(sorted(sets))}.")
    return sets[name]


def manifest_text(folder: Path) -> str:
    """``sha256  path`` per file below ``folder`` (README.md and the manifest left out), sorted by path:
    the format of ``sha256sum`` and of shared/data's manifests."""
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return "".join(f"{sha256_of(folder / rel)}  {rel}\n" for rel in files if rel not in _NOT_LISTED)


def _check(ds: DataSet, folder: Path) -> str:
    """Every recorded sum of what the conversion wrote (raw-only files removed after); the manifest text."""
    for rel, expected in ds.files.items():
        path = folder / rel
        if not path.is_file():
            raise FetchError(f"{ds.name}: the converted data has no {rel}: the upstream files changed or are "
                             "damaged; nothing was installed.")
        got = sha256_of(path)
        if got != expected:
            raise FetchError(f"{ds.name}: {rel} has sha256 {got[:16]}..., expected {expected[:16]}... (corrupted "
                             "download or changed upstream file); nothing was installed. Run the command again.")
    for rel in RAW_ONLY.get(ds.convert, ()):
        (folder / rel).unlink(missing_ok=True)
    text = manifest_text(folder)
    if ds.tree is not None:
        got = hashlib.sha256(text.encode()).hexdigest()
        if got != ds.tree:
            raise FetchError(f"{ds.name}: the {text.count(chr(10))} converted files do not match the recorded "
                             f"manifest (sha256 {got[:16]}..., expected {ds.tree[:16]}...): a damaged download or "
                             "a changed upstream archive; nothing was installed. Run the command again.")
    return text


def _readme(ds: DataSet) -> str:
    return (f"# {ds.name} ({ds.title})\n\nFetched by `taskgraph data fetch {ds.name}`.\n\n"
            f"- Source: {ds.source}\n" + "".join(f"  - {d.url}\n" for d in ds.downloads)
            + f"- Licence: {ds.licence}\n- Checked: {ds.verified}\n"
            f"- Check again: `cd {ds.name} && sha256sum -c {MANIFEST}`\n")


def fetch(name: str, home: Path | None = None, *, force: bool = False, retries: int = 3,
          say: Callable[[str], None] = lambda _: None) -> Path:
    """Download, check and convert data set ``name`` into ``home/name`` (default ``fetch_home()``)."""
    ds = _dataset(name)
    home = Path(home) if home is not None else fetch_home()
    target = home / name
    if not force and (target / ds.marker).is_file() and (target / MANIFEST).is_file():
        say(f"{name}: already in {target}")
        return target
    staging = home / ".downloads"
    files = {}
    for item in ds.downloads:
        say(f"{name}: downloading {item.url}" + (f" ({item.size / 1e6:.1f} MB)" if item.size else ""))
        files[item.name] = download(item, staging, retries=retries, say=say)
    work = home / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        say(f"{name}: converting and checking")
        work.mkdir(parents=True)
        CONVERSIONS[ds.convert](files, work)
        (work / MANIFEST).write_text(_check(ds, work))
        (work / "README.md").write_text(_readme(ds))
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
    except FetchError:
        for item in ds.downloads:  # a file without a recorded sum was only checked through its content
            if item.sha256 is None:
                files[item.name].unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for path in files.values():
        path.unlink(missing_ok=True)
    say(f"{name}: ready in {target}")
    return target


@dataclass(frozen=True)
class Installed:
    """Where a data set was found (or would be fetched to), whether it is there, and its size."""

    name: str
    present: bool
    folder: Path
    bytes: int
    licence: str


def installed(name: str) -> Installed:
    """``data list``'s row: the first folder of the search path holding the data set's marker file."""
    ds = _dataset(name)
    for folder in search_path(name):
        if (folder / ds.marker).is_file():
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            return Installed(name, True, folder, size, ds.licence)
    return Installed(name, False, fetch_home() / name, 0, ds.licence)

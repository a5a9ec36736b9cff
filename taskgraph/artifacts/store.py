"""Where artifacts live: a local path, or any fsspec URL (``s3://``, ``gs://``, ``memory://``, ...).

On a cluster, nodes on other machines write their artifacts here, so the run directory must be
shared: a path every machine mounts (``/shared/runs``, NFS), or an object store URL. Every
function takes a *location*: a local path (``str``/``PathLike``; ``file://`` URLs count as local)
or a URL string. Local writes stay atomic (temp file + ``os.replace``); an object store's single
PUT is atomic by itself, and other fsspec backends write a temp name and move it.

Immutability is a property of the store: a file, once written, is never opened for writing
again. Every write creates a new file and renames it over the name, so a file hard-linked into
other folders (the result cache links its files into every run folder that uses them) is never
changed through one of its names; ``seal`` marks a published file read-only (0o444), as the cache
does for every file it stores. This is the lowest artifacts module: it imports no other.

fsspec is imported only for URLs; cloud backends need their package on every machine
(``s3fs`` for s3://, ``gcsfs`` for gs://): the error says which.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Union

from taskgraph.errors import ArtifactError

__all__ = [
    "Location", "is_remote", "normalize", "join", "write_bytes", "write_text", "write_json",
    "read_bytes", "read_text", "read_json", "exists", "listdir", "makedirs", "remove", "seal", "replace_link",
    "size", "json_bytes", "write_chunks", "download",
]

Location = Union[str, "os.PathLike[str]"]

#: Stores whose single upload is atomic (readers see the old object or the whole new one).
_ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl"}


def is_remote(location: Location) -> bool:
    """True for a URL that is not ``file://``: it goes through fsspec."""
    text = os.fspath(location)
    return "://" in text and not text.startswith("file://")


def normalize(location: Location) -> Path | str:
    """A ``Path`` for local locations (``file://`` stripped), the URL string (no trailing /) otherwise."""
    text = os.fspath(location)
    if text.startswith("file://"):
        return Path(text[len("file://"):])
    if is_remote(text):
        return text.rstrip("/")
    return Path(text)


def join(location: Location, *parts: str) -> Path | str:
    """``location/part/...``: a ``Path`` locally, a ``/``-joined URL otherwise."""
    base = normalize(location)
    if isinstance(base, Path):
        return base.joinpath(*parts)
    return "/".join([base, *(p.strip("/") for p in parts)])


def _fs(url: str) -> tuple[Any, str]:
    try:
        import fsspec

        return fsspec.core.url_to_fs(url)
    except ImportError as exc:
        protocol = url.split("://", 1)[0]
        package = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}.get(protocol, "fsspec")
        raise ArtifactError(
            f"cannot open {url}: {exc}. Install `{package}` on this machine and every Ray node "
            "(add it to the cluster image), or use a shared local path."
        ) from exc


def write_bytes(location: Location, data: bytes, sync: bool = True) -> Path | str:
    """Write ``data`` so that readers never see half of it; parent folders are created.

    ``sync=False`` skips the fsync (still a rename over the name): for records whose loss in a
    power cut costs nothing (a node's attempt markers), where a sync is ~1-20 ms on a busy disk.
    """
    target = normalize(location)
    if isinstance(target, Path):
        return _write_local(target, (data,), sync, None)[0]
    fs, path = _fs(target)
    parent = path.rsplit("/", 1)[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    if set(_protocols(fs)) & _ATOMIC_PUT:
        fs.pipe_file(path, data)
    else:
        tmp = f"{parent}/.{path.rsplit('/', 1)[-1]}.{uuid.uuid4().hex[:8]}.tmp"
        fs.pipe_file(tmp, data)
        fs.mv(tmp, path)
    return target


def write_chunks(location: Location, chunks: Iterable[memoryview | bytes]) -> tuple[str, int]:
    """Write the concatenation of ``chunks`` as ``write_bytes`` does (atomic, synced), hashing
    each piece as it is written; returns ``(sha256 hex, size)``. Locally a large file goes past the
    page cache (``_write_pieces``); object stores get one buffer."""
    target = normalize(location)
    if isinstance(target, Path):
        _path, sha256, size = _write_local(target, chunks, True, hashlib.sha256(), direct=True)
        return sha256, size
    data = b"".join(chunks)
    write_bytes(target, data)
    return hashlib.sha256(data).hexdigest(), len(data)


def _write_local(
    path: Path, chunks: Iterable[memoryview | bytes], sync: bool, digest: Any, direct: bool = False
) -> tuple[Path, str, int]:
    """A new file beside ``path``, synced, then renamed over it: never an in-place write.
    Returns the path and, with a ``digest`` (hashlib) object, the hex digest and size written.
    ``direct``: a file that fills ``DIRECT_BUFFER_BYTES`` goes past the page cache (``_write_pieces``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            if direct:
                size = _write_pieces(fd, chunks, digest)
            else:
                size = 0
                for chunk in chunks:
                    if digest is not None:
                        digest.update(chunk)  # releases the GIL on large pieces
                    size += _write_all(fd, memoryview(chunk).cast("B"))
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path, digest.hexdigest() if digest is not None else "", size


#: A file written in pieces (``write_chunks``: parameters) that fills this buffer is written past the
#: page cache, through two buffers of this size, reused. Through the page cache, each 400 MB params file took
#: 3.4-4.1 s to write and sync in a 400 MB hand-off run on the 2-core VM (fresh page-cache pages are
#: slow to come by where the host reclaims idle guest memory, and two such files at once slowed each
#: other down); past it, 0.36-0.65 s, and the whole run took 8.1-9.2 s instead of 11.7-11.9 s.
DIRECT_BUFFER_BYTES = 8 * 2**20


def _write_pieces(fd: int, chunks: Iterable[memoryview | bytes], digest: Any) -> int:
    """Write ``chunks`` to ``fd`` through two aligned buffers, hashing the bytes as they go; returns the
    size. Once a file has filled a buffer, whole buffers go with ``O_DIRECT`` (Linux: the disk takes
    the data from the buffer, no page cache), the last partial one through the page cache; where the
    platform or filesystem has no direct I/O (macOS, tmpfs) every write goes through the page cache.
    A buffer is hashed on a second thread while it is written and the other one fills (both release
    the GIL): 400 MB took 0.43 s hashed then written, 0.25 s so. The bytes are the same either way."""
    import mmap
    from concurrent.futures import Future, ThreadPoolExecutor

    buffers = [mmap.mmap(-1, DIRECT_BUFFER_BYTES) for _ in range(2)]  # anonymous: page-aligned, as O_DIRECT needs
    views = [memoryview(b) for b in buffers]
    hashing: list[Future | None] = [None, None]  # each buffer's digest update, waited for before it is refilled
    fill = size = current = 0
    direct: bool | None = None  # decided when a buffer first fills: only large files go direct
    pool = ThreadPoolExecutor(1, thread_name_prefix="taskgraph-digest") if digest is not None else None
    try:
        for chunk in chunks:
            piece = memoryview(chunk).cast("B")
            at = 0
            while at < len(piece):
                view = views[current]
                if fill == 0 and hashing[current] is not None:
                    hashing[current].result()  # type: ignore[union-attr]
                take = min(len(view) - fill, len(piece) - at)
                view[fill : fill + take] = piece[at : at + take]
                fill, at = fill + take, at + take
                if fill == len(view):
                    if direct is None:
                        direct = _set_direct(fd, True)
                    if pool is not None:  # in order: one thread
                        hashing[current] = pool.submit(digest.update, view)
                    if not (direct and _direct_write(fd, view)):
                        if direct:  # the filesystem refused an aligned direct write: the page cache, then
                            direct = _set_direct(fd, False)
                        _write_all(fd, view)
                    size += fill
                    fill, current = 0, 1 - current
        if direct:
            _set_direct(fd, False)  # the tail: any length, through the page cache
        tail = views[current][:fill]
        if pool is not None:
            pool.submit(digest.update, tail).result()  # after every earlier buffer's
        size += _write_all(fd, tail)
        tail.release()
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
        for view, buffer in zip(views, buffers):
            view.release()
            with contextlib.suppress(BufferError):  # a slice still held by an error's traceback: freed with it
                buffer.close()
    return size


def _set_direct(fd: int, on: bool) -> bool:
    """Turn ``O_DIRECT`` on or off for ``fd``; returns whether it is on (False where it cannot be)."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    import fcntl

    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | flag if on else flags & ~flag)
    except OSError:
        return False
    return on


def _direct_write(fd: int, data: memoryview) -> bool:
    """Write a whole aligned buffer with ``O_DIRECT`` on; False (nothing written) if the filesystem
    refuses it, so the caller writes it through the page cache instead."""
    import errno

    try:
        written = os.write(fd, data)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return False
    if written < len(data):  # a short direct write: the rest goes through the page cache
        _set_direct(fd, False)
        _write_all(fd, data[written:])
    return True


def _write_all(fd: int, data: memoryview) -> int:
    """``os.write`` until every byte is written (it may write fewer); returns the size."""
    done = 0
    while done < len(data):
        done += os.write(fd, data[done:])
    return done


def seal(location: Location) -> None:
    """Make a stored file read-only (0o444): its bytes are shared and must never change.
    Object stores have no modes; their objects are replaced whole anyway."""
    target = normalize(location)
    if isinstance(target, Path):
        os.chmod(target, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def replace_link(source: Path, target: Path) -> None:
    """Make ``target`` another name of ``source`` (a hard link; a copy where links are impossible),
    replacing whatever ``target`` was by a rename, never by writing into it."""
    import shutil

    if target.exists() and os.path.samefile(source, target):
        return
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copy2(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _protocols(fs: Any) -> tuple[str, ...]:
    return (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)


def write_text(location: Location, text: str) -> Path | str:
    return write_bytes(location, text.encode("utf-8"))


def json_bytes(obj: Any) -> bytes:
    """JSON as every taskgraph file is written (sorted keys, indented): one format, so a digest
    taken from these bytes before writing is the digest of the file."""
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")


def write_json(location: Location, obj: Any, sync: bool = True) -> Path | str:
    return write_bytes(location, json_bytes(obj), sync)


def read_bytes(location: Location) -> bytes:
    target = normalize(location)
    try:
        if isinstance(target, Path):
            return target.read_bytes()
        fs, path = _fs(target)
        return fs.cat_file(path)
    except FileNotFoundError as exc:
        raise ArtifactError(f"{target} does not exist. Check the run directory (--run-dir) you passed.") from exc


def read_text(location: Location) -> str:
    return read_bytes(location).decode("utf-8")


def read_json(location: Location) -> Any:
    """Parsed JSON; a damaged (truncated, overwritten) file is an ``ArtifactError`` naming it."""
    data = read_bytes(location)
    try:
        return json.loads(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ArtifactError(f"{normalize(location)} is damaged: not valid JSON ({exc}).") from None


def exists(location: Location) -> bool:
    target = normalize(location)
    if isinstance(target, Path):
        return target.exists()
    fs, path = _fs(target)
    return fs.exists(path)


def size(location: Location) -> int:
    """The size of a file in bytes (``FileNotFoundError`` when absent)."""
    target = normalize(location)
    if isinstance(target, Path):
        return target.stat().st_size
    fs, path = _fs(target)
    if not fs.exists(path):
        raise FileNotFoundError(target)
    return int(fs.size(path))


def listdir(location: Location) -> list[str]:
    """Names (not paths) directly under ``location``, sorted; empty if it does not exist."""
    target = normalize(location)
    if isinstance(target, Path):
        return sorted(p.name for p in target.iterdir()) if target.is_dir() else []
    fs, path = _fs(target)
    if not fs.exists(path):
        return []
    return sorted(entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(path, detail=False))


def makedirs(location: Location, exist_ok: bool = True) -> None:
    """Create a folder (and parents). Object stores have no folders: there it only checks ``exist_ok``."""
    target = normalize(location)
    if isinstance(target, Path):
        target.mkdir(parents=True, exist_ok=exist_ok)
        return
    fs, path = _fs(target)
    if not exist_ok and fs.exists(path):
        raise FileExistsError(target)
    fs.makedirs(path, exist_ok=True)


def remove(location: Location, recursive: bool = False) -> None:
    """Delete a file (or a folder with ``recursive``); a missing one is not an error."""
    target = normalize(location)
    if isinstance(target, Path):
        if target.is_dir() and recursive:
            import shutil

            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
        return
    fs, path = _fs(target)
    if fs.exists(path):
        fs.rm(path, recursive=recursive)


def download(location: str, folder: Path, skip: tuple[str, ...] = ()) -> Path:
    """Copy the files under the URL ``location`` into the local ``folder`` (made), keeping their
    relative paths; files whose name ends with one of ``skip`` are left out. Returns ``folder``."""
    fs, root = _fs(normalize(location))
    root = root.rstrip("/")
    for path in fs.find(root):
        relative = path[len(root):].lstrip("/")
        if not relative or relative.endswith(skip):
            continue
        write_bytes(folder / relative, fs.cat_file(path))
    return folder

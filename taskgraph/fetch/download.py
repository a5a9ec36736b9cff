"""Download one upstream file: resumed and retried, checked against its size and sha256.

Hand-written on the standard library (``urllib``) rather than with a download helper because none
installed here resumes a broken transfer (HTTP ``Range``); this is the one thing it must do well.
A file is built as ``<name>.part`` in the staging folder and renamed only once whole and checked:
a broken connection keeps the ``.part`` (the next try, or the next ``data fetch``, resumes it); a
file whose sum or size is wrong is deleted, never kept or converted.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from taskgraph.errors import TaskgraphError
from taskgraph.fetch.registry import Download

__all__ = ["FetchError", "download", "sha256_of"]

CHUNK = 1 << 16


class FetchError(TaskgraphError):
    """A download or conversion that cannot be completed; the message says what to do."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(item: Download, folder: Path, *, retries: int = 3, timeout: float = 60.0, wait: float = 1.0,
             say: Callable[[str], None] = lambda _: None) -> Path:
    """``folder/item.name``, downloaded (resuming a ``.part`` left by an earlier try) and checked."""
    folder.mkdir(parents=True, exist_ok=True)
    dest, part = folder / item.name, folder / f"{item.name}.part"
    if dest.exists():
        if _matches(dest, item):
            return dest
        dest.unlink()
    last: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            _transfer(item.url, part, timeout, say)
            break
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            if isinstance(exc, urllib.error.HTTPError) and exc.code != 416 and 400 <= exc.code < 500:
                part.unlink(missing_ok=True)
                raise FetchError(f"{item.url}: the server answered {exc.code} {exc.reason}. The file has moved or "
                                 "the address is wrong: check it, or fetch it by hand into "
                                 f"{folder} as '{item.name}'.") from exc
            last = exc
            if isinstance(exc, urllib.error.HTTPError) and exc.code == 416:  # our .part is longer than the file
                part.unlink(missing_ok=True)
            if attempt < retries:
                say(f"  {item.name}: {_reason(exc)}; retrying ({attempt + 1}/{retries})")
                time.sleep(wait * attempt)
    else:
        kept = part.stat().st_size if part.exists() else 0
        resume = (f" {kept:,} bytes are kept in {part}: run the command again to resume." if kept
                  else " Run the command again when the network is back.")
        raise FetchError(f"{item.url}: download failed after {retries} tries ({_reason(last)}).{resume}")
    problem = _problem(part, item)
    if problem:
        part.unlink(missing_ok=True)
        raise FetchError(f"{item.url}: {problem}; the download was deleted, nothing was installed. Run the command "
                         "again; if it happens again the upstream file changed: report it.")
    os.replace(part, dest)
    return dest


def _transfer(url: str, part: Path, timeout: float, say: Callable[[str], None]) -> None:
    """Append the rest of ``url`` to ``part`` (a server that ignores ``Range`` sends it all: start over)."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http/https URLs of the registry)
        resumed = have and response.status == 206
        if have and not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length is not None else None
        if have:
            say(f"  resuming {part.name[:-5]} at {have:,} bytes")
        with open(part, "ab" if resumed else "wb") as out:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
    got = part.stat().st_size
    if expected is not None and got < expected:  # the connection closed early: resume next try
        raise http.client.IncompleteRead(b"", expected - got)


def _matches(path: Path, item: Download) -> bool:
    return _problem(path, item) is None


def _problem(path: Path, item: Download) -> str | None:
    size = path.stat().st_size
    if item.size is not None and size != item.size:
        return f"got {size:,} bytes, expected {item.size:,} (truncated or corrupted)"
    if item.sha256 is not None:
        digest = sha256_of(path)
        if digest != item.sha256:
            return f"sha256 {digest[:16]}... does not match the recorded {item.sha256[:16]}... (corrupted)"
    return None


def _reason(exc: Exception | None) -> str:
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed with {exc.expected:,} bytes still to come"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__

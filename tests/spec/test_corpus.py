"""Every case of the bad-input corpus (tests/spec/corpus.py) ends with exit 0 or 2 within seconds, no
traceback, and an exit-2 message naming the file (and the line, where the case has one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from taskgraph.cli import main
from tests.spec.corpus import CASES, Case

ROOT = Path(__file__).resolve().parents[2]


def write(case: Case, folder: Path) -> Path:
    path = folder / "graph.yaml"
    if isinstance(case.content, bytes):
        path.write_bytes(case.content)
    else:
        path.write_text(case.content, encoding="utf-8")
    return path


def argv(case: Case, path: Path) -> list[str]:
    return [case.command, str(path)] + [arg for value in case.sets for arg in ("--set", value)]


def test_the_corpus_is_large():
    assert len(CASES) >= 150


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_answered_cleanly(case, tmp_path, capsys):
    path = write(case, tmp_path)
    code = main(argv(case, path))
    out = capsys.readouterr()
    assert code in case.exit, out.err[-2000:]
    assert "Traceback" not in out.out + out.err
    if code == 2:
        assert str(path) in out.err, out.err[-2000:]
        if case.line is not None:
            assert f"{path}:{case.line}:" in out.err or f"{path}:{case.line} " in out.err, out.err[-2000:]


@pytest.mark.parametrize("name", ["alias-bomb", "deep-flow-100k", "latin-1", "set-unclosed-list", "schema-lr-inf"])
def test_the_real_exit_code(name, tmp_path):
    case = next(c for c in CASES if c.id == name)
    path = write(case, tmp_path)
    out = subprocess.run([sys.executable, "-m", "taskgraph", *argv(case, path)], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr and str(path) in out.stderr

"""README's Python code runs as written, from a scratch folder that holds the repository's graphs.

Statements before the first ``taskgraph.run(...)`` run here, fast; whole blocks (training on the
session's real local Ray) are marked slow, so CI runs them.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)


def _runs_ray(statement: ast.stmt) -> bool:
    """True when the statement calls ``taskgraph.run``: training, which needs Ray."""
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "run"
        and isinstance(node.func.value, ast.Name) and node.func.value.id == "taskgraph"
        for node in ast.walk(statement)
    )


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(ROOT / "graphs", tmp_path / "graphs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_has_python_code():
    assert BLOCKS and any("taskgraph.load(" in block for block in BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_until_the_first_run(index, scratch):
    statements = []
    for statement in ast.parse(BLOCKS[index]).body:
        if _runs_ray(statement):
            break
        statements.append(statement)
    namespace: dict = {}
    exec(compile(ast.Module(body=statements, type_ignores=[]), "README.md", "exec"), namespace)
    if "plan" in namespace:  # the plan the README shows: stages, order, critical path
        plan = namespace["plan"]
        assert plan.stages and plan.order and plan.critical_path


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_runs_as_written(index, scratch, ray_local):
    """The whole block, as written, in a fresh namespace: ``taskgraph.run`` joins the session's Ray
    (a child process would start a Ray and cold workers of its own, seconds that check nothing more)."""
    exec(compile(BLOCKS[index], "README.md", "exec"), {"__name__": "__main__"})
    if any(_runs_ray(s) for s in ast.parse(BLOCKS[index]).body):
        assert list((scratch / "runs").glob("*/*/run.json")), "the run wrote no run folder"

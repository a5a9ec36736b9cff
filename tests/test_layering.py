"""The light layers stay light: `validate` and `--help` must answer without importing Ray or torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "taskgraph"
LAYERS = ["spec", "plan", "execute", "train", "artifacts", "report"]


def test_spec_plan_report_and_cli_import_no_ray_or_torch():
    code = (
        "import sys; import taskgraph, taskgraph.spec, taskgraph.plan, taskgraph.report.dependency, taskgraph.cli;"
        "from taskgraph.cli import main; main(['validate', 'graphs/quickstart.yaml']);"
        "heavy = sorted(m for m in ('ray', 'torch', 'matplotlib') if m in sys.modules);"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent, check=True)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def _imported_layers(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "taskgraph" and len(parts) > 1 and parts[1] in LAYERS:
                found.add(parts[1])
    return found


def test_lower_layers_never_import_upper_ones():
    for layer in LAYERS:
        allowed = set(LAYERS[: LAYERS.index(layer) + 1])
        for path in (PACKAGE / layer).rglob("*.py"):
            bad = _imported_layers(path) - allowed
            assert not bad, f"{path.relative_to(PACKAGE)} imports upper layer(s) {sorted(bad)}"

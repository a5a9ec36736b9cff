"""Reports open anywhere: the report modules import no Ray, no torch, and matplotlib only when drawing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_report_modules_import_nothing_heavy():
    code = (
        "import sys; import taskgraph.report.html, taskgraph.report.gantt, taskgraph.report.trace, "
        "taskgraph.report.rundata, taskgraph.report.live, taskgraph.report.curves, taskgraph.report.dependency;"
        "print('HEAVY', sorted(m for m in ('ray', 'torch', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr

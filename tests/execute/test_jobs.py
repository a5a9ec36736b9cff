"""`taskgraph submit` refuses, before contacting any cluster, what could not work there.

The submissions that do reach a cluster are in test_cluster.py (a real one, with the Jobs API).
"""

from __future__ import annotations

import shutil

import pytest

from taskgraph.cli import main
from tests.test_cli import QUICKSTART


@pytest.fixture
def project(tmp_path, monkeypatch):
    shutil.copy(QUICKSTART, tmp_path / "graph.yaml")
    monkeypatch.chdir(tmp_path)
    for name in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_relative_run_dir_is_refused(project, capsys):
    assert main(["submit", "graph.yaml", "--address", "http://127.0.0.1:9", "--run-dir", "runs"]) == 2
    err = capsys.readouterr().err
    assert "--run-dir runs is relative" in err and "/shared/runs" in err


def test_graph_outside_the_shipped_folder_is_refused(project, tmp_path_factory, capsys):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    code = main(["submit", str(project / "graph.yaml"), "--working-dir", str(elsewhere), "--address", "http://127.0.0.1:9"])
    assert code == 2
    err = capsys.readouterr().err
    assert "is not inside the working directory" in err and "--working-dir" in err


def test_no_address_says_where_to_put_one(project, capsys):
    assert main(["status", "raysubmit_abc"]) == 2
    assert "pass --address http://HEAD:8265" in capsys.readouterr().err


def test_unreachable_jobs_api_is_one_clear_error(project, capsys):
    assert main(["logs", "raysubmit_abc", "--address", "http://127.0.0.1:9"]) == 2  # nothing listens on port 9
    err = capsys.readouterr().err
    assert "nothing answers at http://127.0.0.1:9 (the Ray Jobs API)" in err and "Traceback" not in err

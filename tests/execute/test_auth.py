"""The client side of token auth and the quick look at an address, without a cluster.

Each check runs in a child process with a clean environment (PATH, PYTHONPATH, a scratch HOME):
this pytest process sets ``RAY_AUTH_MODE`` for its own Ray (conftest), which would hide what a
user's shell lacks. A cluster that answers (no token, wrong token, the right one) is in
test_cluster_client.py. Timeouts turn a hang into a failure; no timing is asserted.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from taskgraph.cli import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "graphs" / "quickstart.yaml"


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    return {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(home),
            **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def taskgraph(*args, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    # 60 s: far above what a refused connection takes, far below the minutes Ray retries a dead address
    return subprocess.run([sys.executable, "-m", "taskgraph", *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


PROBE = """
import os, sys
from pathlib import Path
from taskgraph.execute.auth import use_token
from ray._private.authentication.authentication_utils import is_token_auth_enabled

token, home = Path(sys.argv[1]), Path(sys.argv[2])
cases = {  # those that leave token auth off first: Ray keeps the mode it read until told to read again
    "nothing": ({}, None),
    "disabled": ({"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": "ab" * 32}, None),
    "RAY_AUTH_TOKEN_PATH": ({"RAY_AUTH_TOKEN_PATH": str(token)}, None),
    "RAY_AUTH_TOKEN": ({"RAY_AUTH_TOKEN": "ab" * 32}, None),
    "--token-file": ({}, token),
    "~/.ray/auth_token": ({"HOME": str(home)}, None),
}
base = dict(os.environ)
for name, (env, option) in cases.items():
    os.environ.clear()
    os.environ.update(base, **env)
    source = use_token(option)
    print(name, os.environ.get("RAY_AUTH_MODE"), is_token_auth_enabled(), source and source.where)
"""


def test_a_token_alone_turns_the_client_side_on(tmp_path):
    """README says: export RAY_AUTH_TOKEN_PATH. Ray sends nothing unless RAY_AUTH_MODE=token too."""
    token = tmp_path / "token"
    token.write_text("ab" * 32 + "\n")
    home = tmp_path / "home_with_token"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("ab" * 32)
    out = subprocess.run([sys.executable, "-c", PROBE, str(token), str(home)], env=clean_env(tmp_path),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()}
    assert got == {
        "RAY_AUTH_TOKEN_PATH": ["token", "True", f"RAY_AUTH_TOKEN_PATH={token}"],
        "RAY_AUTH_TOKEN": ["token", "True", "RAY_AUTH_TOKEN"],
        "--token-file": ["token", "True", f"RAY_AUTH_TOKEN_PATH={token}"],
        "~/.ray/auth_token": ["token", "True", f"{home}/.ray/auth_token"],
        "nothing": ["None", "False", "None"],
        "disabled": ["disabled", "False", "RAY_AUTH_TOKEN"],  # an explicit RAY_AUTH_MODE is respected
    }


@pytest.fixture
def jobs_env(monkeypatch, tmp_path):
    """In this process, as a user's shell: no Ray variables; what a test sets is undone after it."""
    for name in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_unreadable_token_file_is_one_line(jobs_env, tmp_path, capsys):
    assert main(["jobs", "--address", "http://127.0.0.1:9", "--token-file", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--token-file {tmp_path / 'nope'}: cannot read the token file" in err
    jobs_env.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "gone"))
    assert main(["jobs", "--address", "http://127.0.0.1:9"]) == 2
    assert "RAY_AUTH_TOKEN_PATH: cannot read the token file" in capsys.readouterr().err


@pytest.mark.parametrize("form", ["{}", "ray://{}"])
def test_run_to_a_dead_address_fails_at_once(form, tmp_path):
    """Ray retries a GCS that is not there for minutes; the probe says so in one line first."""
    address = form.format(f"127.0.0.1:{free_port()}")
    out = taskgraph("run", QUICKSTART, "--address", address, "--run-dir", tmp_path / "runs", env=clean_env(tmp_path))
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.strip().splitlines() == [out.stderr.strip()] and f"nothing answers at {address}" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "runs").exists()  # no run folder for nothing


def test_submit_jobs_and_stop_to_a_dead_address_fail_at_once(jobs_env, tmp_path, capsys):
    address = f"http://127.0.0.1:{free_port()}"
    jobs_env.setenv("RAY_API_SERVER_ADDRESS", address)
    (tmp_path / "graph.yaml").write_text(QUICKSTART.read_text())
    for args in (["submit", "graph.yaml"], ["jobs"], ["stop", "raysubmit_x"]):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"nothing answers at {address} (the Ray Jobs API)" in err, err

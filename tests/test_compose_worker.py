"""docker-compose.worker.yml, the worker that joins a head on another machine: its structure, the
ports README tells people to open, and `docker compose config` where the compose plugin is installed.
The loopback second "host" (a separate `ray start --address`) is in tests/execute/test_cluster_client.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FILE = ROOT / "docker-compose.worker.yml"


def _compose() -> dict:
    return yaml.safe_load(FILE.read_text())


def _default_ports() -> dict[str, int]:
    """``--flag=${VAR:-N}`` in the worker's fixed port list: flag -> default port."""
    ports = _compose()["x-joining-node"]["environment"]["RAY_PORTS"]
    return {flag: int(port) for flag, port in re.findall(r"--([a-z-]+)=\$\{[A-Z_]+:-(\d+)\}", ports)}


def test_worker_joins_a_head_elsewhere_with_the_token_and_shared_runs():
    services = _compose()["services"]
    assert set(services) == {"worker", "cpu-worker"} and services["cpu-worker"]["profiles"] == ["cpu"]
    for name, service in services.items():
        assert service["network_mode"] == "host", name  # Ray announces the machine's own address
        assert "ray start --address=${RAY_HEAD:?" in service["command"] and "--block" in service["command"], name
        assert "$$RAY_PORTS" in service["command"], name  # the fixed ports, not Ray's random ones
        env = service["environment"]
        assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN_PATH"] == "/run/secrets/ray_auth_token", name
        assert service["secrets"] == ["ray_auth_token"] and "${TASKGRAPH_SHARED:-/shared}:/shared" in service["volumes"]
        assert env["TASKGRAPH_RUN_DIR"] == "${TASKGRAPH_RUN_DIR:-/shared/runs}" and service["shm_size"]
        assert "host=${WORKER_HOST:-worker}" in service["command"]
    gpus = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpus["count"] == "all" and gpus["capabilities"] == ["gpu"]  # one worker per machine, all its GPUs
    assert "--num-gpus=0" in services["cpu-worker"]["command"] and "deploy" not in services["cpu-worker"]


def test_readme_names_the_ports_the_worker_uses():
    ports = _default_ports()
    assert set(ports) == {"node-manager-port", "object-manager-port", "runtime-env-agent-port",
                          "dashboard-agent-grpc-port", "dashboard-agent-listen-port", "metrics-export-port",
                          "min-worker-port", "max-worker-port"}
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### More machines"):]
    section = section[:section.index("\n### ", 5)]
    singles = sorted(p for f, p in ports.items() if not f.endswith("worker-port"))
    span = f"{min(p for p in singles if p < 10000)}-{max(p for p in singles if p < 10000)}"
    assert span in section and all(str(p) in section for p in singles if p >= 10000)
    assert f"{ports['min-worker-port']}-{ports['max-worker-port']}" in section
    assert "6379" in section and "docker compose -f docker-compose.worker.yml up" in section


@pytest.mark.parametrize("profile", ["default", "cpu"])
def test_docker_compose_config_validates(profile, tmp_path):
    if not shutil.which("docker") or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode:
        pytest.skip("the docker compose plugin is not installed here; the structure is checked above")
    token = tmp_path / "token"
    token.write_text("0" * 64)
    args = ["docker", "compose", "-f", str(FILE), *(["--profile", "cpu"] if profile == "cpu" else []), "config", "--quiet"]
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "RAY_AUTH_TOKEN_FILE": str(token), "RAY_HEAD": "head.example:6379"}
    out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr
    missing = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env={**env, "RAY_HEAD": ""})
    assert missing.returncode != 0 and "RAY_HEAD" in missing.stderr  # no head address: compose says so

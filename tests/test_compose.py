"""The docker-compose cluster file: structure checked always, `docker compose config` where docker is."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _ray_version() -> str:
    """The Ray the project pins (pyproject: ray[...]>=X.Y,<...), as the image tag's X.Y.0."""
    match = re.search(r'"ray\[[^\]]*\]>=(\d+\.\d+)', (ROOT / "pyproject.toml").read_text())
    assert match, "pyproject.toml pins no ray version"
    return f"{match.group(1)}.0"


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_images_are_pinned_to_the_projects_ray():
    version = _ray_version()
    assert f"ARG RAY_IMAGE=rayproject/ray:{version}-py311-gpu" in (ROOT / "Dockerfile").read_text()
    args = _compose()["x-ray-node"]["build"]["args"]
    assert args["RAY_IMAGE"] == f"${{RAY_IMAGE:-rayproject/ray:{version}-py311-gpu}}"


def test_cluster_shape():
    services = _compose()["services"]
    assert set(services) == {"head", "worker", "cpu-worker"}
    for name, service in services.items():
        env = service["environment"]
        assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN_PATH"] == "/run/secrets/ray_auth_token", name
        assert service["secrets"] == ["ray_auth_token"] and "shared:/shared" in service["volumes"], name
        assert service["shm_size"], name
    head = services["head"]
    assert any(p.endswith(":8265") for p in head["ports"]) and "--dashboard-port=8265" in head["command"]
    assert "--num-cpus=0" in head["command"] and "healthcheck" in head
    gpu = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"] and "profiles" not in services["worker"]
    assert services["cpu-worker"]["profiles"] == ["cpu"] and "deploy" not in services["cpu-worker"]
    for worker in ("worker", "cpu-worker"):
        assert "--address=head:6379" in services[worker]["command"]
        assert services[worker]["depends_on"]["head"]["condition"] == "service_healthy"


def _compose_cli() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


@pytest.mark.parametrize("profile", ["default", "cpu"])
def test_docker_compose_config_validates(profile, tmp_path):
    cli = _compose_cli()
    if cli is None:
        pytest.skip("the docker compose plugin is not installed here (`docker compose version` fails); "
                    "structure is checked by the other tests in this file")
    token = tmp_path / "token"
    token.write_text("0" * 64)
    args = [*cli, "-f", str(ROOT / "docker-compose.yml")]
    args += ["--profile", "cpu"] if profile == "cpu" else []
    out = subprocess.run([*args, "config", "--quiet"], capture_output=True, text=True, cwd=ROOT,
                         env={"PATH": "/usr/bin:/bin:/usr/local/bin", "RAY_AUTH_TOKEN_FILE": str(token)})
    assert out.returncode == 0, out.stderr

"""The docker-compose cluster file: structure checked always, `docker compose config` where docker is.

`.ci/run` installs the compose plugin (Compose v2) where docker has none, so CI runs the config checks:
each GPU goes to exactly one worker, with the base file and with scripts/compose_gpus.py's override.
"""

from __future__ import annotations

import importlib.util
import json
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
    node = _compose()["x-ray-node"]
    assert node["build"]["args"]["RAY_IMAGE"] == f"${{RAY_IMAGE:-rayproject/ray:{version}-py311-${{TASKGRAPH_FLAVOR:-gpu}}}}"
    assert node["image"].startswith(f"taskgraph-ray:{version}-${{TASKGRAPH_FLAVOR:-gpu}}")  # one tag per flavour


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
    assert gpu["count"] == "all" and services["worker"]["container_name"]  # one worker, every GPU; no --scale
    for name, service in services.items():  # Ray sizes memory from the container's limit
        assert service["deploy"]["resources"]["limits"]["memory"], name
    assert services["cpu-worker"]["profiles"] == ["cpu"] and "reservations" not in services["cpu-worker"]["deploy"]["resources"]
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


# --- `docker compose config`: which worker gets which GPU -------------------------------------


def _config(tmp_path: Path, *overrides: str, env: dict[str, str] | None = None) -> dict:
    """The merged configuration `docker compose config` prints (overrides: extra files' text)."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip("the docker compose plugin is not installed here (`docker compose version` fails)")
    token = tmp_path / "token"
    token.write_text("0" * 64)
    files = ["-f", str(ROOT / "docker-compose.yml")]
    for i, text in enumerate(overrides):  # next to docker-compose.yml: `extends: {file: docker-compose.yml}`
        path = ROOT / f".test-override-{tmp_path.name}-{i}.yml"
        path.write_text(text)
        files += ["-f", str(path)]
    try:
        out = subprocess.run([*cli, *files, "config", "--format", "json"], capture_output=True, text=True, cwd=ROOT,
                             env={"PATH": "/usr/bin:/bin:/usr/local/bin", "RAY_AUTH_TOKEN_FILE": str(token), **(env or {})})
    finally:
        for i in range(len(overrides)):
            (ROOT / f".test-override-{tmp_path.name}-{i}.yml").unlink()
    if out.returncode != 0:
        raise AssertionError(out.stderr)
    return json.loads(out.stdout)


def _gpus_by_worker(config: dict) -> dict[str, list[str]]:
    """Running services (scale not 0) -> the GPUs they reserve: device ids, or 'all'."""
    out: dict[str, list[str]] = {}
    for name, service in config["services"].items():
        if service.get("scale", 1) == 0 or service.get("deploy", {}).get("replicas", 1) == 0:
            continue
        for device in service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", []):
            assert "gpu" in device["capabilities"], (name, device)
            out.setdefault(name, []).extend(device.get("device_ids") or ["all" if device.get("count") == -1 else "?"])
    return out


def _compose_gpus():
    spec = importlib.util.spec_from_file_location("compose_gpus", ROOT / "scripts" / "compose_gpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_base_file_gives_every_gpu_to_one_worker_and_refuses_scaling(tmp_path):
    assert _gpus_by_worker(_config(tmp_path)) == {"worker": ["all"]}
    with pytest.raises(AssertionError, match="container name must be unique"):
        _config(tmp_path, "services:\n  worker:\n    scale: 2\n")  # what `up --scale worker=2` asks for


def test_gpu_and_cpu_images_have_different_tags(tmp_path):
    gpu, cpu = _config(tmp_path), _config(tmp_path, env={"TASKGRAPH_FLAVOR": "cpu"})
    for config, flavor in ((gpu, "gpu"), (cpu, "cpu")):
        images = {s["image"] for s in config["services"].values()}
        assert images == {f"taskgraph-ray:{_ray_version()}-{flavor}"}, images
        assert {s["build"]["args"]["RAY_IMAGE"] for s in config["services"].values()} == {
            f"rayproject/ray:{_ray_version()}-py311-{flavor}"}
        assert {s["build"]["args"]["FLAVOR"] for s in config["services"].values()} == {flavor}


@pytest.mark.parametrize("gpus,per_worker", [(4, 1), (4, 2), (3, 3)])
def test_generated_override_gives_each_gpu_to_exactly_one_worker(tmp_path, gpus, per_worker):
    text = _compose_gpus().render(gpus, per_worker, cpus_per_worker=6, memory_per_worker=64 * 1024**3)
    config = _config(tmp_path, text)
    taken = _gpus_by_worker(config)
    assert len(taken) == gpus // per_worker and "worker" not in taken
    ids = sorted(i for got in taken.values() for i in got)
    assert ids == [str(i) for i in range(gpus)]  # each GPU once: none shared, none idle
    for name in taken:
        service = config["services"][name]
        limits, command = service["deploy"]["resources"]["limits"], service["command"]
        flags = dict(arg.removeprefix("--").split("=", 1) for arg in command if arg.startswith("--") and "=" in arg)
        assert float(flags["num-cpus"]) == float(limits["cpus"]) == 6 and int(flags["num-gpus"]) == per_worker
        assert int(flags["memory"]) + int(flags["object-store-memory"]) < int(limits["memory"]) == 64 * 1024**3
        assert int(service["shm_size"]) >= int(flags["object-store-memory"])  # the object store lives in /dev/shm
        assert service["environment"]["RAY_AUTH_MODE"] == "token" and "--address=head:6379" in command  # extended


def test_generator_refuses_gpus_it_cannot_split_evenly():
    script = _compose_gpus()
    with pytest.raises(ValueError, match="multiple of --gpus-per-worker 2"):
        script.render(3, 2)
    assert script.parse_size("64g") == 64 * 1024**3 and script.parse_size("512MiB") == 512 * 1024**2


"""``--run-dir s3://bucket/prefix`` end to end against a real S3 server (moto's, started here):
run, the result cache, resume and the report, with the credentials and the endpoint taken from
the environment only (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL), as on a cluster.

Every command is a child process with a clean environment: its embedded Ray's workers inherit the
AWS variables from it, as a cluster's nodes get them from their own environment.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "taskgraph-runs"

GRAPH = """
name: ons3
defaults: {train: {epochs: 1, batch_size: 64}}
data:
  shapes: {loader: synthetic_shapes, n: 200, dim: 8, classes: 4}
tasks:
  up:
    data: shapes
    modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 4}}
    loss: {type: cross_entropy, target: label}
  down:
    data: shapes
    depends_on: {up: {share: [encoder], mode: freeze}}
    modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 4}}
    loss: {type: cross_entropy, target: label}
"""


@pytest.fixture(scope="module")
def s3():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "testing-key", "AWS_SECRET_ACCESS_KEY": "testing-secret",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    try:
        yield {"env": env, "client": client}
    finally:
        server.stop()


def keys(s3, prefix: str) -> list[str]:
    pages = s3["client"].get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def read(s3, key: str) -> bytes:
    return s3["client"].get_object(Bucket=BUCKET, Key=key)["Body"].read()


def taskgraph(s3, tmp_path, *args) -> subprocess.CompletedProcess:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path),
           "RAY_USAGE_STATS_ENABLED": "0", **s3["env"]}
    return subprocess.run([sys.executable, "-m", "taskgraph", *map(str, args)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=400)


def runs_of(s3) -> list[str]:
    return sorted({k.split("/")[2] for k in keys(s3, "runs/ons3/")})


def test_run_cache_resume_and_report_on_s3(s3, tmp_path):
    graph = tmp_path / "graph.yaml"
    graph.write_text(textwrap.dedent(GRAPH))
    url = f"s3://{BUCKET}/runs"

    first = taskgraph(s3, tmp_path, "run", graph, "--run-dir", url, "--until", "up", "--plain", "--num-cpus", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    (stamp,) = runs_of(s3)
    folder = f"runs/ons3/{stamp}"
    assert json.loads(read(s3, f"{folder}/run.json"))["nodes"]["up"]["status"] == "done"
    assert f"{folder}/up/params.safetensors" in keys(s3, folder)
    entries = [k for k in keys(s3, "runs/.cache/nodes/") if k.endswith("/manifest.json")]
    assert len(entries) == 1  # `up` published in the cache on the store, its manifest last

    resumed = taskgraph(s3, tmp_path, "resume", f"s3://{BUCKET}/{folder}", "--num-cpus", "2")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    run = json.loads(read(s3, f"{folder}/run.json"))
    assert run["status"] == "done" and run["nodes"]["down"]["status"] == "done"
    assert run["nodes"]["up"]["status"] == "cached"  # not retrained: taken from the cache on S3
    assert runs_of(s3) == [stamp]  # resumed in its own folder

    again = taskgraph(s3, tmp_path, "run", graph, "--run-dir", url, "--plain")
    assert again.returncode == 0, again.stdout + again.stderr
    (second,) = set(runs_of(s3)) - {stamp}
    run = json.loads(read(s3, f"runs/ons3/{second}/run.json"))
    assert {n["status"] for n in run["nodes"].values()} == {"cached"}  # every node from the S3 cache
    assert read(s3, f"runs/ons3/{second}/down/params.safetensors") == read(s3, f"{folder}/down/params.safetensors")

    status = taskgraph(s3, tmp_path, "status", graph, "--run-dir", url)
    assert status.returncode == 0 and "0 to train, 2 cached" in status.stdout, status.stdout + status.stderr

    report = taskgraph(s3, tmp_path, "report", f"s3://{BUCKET}/{folder}")
    assert report.returncode == 0, report.stdout + report.stderr
    html = read(s3, f"{folder}/report.html").decode()
    assert "<html" in html.lower() and "down" in html

"""The result cache, the report and `status` on a real S3 server (moto's, in this process), no Ray:
credentials and endpoint from the environment only. The whole graph on S3 (run, resume, a cached
rerun) is in test_s3_rundir.py.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

from taskgraph.artifacts import store  # noqa: E402
from taskgraph.artifacts.cache import NodeCache  # noqa: E402
from taskgraph.artifacts.manifest import IntegrityWarning  # noqa: E402
from taskgraph.artifacts.rundir import write_node  # noqa: E402
from taskgraph.cli import main  # noqa: E402
from tests.report.fake_run import make_run  # noqa: E402

BUCKET = "tg-store"
ENV = {"AWS_ACCESS_KEY_ID": "testing-key", "AWS_SECRET_ACCESS_KEY": "testing-secret", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server; this process reaches it through the AWS_* variables only."""
    import s3fs

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {**ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    s3fs.S3FileSystem.clear_instance_cache()
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    try:
        yield client
    finally:
        server.stop()
        for k, v in before.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        s3fs.S3FileSystem.clear_instance_cache()


def objects(client, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def test_cache_entries_on_s3_round_trip_and_damage_is_evicted(s3):
    root = f"s3://{BUCKET}/runs-{os.getpid()}"
    cache = NodeCache.for_run_root(root)
    state = {"encoder.weight": np.arange(6, dtype=np.float32).reshape(2, 3)}
    node_dir = store.join(root, "g", "1", "up")
    files = write_node(node_dir, state, {"node": "up", "final": {"loss": 0.5}})
    key = "ab" * 32
    assert not cache.has(key) and cache.partial(key) is None  # no mid-node checkpoints on object stores
    cache.store(key, node_dir, {"node": "up", "final": {"loss": 0.5}}, files)
    prefix = f"runs-{os.getpid()}/.cache/nodes/ab/{key}/"
    assert objects(s3, prefix) == [prefix + n for n in ("manifest.json", "metrics.json", "node.json",
                                                          "params.safetensors")]
    assert cache.has(key) and cache.meta(key)["final"] == {"loss": 0.5}
    assert np.array_equal(cache.load_state(key)["encoder.weight"], state["encoder.weight"])
    other = store.join(root, "g", "2", "up")
    cache.restore(key, other)  # a later run's folder gets copies, verified as read
    assert store.read_bytes(store.join(other, "params.safetensors")) == \
        store.read_bytes(store.join(node_dir, "params.safetensors"))
    s3.put_object(Bucket=BUCKET, Key=prefix + "params.safetensors", Body=b"not the parameters")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cache.usable_state(key, "up") is None  # damaged: never served, evicted
    assert any(issubclass(w.category, IntegrityWarning) for w in caught)
    assert objects(s3, prefix) == [] and not cache.has(key)


def test_report_and_status_of_a_run_on_s3(s3, tmp_path, capsys):
    local = make_run(tmp_path / "runs")
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        s3.put_object(Bucket=BUCKET, Key=f"shared/quickstart/{local.name}/{path.relative_to(local).as_posix()}",
                      Body=path.read_bytes())
    url = f"s3://{BUCKET}/shared/quickstart/{local.name}"
    assert main(["report", url]) == 0, capsys.readouterr().err
    assert f"wrote {url}/report.html" in capsys.readouterr().out
    html = s3.get_object(Bucket=BUCKET, Key=f"shared/quickstart/{local.name}/report.html")["Body"].read().decode()
    assert "finetune" in html and "<svg" in html
    out = tmp_path / "r.html"
    assert main(["report", url, "-o", str(out)]) == 0 and "pretrain" in out.read_text()
    assert main(["report", f"s3://{BUCKET}/shared/nothing-here"]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    graph = Path(__file__).resolve().parents[2] / "graphs" / "quickstart.yaml"
    assert main(["status", str(graph), "--run-dir", f"s3://{BUCKET}/shared"]) == 0
    assert "3 to train, 0 cached" in capsys.readouterr().out

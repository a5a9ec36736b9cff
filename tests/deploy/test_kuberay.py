"""deploy/kuberay/: every manifest parses, and RayCluster/RayJob validate against KubeRay's CRD schema.

The schemas are KubeRay's own (``tests/deploy/kuberay_schema``, vendored with their commit by
``scripts/vendor_kuberay_schema.py``). Validation is strict, as ``kubectl apply`` (server-side field
validation, on by default) is: a field the schema does not know is an error, not silently dropped.
Then what the README promises of the cluster: a CPU head, a GPU group that scales from zero,
token auth, labels taskgraph's ``resources.labels`` match, and a RayJob running ``taskgraph run``
with its run directory on object storage.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kuberay"
SCHEMAS = Path(__file__).parent / "kuberay_schema"
KINDS = {("ray.io/v1", "RayCluster"): "raycluster.v1.json", ("ray.io/v1", "RayJob"): "rayjob.v1.json"}


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused wherever it lists the fields (Kubernetes' structural
    schemas prune unknown fields; kubectl's strict field validation turns that into an error)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _registry() -> Registry:
    resources = [(name, Resource(contents=_strict(json.loads((SCHEMAS / name).read_text())), specification=DRAFT4))
                 for name in KINDS.values()]
    return Registry().with_resources(resources)


REGISTRY = _registry()


def validate(doc: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when ``doc`` breaks its kind's CRD schema."""
    name = KINDS[(doc.get("apiVersion"), doc.get("kind"))]
    schema = REGISTRY.contents(name)
    jsonschema.Draft4Validator(schema, registry=REGISTRY).validate(doc)


def _documents() -> dict[str, dict[str, Any]]:
    """``kind/name`` -> manifest, from every YAML file under deploy/kuberay (but the kustomization)."""
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            assert isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind"), path
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), path  # a DNS label
            docs[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return docs


DOCS = _documents()


def test_every_manifest_validates_against_the_kuberay_crd_schema():
    assert {key.split("/")[0] for key in DOCS} == {"RayCluster", "RayJob"}
    for key, doc in DOCS.items():
        validate(doc)
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("break_it, said", [
    (lambda c: c["spec"]["workerGroupSpecs"][1].update(rayStartParam={}), "Additional properties"),  # a typo
    (lambda c: c["spec"]["workerGroupSpecs"][1].update(minReplicas="zero"), "is not of type 'integer'"),
    (lambda c: c["spec"]["headGroupSpec"].pop("template"), "'template' is a required property"),
    (lambda c: c["spec"]["autoscalerOptions"].update(version="v3"), "is not one of"),
])
def test_the_schema_catches_mistakes(break_it, said):
    cluster = copy.deepcopy(DOCS["RayCluster/taskgraph"])
    break_it(cluster)
    with pytest.raises(jsonschema.ValidationError, match=said):
        validate(cluster)
    job = copy.deepcopy(DOCS["RayJob/taskgraph-quickstart"])
    job["spec"]["rayClusterSpec"] = cluster["spec"]  # through the $ref to RayCluster's spec
    with pytest.raises(jsonschema.ValidationError, match=said):
        validate(job)


def _container(group: dict[str, Any]) -> dict[str, Any]:
    (container,) = group["template"]["spec"]["containers"]
    return container


def test_cluster_has_a_cpu_head_and_a_gpu_group_that_scales_from_zero():
    spec = DOCS["RayCluster/taskgraph"]["spec"]
    ray_version = re.search(r'"ray\[[^\]]*\]>=(\d+\.\d+)', (ROOT / "pyproject.toml").read_text()).group(1)
    assert spec["rayVersion"] == f"{ray_version}.0"
    assert spec["enableInTreeAutoscaling"] is True and spec["authOptions"] == {"mode": "token"}
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0" and "nvidia.com/gpu" not in _container(head)["resources"]["limits"]
    assert _container(head)["image"] == f"taskgraph-ray:{ray_version}.0-cpu"  # docker-compose.yml's tags
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    gpu = groups["gpu"]
    assert gpu["minReplicas"] == 0 and gpu["replicas"] == 0 and gpu["maxReplicas"] >= 1
    assert _container(gpu)["resources"]["limits"]["nvidia.com/gpu"] == "1" and gpu["labels"] == {"tier": "gpu"}
    assert _container(gpu)["image"] == f"taskgraph-ray:{ray_version}.0-gpu"
    assert groups["cpu"]["labels"] == {"tier": "cpu"} and "nvidia.com/gpu" not in _container(groups["cpu"])["resources"]["limits"]
    for group in [head, *groups.values()]:
        container = _container(group)
        limits = container["resources"]["limits"]
        assert limits["cpu"] and limits["memory"]  # KubeRay turns them into Ray's --num-cpus/--memory
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["TASKGRAPH_RUN_DIR"].startswith("s3://")
        assert container["envFrom"] == [{"secretRef": {"name": "taskgraph-object-store", "optional": True}}]


def test_job_runs_taskgraph_on_the_cluster_with_its_run_directory_on_object_storage():
    import taskgraph

    job = DOCS["RayJob/taskgraph-quickstart"]["spec"]
    assert job["clusterSelector"] == {"ray.io/cluster": "taskgraph"} and "RayCluster/taskgraph" in DOCS
    argv = shlex.split(job["entrypoint"])
    assert argv[:4] == ["python", "-m", "taskgraph", "run"]
    graph = argv[4]
    assert graph.startswith("/home/ray/taskgraph/") and "WORKDIR /home/ray/taskgraph" in (ROOT / "Dockerfile").read_text()
    taskgraph.load(ROOT / graph.removeprefix("/home/ray/taskgraph/"))  # the graph the image carries loads
    assert argv[argv.index("--run-dir") + 1].startswith("s3://")
    assert yaml.safe_load(job["runtimeEnvYAML"])["env_vars"]["PYTHONUNBUFFERED"] == "1"

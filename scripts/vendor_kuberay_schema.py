"""Vendor the KubeRay CRD schemas that tests/deploy/test_kuberay.py validates deploy/kuberay/ against.

    python3 scripts/vendor_kuberay_schema.py /path/to/kuberay-checkout [COMMIT]

Takes ``ray-operator/config/crd/bases/ray.io_rayclusters.yaml`` and ``ray.io_rayjobs.yaml`` (the
``v1`` version's ``openAPIV3Schema``) and writes only what a manifest is checked against:
``status`` is dropped (manifests never carry it), RayJob's ``rayClusterSpec`` becomes a ``$ref`` to
RayCluster's ``spec`` (upstream they are the same 160 KB, which the script checks) and
``submitterPodTemplate`` (unused here) an open object. The source commit goes into SOURCE.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

OUT = Path(__file__).resolve().parents[1] / "tests" / "deploy" / "kuberay_schema"
CRDS = "ray-operator/config/crd/bases"


def _v1_schema(path: Path) -> dict:
    crd = yaml.safe_load(path.read_text())
    return next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]


def main(checkout: str, commit: str = "") -> int:
    root = Path(checkout)
    cluster, job = _v1_schema(root / CRDS / "ray.io_rayclusters.yaml"), _v1_schema(root / CRDS / "ray.io_rayjobs.yaml")
    for schema in (cluster, job):
        schema["properties"].pop("status", None)
    spec = job["properties"]["spec"]["properties"]
    if spec["rayClusterSpec"] != cluster["properties"]["spec"]:
        raise SystemExit("RayJob's rayClusterSpec differs from RayCluster's spec: vendor it whole")
    spec["rayClusterSpec"] = {"$ref": "raycluster.v1.json#/properties/spec"}
    spec["submitterPodTemplate"] = {"type": "object", "description": "not vendored (unused by deploy/kuberay)"}
    OUT.mkdir(parents=True, exist_ok=True)
    for name, schema in (("raycluster.v1.json", cluster), ("rayjob.v1.json", job)):
        (OUT / name).write_text(json.dumps(schema, sort_keys=True, separators=(",", ":")) + "\n")
    commit = commit or subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    (OUT / "LICENSE").write_text((root / "LICENSE").read_text())
    (OUT / "SOURCE.md").write_text(
        "# Vendored KubeRay CRD schemas\n\n"
        f"From https://github.com/ray-project/kuberay at commit `{commit}` (after v1.7.0),\n"
        f"`{CRDS}/ray.io_rayclusters.yaml` and `ray.io_rayjobs.yaml`: the `v1` `openAPIV3Schema`\n"
        "of each, without `status`; RayJob's `rayClusterSpec` is a `$ref` to RayCluster's `spec` (identical\n"
        "upstream) and its `submitterPodTemplate` an open object. Written by\n"
        "`scripts/vendor_kuberay_schema.py`. KubeRay is under the Apache License 2.0 (LICENSE here).\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))

"""Resource requests: spec fields, Ray options, and refusing at submit time what no Ray node holds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from taskgraph.errors import ExecutionError
from taskgraph.execute.resources import check_feasible, ray_options, usage, worker_bundle
from taskgraph.execute.scheduler import NodeJob, run_jobs
from taskgraph.spec.models import Resources, parse_memory

GPU_NODE = {"NodeID": "aaaa1111", "Alive": True, "Resources": {"CPU": 4.0, "GPU": 2.0, "memory": 8e9, "special": 1.0,
            "accelerator_type:T4": 1.0}, "Labels": {"zone": "a"}}
CPU_NODE = {"NodeID": "bbbb2222", "Alive": True, "Resources": {"CPU": 8.0, "memory": 16e9}, "Labels": {"zone": "b"}}
DEAD_NODE = {"NodeID": "cccc3333", "Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}, "Labels": {}}


def test_memory_sizes_parse_to_bytes():
    assert parse_memory("4GB") == 4_000_000_000
    assert parse_memory("512MiB") == 512 * 2**20
    assert parse_memory(1024) == 1024
    assert Resources(memory="1.5 GB").memory == 1_500_000_000
    with pytest.raises(ValidationError, match="Write a number with a unit"):
        Resources(memory="lots")


def test_resources_fields_are_checked():
    with pytest.raises(ValidationError, match="`gpus_per_worker` needs `workers`"):
        Resources(gpus_per_worker=1)
    with pytest.raises(ValidationError, match="Use `resources.gpus` instead"):
        Resources(custom={"GPU": 1})
    res = Resources(workers=4, gpus_per_worker=0.5, custom={"special": 1}, labels={"zone": "a"})
    assert res.workers == 4 and res.custom == {"special": 1.0}


def test_ray_options_carry_every_request():
    job = NodeJob("n", cpus=2, gpus=0.5, memory=10**9, custom={"special": 1}, accelerator_type="T4", labels={"zone": "a"})
    assert ray_options(job) == {"num_cpus": 2, "num_gpus": 0.5, "memory": 10**9, "resources": {"special": 1},
                                "accelerator_type": "T4", "label_selector": {"zone": "a"}}
    dp = NodeJob("dp", workers=3, cpus_per_worker=2, gpus_per_worker=1)
    assert ray_options(dp) == {"num_cpus": 0, "num_gpus": 0}  # the coordinator holds nothing
    assert usage(dp) == (6, 3) and worker_bundle(dp) == {"CPU": 2.0, "GPU": 1.0}


def test_feasible_requests_pass():
    check_feasible([NodeJob("a", gpus=1, custom={"special": 1}, accelerator_type="T4", labels={"zone": "a"}),
                    NodeJob("b", cpus=8, memory=10**10), NodeJob("dp", workers=2, gpus_per_worker=1),
                    NodeJob("cpu_dp", workers=12, cpus_per_worker=1), NodeJob("free", cpus=0, workers=3, cpus_per_worker=0)],
                   [GPU_NODE, CPU_NODE, DEAD_NODE])


@pytest.mark.parametrize(
    "job, expected",
    [
        (NodeJob("big", gpus=4), r"asks for 1 CPUs and 4 GPUs.*closest, aaaa1111.*lacks: GPU 2/4.*--cpu-only"),
        (NodeJob("mem", memory=20 * 10**9), r"20.0 GB memory.*lacks: memory"),
        (NodeJob("tpu", custom={"tpu": 1}), r"tpu=1, but none of the cluster's 2 Ray node\(s\).*ray start"),
        (NodeJob("acc", gpus=1, accelerator_type="H100"), r"accelerator H100"),
        (NodeJob("lab", labels={"zone": "c"}), r"labels zone=c.*label zone=c \(has [ab]\)"),
        (NodeJob("mix", gpus=1, labels={"zone": "b"}), r"closest.*lacks"),
        (NodeJob("dp", workers=3, gpus_per_worker=1), r"3 workers.*only 2 such workers.*resources.workers"),
        (NodeJob("cpu_dp", workers=13, cpus_per_worker=1), r"13 workers.*only 12 such workers"),
    ],
)
def test_infeasible_requests_name_what_is_missing(job, expected):
    with pytest.raises(ExecutionError, match=expected) as info:
        check_feasible([job], [GPU_NODE, CPU_NODE, DEAD_NODE])
    assert info.value.node == job.name


def test_custom_resource_no_node_has_fails_before_anything_runs(ray_local):
    ran = []
    with pytest.raises(ExecutionError, match="node 'special' asks for.*special_hw=1"):
        run_jobs([NodeJob("ok", payload=None), NodeJob("special", custom={"special_hw": 1})],
                 lambda name, payload, inputs: ran.append(name) or ({}, {}))
    assert ran == []

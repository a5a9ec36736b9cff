"""Issue 16: the submit-time check on a cluster whose autoscaler can add a node type not running yet.

The cluster is the shared real local Ray; its GCS is told the autoscaler's node types the way an
autoscaler integration tells it (``ReportClusterConfig``: a ``gpu-group`` of 4 CPUs + 1 GPU, up to
2 nodes, none running), read back through Ray's state API, and reset afterwards.
"""

from __future__ import annotations

import pytest

from taskgraph.errors import ExecutionError
from taskgraph.execute.autoscale import Autoscaling, NodeType, autoscaling
from taskgraph.execute.resources import check_feasible
from taskgraph.execute.scheduler import NodeJob, _check_feasible

GPU_GROUP = NodeType("gpu-group", {"CPU": 4.0, "GPU": 1.0}, 2)


@pytest.fixture
def gpu_group_to_scale(ray_local):
    """The live cluster's GCS says its autoscaler can launch GPU_GROUP (none of which runs)."""
    import ray
    from ray.core.generated.autoscaler_pb2 import ClusterConfig, NodeGroupConfig

    gcs = ray._private.worker.global_worker.gcs_client
    group = NodeGroupConfig(name=GPU_GROUP.name, resources={"CPU": 4, "GPU": 1}, min_count=0, max_count=2)
    gcs.report_cluster_config(ClusterConfig(node_group_configs=[group]).SerializeToString())
    try:
        yield ray
    finally:
        gcs.report_cluster_config(ClusterConfig().SerializeToString())


def test_a_node_only_a_scaled_up_type_can_hold_waits_for_it(gpu_group_to_scale):
    ray = gpu_group_to_scale
    assert not any(n["Resources"].get("GPU") for n in ray.nodes() if n["Alive"])  # no GPU node runs
    scaling = autoscaling()
    assert scaling.node_types == (GPU_GROUP,) and scaling.can_grow
    waits = _check_feasible([NodeJob("train_gpu", gpus=1), NodeJob("small", cpus=1)])
    assert waits == {"train_gpu": "node 'train_gpu' asks for 1 CPUs and 1 GPUs, which none of the 1 running Ray "
                                  "node(s) has: it waits for a scale-up of gpu-group"}
    with pytest.raises(ExecutionError) as refused:  # more than any node type has: refused at once, naming the types
        _check_feasible([NodeJob("huge", gpus=4)])
    assert "nor can its autoscaler add one (node types: gpu-group (CPU 4, GPU 1; up to 2))" in str(refused.value)


def test_without_an_autoscaler_the_live_nodes_decide(ray_local):
    import ray

    assert autoscaling() == Autoscaling((), False)  # a plain `ray.init`: nothing to grow
    with pytest.raises(ExecutionError, match="asks for 1 CPUs and 1 GPUs, but none of the cluster's 1 Ray node"):
        _check_feasible([NodeJob("train_gpu", gpus=1)])
    # an autoscaler that runs but does not publish its types: the node waits, and the line says why
    waits = check_feasible([NodeJob("train_gpu", gpus=1)], ray.nodes(), Autoscaling((), True))
    assert "waits for the cluster's autoscaler to add one" in waits["train_gpu"]

"""Each node's deployment: command line over the graph's `serve:` node entry over its section over defaults."""

from __future__ import annotations

from taskgraph.serve.options import DEFAULTS, node_deployments
from taskgraph.spec.serving import Deployment, ServeSection


def test_flags_override_the_graph_file_which_overrides_defaults():
    section = ServeSection(replicas=2, max_batch_size=64, nodes={"pos": Deployment(gpus=0.5, replicas=3)})
    got = node_deployments(["pos", "chunk"], section, Deployment(max_batch_size=8))
    assert (got["pos"].replicas, got["pos"].gpus, got["pos"].max_batch_size) == (3, 0.5, 8)
    assert (got["chunk"].replicas, got["chunk"].gpus, got["chunk"].max_batch_size) == (2, 0.0, 8)
    assert got["chunk"].batch_wait_ms == DEFAULTS.batch_wait_ms and got["chunk"].cpus == DEFAULTS.cpus
    assert node_deployments(["pos"])["pos"].ray_actor_options() == {"num_cpus": 1.0, "num_gpus": 0.0}


def test_serve_section_errors_name_the_line_and_the_fix(write_graph):
    import pytest

    from taskgraph.errors import SpecError
    from taskgraph.spec.loader import load_spec

    path = write_graph("""
        name: q
        data:
          shapes: {loader: synthetic_shapes, n: 400, dim: 16, classes: 4}
        tasks:
          pretrain:
            data: shapes
            modules:
              head: {type: linear, out: 4}
            loss: {type: cross_entropy, target: label}
        serve:
          gpu: 1
          nodes:
            pretrian: {replicas: 2}
        """)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert f"{path}:11:3: serve.gpu: unknown key 'gpu'. Did you mean 'gpus'?" in str(caught.value)
    path.write_text(path.read_text().replace("  gpu: 1\n", "  replicas: 0\n"))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert "serve.replicas: Input should be greater than or equal to 1" in str(caught.value)
    path.write_text(path.read_text().replace("replicas: 0", "replicas: 1"))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert "serve.nodes.pretrian: unknown task 'pretrian'. Did you mean 'pretrain'?" in str(caught.value)

"""The run's worker warm-up leaves nothing heavy for a node to import: a child that starts on another
worker than its parent's (while the parent writes its files) trains at once."""

from __future__ import annotations

import base64
import functools
import json
import subprocess
import sys
import textwrap

import cloudpickle

from taskgraph.execute.warmup import warm_targets
from taskgraph.observers import Tracking
from taskgraph.runner import WARM_UP, node_job

FIRST_NODE = textwrap.dedent("""
    import base64, json, pickle, sys
    from taskgraph.execute.warmup import import_targets

    import_targets(json.loads(sys.argv[1]))  # what an idle worker runs at the start of a run
    from taskgraph.spec import parse_spec
    from taskgraph.train import NodeRequest

    spec, _ = parse_spec('''
    name: warm
    data:
      tiny: {loader: synthetic_shapes, n: 40, dim: 4}
    tasks:
      a:
        data: tiny
        modules: {encoder: {type: mlp, in: 4, hidden: [4]}, head: {type: linear, out: 1}}
        loss: {type: binary_cross_entropy, target: parity}
        train: {epochs: 1, batch_size: 64, optimizer: adam}
    ''')
    task = spec.tasks["a"]
    before = set(sys.modules)
    node_fn = pickle.loads(base64.b64decode(sys.argv[2]))  # as Ray ships the node function to the worker
    from taskgraph.train import train_node

    train_node(NodeRequest("a", task, spec.data[task.data], 0, ()), {})
    heavy = ("torch", "sympy", "taskgraph", "networkx", "yaml")
    print(json.dumps(sorted(m for m in set(sys.modules) - before if m.split(".")[0] in heavy)))
""")


def test_a_warmed_worker_imports_nothing_heavy_for_its_first_node():
    node_fn = functools.partial(node_job, tracking=Tracking())  # what the runner hands the scheduler
    targets = warm_targets(node_fn, WARM_UP)
    assert targets == ["taskgraph.runner", WARM_UP]
    blob = base64.b64encode(cloudpickle.dumps(node_fn)).decode()
    proc = subprocess.run([sys.executable, "-c", FIRST_NODE, json.dumps(targets), blob],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = json.loads(proc.stdout.strip().splitlines()[-1])
    # torch._dynamo (imported by the first optimizer) was 1.5-20 s inside the first node's training;
    # the runner's module (the spec models, the plan, networkx) ~1 s when its function was unpickled
    assert not any(m.startswith(("torch._dynamo", "sympy", "taskgraph.runner", "taskgraph.plan.graph", "networkx"))
                   for m in imported), imported
    assert warm_targets(node_fn, None) == []

"""The run's worker warm-up leaves nothing heavy for a node's first step to import: a child that
starts on another worker than its parent's (while the parent writes its files) trains at once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

FIRST_NODE = textwrap.dedent("""
    import json, sys
    from taskgraph.execute.scheduler import _import
    from taskgraph.runner import WARM_UP
    from taskgraph.spec import parse_spec
    from taskgraph.train import NodeRequest

    _import(WARM_UP)  # what an idle worker runs at the start of a run
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
    from taskgraph.train import train_node

    train_node(NodeRequest("a", task, spec.data[task.data], 0, ()), {})
    print(json.dumps(sorted(m for m in set(sys.modules) - before if m.split(".")[0] in ("torch", "sympy"))))
""")


def test_a_warmed_worker_imports_no_torch_module_in_its_first_node():
    proc = subprocess.run([sys.executable, "-c", FIRST_NODE], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = json.loads(proc.stdout.strip().splitlines()[-1])
    # torch._dynamo (imported by the first optimizer) was 1.5-20 s inside the first node's training
    assert not any(m.startswith(("torch._dynamo", "sympy")) for m in imported), imported

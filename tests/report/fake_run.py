"""A hand-made run directory of the quickstart graph (no Ray, no training): the report tests' input."""

from __future__ import annotations

import json
from pathlib import Path

from taskgraph.runner import dump_graph
from taskgraph.spec.loader import load_spec

QUICKSTART = Path(__file__).resolve().parents[2] / "graphs" / "quickstart.yaml"
T0 = 1_700_000_000.0


def history(epochs: int, start_loss: float) -> list[dict]:
    return [{"epoch": e, "step": 10 * e, "train_loss": start_loss / e, "seconds": 0.5,
             "val_loss": start_loss / e + 0.1, "val_accuracy": 0.5 + 0.1 * e} for e in range(1, epochs + 1)]


def make_run(root: Path, statuses: dict[str, str] | None = None, ablation: object | None = None) -> Path:
    """pretrain done on pid 11, scratch done on pid 12 (in parallel), finetune after pretrain on pid 11."""
    statuses = {"pretrain": "done", "finetune": "done", "scratch": "done", **(statuses or {})}
    spec, _ = load_spec(QUICKSTART)
    run_dir = root / "quickstart" / "20250101-000000"
    run_dir.mkdir(parents=True)
    (run_dir / "graph.yaml").write_text(dump_graph(spec))
    times = {"pretrain": (0.0, 0.5, 4.0, 11, []), "scratch": (0.0, 0.6, 3.0, 12, []),
             "finetune": (4.1, 4.2, 6.0, 11, [{"module": "encoder", "from": "pretrain.encoder", "mode": "finetune"}])}
    nodes = {}
    for name, (sub, start, end, pid, inherited) in times.items():
        status = statuses[name]
        node = {"name": name, "status": status, "submitted_at": T0 + sub, "started_at": T0 + start,
                "ended_at": T0 + end, "host": "hostA", "node_id": "n1", "worker_id": f"w{pid}", "pid": pid,
                "gpu_ids": [], "error": None, "traceback": None,
                "meta": {"final": {"loss": 0.3, "accuracy": 0.8}, "inherited": inherited, "device": "cpu", "steps": 30}}
        if status == "failed":
            node.update(started_at=None, host=None, pid=None, meta={}, error="ValueError: boom")
        if status == "skipped":
            node.update(submitted_at=None, started_at=None, ended_at=None, host=None, pid=None, meta={},
                        error="upstream node 'pretrain' failed")
        nodes[name] = node
        if status in ("done", "cached"):
            (run_dir / name).mkdir()
            (run_dir / name / "metrics.json").write_text(json.dumps(
                {"node": name, "final": {"loss": 0.3, "accuracy": 0.8}, "history": history(3, 2.0)}))
    run = {"graph": "quickstart", "run_dir": str(run_dir), "status": "done", "started_at": T0 - 1.0,
           "ended_at": T0 + 6.0, "order": ["pretrain", "finetune", "scratch"], "critical_path": ["pretrain", "finetune"],
           "nodes": nodes, "ray": {"address": "local", "nodes": 1}}
    (run_dir / "run.json").write_text(json.dumps(run))
    if ablation is not None:
        (run_dir / "ablation.json").write_text(json.dumps(ablation))
    return run_dir

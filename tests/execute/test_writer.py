"""A node's files are made durable by its machine's writer after its Ray task has ended (issues #18, #19):
its CPU and worker go to its children at once, and it still counts as done only once they are written."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import ray

from taskgraph.execute.scheduler import NodeJob, run_jobs
from taskgraph.execute.writer import Durable


def write_after_the_child_started(state, started: str, fail: str | None, die_once: str | None):
    """The writes: they wait until the child runs (it can only run once this node's task gave its
    CPUs back), then record where and from what they wrote."""
    deadline = time.time() + 60
    while not Path(started).exists():
        if time.time() > deadline:
            raise TimeoutError("the child never started while its parent's files were being written")
        time.sleep(0.02)
    if die_once and not Path(die_once).exists():
        Path(die_once).write_text("died")
        os._exit(1)  # the writer process dies mid-write: the writes are run again on a new one
    if fail:
        raise OSError(28, "No space left on device")
    return {"writer_pid": os.getpid(), "value": float(state["value"][0]),
            "in_place": not state["value"].flags.writeable, "durable_at": time.time()}


def parent_then_child(name, payload, inputs):
    if name == "child":
        Path(payload["started"]).write_text("running")
        return {"value": np.zeros(2)}, {"got": float(inputs["parent"]["value"][0]), "pid": os.getpid()}
    return {"value": np.full(3, 7.0)}, Durable(write_after_the_child_started,
                                               (payload["started"], payload.get("fail"), payload.get("die_once")))


def jobs(tmp_path: Path, **parent) -> list[NodeJob]:
    cpus = float(ray.cluster_resources()["CPU"])
    payload = {"started": str(tmp_path / "child-started")}
    # the child asks for every CPU: it can start only once the parent's task has given its CPU back
    return [NodeJob("parent", payload={**payload, **parent}),
            NodeJob("child", ("parent",), ("parent",), cpus=cpus, payload=payload)]


def test_the_child_takes_every_cpu_while_its_parents_files_are_written_elsewhere(ray_local, tmp_path):
    updates = []
    records = run_jobs(jobs(tmp_path), parent_then_child, on_update=lambda r: updates.append((r.name, r.status)))
    parent, child = records["parent"], records["child"]
    assert parent.status == child.status == "done"
    assert child.meta["got"] == 7.0, "the child trained from the parent's state"
    assert parent.meta["value"] == 7.0 and parent.meta["in_place"], "the writes read the state in the object store"
    assert parent.meta["writer_pid"] not in (parent.pid, child.meta["pid"]), "the writes ran in the writer process"
    assert parent.handed_at <= child.started_at < parent.meta["durable_at"] <= parent.ended_at
    assert updates.index(("parent", "done")) < updates.index(("child", "done")), "done only once durable"


def test_writes_that_fail_fail_the_node_and_skip_its_child(ray_local, tmp_path):
    records = run_jobs(jobs(tmp_path, fail="yes"), parent_then_child)
    assert records["parent"].status == "failed" and "No space left on device" in records["parent"].error
    assert records["child"].status == "skipped" and "'parent' failed" in records["child"].error


def test_a_writer_that_dies_is_replaced_and_the_writes_run_again(ray_local, tmp_path):
    records = run_jobs(jobs(tmp_path, die_once=str(tmp_path / "died")), parent_then_child)
    assert (tmp_path / "died").exists(), "the first writer died mid-write"
    assert records["parent"].status == records["child"].status == "done"
    assert records["parent"].meta["value"] == 7.0

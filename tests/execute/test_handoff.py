"""A node's children start from its state while its files are still being made durable (issue #19)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from taskgraph.execute.scheduler import NodeJob, run_jobs


def durable_later(name, payload, inputs):
    """The parent hands its state on at once; its ``finish`` (the durable writes) waits until the
    child is running from that state, then succeeds or fails as told."""
    started = Path(payload["started"])
    if name == "child":
        started.write_text("running")
        return {"value": np.zeros(2)}, {"got": float(inputs["parent"]["value"][0])}

    def finish():
        deadline = time.time() + 120
        while not started.exists():
            if time.time() > deadline:
                raise TimeoutError("the child never started while its parent was writing")
            time.sleep(0.02)
        time.sleep(0.3)  # the child has finished by now: it must still wait for this node
        if payload.get("fail"):
            raise OSError(28, "No space left on device")
        return {"durable_at": time.time()}

    return {"value": np.full(3, 7.0)}, finish


def jobs(tmp_path, **parent):
    """A parent and its only child, as separate tasks (``fuse=False``): in one task (a chain) the child
    would start only after its parent's ``finish``."""
    payload = {"started": str(tmp_path / "child-started")}
    return [NodeJob("parent", payload={**payload, **parent}),
            NodeJob("child", ("parent",), ("parent",), payload=payload)]


def test_child_starts_from_the_state_while_the_parent_writes_and_is_done_after_it(ray_local, tmp_path):
    updates = []
    records = run_jobs(jobs(tmp_path), durable_later, on_update=lambda r: updates.append((r.name, r.status)),
                       fuse=False)
    parent, child = records["parent"], records["child"]
    assert parent.status == child.status == "done"
    assert child.meta == {"got": 7.0}, "the child trained from the parent's state"
    assert parent.handed_at <= child.started_at < parent.meta["durable_at"] <= parent.ended_at
    # a node is reported done only once its own files and its upstream's are durable
    assert updates.index(("parent", "done")) < updates.index(("child", "done"))


def test_a_parent_whose_files_fail_after_the_hand_off_fails_and_its_child_is_skipped(ray_local, tmp_path):
    records = run_jobs(jobs(tmp_path, fail=True), durable_later, fuse=False)
    assert records["parent"].status == "failed" and "No space left on device" in records["parent"].error
    assert records["child"].status == "skipped" and "'parent' failed" in records["child"].error


def writes_report_their_priority(name, payload, inputs):
    import os
    import threading

    task_thread = threading.get_native_id()

    def finish():
        me = threading.get_native_id()
        return {"nice": os.getpriority(os.PRIO_PROCESS, me), "task_nice": os.getpriority(os.PRIO_PROCESS, task_thread),
                "own_thread": me != task_thread}

    return {"value": np.zeros(1)}, finish


def test_a_nodes_durable_writes_run_behind_its_childrens_training(ray_local):
    """The writes made after the hand-on run on a thread at the lowest CPU priority: on few cores
    they competed with the children's training (the critical path); the task's own thread, which
    trains the worker's next node, keeps its priority."""
    import sys

    record = run_jobs([NodeJob("a", payload={})], writes_report_their_priority)["a"]
    assert record.status == "done", record.error
    if not sys.platform.startswith("linux"):
        return  # a nice value per thread is Linux's
    assert record.meta["own_thread"] and record.meta["nice"] == 19
    assert record.meta["task_nice"] <= 19  # the worker's own (Ray's 15, more under `nice`): left as it was

"""The ready-set scheduler on a real local Ray, with toy node functions (no training)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from taskgraph.errors import ExecutionError
from taskgraph.execute.scheduler import NodeJob, run_jobs


def sleepy(name, payload, inputs):
    """A toy node: sleeps, then returns its name plus what it received."""
    time.sleep(payload.get("sleep", 0.0))
    if payload.get("fail"):
        raise ValueError(f"{name} was told to fail")
    received = {k: v["value"] for k, v in inputs.items()}
    return {"value": np.full(3, payload.get("value", 1.0)), "received": received}, {"received": sorted(received)}


def diamond(sleep=0.0, **overrides):
    jobs = {
        "a": NodeJob("a", payload={"sleep": sleep, "value": 1.0}),
        "b": NodeJob("b", ("a",), ("a",), payload={"sleep": sleep, "value": 2.0}),
        "c": NodeJob("c", ("a",), ("a",), payload={"sleep": sleep, "value": 3.0}),
        "d": NodeJob("d", ("b", "c"), ("b", "c"), payload={"sleep": 0.0}),
    }
    for name, payload in overrides.items():
        jobs[name] = NodeJob(jobs[name].name, jobs[name].upstream, jobs[name].inputs, payload={**jobs[name].payload, **payload})
    return list(jobs.values())


def test_diamond_branches_overlap_and_states_flow(ray_warm):
    records = run_jobs(diamond(sleep=2.0), sleepy)
    assert all(r.status == "done" for r in records.values())
    b, c = records["b"], records["c"]
    # the scheduler's part: both submitted the moment `a` finished, before either ended
    assert max(b.submitted_at, c.submitted_at) < min(b.ended_at, c.ended_at)
    # Ray's part: they ran side by side (2 s each leaves room for a worker process to start)
    assert b.started_at < c.ended_at and c.started_at < b.ended_at, "independent branches must run side by side"
    assert records["d"].started_at >= max(b.ended_at, c.ended_at)
    assert records["d"].meta == {"received": ["b", "c"]}
    assert records["a"].host and records["a"].worker_id and records["a"].pid


def test_failure_skips_descendants_but_independent_branches_finish(ray_local):
    jobs = diamond(b={"fail": True}) + [NodeJob("e", payload={})]
    records = run_jobs(jobs, sleepy)
    assert records["b"].status == "failed" and "b was told to fail" in records["b"].error
    assert "ValueError" in records["b"].error and records["b"].traceback
    assert records["d"].status == "skipped" and "'b' failed" in records["d"].error
    assert records["c"].status == "done" and records["e"].status == "done"


def test_fail_fast_stops_the_rest(ray_local):
    jobs = [NodeJob("bad", payload={"fail": True}), NodeJob("after", ("bad",), payload={}),
            NodeJob("slow", payload={"sleep": 0.5}), NodeJob("later", ("slow",), payload={})]
    records = run_jobs(jobs, sleepy, keep_going=False)
    assert records["bad"].status == "failed"
    assert records["after"].status == "skipped"
    assert records["later"].status in ("skipped", "done")  # may have finished before the failure arrived
    assert any(r.status == "skipped" and "--fail-fast" in (r.error or "") for r in records.values())


def test_given_states_are_not_rerun(ray_local):
    calls = run_jobs(diamond(), sleepy, given={"a": {"value": np.full(3, 9.0), "received": {}}})
    assert calls["a"].status == "cached"
    assert calls["b"].status == "done" and calls["d"].status == "done"


def test_infeasible_resources_fail_at_submit_time(ray_local):
    with pytest.raises(ExecutionError, match=r"node 'big' asks for 1 CPUs and 1 GPUs.*--cpu-only"):
        run_jobs([NodeJob("big", gpus=1.0, payload={})], sleepy)
    with pytest.raises(ExecutionError, match="asks for 64 CPUs"):
        run_jobs([NodeJob("wide", cpus=64, payload={})], sleepy)


def test_priority_orders_ready_nodes_when_resources_are_short(ray_local):
    # 2 CPUs, three 2-CPU nodes ready at once: the highest priority must go first
    jobs = [NodeJob(n, cpus=2.0, priority=p, payload={"sleep": 0.2}) for n, p in (("low", 1.0), ("high", 9.0), ("mid", 5.0))]
    records = run_jobs(jobs, sleepy)
    order = sorted(records, key=lambda n: records[n].started_at)
    assert order == ["high", "mid", "low"]


def test_a_cached_node_keeps_its_state_until_its_last_child_has_it(ray_local):
    # `a` is cached and given, not a job (as the runner passes it); its two children need both
    # CPUs each, so the second starts only after the first finished: `a`'s state must still be there.
    given = {"a": {"value": np.full(3, 9.0), "received": {}}}
    jobs = [NodeJob(n, ("a",), ("a",), cpus=2.0, payload={}) for n in ("b", "c")]
    records = run_jobs(jobs, sleepy, given=given)
    assert records["b"].status == records["c"].status == "done"
    assert records["b"].meta == records["c"].meta == {"received": ["a"]}


def test_a_failure_frees_its_resources_for_a_node_that_was_waiting(ray_local):
    # Two independent nodes that each need both CPUs: the first fails; the second must still run.
    jobs = [NodeJob("bad", cpus=2.0, priority=9.0, payload={"fail": True}), NodeJob("other", cpus=2.0, payload={})]
    records = run_jobs(jobs, sleepy)
    assert records["bad"].status == "failed"
    assert records["other"].status == "done"


def waits_for_the_warm_up(name, payload, inputs):
    deadline = time.time() + 120
    while not Path(payload).exists() and time.time() < deadline:
        time.sleep(0.05)
    return {"w": np.zeros(1)}, {}


def test_warm_ups_still_running_when_the_run_ends_are_stopped(ray_local):
    """A warm-up still importing when the run ended went on (and, once the driver left, Ray printed an
    "Unhandled error ... worker died" line under an interrupted run's one line): the run stops them."""
    import os

    from tests.slow_warm import pid_file

    path = pid_file()
    path.unlink(missing_ok=True)
    jobs = [NodeJob("a", payload=str(path)), NodeJob("b", ("a",), payload=str(path))]  # b: one warm-up
    # b waits in its own task (unfused): a chain's one task would leave no node waiting to warm up for
    records = run_jobs(jobs, waits_for_the_warm_up, warm="tests.slow_warm:nap", fuse=False)
    assert records["a"].status == records["b"].status == "done"
    pid = int(path.read_text())
    path.unlink()

    def alive() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    deadline = time.time() + 30
    while alive() and time.time() < deadline:
        time.sleep(0.1)
    assert not alive(), "the warm-up still runs after the run ended"

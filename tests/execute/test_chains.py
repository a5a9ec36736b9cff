"""Chains of nodes run in one Ray task (``execute/chains.py``): found right, states flow in process,
each node keeps its record, and a worker that dies mid-chain is retried from the node it ran."""

from __future__ import annotations

import os
import signal
import weakref
from pathlib import Path

import numpy as np
import pytest

from taskgraph.execute.chains import linear_chains
from taskgraph.execute.scheduler import NodeJob, run_jobs


def chain_jobs(names: str, **extra) -> list[NodeJob]:
    return [NodeJob(n, (names[i - 1],) if i else (), (names[i - 1],) if i else (), **extra.get(n, {}))
            for i, n in enumerate(names)]


def test_chains_are_only_nodes_whose_one_child_has_no_other_upstream():
    # a -> b -> c -> d, plus a side branch c -> e: c has two children, so the chain stops at c
    jobs = [*chain_jobs("abcd"), NodeJob("e", ("c",), ("c",))]
    assert linear_chains(jobs) == {"a": ("a", "b", "c"), "d": ("d",), "e": ("e",)}
    # a diamond: no node is the only child of another that has no other upstream
    diamond = [NodeJob("a"), NodeJob("b", ("a",)), NodeJob("c", ("a",)), NodeJob("d", ("b", "c"))]
    assert linear_chains(diamond) == {n: (n,) for n in "abcd"}
    # a node with a second upstream (here one the run does not train) starts its own chain
    joined = [NodeJob("a"), NodeJob("b", ("a", "cached"))]
    assert linear_chains(joined) == {"a": ("a",), "b": ("b",)}
    # nodes that ask Ray for other resources are not chained
    gpu = chain_jobs("abc", c={"gpus": 1.0})
    def same(p, c):
        return (p.cpus, p.gpus) == (c.cpus, c.gpus)

    assert linear_chains(gpu, same) == {"a": ("a", "b"), "c": ("c",)}


def tell_task(name, payload, inputs):
    """A toy node: says which Ray task and process ran it; adds one to what its upstream passed on."""
    import time

    import ray

    got = [float(v["n"][0]) for v in inputs.values()]
    freed = None
    if payload.get("release") and inputs:  # drop its own reference to the parent's arrays: are they gone?
        (parent,) = inputs.values()
        alive = weakref.ref(parent["n"])
        inputs.clear()
        del parent
        freed = alive() is None
    time.sleep(payload.get("sleep", {}).get(name, 0.0))
    with Path(payload["log"]).open("a") as log:
        log.write(f"{name}\n")
    if name == payload.get("kill") and not Path(payload["log"] + ".killed").exists():
        Path(payload["log"] + ".killed").write_text("")
        os.kill(os.getpid(), signal.SIGKILL)
    if name == payload.get("fail"):
        raise ValueError(f"{name} was told to fail")
    state = {"n": np.full(payload.get("size", 1), (got[0] if got else 0.0) + 1.0)}
    return state, {"task": ray.get_runtime_context().get_task_id(), "pid": os.getpid(), "got": got, "freed": freed}


def run_chain(tmp_path, names="abcd", warm=None, **payload) -> dict:
    payload = {"log": str(tmp_path / "ran.log"), **payload}
    jobs = [NodeJob(j.name, j.upstream, j.inputs, payload=payload) for j in chain_jobs(names)]
    return run_jobs(jobs, tell_task, on_progress=lambda e: None, warm=warm)


def ran(tmp_path) -> list[str]:
    return (tmp_path / "ran.log").read_text().split()


def test_a_chain_runs_in_one_task_and_each_node_keeps_its_record(ray_local, tmp_path):
    records = run_chain(tmp_path)
    assert [records[n].status for n in "abcd"] == ["done"] * 4
    assert [records[n].meta["got"] for n in "abcd"] == [[], [1.0], [2.0], [3.0]], "each took its parent's state"
    assert len({records[n].meta["task"] for n in "abcd"}) == 1, "one Ray task ran the chain"
    for parent, child in zip("abc", "bcd"):  # each node's own times, one after the other
        p, c = records[parent], records[child]
        assert p.started_at <= p.handed_at <= c.started_at <= c.handed_at <= c.ended_at
        assert c.submitted_at <= c.started_at
    assert ran(tmp_path) == list("abcd")


def test_each_node_of_a_chain_reports_in_order_and_the_driver_sends_the_starts_after_the_first(ray_local, tmp_path):
    """A chain node's start event comes from the driver (from its parent's marker: same host and pid), not
    from the worker (a hub round trip on each link); every node's events still arrive in order."""
    events: list[dict] = []
    payload = {"log": str(tmp_path / "ran.log")}
    jobs = [NodeJob(j.name, j.upstream, j.inputs, payload=payload) for j in chain_jobs("abc")]
    records = run_jobs(jobs, tell_task, on_progress=events.append)
    mine = [(e["node"], e["kind"]) for e in events if e.get("node")]
    for node in "abc":  # each node's own events in order; a child's start after what its parent sent before
        assert [k for n, k in mine if n == node] == ["start", "end"], mine
    assert mine.index(("a", "start")) < mine.index(("b", "start")) < mine.index(("c", "start"))
    starts = {e["node"]: e for e in events if e.get("kind") == "start"}
    assert {starts[n]["pid"] for n in "abc"} == {records["a"].meta["pid"]}
    assert starts["b"]["time"] == records["b"].submitted_at and starts["c"]["time"] == records["c"].submitted_at


def test_a_worker_killed_mid_chain_is_retried_from_the_node_it_ran(ray_local, tmp_path):
    records = run_chain(tmp_path, kill="c")
    assert [records[n].status for n in "abcd"] == ["done"] * 4
    assert ran(tmp_path) == ["a", "b", "c", "c", "d"], "the nodes before the dead one were not run again"
    assert records["c"].meta["got"] == [2.0] and records["d"].meta["got"] == [3.0]
    assert records["a"].meta["task"] == records["b"].meta["task"] != records["c"].meta["task"]
    assert records["c"].meta["task"] == records["d"].meta["task"], "the rest of the chain went on in one task"
    assert records["c"].submitted_at <= records["b"].handed_at, "its wait counts from its first try, as Ray's retries"


def test_a_failed_node_skips_the_rest_of_its_chain(ray_local, tmp_path):
    records = run_chain(tmp_path, fail="b")
    assert records["a"].status == "done"
    assert records["b"].status == "failed" and "b was told to fail" in records["b"].error
    assert records["c"].status == records["d"].status == "skipped"
    assert ran(tmp_path) == ["a", "b"]


def test_no_worker_is_warmed_up_for_the_nodes_riding_in_a_chains_task(ray_local, tmp_path):
    """The rest of a chain runs in its task's worker, already warm: a warm-up for it would only take a
    core from the chain's first node (a 400 MB producer trained in 3.6-3.8 s beside one, 2.7-3.5 s without)."""
    from tests.slow_warm import pid_file

    path = pid_file()
    path.unlink(missing_ok=True)
    records = run_chain(tmp_path, names="ab", warm="tests.slow_warm:touch", sleep={"a": 3.0})
    assert records["b"].status == "done"
    assert records["a"].meta["task"] == records["b"].meta["task"]
    assert not path.exists(), "a worker was warmed up for a node that rode in the chain's task"


def test_fail_fast_skips_the_nodes_riding_in_another_chains_task(ray_local, tmp_path):
    """--fail-fast: x fails while the chain a-b-c trains a; a's task is stopped, and b and c, which rode
    in it without having started, are skipped too (not left pending)."""
    payload = {"log": str(tmp_path / "ran.log"), "fail": "x", "sleep": {"a": 3.0}}
    jobs = [NodeJob(j.name, j.upstream, j.inputs, payload=payload) for j in chain_jobs("abc") + chain_jobs("xyz")]
    records = run_jobs(jobs, tell_task, keep_going=False)
    assert records["x"].status == "failed"
    assert {n: records[n].status for n in "abcyz"} == dict.fromkeys("abcyz", "skipped")
    assert "--fail-fast" in records["b"].error and "--fail-fast" in records["a"].error


def test_a_large_state_stays_in_the_chains_task_and_the_parents_arrays_go_once_the_child_has_them(
        ray_local, tmp_path):
    """An 80 MB state goes to the next node in process, not through a new worker; the chain keeps no
    reference of its own to it, so a child that drops its inputs once loaded (the runner's does) frees
    the parent's arrays before it trains: no third copy beside its own and the object store's."""
    records = run_chain(tmp_path, names="abc", size=10_000_000, release=True)
    assert [records[n].status for n in "abc"] == ["done"] * 3
    assert [records[n].meta["got"] for n in "abc"] == [[], [1.0], [2.0]]
    assert len({records[n].meta["task"] for n in "abc"}) == 1
    assert records["b"].meta["freed"] is True and records["c"].meta["freed"] is True


CHAIN = """
name: chained
data:
  shapes: {loader: synthetic_shapes, n: 200, dim: 8, classes: 4}
defaults:
  train: {epochs: 2, batch_size: 64}
tasks:
  a: {data: shapes, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 4}}, loss: {type: cross_entropy, target: label}}
  b: {data: shapes, depends_on: {a: {share: [encoder]}}, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 1}}, loss: {type: mse, target: parity}}
  c: {data: shapes, depends_on: {b: {share: [encoder], mode: freeze}}, modules: {encoder: {type: mlp, in: 8, hidden: [8]}, head: {type: linear, out: 4}}, loss: {type: cross_entropy, target: coarse}}
"""


@pytest.mark.slow
def test_a_chained_run_trains_and_writes_what_separate_tasks_do(ray_local, write_graph, tmp_path, monkeypatch):
    """The same graph, chained (one task) and with every node its own task: the same parameters,
    metrics and inherited digests, byte for byte."""
    import json

    import taskgraph
    from taskgraph.execute import scheduler

    spec = taskgraph.load(write_graph(CHAIN))
    chained = taskgraph.run(spec, run_root=tmp_path / "chained")
    monkeypatch.setattr(scheduler, "linear_chains", lambda jobs, same: {j.name: (j.name,) for j in jobs})
    separate = taskgraph.run(spec, run_root=tmp_path / "separate")
    assert chained.ok and separate.ok
    run = json.loads((chained.run_dir / "run.json").read_text())
    assert len({run["nodes"][n]["pid"] for n in "abc"}) == 1
    assert all(len(run["nodes"][n]["attempts"]) == 1 for n in "abc")
    for node in "abc":
        assert (chained.run_dir / node / "params.safetensors").read_bytes() == (
            separate.run_dir / node / "params.safetensors").read_bytes()
        assert chained.metrics(node) == separate.metrics(node)
        assert chained.records[node].meta["inherited"] == separate.records[node].meta["inherited"]

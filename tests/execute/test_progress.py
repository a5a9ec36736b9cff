"""Live progress: node code's ``progress.report`` reaches the driver through the hub actor (real Ray)."""

from __future__ import annotations

import time
from concurrent.futures import Future

import numpy as np

from taskgraph.execute import progress
from taskgraph.execute.scheduler import NodeJob, run_jobs


def chatty(name, payload, inputs):
    """A toy node that reports one epoch event per epoch, plus a burst of step events."""
    for epoch in range(1, payload["epochs"] + 1):
        for step in range(payload.get("steps", 0)):
            progress.report({"kind": "step", "epoch": epoch, "step": step, "loss": 1.0 / (step + 1)})
        progress.report({"kind": "epoch", "epoch": epoch, "epochs": payload["epochs"], "train_loss": 1.0 / epoch})
    return {"w": np.zeros(2)}, {}


def test_events_reach_the_driver_in_order_with_node_names(ray_local):
    jobs = [NodeJob("a", payload={"epochs": 3}), NodeJob("b", ("a",), payload={"epochs": 2})]
    events: list[dict] = []
    records = run_jobs(jobs, chatty, on_progress=events.append)
    assert all(r.status == "done" for r in records.values())

    def kinds(node: str) -> list[str]:
        return [e["kind"] for e in events if e.get("node") == node]

    assert kinds("a") == ["start", "epoch", "epoch", "epoch", "end"]
    assert kinds("b") == ["start", "epoch", "epoch", "end"]
    assert [e["epoch"] for e in events if e.get("node") == "a" and e["kind"] == "epoch"] == [1, 2, 3]
    start_a = next(e for e in events if e.get("node") == "a" and e["kind"] == "start")
    assert start_a["pid"] == records["a"].pid and start_a["host"] == records["a"].host
    # b starts from a's state once a has trained (while a writes its files, so a's "end" may come
    # after b's "start"): the driver saw a's last epoch before b's start.
    last_epoch_a = max(i for i, e in enumerate(events) if e.get("node") == "a" and e["kind"] == "epoch")
    assert last_epoch_a < events.index(next(e for e in events if e.get("node") == "b" and e["kind"] == "start"))
    resources = [e for e in events if e["kind"] == "resources"]
    assert resources and resources[-1]["in_use"] == {"CPU": 0.0, "GPU": 0.0}
    assert max(e["in_use"]["CPU"] for e in resources) == 1.0


def test_step_events_are_throttled_epoch_events_are_not(ray_local):
    events: list[dict] = []
    run_jobs([NodeJob("fast", payload={"epochs": 2, "steps": 500})], chatty, on_progress=events.append)
    steps = [e for e in events if e["kind"] == "step"]
    assert 1 <= len(steps) < 50, f"{len(steps)} of 1000 step events reached the driver"
    assert len([e for e in events if e["kind"] == "epoch"]) == 2


def test_report_is_a_no_op_without_a_listener(ray_local):
    progress.report({"kind": "epoch"})  # outside any run: nothing to send, no error
    records = run_jobs([NodeJob("quiet", payload={"epochs": 1})], chatty)
    assert records["quiet"].status == "done"


def test_reporter_throttles_steps_only():
    class FakeActorMethod:
        def __init__(self):
            self.sent = []

        def remote(self, event):
            self.sent.append(event)
            return FakeRef()

    class FakeRef:
        def future(self):
            done = Future()
            done.set_result(None)
            return done

    class FakeHub:
        push = FakeActorMethod()

    hub = FakeHub()
    reporter = progress.Reporter(hub, "n", step_interval_s=60.0)
    with progress.reporting(reporter):
        for _ in range(10):
            progress.report({"kind": "step"})
        progress.report({"kind": "epoch", "epoch": 1})
    progress.report({"kind": "epoch", "epoch": 2})  # after the block: not sent
    assert [e["kind"] for e in hub.push.sent] == ["step", "epoch"]
    assert all(e["node"] == "n" and e["time"] <= time.time() for e in hub.push.sent)


def test_a_killed_hub_is_replaced_and_progress_goes_on(ray_local):
    """Issue 16 item 5: the driver replaces a dead hub; the running node finds the new one by name."""
    import ray

    def kill_the_hub_then_report(name, payload, inputs):
        progress.report({"kind": "epoch", "epoch": 1, "epochs": 3})
        ray.kill(progress._current.get().hub)  # as an OOM kill or a lost process would take it
        for epoch in (2, 3):
            time.sleep(0.6)  # the driver notices at its next drain (every 0.25 s) and starts a new hub
            progress.report({"kind": "epoch", "epoch": epoch, "epochs": 3})
        return {"w": np.zeros(1)}, {}

    events: list[dict] = []
    records = run_jobs([NodeJob("n", payload={})], kill_the_hub_then_report, on_progress=events.append)
    assert records["n"].status == "done"
    assert [e["restarts"] for e in events if e["kind"] == "hub_restarted"] == [1]  # the hub really died
    mine = [e for e in events if e.get("node") == "n"]
    assert mine[-1]["kind"] == "end"  # the node's last words reached the new hub
    assert 3 in [e.get("epoch") for e in mine if e["kind"] == "epoch"]  # epochs after the kill too
    later = run_jobs([NodeJob("m", payload={"epochs": 1})], chatty, on_progress=events.append)  # the new hub serves on
    assert later["m"].status == "done" and [e["kind"] for e in events if e.get("node") == "m"][-1] == "end"


def test_the_hub_lives_on_the_drivers_node(ray_local):
    import ray
    from ray._private.state import actors

    hub = progress.start_hub()
    ray.get(hub.drain.remote())  # alive
    info = actors(hub._actor_id.hex())
    assert info["Address"]["NodeID"] == ray.get_runtime_context().get_node_id()
    assert ray.get_actor(progress.hub_name())._actor_id == hub._actor_id  # found by name (how workers find it)


class CountingHub(progress.ProgressHub):
    """The hub, counting how often the driver drains it."""

    def __init__(self) -> None:
        super().__init__()
        self.drains = 0

    def drain(self):
        self.drains += 1
        return super().drain()

    def count(self) -> int:
        return self.drains


def test_a_state_reaches_its_children_without_a_drain_of_the_hub_in_between(ray_local, monkeypatch):
    """A drain is an actor round trip: before, the driver drained after every stream item (state,
    marker, record), so each link of a chain waited for two drains before its child was submitted.
    Now a node costs one drain, before its record (its last events come first), plus timeouts."""
    import ray

    from taskgraph.execute import scheduler

    monkeypatch.setattr(progress, "ProgressHub", CountingHub)
    monkeypatch.setattr(scheduler, "DRAIN_EVERY_S", 3600.0)  # no drain on a timeout while the chain runs
    hub = progress.restart_hub()
    try:
        names = ["a", "b", "c", "d"]
        jobs = [NodeJob(n, (names[i - 1],) if i else (), (names[i - 1],) if i else (), payload={"epochs": 1})
                for i, n in enumerate(names)]
        events: list[dict] = []
        records = run_jobs(jobs, chatty, on_progress=events.append)
        drains = ray.get(hub.count.remote())
    finally:
        monkeypatch.undo()
        progress.restart_hub()  # later tests get a plain hub
    assert all(r.status == "done" for r in records.values())
    assert [e["kind"] for e in events if e.get("node") == "d"] == ["start", "epoch", "end"]  # nothing lost
    # one before each node's record, one when the run starts (stragglers of an earlier run), one at its end
    assert drains <= len(names) + 2, drains


def test_a_node_reports_without_blocking_in_ray(ray_local, monkeypatch):
    """``ray.get`` or ``ray.wait`` inside a task tells Ray the task is blocked: Ray lends its CPU to
    a queued node on a fresh worker process (torch imported anew: 88 s at load 17) while the node
    goes on. A 100-node fan-out started three extra cold workers that way, one per node's last
    report. The reporter waits on futures instead, and its events still arrive, in order."""
    import ray

    hub = progress.start_hub()
    ray.get(hub.drain.remote())

    def blocking(*args, **kwargs):
        raise AssertionError("a blocking Ray call inside a node: Ray would lend its CPU to a cold worker")

    reporter = progress.Reporter(hub, "n", step_interval_s=0.0, name=progress.hub_name())
    with monkeypatch.context() as patched:
        patched.setattr(ray, "get", blocking)
        patched.setattr(ray, "wait", blocking)
        reporter({"kind": "start"})
        for epoch in (1, 2):
            reporter({"kind": "epoch", "epoch": epoch})
        end = reporter.last({"kind": "end"})  # waits for the hub to hold the others: on a future
    events = ray.get(hub.drain.remote())
    assert [e["kind"] for e in events] == ["start", "epoch", "epoch"]
    assert end["kind"] == "end" and end["node"] == "n"  # the driver gets it with the node's record


def test_a_node_hands_its_state_on_without_waiting_for_the_hub(ray_local):
    """The parent used to wait for the hub to hold its last report before handing its state on
    (an actor round trip on every link of a chain; up to 5 s with a hub that hangs). Now the
    marker that follows the state says how many events the node sent, and the driver orders."""
    from taskgraph.execute.stream import execute

    waited: list[float | None] = []

    class Unanswered(Future):  # a push the hub never answers (busy, or hung)
        def result(self, timeout=None):
            waited.append(timeout)
            return super().result(timeout)

    class Ref:
        def future(self):
            return Unanswered()

    class Push:
        def remote(self, event):
            return Ref()

    class Hub:
        push = Push()

    stream = execute(chatty, "a", {"epochs": 3}, (), (Hub(), None))
    state = next(stream)
    marker = next(stream)
    stream.close()
    assert list(state) == ["w"]
    assert marker["sent"] == 4  # start and three epochs
    assert waited == [], "the node waited for the hub before handing its state on"


def test_event_order_passes_a_parents_events_before_its_childrens():
    """Driver side of the hand-on: a child's events wait for the events its parent sent before
    handing on; events of no node (resources) and of ungated nodes pass at once; a parent whose
    events never come (its hub died) releases its children when its record arrives."""
    seen: list[tuple] = []
    order = progress.EventOrder(lambda e: seen.append((e.get("node"), e["kind"])))

    def push(node, kind):
        order.push({"node": node, "kind": kind} if node else {"kind": kind})

    push("a", "start")
    push("a", "epoch")
    order.gate("b", "a", 3)  # a sent start and two epochs before its state went to b
    push("b", "start")  # b's report overtook a's last epoch on the way to the hub
    push(None, "resources")
    push("b", "epoch")
    push("x", "start")  # not a child of a: not held
    assert seen == [("a", "start"), ("a", "epoch"), (None, "resources"), ("x", "start")]
    push("a", "epoch")
    assert seen[-3:] == [("a", "epoch"), ("b", "start"), ("b", "epoch")]
    push("b", "epoch")  # the gate is open: at once
    assert seen[-1] == ("b", "epoch")

    order.gate("c", "b", 9)  # b sent nine, but six were lost with a hub that died
    order.gate("d", "c", 1)  # d waits for c, which waits for b
    push("d", "start")
    push("c", "start")
    assert seen[-1] == ("b", "epoch")
    order.release("b")  # b's record arrived: nothing more of it will come
    assert seen[-2:] == [("c", "start"), ("d", "start")]
    order.gate("e", "d", 5)
    push("e", "start")
    order.release_all()  # the run ended
    assert seen[-1] == ("e", "start")

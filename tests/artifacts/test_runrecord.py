"""run.json while nodes run: written off the driver's loop, always the latest state, never left behind."""

from __future__ import annotations

import json
import threading
import time

import pytest

from taskgraph.artifacts.runrecord import RunRecorder


def until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_an_update_that_comes_too_soon_still_reaches_the_file():
    """The runner skipped a write that came within 0.25 s of the last one: a node's "done" stayed
    "running" in run.json until the next event (hours, with a long node running beside it)."""
    written: list[dict] = []
    state = {"nodes": {"a": "running", "b": "pending"}}
    recorder = RunRecorder(lambda data: written.append(json.loads(data)), state, interval=0.2)
    try:
        with recorder.lock:
            state["nodes"]["b"] = "running"
        recorder.changed()
        assert until(lambda: written and written[-1]["nodes"]["b"] == "running")
        with recorder.lock:  # right after: inside the interval
            state["nodes"]["a"] = "done"
        recorder.changed()  # and then nothing more happens
        assert until(lambda: written[-1]["nodes"]["a"] == "done"), written
    finally:
        recorder.close()
    assert len(written) == 2


def test_the_driver_never_waits_for_a_write_and_the_last_state_wins():
    gate, writing = threading.Event(), threading.Event()
    written: list[dict] = []

    def slow_write(data: bytes) -> None:
        writing.set()
        assert gate.wait(30)
        written.append(json.loads(data))

    state = {"n": 0}
    recorder = RunRecorder(slow_write, state, interval=0.0)
    try:
        recorder.changed()
        assert writing.wait(10)
        for n in range(1, 100):  # while a write hangs (a slow disk, an object store)
            with recorder.lock:
                state["n"] = n
            recorder.changed()
        gate.set()
        assert until(lambda: written and written[-1]["n"] == 99)
    finally:
        gate.set()
        recorder.close()
    assert len(written) <= 3  # coalesced: not one write per update


def test_now_writes_at_once_and_a_failed_write_is_raised_on_the_drivers_thread():
    written: list[dict] = []
    state = {"status": "running"}
    recorder = RunRecorder(lambda data: written.append(json.loads(data)), state, interval=60.0)
    state["status"] = "failed"
    recorder.now()
    assert written == [{"status": "failed"}]
    recorder.close()

    def full_disk(data: bytes) -> None:
        raise OSError(28, "No space left on device")

    failing = RunRecorder(full_disk, {"n": 1}, interval=0.0)
    try:
        failing.changed()
        assert until(lambda: failing._error is not None)
        with pytest.raises(OSError, match="No space left"):
            failing.changed()
    finally:
        failing.close()

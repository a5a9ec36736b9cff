"""``run.json`` while a run goes on: the latest state, written off the driver's loop, never left behind.

The driver changes a run's state on every node event (hundreds a second in a wide fan-out).
Writing ``run.json`` each time would put a JSON dump, a write and an fsync on the loop that
submits the next node; skipping writes that come too soon (what the runner did) left the file
behind until the *next* event, which may be hours away: a node's "done" stayed "running" in
``run.json`` while a long node trained, for ``taskgraph status`` and for anyone reading the file.
``RunRecorder`` writes on its own thread, at most every ``interval`` seconds, always the latest
state and always eventually; ``now`` writes at once (a failure). A write that fails is raised on
the driver's thread at its next call, as a write made there would have been.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from taskgraph.artifacts import store

__all__ = ["RunRecorder"]


class RunRecorder:
    """Writes ``state`` through ``write`` (bytes of ``store.json_bytes``). Change ``state`` only while
    holding ``lock``: the thread takes it to serialise the state, not to write it."""

    def __init__(self, write: Callable[[bytes], Any], state: dict[str, Any], interval: float = 0.25):
        self.state, self.interval, self._write = state, interval, write
        self.lock = threading.Lock()  # the state's
        self._io = threading.Lock()  # one write at a time, each with a newer snapshot than the last
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="taskgraph-run-json", daemon=True)
        self._thread.start()

    def changed(self) -> None:
        """The state changed: it reaches the file within ``interval`` (the driver never waits)."""
        self._raise()
        self._dirty.set()

    def now(self) -> None:
        """Write the state at once, on the caller's thread (after a write in progress)."""
        self._raise()
        self._dirty.clear()
        self._flush()

    def close(self) -> None:
        """Stop the thread (after a write in progress); the caller writes what comes next itself."""
        self._stop.set()
        self._dirty.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait()
            if self._stop.is_set():
                return
            self._dirty.clear()
            try:
                self._flush()
            except BaseException as exc:  # noqa: BLE001 -- raised on the driver's thread by its next call
                self._error = exc
                return
            self._stop.wait(self.interval)  # at most one write per interval

    def _flush(self) -> None:
        with self._io:
            with self.lock:
                data = store.json_bytes(self.state)
            self._write(data)

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

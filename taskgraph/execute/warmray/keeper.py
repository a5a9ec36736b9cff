"""The warm Ray's keeper: the detached process that starts a local Ray, records it, and stops it when
no run has used it for the idle time (or on SIGTERM from ``taskgraph warm stop``).

    python -m taskgraph.execute.warmray.keeper --dir DIR --idle SECONDS [--num-cpus N] [--num-gpus G]

It starts Ray exactly as a run's embedded Ray starts (``ray.init(address="local")``: token auth on,
no dashboard, no Ray Client server, ports picked free by Ray and workers' ports by the OS), with its
own token (``DIR/token``) and its own ``--temp-dir``, so nothing else on the machine joins it by
accident (``ray.init("auto")`` reads /tmp/ray, and a joiner needs the token). Because the keeper is
the driver that started Ray, Ray's processes end with it, even when it is killed (Ray's reaper).

Idle means no other driver in the head's job table: a run is connected from its ``ray.init`` to its
disconnect, so a run in progress is never stopped by the timeout. An idle stop happens under the
folder's lock and re-checks first, so a run that is joining (it holds the lock from its check to
its ``ray.init``) is never cut off either. Everything it does goes to ``DIR/keeper.log``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from taskgraph.execute.warmray import state

#: How often the keeper looks at the job table (at most; short idle times poll faster).
POLL_S = 5.0


def _say(text: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}", flush=True)


def _token(temp_dir: Path) -> Path:
    """A fresh random token for this head only, readable by the user alone (in the head's own
    temp dir, mode 0700: it goes with the head)."""
    path = temp_dir / state.TOKEN
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    return path


def _start_ray(folder: Path, num_cpus: int | None, num_gpus: int | None) -> state.WarmRay:
    """``ray.init`` as the embedded Ray does, then the record a run checks before it joins."""
    temp_dir = tempfile.mkdtemp(prefix="tgwarm-", dir="/tmp")  # short: Ray's socket paths stay under 107 bytes
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(_token(Path(temp_dir)))})
    os.environ.pop("RAY_AUTH_TOKEN", None)  # Ray prefers it to the file
    os.environ.pop("RAY_ADDRESS", None)  # would make ray.init join instead of start
    import logging

    import ray

    from taskgraph.execute.cluster import start_with_retry

    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    context = start_with_retry(
        lambda: ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                         _temp_dir=temp_dir, logging_level=logging.WARNING, log_to_driver=False),
        cleanup=ray.shutdown,
    )
    info = context.address_info
    resources = ray.cluster_resources()
    now = time.time()
    return state.WarmRay(
        address=info["gcs_address"], session_dir=info["session_dir"], temp_dir=temp_dir, pid=os.getpid(),
        pid_started=state.process_start(os.getpid()) or "", job_id=ray.get_runtime_context().get_job_id(),
        num_cpus=float(resources.get("CPU", 0)), num_gpus=float(resources.get("GPU", 0)), idle_s=0.0,
        started_at=now, idle_since=now, python=sys.executable, ray_version=ray.__version__,
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
    )


class Keeper:
    """The watchdog loop: who is connected, since when nobody, and the stop."""

    def __init__(self, folder: Path, ray: state.WarmRay) -> None:
        self.folder, self.ray, self.stop_reason = folder, ray, ""

    def _record(self, **changes: object) -> None:
        """Update the record under the lock (``warm start --idle`` writes it too); skipped when the
        lock is busy: the next look tries again."""
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.folder / state.LOCK))
        try:
            lock.acquire(timeout=1.0)
        except Timeout:
            return
        try:
            current = state.read(self.folder)
            if current is not None and current.pid == self.ray.pid:
                self.ray = replace(current, **changes)
                state.write(self.folder, self.ray)
        finally:
            lock.release()

    def tick(self) -> bool:
        """One look; True when it is time to stop."""
        current = state.read(self.folder)
        if current is None or current.pid != self.ray.pid:
            self.stop_reason = "its record was removed"
            return True
        self.ray = current  # `taskgraph warm start --idle` may have changed the idle time
        try:
            runs = state.connected_runs(self.ray)
        except Exception as exc:  # noqa: BLE001  (the head itself no longer answers)
            self.stop_reason = f"its head does not answer ({exc})"
            return True
        now = time.time()
        if runs:
            if self.ray.idle_since is not None:
                _say(f"runs connected: {', '.join(map(str, runs))}")
                self._record(idle_since=None)
            return False
        if self.ray.idle_since is None:
            _say("no run connected")
            self._record(idle_since=now)
            return False
        if now - self.ray.idle_since < self.ray.idle_s:
            return False
        return self._idle_stop()

    def _idle_stop(self) -> bool:
        """Under the lock (a joining run holds it until connected), look once more, then unrecord."""
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.folder / state.LOCK))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return False  # a run is joining or a command is looking: next tick
        try:
            if state.connected_runs(self.ray):
                return False
            state.remove(self.folder, pid=self.ray.pid)
        except Exception:  # noqa: BLE001  (no answer this time: the next look decides)
            return False
        finally:
            lock.release()
        self.stop_reason = f"no run for {self.ray.idle_s:g} s"
        return True

    def poll_s(self) -> float:
        return max(0.2, min(POLL_S, self.ray.idle_s / 10))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--idle", required=True, type=float, help="seconds without a run before it stops")
    parser.add_argument("--num-cpus", type=int)
    parser.add_argument("--num-gpus", type=int)
    args = parser.parse_args(argv)
    folder = args.dir
    ray_state = _start_ray(folder, args.num_cpus, args.num_gpus)
    keeper = Keeper(folder, replace(ray_state, idle_s=args.idle))
    stop: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # ray.init replaced SIGTERM's handler
        signal.signal(signum, lambda n, _f: stop.append(n))
    state.write(folder, keeper.ray)  # the starter holds the lock and waits for this file
    _say(f"warm Ray up: {keeper.ray.describe()}, session {keeper.ray.session_dir}, stops after {args.idle:g} s idle")
    import ray

    try:
        while not stop:
            deadline = time.time() + keeper.poll_s()
            while not stop and time.time() < deadline:  # a signal does not cut a sleep short (PEP 475)
                time.sleep(0.1)
            if not stop and keeper.tick():
                break
        reason = f"signal {signal.Signals(stop[0]).name}" if stop else keeper.stop_reason
        state.remove(folder, pid=os.getpid())
        _say(f"stopping: {reason}")
    finally:
        ray.shutdown()
        shutil.rmtree(ray_state.temp_dir, ignore_errors=True)  # session logs and the token
    _say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

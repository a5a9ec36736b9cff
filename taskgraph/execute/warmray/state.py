"""Where taskgraph records its warm local Ray, and whether that record is still true.

One folder that only taskgraph writes (platformdirs' user state dir, ``~/.local/state/taskgraph/warm-ray``
on Linux, or ``TASKGRAPH_WARM_DIR``) holds ``ray.json`` (this module's ``WarmRay``), the keeper's log
and a lock; the head's token (mode 0600) lives in the head's own temp dir (mode 0700) and goes with it. A record is trusted only while its keeper
process runs (its pid *and* its start time, so a reused pid is not mistaken for it) and the head it
names answers on this machine: a stale record never leads a run anywhere.

Imports no Ray at module import (``taskgraph warm status`` reads the record first).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from taskgraph.errors import ExecutionError

__all__ = ["WarmRay", "warm_dir", "read", "write", "remove", "locked", "why_dead", "connected_runs",
           "parse_duration", "process_start", "DEFAULT_IDLE_S"]

#: Without a run for this long, the warm Ray stops itself (``--idle`` / ``TASKGRAPH_WARM_IDLE``).
DEFAULT_IDLE_S = 15 * 60.0
STATE, TOKEN, LOG, LOCK = "ray.json", "token", "keeper.log", "lock"


@dataclass(frozen=True)
class WarmRay:
    """What the keeper recorded about the warm Ray it started and owns."""

    address: str  # its GCS, host:port (the machine's own address, as an embedded Ray's)
    session_dir: str  # Ray's session: a run checks it joined this one, not another head on that port
    temp_dir: str  # the head's own --temp-dir (not /tmp/ray, where `ray.init("auto")` looks), with its token
    pid: int  # the keeper: it started Ray (ray.init) and Ray's processes end with it
    pid_started: str  # /proc/PID/stat's start time: the same pid later is another process
    job_id: str  # the keeper's own Ray job, which is not a run
    num_cpus: float
    num_gpus: float
    idle_s: float  # stop after this long without a connected run
    started_at: float
    idle_since: float | None  # when the last run left (None: a run is connected)
    python: str  # the interpreter its workers run
    ray_version: str
    cuda_visible_devices: str | None  # the GPUs it saw when it started

    @property
    def token_path(self) -> Path:
        return Path(self.temp_dir) / TOKEN

    def idle_left(self, now: float | None = None) -> float | None:
        """Seconds until it stops itself (None while a run is connected)."""
        if self.idle_since is None:
            return None
        return max(0.0, self.idle_since + self.idle_s - (now or time.time()))

    def describe(self) -> str:
        gpus = f", {self.num_gpus:g} GPUs" if self.num_gpus else ""
        return f"{self.address} ({self.num_cpus:g} CPUs{gpus}, pid {self.pid})"


def warm_dir() -> Path:
    """taskgraph's own folder for the warm Ray (created, private to the user)."""
    given = os.environ.get("TASKGRAPH_WARM_DIR")
    if given:
        path = Path(given).expanduser()
    else:
        import platformdirs

        path = platformdirs.user_state_path("taskgraph") / "warm-ray"
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ExecutionError(f"cannot create the warm Ray's folder {path}: {exc.strerror}. "
                             "Set TASKGRAPH_WARM_DIR to a writable folder.") from None
    return path


def read(folder: Path) -> WarmRay | None:
    """The record, or None when there is none (or it is unreadable: then it is no record at all)."""
    try:
        data = json.loads((folder / STATE).read_text(encoding="utf-8"))
        return WarmRay(**{f.name: data[f.name] for f in fields(WarmRay)})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write(folder: Path, ray: WarmRay) -> None:
    """Atomically (temp name, then rename): a reader sees the old record or the new, never half."""
    tmp = folder / f".{STATE}.{os.getpid()}"
    tmp.write_text(json.dumps(asdict(ray), indent=2), encoding="utf-8")
    tmp.chmod(0o600)
    os.replace(tmp, folder / STATE)


def remove(folder: Path, pid: int | None = None) -> None:
    """Delete the record (only if it is still ``pid``'s, when given)."""
    if pid is not None:
        current = read(folder)
        if current is not None and current.pid != pid:
            return
    (folder / STATE).unlink(missing_ok=True)


@contextmanager
def locked(folder: Path, timeout: float = 300.0) -> Iterator[None]:
    """Hold the folder's lock: starting, joining and stopping the warm Ray are one at a time, so an
    idle stop never lands between a run's check and its connection."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(folder / LOCK))
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise ExecutionError(f"another taskgraph holds {folder / LOCK} for over {timeout:.0f} s (starting or "
                             "stopping the warm Ray). Try again, or run without --warm.") from None
    try:
        yield
    finally:
        lock.release()


def process_start(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), or None when no such process runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def why_dead(ray: WarmRay, timeout: float = 2.0) -> str | None:
    """Why the record is stale, or None when its keeper runs and its head answers here."""
    if process_start(ray.pid) != ray.pid_started:
        return f"its keeper (pid {ray.pid}) is no longer running"
    host, _, port = ray.address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except (OSError, ValueError):
        return f"nothing answers at {ray.address}"
    return None


def connected_runs(ray: WarmRay) -> list[int]:
    """Process ids of the drivers (taskgraph runs) connected to the warm Ray now, from its GCS's job
    table: a driver's job is alive from ``ray.init`` until it disconnects or dies. The caller sends
    the warm Ray's token (``auth.send_token_file``)."""
    from ray._raylet import GcsClient

    jobs = GcsClient(address=ray.address).get_all_job_info(skip_submission_job_info_field=True,
                                                            skip_is_running_tasks_field=True, timeout=10)
    return sorted(info.driver_pid for job, info in jobs.items() if not info.is_dead and job.hex() != ray.job_id)


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str | float, what: str = "--idle") -> float:
    """``90s``, ``15m``, ``1.5h``, ``2d`` or plain seconds, as seconds (at least 1 s)."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smhd]?)\s*", str(text).lower())
        if not match:
            raise ExecutionError(f"{what} '{text}': expected a duration such as 90s, 15m or 2h.")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds < 1:
        raise ExecutionError(f"{what} '{text}': at least 1 s (to stop the warm Ray now: taskgraph warm stop).")
    return seconds

"""Starting, joining and stopping the warm Ray from a run or a ``taskgraph warm`` command.

A run joins only the head its folder records, after checking that the keeper runs, the head answers
on this machine, it has the CPUs/GPUs the run asks for, the same Python and Ray, and (once joined)
that Ray's session is the recorded one. A stale record is said in one line and replaced by a fresh
head. The run's workers get the run's environment and working directory (``job_env``), as an
embedded Ray's workers inherit them, so a run gives the same results with and without ``--warm``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from taskgraph.errors import ExecutionError
from taskgraph.execute.warmray import state
from taskgraph.execute.warmray.state import WarmRay

__all__ = ["WarmRequest", "Joined", "check_warm", "join", "start", "stop", "look", "runs_on", "ensure", "job_env",
           "default_idle", "minutes"]

#: Ray's own start may take two tries of its 30 s window on a busy machine (``start_with_retry``).
START_TIMEOUT_S = 240.0
_HOOK = "taskgraph.execute.warmray.worker_setup.enter_driver_cwd"


@dataclass(frozen=True)
class WarmRequest:
    """``--warm``: use taskgraph's warm local Ray, started (with these resources) if none is up."""

    num_cpus: int | None = None
    num_gpus: int | None = None
    idle_s: float | None = None  # for a head this starts (default: TASKGRAPH_WARM_IDLE, else 15 min)
    say: Callable[[str], None] | None = None  # one line when it starts one or finds a stale record


@dataclass
class Joined:
    ray: WarmRay
    started: bool
    restore: Callable[[], None]  # puts back this process's Ray token settings

    def record(self) -> dict:
        """What run.json keeps: which warm head, which session, and whether this run started it."""
        return {"session_dir": self.ray.session_dir, "keeper_pid": self.ray.pid, "started_by_this_run": self.started}


def default_idle() -> float:
    text = os.environ.get("TASKGRAPH_WARM_IDLE")
    return state.parse_duration(text, "TASKGRAPH_WARM_IDLE") if text else state.DEFAULT_IDLE_S


def check_warm(address: str | None) -> None:
    """``--warm`` is taskgraph's own local Ray: with a cluster address (``--address`` or RAY_ADDRESS)
    as well, which one is meant is the user's to say, never guessed."""
    given = "--address" if address else ("RAY_ADDRESS" if os.environ.get("RAY_ADDRESS") else None)
    if given:
        raise ExecutionError(
            f"--warm (or TASKGRAPH_WARM) runs on taskgraph's warm local Ray, and {given} names a cluster "
            f"({address or os.environ['RAY_ADDRESS']}): drop one of them (--no-warm runs on the cluster).")


def look(folder: Path) -> tuple[WarmRay | None, str | None]:
    """(the live record, None), (None, why the record is stale: it is removed), or (None, None)."""
    ray = state.read(folder)
    if ray is None:
        if (folder / state.STATE).exists():
            state.remove(folder)
            return None, f"its record {folder / state.STATE} could not be read"
        return None, None
    reason = state.why_dead(ray)
    if reason is None:
        return ray, None
    _end_stale(folder, ray)
    return None, reason


def _end_stale(folder: Path, ray: WarmRay) -> None:
    """A keeper whose head is gone stops (it is ours: same pid and start time); its record and temp
    dir go. Nothing else is touched."""
    import signal

    if state.process_start(ray.pid) == ray.pid_started:
        try:
            os.kill(ray.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    state.remove(folder, pid=ray.pid)
    if Path(ray.temp_dir).name.startswith("tgwarm-"):
        shutil.rmtree(ray.temp_dir, ignore_errors=True)


def start(folder: Path, num_cpus: int | None, num_gpus: int | None, idle_s: float) -> WarmRay:
    """Start a keeper (detached: its own session, so a Ctrl-C in this terminal never reaches it) and
    wait for its record. The caller holds the folder's lock."""
    import taskgraph

    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    here = str(Path(taskgraph.__file__).resolve().parents[1])  # the keeper imports this very taskgraph
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "taskgraph.execute.warmray.keeper", "--dir", str(folder), "--idle", str(idle_s)]
    command += [f"--num-cpus={num_cpus}"] if num_cpus is not None else []
    command += [f"--num-gpus={num_gpus}"] if num_gpus is not None else []
    state.remove(folder)
    log_path = folder / state.LOG
    with open(log_path, "w", encoding="utf-8") as log:
        keeper = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                  cwd=str(folder), env=env, start_new_session=True)
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        ray = state.read(folder)
        if ray is not None and ray.pid == keeper.pid:
            return ray
        if keeper.poll() is not None:
            raise ExecutionError(f"the warm Ray did not start: {_last_line(log_path)} (its log: {log_path}). "
                                 "Run without --warm, or try again when the machine is less busy.")
        time.sleep(0.1)
    keeper.terminate()  # its Ray (if any came up) ends with it
    raise ExecutionError(f"the warm Ray did not start within {START_TIMEOUT_S:.0f} s (its log: {log_path}). "
                         "Run without --warm, or try again when the machine is less busy.")


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return "no log"
    return next((line for line in reversed(lines) if line), "no output")


def _mismatch(ray: WarmRay, request: WarmRequest) -> str | None:
    """Why this run cannot use the warm head as it is (one line with what to do), or None."""
    import ray as ray_module

    def other(what: str, fix: str) -> str:
        return f"the warm Ray at {ray.address} {what}: {fix}"

    restart = "`taskgraph warm stop`, then run again with --warm to start a fresh one"
    if request.num_cpus is not None and float(request.num_cpus) != ray.num_cpus:
        return other(f"has {ray.num_cpus:g} CPUs and this run asks for --num-cpus {request.num_cpus}",
                     f"run without --num-cpus (to use its {ray.num_cpus:g}), or {restart} with {request.num_cpus}")
    if request.num_gpus is not None and float(request.num_gpus) != ray.num_gpus:
        return other(f"has {ray.num_gpus:g} GPUs and this run asks for {request.num_gpus}",
                     f"run without num_gpus, or {restart}")
    if os.path.realpath(sys.executable) != os.path.realpath(ray.python):
        return other(f"runs {ray.python} and this run {sys.executable}", f"{restart} from this Python")
    if ray_module.__version__ != ray.ray_version:
        return other(f"runs Ray {ray.ray_version} and this run Ray {ray_module.__version__}", restart)
    if os.environ.get("CUDA_VISIBLE_DEVICES") != ray.cuda_visible_devices:
        return other(f"started with CUDA_VISIBLE_DEVICES={ray.cuda_visible_devices} and this run has "
                     f"{os.environ.get('CUDA_VISIBLE_DEVICES')}", restart)
    return None


def job_env() -> dict:
    """The runtime env of a run's job on the warm head: the run's environment (Ray's own ``RAY_*``
    settings aside: they are the head's) and working directory, which an embedded Ray's workers would
    have inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "__RAY"))}
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")  # not the keeper's: the run's code, as embedded
    env["TASKGRAPH_DRIVER_CWD"] = os.getcwd()
    return {"env_vars": env, "worker_process_setup_hook": _HOOK}


def _up(folder: Path, request: WarmRequest) -> tuple[WarmRay, bool]:
    """The live warm Ray that fits ``request`` (started if none is up), and whether it was started
    now. The caller holds the lock."""
    say = request.say or (lambda _text: None)
    ray, stale = look(folder)
    if stale:
        say(f"the warm Ray recorded in {folder} is gone ({stale}): starting a fresh one")
    if ray is None:
        ray = start(folder, request.num_cpus, request.num_gpus,
                    request.idle_s if request.idle_s is not None else default_idle())
        say(f"started a warm Ray at {ray.describe()}: later runs with --warm reuse it; it stops after "
            f"{minutes(ray.idle_s)} without a run (now: taskgraph warm stop)")
        return ray, True
    problem = _mismatch(ray, request)
    if problem:
        raise ExecutionError(problem)
    return ray, False


def ensure(request: WarmRequest) -> tuple[WarmRay, bool]:
    """``taskgraph warm start``: the warm Ray up (started if none is), with ``request.idle_s`` as its
    idle time from now on when given; (its record, whether it was started now)."""
    from dataclasses import replace

    folder = state.warm_dir()
    with state.locked(folder):
        ray, started = _up(folder, request)
        if not started and request.idle_s is not None and request.idle_s != ray.idle_s:
            ray = replace(ray, idle_s=request.idle_s)  # the keeper reads it at its next look
            state.write(folder, ray)
    return ray, started


def join(request: WarmRequest) -> Joined:
    """Connect this process (``ray.init``) to the warm Ray, starting one if none is up."""
    from taskgraph.execute.auth import send_token_file

    folder = state.warm_dir()
    with state.locked(folder):
        ray, started = _up(folder, request)
        restore = send_token_file(ray.token_path)
        try:
            _init(ray)
        except BaseException:
            restore()
            raise
    return Joined(ray, started, restore)


def _init(ray: WarmRay) -> None:
    import logging

    import ray as ray_module

    try:
        context = ray_module.init(address=ray.address, logging_level=logging.WARNING, log_to_driver=False,
                                  runtime_env=job_env())
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ExecutionError(f"cannot connect to the warm Ray at {ray.address}: {exc}. "
                             "`taskgraph warm stop`, then run again.") from exc
    if context.address_info.get("session_dir") != ray.session_dir:
        ray_module.shutdown()
        raise ExecutionError(f"the Ray at {ray.address} is not the warm Ray recorded (session "
                             f"{context.address_info.get('session_dir')}, not {ray.session_dir}): nothing was run. "
                             "`taskgraph warm stop`, then run again.")


def minutes(seconds: float) -> str:
    """``45 s``, ``15 min``, ``4.9 min``: how long, as people say it."""
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 1 or seconds == 0 else f"{seconds:.1f} s"
    return f"{seconds / 60:.1f}".removesuffix(".0") + " min"


def runs_on(ray: WarmRay) -> list[int]:
    """The drivers connected to ``ray`` now (sending its token for the question)."""
    from taskgraph.execute.auth import send_token_file

    restore = send_token_file(ray.token_path)
    try:
        return state.connected_runs(ray)
    finally:
        restore()


def stop(force: bool = False, wait_s: float = 60.0) -> tuple[WarmRay | None, str | None]:
    """Stop the warm Ray: (what was stopped, None), or (None, why there was none to stop).

    Refuses while runs are connected, unless ``force`` (their nodes then fail; resume them later).
    Holds the lock until the keeper is gone, so no run joins a head that is going away.
    """
    import signal

    folder = state.warm_dir()
    with state.locked(folder):
        ray, stale = look(folder)
        if ray is None:
            return None, stale
        runs = runs_on(ray)
        if runs and not force:
            raise ExecutionError(f"the warm Ray at {ray.address} has {len(runs)} run(s) connected (pid "
                                 f"{', '.join(map(str, runs))}): wait for them, or `taskgraph warm stop --force` "
                                 "(their running nodes fail; resume them later).")
        os.kill(ray.pid, signal.SIGTERM)
        deadline = time.time() + wait_s
        while time.time() < deadline and state.process_start(ray.pid) == ray.pid_started:
            time.sleep(0.1)
        if state.process_start(ray.pid) == ray.pid_started:
            os.kill(ray.pid, signal.SIGKILL)  # its Ray's processes follow it (Ray's reaper)
        state.remove(folder, pid=ray.pid)
    return ray, None

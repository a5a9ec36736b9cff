"""Connecting to Ray: an embedded local instance by default, or an existing cluster by address."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray

from taskgraph.errors import ExecutionError, Interrupted
from taskgraph.execute.auth import probe_gcs, use_token

__all__ = ["RaySession", "StartupTimeout", "check_address", "connect", "start_with_retry", "stop_signal"]


@dataclass
class RaySession:
    """Whether this process called ``ray.init`` (then ``close`` calls ``ray.shutdown``: an embedded Ray
    stops, a cluster or the warm Ray is only left) or found Ray already initialised (left alone)."""

    started_here: bool
    address: str | None

    previous_sigterm: Any = None
    warm: dict | None = None  # on the warm Ray: which one, and whether this run started it (run.json)
    restore: Callable[[], None] | None = None  # puts back the token settings joining the warm Ray set

    def close(self) -> None:
        if self.started_here and ray.is_initialized():
            ray.shutdown()
        if self.restore is not None:
            self.restore()
            self.restore = None
        if self.previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self.previous_sigterm)


_SIGNALS: list[int] = []  # SIGTERMs received this session: Ray's waits re-raise them as bare KeyboardInterrupts


def _interrupt(signum: int, frame: Any) -> None:
    _SIGNALS.append(signum)
    raise Interrupted("SIGTERM", signum=signum)


def stop_signal(exc: KeyboardInterrupt) -> int:
    """The signal behind an interrupt: SIGTERM when one came this session, else SIGINT (Ctrl-C).

    ``ray.wait``/``ray.get`` turn any exception a signal handler raises into a new ``KeyboardInterrupt``
    (``_raylet.check_signals``), so the ``Interrupted`` raised here may arrive without its signal.
    """
    return getattr(exc, "signum", None) or (_SIGNALS[-1] if _SIGNALS else int(signal.SIGINT))


def _sigterm_interrupts(session: RaySession, before: Any) -> RaySession:
    """SIGTERM stops the run like Ctrl-C (recorded, resumable). ``ray.init`` replaces the driver's
    SIGTERM handler with one that exits at once (``ray._private.worker``/``node``), which would leave
    ``run.json`` saying "running"; this puts an interrupt back, until the session closes."""
    if threading.current_thread() is threading.main_thread():
        _SIGNALS.clear()
        signal.signal(signal.SIGTERM, _interrupt)
        session.previous_sigterm = signal.SIG_DFL if before is None else before
    return session


class StartupTimeout(Exception):
    """Ray's own processes did not register in time (Ray raises a bare ``Exception`` for this)."""


#: Ray 2.60 gives a new local node a fixed 30 s to register (``ray._private.node``), which a
#: 2-core machine under load can miss; its processes are then torn down and started once more.
STARTUP_ATTEMPTS = 2
_STARTUP_TIMEOUT_TEXT = "timed out during startup"


def start_with_retry(start: Callable[[], Any], cleanup: Callable[[], Any], attempts: int = STARTUP_ATTEMPTS) -> Any:
    """``start()``, tried again after ``cleanup()`` when Ray says its node timed out during startup.

    Any other failure passes through at once. The last timeout becomes ``StartupTimeout`` with a
    message that says what happened and what to do, instead of Ray's bare ``Exception``.
    """
    for attempt in range(1, attempts + 1):
        try:
            return start()
        except Exception as exc:  # Ray raises a bare Exception for a startup timeout
            if _STARTUP_TIMEOUT_TEXT not in str(exc):
                raise
            cleanup()
            if attempt == attempts:
                raise StartupTimeout(
                    f"Ray's processes did not start within Ray's 30 s limit, {attempts} times (is the machine "
                    f"overloaded? load average {_load()}). Try again when it is less busy, or start Ray once "
                    "with `ray start --head --num-cpus N` and pass --address auto"
                ) from exc
    raise AssertionError("unreachable")


def _load() -> str:
    try:
        return ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def check_address(address: str | None) -> None:
    """Seconds, not minutes: a cluster address (``address`` or ``RAY_ADDRESS``) that nothing answers
    at, or whose cluster refuses this machine's token, is one ``ExecutionError`` line.

    Also switches the client side of token auth on when a token is set (``auth.use_token``).
    Without an address (an embedded local Ray) it does nothing.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not address or address == "local":
        return
    use_token()
    if address == "auto":
        from ray._private.services import canonicalize_bootstrap_address

        try:
            address = canonicalize_bootstrap_address("auto")
        except Exception:  # noqa: BLE001  (no cluster found: ray.init says so itself, at once)
            return
        if not address:
            return
    probe_gcs(address)


def connect(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
            warm: Any = None) -> RaySession:
    """Join the Ray given by ``address`` / ``RAY_ADDRESS``, reuse one already initialised, or start one.

    ``address`` may be ``auto``, ``host:port`` (a running cluster's GCS) or ``ray://host:10001``.
    On a token-protected cluster the token comes from ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or
    ``~/.ray/auth_token``, as Ray reads it; ``check_address`` turns the client side on for it (Ray
    itself would send it only with ``RAY_AUTH_MODE=token`` set) and looks at the address first.
    ``warm`` (a ``warmray.WarmRequest``): join taskgraph's warm local Ray instead (started if none is
    up; see ``taskgraph.execute.warmray``); an address as well is an error.
    """
    if warm is not None:
        return _connect_warm(address, num_cpus, num_gpus, warm)
    if ray.is_initialized():
        return RaySession(started_here=False, address=None)
    address = address or os.environ.get("RAY_ADDRESS") or None
    before = signal.getsignal(signal.SIGTERM)
    try:
        if address:
            check_address(address)
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            return _sigterm_interrupts(RaySession(started_here=True, address=address), before)
        # Ray 2.60 turns token auth on for new local instances (RAY_AUTH_MODE unset) and logs a
        # warning saying so; keep the secure default, drop the noise. (Setting RAY_AUTH_MODE here
        # would be too late: Ray reads it when it is imported.)
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        start_with_retry(
            lambda: ray.init(
                address="local",  # always a fresh instance: never join a `ray start` cluster by accident
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
            ),
            cleanup=ray.shutdown,
        )
    except (ConnectionError, RuntimeError, ValueError, StartupTimeout) as exc:
        where = f"the Ray cluster at '{address}'" if address else "a local Ray instance"
        raise ExecutionError(
            f"cannot connect to {where}: {exc}. Check the address (auto, host:6379 or ray://host:10001), "
            "that the cluster runs the same Ray version, and RAY_AUTH_TOKEN on token-protected clusters."
        ) from exc
    return _sigterm_interrupts(RaySession(started_here=True, address=None), before)


def _connect_warm(address: str | None, num_cpus: int | None, num_gpus: int | None, warm: Any) -> RaySession:
    from dataclasses import replace

    from taskgraph.execute.warmray import client

    client.check_warm(address)
    if ray.is_initialized():  # this process has a Ray of its own: not silently used in place of the warm one
        raise ExecutionError("--warm: this process already has a Ray initialised (ray.init); call ray.shutdown() "
                             "first, or run without --warm to use it.")
    request = replace(warm, num_cpus=num_cpus if num_cpus is not None else warm.num_cpus,
                      num_gpus=num_gpus if num_gpus is not None else warm.num_gpus)
    before = signal.getsignal(signal.SIGTERM)
    joined = client.join(request)
    session = RaySession(started_here=True, address=joined.ray.address, warm=joined.record(), restore=joined.restore)
    return _sigterm_interrupts(session, before)

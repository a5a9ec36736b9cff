"""A warm-up target that stays busy (tests/execute/test_scheduler.py): it writes its pid, then naps."""

import os
import tempfile
import time
from pathlib import Path


def pid_file() -> Path:
    """Where this Ray job's napping warm-up writes its pid (the test's driver and its workers share the job)."""
    import ray

    return Path(tempfile.gettempdir()) / f"taskgraph-test-warm-{ray.get_runtime_context().get_job_id()}.pid"


def nap() -> None:
    pid_file().write_text(str(os.getpid()))
    time.sleep(120)


def touch() -> None:
    """A warm-up that only says it ran."""
    pid_file().write_text(str(os.getpid()))

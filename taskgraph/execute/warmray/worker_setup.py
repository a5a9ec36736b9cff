"""Runs first in each worker process of a run on the warm Ray (Ray's ``worker_process_setup_hook``).

An embedded Ray's workers start in the run's working directory, because the run started Ray; the warm
Ray's workers are started by a raylet that an earlier run started, elsewhere. Relative paths in graph
files, user code and data loaders must resolve the same either way. Kept free of imports: it runs
before every worker's first task.
"""

from __future__ import annotations

import os


def enter_driver_cwd() -> None:
    """``cd`` to the run's working directory (``TASKGRAPH_DRIVER_CWD``, set in the job's env)."""
    where = os.environ.get("TASKGRAPH_DRIVER_CWD")
    if where:
        os.chdir(where)

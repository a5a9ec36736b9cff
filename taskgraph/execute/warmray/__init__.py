"""An opt-in warm local Ray kept between runs (``taskgraph run --warm``, ``taskgraph warm ...``).

A run's embedded Ray costs seconds to start and to stop, on every run. With ``--warm`` a run joins a
local Ray that a detached keeper process started earlier, and leaves it running; the keeper stops it
after an idle time with no run connected. Three parts, one job each:

- ``state``: the record in taskgraph's own folder, and whether it is still true (stale records never
  lead a run anywhere);
- ``keeper``: the detached process that starts the head as an embedded Ray starts, watches the job
  table for connected runs and stops the head when idle or asked;
- ``client``: what a run or ``taskgraph warm start|status|stop`` does: start, check, join, stop.

``execute.cluster.connect(warm=...)`` is the only caller in a run; ``worker_setup`` runs in its workers.
"""

from __future__ import annotations

__all__ = ["WarmRequest"]


def __getattr__(name: str):  # noqa: ANN202  (lazy: importing the package imports no Ray)
    if name == "WarmRequest":
        from taskgraph.execute.warmray.client import WarmRequest

        return WarmRequest
    raise AttributeError(name)

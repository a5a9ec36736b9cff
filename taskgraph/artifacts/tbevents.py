"""A short node's TensorBoard scalars, written by the writer process with its other files.

A node shorter than ``train.tracking.LIVE_AFTER_S`` never opened its ``SummaryWriter``: its scalars
were held in memory. Opening one at the node's end to write them took 3.5 ms of each link of a
chain of one-step nodes (a new event file, a writer thread, a flush), in the process that trains
the next node. The writer process writes the same events instead, with tensorboard's own event
file writer (no torch): what ``SummaryWriter.add_scalar`` writes (``simple_value`` summaries), and,
when an earlier try left event files, the ``purge_step`` start event TensorBoard drops those from.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["write_scalars"]

#: One scalar: (tag, value, step, wall time).
Row = tuple[str, float, int, float]


def write_scalars(log_dir: str, rows: Sequence[Row]) -> None:
    """Write ``rows`` to a new event file in ``log_dir`` (created), as a ``SummaryWriter`` opened at
    the first row's step would."""
    if not rows:
        return
    from tensorboard.compat.proto.event_pb2 import Event, SessionLog
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    earlier = os.path.isdir(log_dir) and any(n.startswith("events.") for n in os.listdir(log_dir))
    writer = EventFileWriter(log_dir)
    try:
        if earlier:  # SummaryWriter(purge_step=...): drop the earlier try's points from this step on
            first = int(rows[0][2])
            writer.add_event(Event(step=first, file_version="brain.Event:2", wall_time=rows[0][3]))
            writer.add_event(Event(step=first, session_log=SessionLog(status=SessionLog.START), wall_time=rows[0][3]))
        for tag, value, step, wall in rows:
            summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(value))])
            writer.add_event(Event(summary=summary, step=int(step), wall_time=wall))
    finally:
        writer.close()

"""A short node's TensorBoard scalars, written by the writer process with its other files.

A node shorter than ``train.tracking.LIVE_AFTER_S`` never opened its ``SummaryWriter``: its scalars
were held in memory. Opening one at the node's end to write them took 3.5 ms of each link of a
chain of one-step nodes (a new event file, a writer thread, a flush), in the process that trains
the next node. The writer process writes the same events instead, with tensorboard's own event
record writer (no torch): what ``SummaryWriter.add_scalar`` writes (``simple_value`` summaries), and,
when an earlier try left event files, the ``purge_step`` start event TensorBoard drops those from.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Sequence

__all__ = ["write_scalars"]

_written = itertools.count()  # event files this process wrote

#: One scalar: (tag, value, step, wall time).
Row = tuple[str, float, int, float]


def write_scalars(log_dir: str, rows: Sequence[Row]) -> None:
    """Write ``rows`` to a new event file in ``log_dir`` (created), as a ``SummaryWriter`` opened at
    the first row's step would: one buffered write of TensorBoard's records (no writer thread), to a
    temp name renamed into place (TensorBoard never reads half a file)."""
    if not rows:
        return
    from tensorboard.compat.proto.event_pb2 import Event, SessionLog, SourceMetadata
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.record_writer import RecordWriter

    os.makedirs(log_dir, exist_ok=True)
    earlier = any(n.startswith("events.") for n in os.listdir(log_dir))
    first, start = int(rows[0][2]), rows[0][3]
    events = [Event(wall_time=start, file_version="brain.Event:2",
                    source_metadata=SourceMetadata(writer="tensorboard.summary.writer.event_file_writer"))]
    if earlier:  # SummaryWriter(purge_step=...): drop the earlier try's points from this step on
        events.append(Event(step=first, wall_time=start, file_version="brain.Event:2"))
        events.append(Event(step=first, wall_time=start, session_log=SessionLog(status=SessionLog.START)))
    for tag, value, step, wall in rows:
        events.append(Event(summary=Summary(value=[Summary.Value(tag=tag, simple_value=float(value))]),
                            step=int(step), wall_time=wall))
    # TensorBoard reads a folder's event files in name order: the time of writing, then this process's count,
    # as EventFileWriter names them (a retry's file sorts after the try it purges)
    name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_written):06d}"
    tmp = os.path.join(log_dir, f".{name}.tmp")
    with open(tmp, "wb") as out:
        writer = RecordWriter(out)
        for event in events:
            writer.write(event.SerializeToString())
    os.replace(tmp, os.path.join(log_dir, name))

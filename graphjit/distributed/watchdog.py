"""A timeout on collectives: a process that has waited in one for longer than
GRAPHJIT_DISTRIBUTED_TIMEOUT (config.py; default 300 s) aborts the job with a message that
names the collective, instead of waiting forever for a process that will never join it.

MPI has no timeout on a blocking collective, and a thread blocked in MPI cannot be made to
raise. So every collective graphjit makes goes through `WatchedComm`, which notes what this
thread waits in and since when (a dict store: well under a microsecond, against tens of
microseconds for the smallest collective), and a daemon thread checks the notes every
second (timeout / 10 when shorter) and hands a stale one to `on_timeout`, which prints and
calls MPI_Abort (process.py). mpi4py releases the GIL inside MPI calls, so the daemon runs
while the main thread waits. Native code reaches MPI through mpi4py too while the timeout
is on (the all_reduce op's host callback, not MPI_Allreduce by symbol: see process.py)."""

from __future__ import annotations

import sys
import threading
import time
import traceback

from graphjit.ir.ops.collectives import DistributedError

MAX_POLL_S = 1.0


def mpi_op_names(mpi) -> list:
    """[(MPI op, its name)] for messages (MPI ops are not hashable: a list)."""
    return [(mpi.SUM, "sum"), (mpi.MAX, "max"), (mpi.MIN, "min")]


class Watchdog:
    """Notes which collective each thread waits in; a daemon thread enforces the timeout."""

    def __init__(self, timeout_s: float, on_timeout, op_names=()):
        self.timeout_s = timeout_s
        self.on_timeout = on_timeout  # called once, with the message, from the daemon
        self.op_names = op_names  # (mpi_op_names)
        self.waiting: dict = {}  # thread id -> (what, buffer, MPI op, since)
        self.poll_s = min(MAX_POLL_S, timeout_s / 10)

    def start(self) -> None:
        threading.Thread(
            target=self._watch, name="graphjit-collective-timeout", daemon=True
        ).start()

    def _watch(self) -> None:
        while True:
            time.sleep(self.poll_s)
            now = time.monotonic()
            for thread, note in list(self.waiting.items()):
                if now - note[-1] >= self.timeout_s:
                    self.on_timeout(self.describe(thread, note))
                    return

    def describe(self, thread: int, note: tuple) -> str:
        what, buffer, op, since = note
        if hasattr(buffer, "dtype"):
            what += f" of {buffer.size} {buffer.dtype}"
        if op is not None:
            what += f" ({next((n for known, n in self.op_names if known == op), op)})"
        frame = sys._current_frames().get(thread)
        stack = traceback.extract_stack(frame) if frame is not None else []
        where = "".join(traceback.format_list([s for s in stack if s.filename != __file__]))
        error = DistributedError(
            f"{what} has waited {time.monotonic() - since:.1f} s for the other processes, more "
            f"than the {self.timeout_s:g} s of GRAPHJIT_DISTRIBUTED_TIMEOUT: a process has not "
            "reached this collective (stuck, dead, or in another collective)"
        )  # (reported, not raised: the waiting thread is inside MPI)
        return (
            f"{type(error).__name__}: {error}\n"
            f"this process waits here (most recent call last):\n{where}"
        )


class WatchedComm:
    """An mpi4py communicator whose collectives (those graphjit calls) are watched; every
    other attribute is the communicator's own."""

    def __init__(self, comm, watchdog: Watchdog):
        self.comm, self.watchdog = comm, watchdog

    def __getattr__(self, name: str):
        return getattr(self.comm, name)

    def _watched(self, note: tuple, call, *args):
        waiting, thread = self.watchdog.waiting, threading.get_ident()
        waiting[thread] = (*note, time.monotonic())
        try:
            return call(*args)
        finally:
            del waiting[thread]

    def Allreduce(self, send, recv, op):
        note = ("all_reduce (MPI_Allreduce)", recv, op)
        return self._watched(note, self.comm.Allreduce, send, recv, op)

    def Bcast(self, buffer, root=0):
        note = (f"broadcast from rank {root} (MPI_Bcast)", buffer, None)
        return self._watched(note, self.comm.Bcast, buffer, root)

    def Allgather(self, send, recv):
        note = ("all_gather (MPI_Allgather)", send, None)
        return self._watched(note, self.comm.Allgather, send, recv)

    def allgather(self, obj):
        note = ("all_gather of Python objects (MPI_Allgather)", None, None)
        return self._watched(note, self.comm.allgather, obj)

    def Barrier(self):
        return self._watched(("barrier (MPI_Barrier)", None, None), self.comm.Barrier)

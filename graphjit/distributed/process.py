"""The job: which process this is, how many there are, and what happens when one fails.

`init()` is idempotent and cheap after the first call. In a job of several processes it
installs exception hooks that print the failing rank's traceback and call MPI_Abort, so
that an exception on one rank ends the whole job within seconds (mpiexec kills the other
ranks, which may be blocked in a collective that would otherwise never complete) instead
of leaving them waiting forever; and it starts the collective timeout (watchdog.py), which
does the same for a process that has waited in a collective for longer than
GRAPHJIT_DISTRIBUTED_TIMEOUT. A rank that dies without a Python error is reported by its
monitor, when the job runs under one (`python -m graphjit.distributed.run`, monitor.py)."""

from __future__ import annotations

import os
import sys
import threading
import time
from traceback import format_exception

from graphjit import config
from graphjit.distributed.monitor import JOINED, tell_monitor
from graphjit.distributed.watchdog import Watchdog, WatchedComm, mpi_op_names
from graphjit.ir.ops.collectives import process_group

_HOOKED: list = []  # set once the abort hooks are installed
_STARTED: list = []  # set once the first init() has read the timeout (and started it)
# what launchers say about the node-local rank (MPICH's hydra, Open MPI, Slurm)
OUTPUT_GRACE_S = 0.2  # for the failing rank's traceback to leave through mpiexec
LOCAL_RANK_VARIABLES = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID")


def init(abort_on_exception: bool = True):
    """Join the job (MPI is initialised when mpi4py is installed; without it, or without
    mpiexec, this is a job of one process). Returns the process group."""
    if not _STARTED:
        _start_timeout()
    group = process_group()
    if abort_on_exception and group.size > 1 and not _HOOKED:
        _install_abort_hooks(group)
        _HOOKED.append(True)
    return group


def rank() -> int:
    return init().rank


def size() -> int:
    return init().size


def is_root(root: int = 0) -> bool:
    return rank() == root


def local_rank() -> int:
    """This process's index among the job's processes on its machine (pick a device by it)."""
    for name in LOCAL_RANK_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    group = init()
    if group.mpi is None:
        return 0
    return group.comm.Split_type(group.mpi.COMM_TYPE_SHARED).Get_rank()


def barrier() -> None:
    init().barrier()


def report_and_abort(group, message: str) -> None:
    """Print `message` as this rank's, then end the whole job (MPI_Abort: mpiexec stops
    every rank). One write, then a pause before MPI_Abort: mpiexec forwards each rank's
    output through a proxy that the abort tears down, and the message must reach the user
    (its first line names the rank, should the rest be cut short)."""
    tell_monitor()  # (the rank's monitor, if any, need not say that it ended badly)
    sys.stderr.write(f"graphjit.distributed: rank {group.rank} of {group.size} {message}")
    sys.stderr.flush()
    sys.stdout.flush()
    time.sleep(OUTPUT_GRACE_S)
    group.comm.Abort(1)


def _start_timeout() -> None:
    # read before MPI starts, and in a job of one process too: a typo fails at once
    timeout_s = config.distributed_timeout()
    group = process_group()
    tell_monitor(JOINED)  # (a monitor stops the job itself for a rank that fails before)
    if group.size > 1 and timeout_s is not None:
        _start_watchdog(group, timeout_s)
    _STARTED.append(True)


def _start_watchdog(group, timeout_s: float) -> None:
    """Watch every collective graphjit makes; one that outlasts the timeout ends the job."""
    from graphjit.codegen.llvm import collectives as llvm_collectives

    def abort(message: str) -> None:
        report_and_abort(group, f"timed out: {message}")

    watchdog = Watchdog(timeout_s, abort, mpi_op_names(group.mpi))
    group.comm = WatchedComm(group.comm, watchdog)
    # Native code calling MPI_Allreduce by symbol would wait where the watchdog cannot see
    # it; the host callback goes through group.comm (~5 us of CPU more per call, see
    # docs/distributed.md; GRAPHJIT_DISTRIBUTED_TIMEOUT=0 turns the timeout and this off).
    llvm_collectives.set_call_mode("callback")
    watchdog.start()


def _install_abort_hooks(group) -> None:
    previous = sys.excepthook

    def abort(kind, value, traceback) -> None:
        if previous is not sys.__excepthook__:
            previous(kind, value, traceback)  # a hook of the user's: let it run first
        body = "".join(format_exception(kind, value, traceback))
        report_and_abort(group, f"raised {kind.__name__}: {value}; aborting the job\n{body}")

    def abort_from_thread(args) -> None:
        abort(args.exc_type, args.exc_value, args.exc_traceback)

    sys.excepthook = abort
    threading.excepthook = abort_from_thread

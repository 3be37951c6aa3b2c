"""The job: which process this is, how many there are, and what happens when one fails.

`init()` is idempotent and cheap after the first call. In a job of several processes it
installs exception hooks that print the failing rank's traceback and call MPI_Abort, so
that an exception on one rank ends the whole job within seconds (mpiexec kills the other
ranks, which may be blocked in a collective that would otherwise never complete) instead
of leaving them waiting forever."""

from __future__ import annotations

import os
import sys
import threading
import time
from traceback import format_exception

from graphjit.ir.ops.collectives import process_group

_HOOKED: list = []  # set once the abort hooks are installed
# what launchers say about the node-local rank (MPICH's hydra, Open MPI, Slurm)
OUTPUT_GRACE_S = 0.2  # for the failing rank's traceback to leave through mpiexec
LOCAL_RANK_VARIABLES = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID")


def init(abort_on_exception: bool = True):
    """Join the job (MPI is initialised when mpi4py is installed; without it, or without
    mpiexec, this is a job of one process). Returns the process group."""
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


def _install_abort_hooks(group) -> None:
    previous = sys.excepthook

    def abort(kind, value, traceback) -> None:
        if previous is not sys.__excepthook__:
            previous(kind, value, traceback)  # a hook of the user's: let it run first
        # One write, then a pause before MPI_Abort: mpiexec forwards each rank's output
        # through a proxy that the abort tears down, and the failing rank's error must
        # reach the user (as its first line, should the traceback be cut short).
        header = f"graphjit.distributed: rank {group.rank} of {group.size} raised {kind.__name__}: {value}"
        body = "".join(format_exception(kind, value, traceback))
        sys.stderr.write(f"{header}; aborting the job\n{body}")
        sys.stderr.flush()
        sys.stdout.flush()
        time.sleep(OUTPUT_GRACE_S)
        group.comm.Abort(1)

    def abort_from_thread(args) -> None:
        abort(args.exc_type, args.exc_value, args.exc_traceback)

    sys.excepthook = abort
    threading.excepthook = abort_from_thread

"""Collective communication between the processes of a data-parallel job: `all_reduce`.

`all_reduce(x) {op = "sum" | "mean" | "max"}` combines x elementwise across every process
of the job (MPI's MPI_Allreduce); each process gets the same result. It is a side effect
(DCE keeps it, CSE never merges two, canonicalize never folds it) because every process
must make the same collective calls in the same order, or the job deadlocks. Its result
may overwrite its operand (MPI_IN_PLACE: no copy when the gradient is not read again).
The VJP of a sum is a sum of the cotangents (the adjoint of "every process gets the total"),
of a mean a mean; a max has none.

The process group lives here too, as the lowest layer that needs it (the reference kernel,
the llvm lowering and `gj.distributed` share it): mpi4py's COMM_WORLD when mpi4py imports,
else a job of one process in which every collective is the identity.
"""

from __future__ import annotations

import numpy as np

from graphjit.errors import DTypeError, GradientError, GraphjitError
from graphjit.ir.ops import OpDef, P, register, require

REDUCTIONS = ("sum", "mean", "max")
DTYPES = ("float32", "float64", "int32", "int64")


class DistributedError(GraphjitError):
    """A collective failed, or the processes of a job disagree (shapes, dtypes, graphs)."""


# ---- the process group ----------------------------------------------------------------------


class SingleProcess:
    """A job of one process (no mpi4py, or not launched by mpiexec and not wanting MPI)."""

    rank, size, mpi = 0, 1, None

    def all_reduce(self, send: np.ndarray, recv: np.ndarray, op: str) -> None:
        if recv is not send:
            recv[...] = send

    def broadcast(self, buffer: np.ndarray, root: int) -> None:
        pass

    def all_gather_objects(self, obj) -> list:
        return [obj]

    def barrier(self) -> None:
        pass


class MPIGroup:
    """COMM_WORLD through mpi4py: NumPy buffers go to MPI as they are (no copies)."""

    def __init__(self, mpi):
        self.mpi = mpi
        self.comm = mpi.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.ops = {"sum": mpi.SUM, "mean": mpi.SUM, "max": mpi.MAX}

    def all_reduce(self, send: np.ndarray, recv: np.ndarray, op: str) -> None:
        source = self.mpi.IN_PLACE if send is recv else send
        self.comm.Allreduce(source, recv, self.ops[op])

    def broadcast(self, buffer: np.ndarray, root: int) -> None:
        self.comm.Bcast(buffer, root=root)

    def all_gather_objects(self, obj) -> list:
        return self.comm.allgather(obj)

    def barrier(self) -> None:
        self.comm.Barrier()


_GROUP: list = []  # the job's process group, made once (MPI is initialised once per process)


def process_group():
    """The job's process group: MPI when mpi4py is installed, else one process."""
    if not _GROUP:
        try:
            from mpi4py import MPI
        except ImportError:
            _GROUP.append(SingleProcess())
        else:
            _GROUP.append(MPIGroup(MPI))
    return _GROUP[0]


# ---- agreement: every process must reduce the same buffer -----------------------------------

_AGREED: set = set()  # signatures (count, dtype, op) already checked against every process


def check_agreement(count: int, dtype: str, op: str, what: str = "all_reduce") -> None:
    """The first time this process reduces a (count, dtype, op) buffer, compare it with every
    other process's (one small allgather; later calls cost nothing). Processes that disagree
    would make MPI read past a buffer or wait forever: raise on every process instead."""
    signature = (count, dtype, op)
    if signature in _AGREED:
        return
    group = process_group()
    everyone = group.all_gather_objects(signature)
    if any(s != signature for s in everyone):
        described = ", ".join(f"rank {r}: {c} {d} ({o})" for r, (c, d, o) in enumerate(everyone))
        raise DistributedError(
            f"{what}: the processes reduce different buffers ({described}); every process "
            "must build the same graph and feed the same shapes"
        )
    _AGREED.add(signature)


# ---- the op ---------------------------------------------------------------------------------


def _infer(types, attrs):
    (t,) = types
    require(attrs["op"] in REDUCTIONS, f"all_reduce: op must be one of {REDUCTIONS}")
    if t.dtype.name not in DTYPES:
        raise DTypeError(f"all_reduce supports {', '.join(DTYPES)}, not {t.dtype.name}")
    if attrs["op"] == "mean" and not t.dtype.is_floating:
        raise DTypeError(f"all_reduce: a mean of {t.dtype.name} values needs a float dtype")
    return [t]


def all_reduce_kernel(x, op: str):
    """The reference kernel: a new array with x combined across every process."""
    group = process_group()
    send = x if x.flags.c_contiguous else np.ascontiguousarray(x)  # (keeps 0-d arrays 0-d)
    out = np.empty_like(send)
    check_agreement(send.size, send.dtype.name, op)
    group.all_reduce(send, out, op)
    if op == "mean" and group.size > 1:
        out *= out.dtype.type(1 / group.size)
    return out


def _vjp(cts, ins, outs, attrs):
    if attrs["op"] == "max":
        raise GradientError("all_reduce with op 'max' has no gradient")
    return [None if cts[0] is None else P.all_reduce(cts[0], op=attrs["op"])]


register(
    OpDef(
        "all_reduce",
        _infer,
        all_reduce_kernel,
        _vjp,
        attrs={"op": "sum"},
        side_effect=True,
        overwrites=((0, 0),),  # MPI_IN_PLACE when the operand is not read again
    )
)

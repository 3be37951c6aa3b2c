"""Collectives on NumPy arrays, eager tensors and graph tensors.

Graph and eager tensors go through the `all_reduce` op (so eager results are on the tape
and graph ones are IR); NumPy arrays go straight to MPI. Contiguous arrays are handed to
MPI as they are; `broadcast` fills its argument in place. Each buffer signature is checked
against every process the first time it is used (`check_agreement`)."""

from __future__ import annotations

import numpy as np

from graphjit.distributed.process import init
from graphjit.errors import GraphjitError
from graphjit.frontend.convert import unwrap
from graphjit.frontend.eager.tensor import Tensor, bump_version, wrap
from graphjit.ir.ops import bind
from graphjit.ir.ops.collectives import REDUCTIONS, all_reduce_kernel, check_agreement


def all_reduce(x, op: str = "sum"):
    """x combined elementwise across every process ("sum", "mean" or "max"); a new array
    or tensor (eager results are differentiable for sum and mean)."""
    if op not in REDUCTIONS:
        raise GraphjitError(f"all_reduce: op must be one of {REDUCTIONS}, not {op!r}")
    init()
    if isinstance(x, np.ndarray | np.generic | int | float | list):
        return all_reduce_kernel(np.asarray(x), op)
    return bind("all_reduce", unwrap(x), op=op)  # (a graph Variable: its value)


def broadcast(x, root: int = 0):
    """Root's value of x, on every process, written into x itself (a NumPy array or an
    eager tensor); returns x."""
    group = init()
    array = x._data if isinstance(x, Tensor) else x
    if not isinstance(array, np.ndarray):
        raise GraphjitError(f"broadcast needs a NumPy array or an eager tensor, not {type(x)}")
    if group.size == 1:
        return x
    check_agreement(array.size, array.dtype.name, f"broadcast from {root}", "broadcast")
    buffer = array if array.flags.c_contiguous else np.ascontiguousarray(array)
    group.broadcast(buffer, root)
    if buffer is not array:
        array[...] = buffer
    if isinstance(x, Tensor):
        bump_version(x)
    return x


def all_gather(x) -> np.ndarray:
    """Every process's x stacked along a new first axis (shape [size, *x.shape])."""
    group = init()
    array = np.ascontiguousarray(x._data if isinstance(x, Tensor) else x)
    out = np.empty((group.size, *array.shape), array.dtype)
    if group.size == 1:
        out[0] = array
    else:
        check_agreement(array.size, array.dtype.name, "gather", "all_gather")
        group.comm.Allgather(array, out)
    return wrap(out) if isinstance(x, Tensor) else out

"""The llvm lowering of ir/ops/collectives.py: `all_reduce` calls MPI from native code.

Two ways to reach MPI, chosen per process (`call_mode`):

- "symbol" (the default with MPICH): MPI_Allreduce itself, from the libmpi that mpi4py
  loaded, bound under `graphjit_mpi_allreduce` with llvm.add_symbol as BLAS is. The MPI
  handles (communicator, datatype, op) are compile-time constants in MPICH's ABI, so they
  are emitted as integers and a cached object stays valid in every process.
- "callback": a ctypes CFUNCTYPE into Python that calls mpi4py's Allreduce on the same
  memory (no copy). It costs a GIL round trip per call (a few microseconds) and works with
  any MPI that mpi4py supports (Open MPI's handles are pointers that differ per process).

Either way the first run of each all_reduce checks, once per process and buffer signature,
that every process reduces the same number of elements of the same dtype (a callback into
`check_agreement`); processes that disagree get a DistributedError instead of a hang. In a
job of one process the op is a copy (or nothing, in place) and no MPI is called."""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
from llvmlite import ir

from graphjit.codegen.layout import size_of
from graphjit.codegen.llvm import types as T
from graphjit.codegen.llvm.loops import for_range
from graphjit.errors import BackendError
from graphjit.ir.core import Operation
from graphjit.ir.ops.collectives import (
    DTYPES,
    REDUCTIONS,
    DistributedError,
    check_agreement,
    process_group,
)

INT32_MAX = 2**31 - 1  # MPI counts are C ints
ALLREDUCE_SYMBOL = "graphjit_mpi_allreduce"
CALLBACK_SYMBOL = "graphjit_mpi_allreduce_callback"
AGREE_SYMBOL = "graphjit_mpi_agree"

# int all_reduce(void* send, void* recv, i64 count, i32 dtype index, i32 op index)
_CALLBACK_TYPE = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_int
)
# int agree(i64 count, i32 dtype index, i32 op index): 0 when every process agrees
_AGREE_TYPE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int64, ctypes.c_int, ctypes.c_int)

_STATE: dict = {"mode": None, "bound": set()}


def call_mode() -> str:
    """How native code reaches MPI in this process: "symbol" or "callback"."""
    if _STATE["mode"] is None:
        _STATE["mode"] = "symbol" if _mpich_allreduce_address() else "callback"
    return _STATE["mode"]


def set_call_mode(mode: str) -> None:
    """Choose "symbol" or "callback" for modules lowered from now on (benchmarks compare
    them; the two produce different LLVM IR, so the caches keep them apart)."""
    if mode not in ("symbol", "callback"):
        raise BackendError(f"all_reduce call mode must be 'symbol' or 'callback', not {mode!r}")
    if mode == "symbol" and not _mpich_allreduce_address():
        raise BackendError("all_reduce by symbol needs MPICH's libmpi loaded by mpi4py")
    _STATE["mode"] = mode


# ---- finding MPI ----------------------------------------------------------------------------


def _libmpi_paths() -> list[str]:
    """The libmpi shared objects mapped into this process (mpi4py loaded one)."""
    try:
        with open("/proc/self/maps") as maps:
            names = {line.split()[-1] for line in maps if "libmpi" in line}
    except OSError:
        return []
    return sorted(n for n in names if ".so" in n)


def _mpich_allreduce_address() -> int | None:
    """MPI_Allreduce's address when the MPI mpi4py loaded is MPICH (integer handles)."""
    mpi = process_group().mpi
    if mpi is None or mpi.get_vendor()[0] != "MPICH":
        return None
    for path in _libmpi_paths() or [None]:
        function = getattr(ctypes.CDLL(path), "MPI_Allreduce", None)
        if function is not None:
            return ctypes.cast(function, ctypes.c_void_p).value
    return None


def _mpi_objects(mpi) -> tuple[dict, dict]:
    datatypes = {"float32": mpi.FLOAT, "float64": mpi.DOUBLE}
    datatypes |= {"int32": mpi.INT32_T, "int64": mpi.INT64_T}
    return datatypes, {"sum": mpi.SUM, "mean": mpi.SUM, "max": mpi.MAX}


# ---- the host callbacks (kept alive here: native code holds their addresses) ----------------


def _buffer(address: int, count: int, dtype: str):
    import numpy as np

    nbytes = count * np.dtype(dtype).itemsize
    return np.frombuffer((ctypes.c_char * nbytes).from_address(address), dtype)


@_CALLBACK_TYPE
def _allreduce_callback(send, recv, count, dtype_index, op_index):
    try:
        dtype = DTYPES[dtype_index]
        out = _buffer(recv, count, dtype)
        source = out if send == recv else _buffer(send, count, dtype)
        process_group().all_reduce(source, out, REDUCTIONS[op_index])
        return 0
    except Exception as e:  # (an exception cannot cross native frames: report, fail)
        print(f"graphjit: all_reduce failed: {e}", flush=True)
        return 1


@_AGREE_TYPE
def _agree_callback(count, dtype_index, op_index):
    try:
        check_agreement(count, DTYPES[dtype_index], REDUCTIONS[op_index])
        return 0
    except DistributedError as e:
        print(f"graphjit: {e}", flush=True)
        return 1


def _bind(symbol: str, address: int) -> None:
    if symbol not in _STATE["bound"]:
        llvm.add_symbol(symbol, address)
        _STATE["bound"].add(symbol)


# ---- the lowering ---------------------------------------------------------------------------


def op_all_reduce(low, op: Operation) -> None:
    x, out, how = op.operands[0], op.result, op.attrs["op"]
    group = process_group()
    if group.size == 1:  # one process: the sum, mean and max of x alone are x
        low.copy_value(out, x)
        return
    count, dtype = size_of(x.type.shape), x.type.dtype.name
    if count > INT32_MAX:
        raise BackendError(f"all_reduce of {count} elements: MPI counts stop at 2**31 - 1", op=op)
    codes = [ir.Constant(T.I64, count), _i32(DTYPES.index(dtype)), _i32(REDUCTIONS.index(how))]
    _emit_agreement(low, op, codes)
    in_place = low.shares_storage(out, x)
    send = _in_place_pointer(low) if in_place else low.ptr(x)
    if call_mode() == "symbol":
        status = _call_symbol(low, group.mpi, send, low.ptr(out), count, dtype, how)
    else:
        status = _call_back(low, send, low.ptr(out), codes)
    failed = low.b.icmp_signed("!=", status, _i32(0))
    low.fail(f"all_reduce: MPI_Allreduce of {count} {dtype} failed", failed, DistributedError, op)
    if how == "mean":
        _scale(low, out, count, 1 / group.size)


def _i32(value: int) -> ir.Constant:
    return ir.Constant(T.I32, value)


def _emit_agreement(low, op: Operation, codes: list) -> None:
    """Check once per process (a flag global to the module) that every process reduces
    the same buffer; the check is a callback because it is a Python allgather."""
    _bind(AGREE_SYMBOL, ctypes.cast(_agree_callback, ctypes.c_void_p).value)
    b = low.b
    flag = ir.GlobalVariable(low.module, T.I8, low.module.get_unique_name("agreed"))
    flag.linkage, flag.initializer = "private", ir.Constant(T.I8, 0)
    with b.if_then(b.icmp_unsigned("==", b.load(flag), ir.Constant(T.I8, 0)), likely=False):
        agree = T.external_function(low.module, AGREE_SYMBOL, T.I32, [T.I64, T.I32, T.I32])
        status = b.call(agree, codes)
        count, dtype = codes[0].constant, DTYPES[codes[1].constant]
        low.fail(
            f"all_reduce of {count} {dtype} elements: the processes reduce different "
            "buffers (each rank's is printed above); every process must build the same "
            "graph and feed the same shapes",
            b.icmp_signed("!=", status, _i32(0)),
            DistributedError,
            op,
        )
        b.store(ir.Constant(T.I8, 1), flag)


def _in_place_pointer(low) -> ir.Value:
    """MPI_IN_PLACE: (void*)-1 in MPICH; the callback tests send == recv instead."""
    if call_mode() == "symbol":
        return low.b.inttoptr(ir.Constant(T.I64, -1), T.I8P)
    return None


def _call_symbol(low, mpi, send, recv, count: int, dtype: str, how: str) -> ir.Value:
    _bind(ALLREDUCE_SYMBOL, _mpich_allreduce_address())
    datatypes, ops = _mpi_objects(mpi)
    handles = [
        ir.Constant(ir.IntType(8 * mpi._sizeof(kind)), mpi._handleof(obj))
        for kind, obj in (
            (mpi.Datatype, datatypes[dtype]),
            (mpi.Op, ops[how]),
            (mpi.Comm, mpi.COMM_WORLD),
        )
    ]
    args = [T.I8P, T.I8P, T.I32] + [h.type for h in handles]
    function = T.external_function(low.module, ALLREDUCE_SYMBOL, T.I32, args)
    return low.b.call(function, [send, recv, _i32(count), *handles])


def _call_back(low, send, recv, codes: list) -> ir.Value:
    _bind(CALLBACK_SYMBOL, ctypes.cast(_allreduce_callback, ctypes.c_void_p).value)
    args = [T.I8P, T.I8P, T.I64, T.I32, T.I32]
    function = T.external_function(low.module, CALLBACK_SYMBOL, T.I32, args)
    return low.b.call(function, [send if send is not None else recv, recv, *codes])


def _scale(low, out, count: int, factor: float) -> None:
    """out *= factor (a mean is the MPI sum divided by the number of processes)."""
    b, pointer, dtype = low.b, low.typed(out), out.type.dtype
    with for_range(b, count, "mean") as i:
        slot = b.gep(pointer, [i])
        T.store(b, b.fmul(T.load(b, slot, dtype), T.constant(dtype, factor)), slot, dtype)


LOWERINGS = {"all_reduce": op_all_reduce}

"""Splitting a large kernel over the CPU's cores, from native code: the outermost loop's
range is cut into CHUNKS_PER_THREAD chunks per possible thread, and every thread taking
part -- the calling one and the workers of the process's pool (pool.py), woken for the
call -- claims the next chunk from a shared counter (an atomic add) until none is left.
Claiming rather than a fixed share per thread matters on a busy machine: a thread that
cannot get a core holds up at most the chunk it is in, while the others take the rest (a
fixed half made the caller wait for the stalled thread's whole half), and a worker that
wakes after the chunks are gone is not waited for.

How many threads take part is read at run time from the process-wide `graphjit_threads`
(set_num_threads, GRAPHJIT_NUM_THREADS; the available cores, at most 8, by default), so a
change needs no recompile. The chunks do not depend on it: each element, and each row of
a split reduction, is computed by one thread in the same order whatever the count, so
results are bit-identical on 1 thread or 8.

Kernels without a reduction split anywhere; a reduction kernel splits only along a kept
outermost axis (rows, as in softmax and layer norm: kernel.splits_by_rows), so that each
output is folded by one thread, or, a float sum whose outermost loop is its pairwise
cascade, by the cascade's blocks (kernel.splits_by_blocks: each block into partial sums
of its own, combined after in the cascade's tree).

Waking a worker costs microseconds, and right after a BLAS call (GRAPHJIT_BLAS=numpy) it
competes with BLAS's own threads, which spin a while before they sleep: so a kernel is
split only when its estimated work (elements x per-element cost of its ops) is at least
PARALLEL_MIN_WORK. The MLP's bias + relu over 128x1024 stays on one thread; the 16M
element tanh/sigmoid chain is split."""

from __future__ import annotations

import ctypes
import threading

import llvmlite.binding as llvm
from llvmlite import ir

from graphjit import config
from graphjit.codegen.llvm import pool
from graphjit.codegen.llvm import types as T
from graphjit.ir.ops import REDUCTION
from graphjit.ir.symbolic import is_symbolic, round_up

PARALLEL_MIN_WORK = 1 << 19
# Per-element cost of an op in a kernel, relative to an add (loads and stores included):
# the transcendentals are polynomial approximations; ops not named here cost 1.
ELEMENT_COST = {
    **{"exp": 8, "log": 8, "tanh": 10, "sigmoid": 10, "pow": 20, "div": 2, "sqrt": 2},
    **{"sin": 20, "cos": 20},  # libm calls in double (vectorised in float: ~10)
}
FREE_OPS = frozenset({"constant", "yield", "broadcast_like", "broadcast_to", "stop_gradient"})
# A kernel that folds its elements into a reduction stores one value a row, not one an
# element, and its cheap forms run at the speed of reading memory (a 4096 x 1024 float32
# row sum or max: 0.25-0.35 ms, under 0.1 ns an element), so its work counts this much
# less: a row max or sum splits from 2M elements, where halving it gains more than the
# threads' cost of waking and waiting; a row exp + sum (softmax) from 200K.
REDUCTION_DISCOUNT = 4
# Enough chunks that a stalled thread holds up little of the work, few enough that a
# claim (one atomic add and a call) stays negligible against a chunk of PARALLEL_MIN_WORK.
CHUNKS_PER_THREAD = 4

THREADS_SYMBOL = "graphjit_threads"
_threads = ctypes.c_int64(1)  # process-wide; native code reads it at each split call
llvm.add_symbol(THREADS_SYMBOL, ctypes.addressof(_threads))
_chosen: list[int] = []  # the count set_num_threads gave, if any (else the config's)
_lock = threading.Lock()


def set_num_threads(n: int) -> None:
    """Split native kernels over `n` threads from now on (1 to config.MAX_THREADS)."""
    with _lock:
        _chosen[:] = [n]
        _threads.value = n


def num_threads() -> int:
    """The threads native kernels are split over: set_num_threads's count, else
    GRAPHJIT_NUM_THREADS's (read again each time: a ConfigError if it is malformed)."""
    with _lock:
        n = _chosen[0] if _chosen else config.num_threads()
        _threads.value = n
        return n


def _claimer(module: ir.Module, kernel: ir.Function, packet: ir.LiteralStructType):
    """void* task(void* packet): claim the next chunk of the packet's range from its
    counter and run the kernel over it, until every chunk is claimed. One per kernel: a
    kernel split at several places (blas.py's task functions, which the products of a
    model's layers share) has one."""
    existing = module.globals.get(f"{kernel.name}.task")
    if existing is not None:
        return existing
    fn = ir.Function(module, ir.FunctionType(T.I8P, [T.I8P]), f"{kernel.name}.task")
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    p = b.bitcast(fn.args[0], packet.as_pointer())
    *buffers, counter, chunks, extent = [
        b.load(b.gep(p, [ir.Constant(T.I32, 0), ir.Constant(T.I32, i)]))
        for i in range(len(packet.elements))
    ]
    claim, run, done = (fn.append_basic_block(n) for n in ("claim", "run", "done"))
    b.branch(claim)
    b.position_at_end(claim)
    chunk = b.atomic_rmw("add", counter, ir.Constant(T.I64, 1), "monotonic")
    b.cbranch(b.icmp_signed(">=", chunk, chunks), done, run)
    b.position_at_end(run)
    lo = b.sdiv(b.mul(extent, chunk), chunks)
    hi = b.sdiv(b.mul(extent, b.add(chunk, ir.Constant(T.I64, 1))), chunks)
    b.call(kernel, buffers + [lo, hi])
    b.branch(claim)
    b.position_at_end(done)
    b.ret(ir.Constant(T.I8P, None))
    return fn


def kernel_work(body, elements: int) -> int:
    """Estimated work of a kernel whose region `body` runs once per element."""
    per_element = sum(ELEMENT_COST.get(op.name, 1) for op in body.ops if op.name not in FREE_OPS)
    work = elements * max(1, per_element)
    if any(op.opdef.has(REDUCTION) for op in body.ops):
        if is_symbolic(work):  # (an estimate: rounded up to stay a polynomial)
            return round_up(work, REDUCTION_DISCOUNT) // REDUCTION_DISCOUNT
        return work // REDUCTION_DISCOUNT
    return work


def chunk_count(extent: int) -> int:
    """The chunks call_split cuts a range into by default."""
    return min(extent, config.MAX_THREADS * CHUNKS_PER_THREAD)


def call_split(lowering, kernel: ir.Function, buffers: list, extent, work, chunks: int = 0) -> None:
    """Call `kernel(*buffers, lo, hi)` over [0, extent), on several threads when the
    kernel's `work` (see kernel_work) pays for them. Chunk k is [extent * k // chunks,
    extent * (k + 1) // chunks); `chunks` (0: the default, CHUNKS_PER_THREAD a thread)
    fixes them for a kernel whose chunks own scratch of their own (row_chains.py).
    Sizes of the run (symbolic.py; `extent` a SymInt or an i64 value) make the choice at
    run time, the one a compile for those sizes would make."""
    b = lowering.b
    if isinstance(extent, int) and not is_symbolic(work):
        chunks = chunks or chunk_count(extent)
        if chunks < 2 or work < PARALLEL_MIN_WORK or not pool.ensure():
            b.call(kernel, buffers + [ir.Constant(T.I64, 0), ir.Constant(T.I64, extent)])
        else:
            _split(lowering, kernel, buffers, *map(lowering.i64, (extent, chunks)))
        return
    whole = lowering.i64(extent)
    if (not is_symbolic(work) and work < PARALLEL_MIN_WORK) or not pool.ensure():
        b.call(kernel, buffers + [ir.Constant(T.I64, 0), whole])
        return
    if chunks:
        count = lowering.i64(chunks)
    else:
        most = ir.Constant(T.I64, config.MAX_THREADS * CHUNKS_PER_THREAD)
        count = b.select(b.icmp_signed("<", whole, most), whole, most)
    pays = b.and_(
        b.icmp_signed(">=", count, ir.Constant(T.I64, 2)),
        b.icmp_signed(">=", lowering.i64(work), ir.Constant(T.I64, PARALLEL_MIN_WORK)),
    )
    with b.if_else(pays) as (split, alone):
        with split:
            _split(lowering, kernel, buffers, whole, count)
        with alone:
            b.call(kernel, buffers + [ir.Constant(T.I64, 0), whole])


def _split(lowering, kernel: ir.Function, buffers: list, extent: ir.Value, chunks: ir.Value):
    """The call of call_split on the pool: `chunks` claimed by the threads taking part."""
    b = lowering.b
    num_threads()  # the cell holds the configured count (a malformed one fails the compile)
    module = lowering.module
    packet = ir.LiteralStructType([a.type for a in buffers] + [T.I64.as_pointer(), T.I64, T.I64])
    task = _claimer(module, kernel, packet)
    slot, counter = lowering.local(packet), lowering.local(T.I64)
    b.store(ir.Constant(T.I64, 0), counter)
    fields = buffers + [counter, chunks, extent]
    for i, value in enumerate(fields):
        b.store(value, b.gep(slot, [ir.Constant(T.I32, 0), ir.Constant(T.I32, i)]))
    threads = b.load_atomic(T.external_global(module, THREADS_SYMBOL, T.I64), "monotonic", 8)
    threads = b.select(b.icmp_signed("<", threads, chunks), threads, chunks)  # (no more)
    run = T.external_function(module, pool.RUN, ir.VoidType(), [pool.TASK, T.I8P, T.I64])
    b.call(run, [task, b.bitcast(slot, T.I8P), threads])

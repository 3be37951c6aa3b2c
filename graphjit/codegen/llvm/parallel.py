"""Splitting a large kernel over the CPU's cores, from native code: the outermost loop's
range is cut into one chunk per thread; pthreads run all chunks but the first, which the
calling thread runs itself, then joins them. A thread that cannot be started runs inline.
Kernels without a reduction split anywhere; a reduction kernel splits only along a kept
outermost axis (rows, as in softmax and layer norm: kernel.splits_by_rows), so that each
output is folded by one thread, in the same order as on one.

A thread costs tens of microseconds to start and join, and right after a BLAS call it
competes with BLAS's own threads, which spin a while before they sleep: so a kernel is
split only when its estimated work (elements x per-element cost of its ops) is at least
PARALLEL_MIN_WORK. The MLP's bias + relu over 128x1024 stays on one thread; the 16M
element tanh/sigmoid chain is split."""

from __future__ import annotations

import os

from llvmlite import ir

from graphjit.codegen.llvm import types as T
from graphjit.ir.ops import REDUCTION

PARALLEL_MIN_WORK = 1 << 19
# Per-element cost of an op in a kernel, relative to an add (loads and stores included):
# the transcendentals are polynomial approximations; ops not named here cost 1.
ELEMENT_COST = {
    **{"exp": 8, "log": 8, "tanh": 10, "sigmoid": 10, "pow": 20, "div": 2, "sqrt": 2},
    **{"sin": 20, "cos": 20},  # libm calls
}
FREE_OPS = frozenset({"constant", "yield", "broadcast_like", "broadcast_to", "stop_gradient"})
# A kernel that folds its elements into a reduction stores one value a row, not one an
# element, and its cheap forms run at the speed of reading memory (a 4096 x 1024 float32
# row sum or max: 0.25-0.35 ms, under 0.1 ns an element), so its work counts this much
# less: a row max or sum splits from 2M elements, where halving it gains more than the
# threads' ~20 us start and join cost; a row exp + sum (softmax) from 200K.
REDUCTION_DISCOUNT = 4
THREADS = max(1, min(os.cpu_count() or 1, 8))


def _libc(module, name, ret, args):
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, ir.FunctionType(ret, args), name)


def _trampoline(module: ir.Module, kernel: ir.Function, packet: ir.LiteralStructType):
    """void* task(void* packet): unpack the buffers and range, run the kernel."""
    fn = ir.Function(module, ir.FunctionType(T.I8P, [T.I8P]), f"{kernel.name}.task")
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    p = b.bitcast(fn.args[0], packet.as_pointer())
    fields = [
        b.load(b.gep(p, [ir.Constant(T.I32, 0), ir.Constant(T.I32, i)]))
        for i in range(len(packet.elements))
    ]
    b.call(kernel, fields)
    b.ret(ir.Constant(T.I8P, None))
    return fn


def kernel_work(body, elements: int) -> int:
    """Estimated work of a kernel whose region `body` runs once per element."""
    per_element = sum(ELEMENT_COST.get(op.name, 1) for op in body.ops if op.name not in FREE_OPS)
    work = elements * max(1, per_element)
    if any(op.opdef.has(REDUCTION) for op in body.ops):
        return work // REDUCTION_DISCOUNT
    return work


def call_split(lowering, kernel: ir.Function, buffers: list, extent: int, work: int) -> None:
    """Call `kernel(*buffers, lo, hi)` over [0, extent), on several threads when the
    kernel's `work` (see kernel_work) pays for them."""
    b = lowering.b
    threads = min(THREADS, extent)
    if threads < 2 or work < PARALLEL_MIN_WORK:
        b.call(kernel, buffers + [ir.Constant(T.I64, 0), ir.Constant(T.I64, extent)])
        return
    module = lowering.module
    packet = ir.LiteralStructType([a.type for a in buffers] + [T.I64, T.I64])
    task = _trampoline(module, kernel, packet)
    create = _libc(module, "pthread_create", T.I32, [T.I64.as_pointer(), T.I8P, task.type, T.I8P])
    join = _libc(module, "pthread_join", T.I32, [T.I64, T.I8P.as_pointer()])
    bounds = [extent * t // threads for t in range(threads + 1)]
    started = []
    for t in range(1, threads):
        slot = lowering.local(packet)
        for i, value in enumerate(
            buffers + [ir.Constant(T.I64, bounds[t]), ir.Constant(T.I64, bounds[t + 1])]
        ):
            b.store(value, b.gep(slot, [ir.Constant(T.I32, 0), ir.Constant(T.I32, i)]))
        tid = lowering.local(T.I64)
        raw = b.bitcast(slot, T.I8P)
        failed = b.icmp_signed(
            "!=", b.call(create, [tid, ir.Constant(T.I8P, None), task, raw]), ir.Constant(T.I32, 0)
        )
        with b.if_then(failed, likely=False):
            b.call(task, [raw])
            b.store(ir.Constant(T.I64, 0), tid)
        started.append(tid)
    b.call(kernel, buffers + [ir.Constant(T.I64, bounds[0]), ir.Constant(T.I64, bounds[1])])
    for tid in started:
        handle = b.load(tid)
        with b.if_then(b.icmp_unsigned("!=", handle, ir.Constant(T.I64, 0))):
            b.call(join, [handle, ir.Constant(T.I8P.as_pointer(), None)])

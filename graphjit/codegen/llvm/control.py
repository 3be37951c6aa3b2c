"""`cond` and `while` in the native entry point: branches and loops in the same function.
A cond's branches copy their yields into its results; a while copies its operands into
the loop-carried buffers, runs its before region for the predicate (and `max_iterations`
for a bound), and copies each iteration's yields back as one parallel copy."""

from __future__ import annotations

from llvmlite import ir

from graphjit.codegen.layout import nbytes
from graphjit.codegen.llvm import types as T
from graphjit.ir.core import Block, Operation
from graphjit.ir.types import ListType, TensorType


def op_cond(low, op: Operation) -> None:
    b = low.b
    pred = T.load(b, low.typed(op.operands[0]), op.operands[0].type.dtype)
    with b.if_else(pred) as (then, otherwise):
        with then:
            _yield_into(low, op.regions[0].block, op.results)
        with otherwise:
            _yield_into(low, op.regions[1].block, op.results)


def _yield_into(low, block: Block, results) -> None:
    for r, v in zip(results, low.lower_block(block), strict=True):
        low.copy_value(r, v)


def op_while(low, op: Operation) -> None:
    b = low.b
    before, after = (r.block for r in op.regions)
    carried = before.args
    for c, arg, result in zip(carried, after.args, op.results, strict=True):
        if isinstance(c.type, ListType):  # list handles: one slot per loop value
            low.lists.share_slot(arg, c)
            low.lists.share_slot(result, c)
    for c, init in zip(carried, op.operands, strict=True):
        low.copy_value(c, init)
    limit = op.attrs["max_iterations"]
    count = low.local(T.I64)
    b.store(ir.Constant(T.I64, 0), count)
    header, body, done = (
        low.entry.append_basic_block(f"while.{s}") for s in ("header", "body", "done")
    )
    b.branch(header)
    b.position_at_end(header)
    (pred_value,) = low.lower_block(before)
    go = T.load(b, low.typed(pred_value), pred_value.type.dtype)
    if limit is not None:  # (in the i64 range: the while's shape rule says so)
        go = b.and_(go, b.icmp_signed("<", b.load(count), ir.Constant(T.I64, limit)))
    b.cbranch(go, body, done)
    b.position_at_end(body)
    _carry(low, carried, low.lower_block(after))
    b.store(b.add(b.load(count), ir.Constant(T.I64, 1)), count)
    low.poll_interrupt()  # every back-edge: Ctrl-C stops a loop of any length
    b.branch(header)
    b.position_at_end(done)
    for r, c in zip(op.results, carried, strict=True):
        low.copy_value(r, c)


def _carry(low, carried, yields) -> None:
    """Copy each iteration's yields into the carried buffers as one parallel copy: a
    yield that lives in another carried buffer (a swap) is staged first."""
    moves = [
        (c, v)
        for c, v in zip(carried, yields, strict=True)
        if isinstance(v.type, TensorType)
        and not low.shares_storage(c, v)
        and any(low.shares_storage(v, o) for o in carried if isinstance(o.type, TensorType))
    ]
    staged = dict(zip((c for c, _ in moves), low.scratch([nbytes(v) for _, v in moves])))
    for c, v in moves:
        low.memcpy(staged[c], low.ptr(v), nbytes(v))
    handles = {
        c: low.lists.load_handle(v)
        for c, v in zip(carried, yields, strict=True)
        if isinstance(v.type, ListType)
    }
    for c, v in zip(carried, yields, strict=True):
        if c in handles:
            low.lists.store_handle(c, handles[c])
        elif c in staged:
            low.memcpy(low.ptr(c), staged[c], nbytes(v))
        else:
            low.copy_value(c, v)

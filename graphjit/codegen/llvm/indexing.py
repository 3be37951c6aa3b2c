"""The llvm lowerings of ir/ops/indexing.py: op name -> lowering(low, op).

Every op is one loop nest over the rows of its `geometry` (ir/ops/indexing.py): load the
row's index, count a negative one from the end (where the op wraps them), and leave the
run with a RuntimeCheckError when it is still outside [0, n) (one unsigned compare), before any
memory is touched through it; then copy (or, for a scatter, add) the row's contiguous
elements in an inner loop free of checks, which vectorises. A scatter zeroes its result
first. Long nests poll for Ctrl-C: between chunks of rows, as copies do, or on every row
when rows are long."""

from __future__ import annotations

from functools import partial

from llvmlite import ir

from graphjit.codegen.layout import nbytes
from graphjit.codegen.llvm import sizes
from graphjit.codegen.llvm import types as T
from graphjit.codegen.llvm.loops import for_range, loop_nest, polls
from graphjit.errors import RuntimeCheckError
from graphjit.ir.core import Operation
from graphjit.ir.ops.indexing import IndexGeometry, geometry, out_of_range_message

# Rows at least this long poll for Ctrl-C each (one load per row is then noise); shorter
# ones poll between chunks of POLL_ELEMENTS rows, at most that many elements apart.
LONG_ROW = 64


def lower_indexed(low, op: Operation) -> None:
    geo = geometry(op)
    b = low.b
    indices = op.operands[1]
    data = op.operands[0] if geo.scatter else op.result
    indexed = op.result if geo.scatter else op.operands[0]
    if geo.scatter:
        _zero(low, indexed)
    data_p, index_p, indexed_p = low.typed(data), low.typed(indices), low.typed(indexed)
    words = partial(out_of_range_message, op.attrs["axis"], wrap_negative=geo.wrap_negative)
    message = sizes.message(words, geo.axis_size)
    rows, strides = geo.rows()
    poll_rows = polls(geo.space) and geo.row_length >= LONG_ROW
    chunked = None if poll_rows else low.poll_interrupt
    with loop_nest(b, rows, strides, "idx", poll=chunked) as (d, i, base):
        if poll_rows:
            low.poll_interrupt()
        index = _as_i64(b, b.load(b.gep(index_p, [i])))
        if geo.wrap_negative:
            index = _wrapped_index(b, index, geo.axis_size)
        # (unsigned: a negative index left unwrapped is a huge one)
        outside = b.icmp_unsigned(">=", index, sizes.i64(geo.axis_size, b))
        low.fail(message, outside, RuntimeCheckError, op)
        row = b.add(base, b.mul(index, sizes.i64(geo.axis_stride, b)))
        _move_row(b, geo, b.gep(data_p, [d]), b.gep(indexed_p, [row]), data.type.dtype)


def _move_row(b: ir.IRBuilder, geo: IndexGeometry, data_row, indexed_row, dtype) -> None:
    """Copy the indexed row into the data row (gather), or add the data row into it."""
    with for_range(b, geo.row_length, "row") as j:
        element, row_element = b.gep(data_row, [j]), b.gep(indexed_row, [j])
        if geo.scatter:
            _add_into(b, row_element, b.load(element), dtype)
        else:
            b.store(b.load(row_element), element)


def _as_i64(b: ir.IRBuilder, raw: ir.Value) -> ir.Value:
    return b.sext(raw, T.I64) if raw.type != T.I64 else raw


def _wrapped_index(b: ir.IRBuilder, index: ir.Value, size: int) -> ir.Value:
    """The i64 index, a negative one counted from the end (NumPy's x[-1])."""
    negative = b.icmp_signed("<", index, ir.Constant(T.I64, 0))
    return b.select(negative, b.add(index, sizes.i64(size, b)), index)


def _add_into(b: ir.IRBuilder, ptr: ir.Value, value: ir.Value, dtype) -> None:
    old = b.load(ptr)
    b.store(b.fadd(old, value) if dtype.is_floating else b.add(old, value), ptr)


def _zero(low, v) -> None:
    """A scatter's result starts as zeros (all-zero bytes are 0 and 0.0 in every dtype)."""
    memset = low.module.declare_intrinsic("llvm.memset", [T.I8P, T.I64])
    size = low.i64(nbytes(v))
    low.b.call(memset, [low.ptr(v), ir.Constant(T.I8, 0), size, ir.Constant(T.I1, 0)])


LOWERINGS: dict = dict.fromkeys(
    ("gather", "scatter_add", "take_along_axis", "scatter_add_along_axis"), lower_indexed
)

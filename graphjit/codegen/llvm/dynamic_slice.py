"""The llvm lowerings of ir/ops/dynamic_slice.py: op name -> lowering(low, op).

Each reads its start operands from their buffers at run time, places the window as
`resolve_start` does (wrap negative starts on the wrap axes, then check or clamp), and
copies with the window's flat offset as a run-time base: a slice copies the window out, an
update copies the operand into the result (nothing when the memory plan computes it in
place) and then the update into the window. A failed check stops the run through the
status word before anything is written."""

from __future__ import annotations

from llvmlite import ir

from graphjit.codegen.layout import contiguous_strides
from graphjit.codegen.llvm import types as T
from graphjit.codegen.llvm.loops import loop_nest
from graphjit.errors import RuntimeCheckError
from graphjit.ir.core import Operation, Value
from graphjit.ir.ops.dynamic_slice import out_of_range_message, window_operands


def _start(low, v: Value, axis: int, dim: int, size: int, op: Operation) -> ir.Value:
    """The resolved start along `axis`, an i64."""
    b = low.b
    raw = b.load(low.typed(v))
    extend = b.sext if v.type.dtype.np.kind == "i" else b.zext
    start = extend(raw, T.I64) if raw.type.width < 64 else raw
    zero, last = ir.Constant(T.I64, 0), ir.Constant(T.I64, dim - size)
    wraps = axis in op.attrs["wrap"]
    if wraps:
        negative = b.icmp_signed("<", start, zero)
        start = b.select(negative, b.add(start, ir.Constant(T.I64, dim)), start)
    if op.attrs["mode"] == "check":
        outside = b.or_(b.icmp_signed("<", start, zero), b.icmp_signed(">", start, last))
        low.fail(out_of_range_message(axis, size, dim, wraps), outside, RuntimeCheckError, op)
        return start
    start = b.select(b.icmp_signed("<", start, zero), zero, start)
    return b.select(b.icmp_signed(">", start, last), last, start)


def _window_offset(low, op: Operation) -> ir.Value:
    """The flat element offset of the window's first element in the operand."""
    operand, window, starts = window_operands(op)
    shape, sizes = operand.type.shape, window.type.shape
    strides = contiguous_strides(shape)
    offset = ir.Constant(T.I64, 0)
    for axis, v in enumerate(starts):
        start = _start(low, v, axis, shape[axis], sizes[axis], op)
        offset = low.b.add(offset, low.b.mul(start, ir.Constant(T.I64, strides[axis])))
    return offset


def _copy(low, src: Value, dst: Value, space, strides: tuple, bases: tuple) -> None:
    """dst[bases[1] + c . strides[1]] = src[bases[0] + c . strides[0]] over `space`."""
    b, sp, dp = low.b, low.typed(src), low.typed(dst)
    with loop_nest(b, space, list(strides), "window", poll=low.poll_interrupt) as (so, do):
        value = b.load(b.gep(sp, [b.add(so, bases[0])]))
        b.store(value, b.gep(dp, [b.add(do, bases[1])]))


def op_dynamic_slice(low, op: Operation) -> None:
    """dynamic_slice and dynamic_slice_like: the window copied out of the operand."""
    x, out = op.operands[0], op.result
    offset = _window_offset(low, op)
    space = out.type.shape
    strides = (contiguous_strides(x.type.shape), contiguous_strides(space))
    _copy(low, x, out, space, strides, (offset, ir.Constant(T.I64, 0)))


def op_dynamic_update_slice(low, op: Operation) -> None:
    x, update, out = op.operands[0], op.operands[1], op.result
    offset = _window_offset(low, op)  # (checked before the result is written)
    low.copy_value(out, x)  # nothing when the plan writes the result over x
    space = update.type.shape
    strides = (contiguous_strides(space), contiguous_strides(x.type.shape))
    _copy(low, update, out, space, strides, (ir.Constant(T.I64, 0), offset))


LOWERINGS: dict = {
    "dynamic_slice": op_dynamic_slice,
    "dynamic_slice_like": op_dynamic_slice,
    "dynamic_update_slice": op_dynamic_update_slice,
}

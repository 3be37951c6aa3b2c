"""The cuda lowerings of ir/ops/dynamic_slice.py: op name -> lowering(low, op).

The start operands stay on the device: each copy kernel reads them, wraps and clamps them
as `resolve_start` does, and walks the window from that offset, so a clamped slice costs
no transfer. A checked slice (mode "check") first reads its starts back to the host and
raises the RuntimeCheckError there, as the other backends do before writing anything: one
small transfer per checked op (a while loop already reads its predicate back each
iteration)."""

from __future__ import annotations

from graphjit.codegen.cuda.source import (
    KernelSource,
    Launch,
    Writer,
    coordinates,
    header,
    kernel_source,
    offset,
)
from graphjit.codegen.layout import coalesce, contiguous_strides, size_of
from graphjit.errors import RuntimeCheckError
from graphjit.ir.core import Operation
from graphjit.ir.ops.dynamic_slice import resolve_start, window_operands


def _emit_window_offset(w: Writer, op: Operation) -> None:
    """`base = ...`: the flat offset of the window's first element, from the start
    parameters s0, s1, ... read on the device."""
    operand, window, starts = window_operands(op)
    shape, sizes = operand.type.shape, window.type.shape
    terms = ["int64(0)"]
    for axis, (stride, _) in enumerate(zip(contiguous_strides(shape), starts)):
        dim, last = shape[axis], shape[axis] - sizes[axis]
        w.line(f"o{axis} = int64(s{axis}[0])")
        if axis in op.attrs["wrap"]:
            with w.block(f"if o{axis} < 0"):
                w.line(f"o{axis} += {dim}")
        w.line(f"o{axis} = min(max(o{axis}, 0), {last})")
        terms.append(f"o{axis} * {stride}")
    w.line(f"base = {' + '.join(terms)}")


def window_copy(op: Operation, into_window: bool) -> KernelSource:
    """Copy the window out of the operand (a slice), or the update into the window of the
    result (an update): parameters src, dst, then the starts."""
    operand, window, starts = window_operands(op)
    dtype = operand.type.dtype
    params = [("src", dtype), ("dst", dtype)]
    params += [(f"s{k}", v.type.dtype) for k, v in enumerate(starts)]
    space = window.type.shape
    whole, part = contiguous_strides(operand.type.shape), contiguous_strides(space)
    shape, (ss, ds) = coalesce(space, [part, whole] if into_window else [whole, part])
    w = Writer()
    with w.block(header(params)):
        _emit_window_offset(w, op)
        with w.block(f"for i in range(cuda.grid(1), {size_of(space)}, cuda.gridsize(1))"):
            coords = coordinates(w, "i", shape, "c")
            src, dst = offset(coords, ss), offset(coords, ds)
            src, dst = (src, f"base + {dst}") if into_window else (f"base + {src}", dst)
            w.line(f"dst[{dst}] = src[{src}]")
    verb = "into" if into_window else "out of"
    return kernel_source(w, params, f"{op.name}: window {list(space)} {verb} {operand.type}")


def _check_step(low, op: Operation):
    """A host step that raises the op's RuntimeCheckError for a start outside its range."""
    operand, window, starts = window_operands(op)
    shape, sizes = operand.type.shape, window.type.shape
    mode, wrap = op.attrs["mode"], op.attrs["wrap"]

    def check(frame):
        for axis, v in enumerate(starts):
            try:
                start = low.read_index(frame[v])
                resolve_start(start, axis, shape[axis], sizes[axis], mode, wrap)
            except RuntimeCheckError as e:
                raise RuntimeCheckError(e.raw_message, op=op) from None

    return [check] if mode == "check" else []


def _launch(low, op: Operation, src, dst, into_window: bool):
    kernel = window_copy(op, into_window)
    n = size_of(window_operands(op)[1].type.shape)
    starts = window_operands(op)[2]
    return low.launch([Launch(kernel, low.cfg.grid(n), low.cfg.block, (src, dst, *starts))])


def op_dynamic_slice(low, op: Operation) -> list:
    """dynamic_slice and dynamic_slice_like."""
    x, out = op.operands[0], op.result
    return _check_step(low, op) + _launch(low, op, x, out, into_window=False)


def op_dynamic_update_slice(low, op: Operation) -> list:
    x, update, out = op.operands[0], op.operands[1], op.result
    steps = _check_step(low, op) + low.move(out, x)  # (no copy when in place)
    return steps + _launch(low, op, update, out, into_window=True)


LOWERINGS: dict = {
    "dynamic_slice": op_dynamic_slice,
    "dynamic_slice_like": op_dynamic_slice,
    "dynamic_update_slice": op_dynamic_update_slice,
}

"""The cuda lowerings of ir/ops/scan.py: op name -> lowering(low, op).

cumsum: one thread per line along the scanned axis (a grid-stride loop over the
outer x inner positions), each adding the line's elements in order into an accumulator of
the input's dtype, as np.cumsum does, so results match the interpreter's bit for bit
(float16: a float32 sum rounded to float16 at each step, as NumPy's float16 cumsum)."""

from __future__ import annotations

from graphjit.codegen.cuda.narrow import load, rounded, store
from graphjit.codegen.cuda.scalar import convert
from graphjit.codegen.cuda.source import KernelSource, Launch, Writer, header, kernel_source
from graphjit.codegen.layout import size_of
from graphjit.ir.core import Operation
from graphjit.ir.types import DType


def cumsum_kernel(dtype: DType, shape, axis: int, reverse: bool) -> KernelSource:
    params = [("x", dtype), ("out", dtype)]
    n, inner = shape[axis], size_of(shape[axis + 1 :])
    lines = size_of(shape) // n
    first = (n - 1) * inner if reverse else 0
    rest = f"range({n - 2}, -1, -1)" if reverse else f"range(1, {n})"  # after the first
    w = Writer()
    with w.block(header(params)):
        with w.block(f"for line in range(cuda.grid(1), {lines}, cuda.gridsize(1))"):
            w.line(f"base = (line // {inner}) * {n * inner} + line % {inner}")
            w.line(f"acc = {load(f'x[base + {first}]', dtype)}")
            w.line(f"out[base + {first}] = {store('acc', dtype)}")
            with w.block(f"for j in {rest}"):
                w.line(f"at = base + j * {inner}")
                w.line(f"acc = {convert('acc + ' + load('x[at]', dtype), dtype)}")
                if dtype.is_narrow_float:
                    w.line(f"acc = {rounded('acc', dtype)}")
                w.line(f"out[at] = {store('acc', dtype)}")
    direction = "reversed " if reverse else ""
    return kernel_source(w, params, f"{direction}cumsum over axis {axis} of {list(shape)}")


def op_cumsum(low, op: Operation) -> list:
    x, out = op.operands[0], op.result
    shape, axis = x.type.shape, op.attrs["axis"]
    if not size_of(shape):
        return []  # nothing to sum
    kernel = cumsum_kernel(x.type.dtype, shape, axis, op.attrs["reverse"])
    lines = size_of(shape) // shape[axis]
    return low.launch([Launch(kernel, low.cfg.grid(lines), low.cfg.block, (x, out))])


LOWERINGS: dict = {"cumsum": op_cumsum}

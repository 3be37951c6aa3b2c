"""The cuda lowerings of ir/ops/indexing.py: op name -> lowering(low, op), returning steps.

Each op is one grid-stride kernel over its `geometry` (ir/ops/indexing.py). A thread
loads its index, counts a negative one from the end (where the op wraps them), and only
inside [0, n) touches memory through it; outside, it lowers a flag (one int64, reset
before the launch) to the index's position by atomic min, so the host reads back the
first bad index in row-major order, the one the interpreter names, and raises the same
RuntimeCheckError. A scatter fills its result with zeros, then adds with atomics (so
float sums may round in any order, as PyTorch's index_add_ on a GPU). A float16/bfloat16
scatter adds into a float32 buffer, rounded into the result once at the end (float32
accumulation, as reductions)."""

from __future__ import annotations

import numpy as np

from graphjit.codegen.cuda.copies import fill, narrowing_copy
from graphjit.codegen.cuda.narrow import load
from graphjit.codegen.cuda.source import (
    KernelSource,
    Launch,
    Scratch,
    Writer,
    coordinates,
    header,
    kernel_source,
    offset,
)
from graphjit.codegen.layout import size_of
from graphjit.errors import RuntimeCheckError
from graphjit.ir.core import Operation
from graphjit.ir.ops.indexing import IndexGeometry, geometry, out_of_range_message
from graphjit.ir.types import DType, float32, int64


def indexed_kernel(
    geo: IndexGeometry, dtype: DType, index_dtype: DType, indexed_dtype: DType
) -> KernelSource:
    """data, indices, indexed, flag: a gather copies indexed rows into data; a scatter adds
    data into them (`indexed_dtype`: float32 sums of narrow data)."""
    params = [("data", dtype), ("indices", index_dtype), ("indexed", indexed_dtype)]
    params.append(("flag", int64))
    w = Writer()
    with w.block(header(params)):
        with w.block(f"for i in range(cuda.grid(1), {size_of(geo.space)}, cuda.gridsize(1))"):
            coords = coordinates(w, "i", geo.space, "c")
            w.line(f"at = {offset(coords, geo.index_strides)}")
            w.line("j = indices[at]")
            if geo.wrap_negative:
                with w.block("if j < 0"):
                    w.line(f"j += {geo.axis_size}")
            with w.block(f"if j < 0 or j >= {geo.axis_size}"):
                w.line("cuda.atomic.min(flag, 0, at)")
                w.line("continue")
            row = f"{offset(coords, geo.base_strides)} + j * {geo.axis_stride}"
            here = offset(coords, geo.data_strides)
            if geo.scatter:
                w.line(f"cuda.atomic.add(indexed, {row}, {load(f'data[{here}]', dtype)})")
            else:
                w.line(f"data[{here}] = indexed[{row}]")
    what = "scatter" if geo.scatter else "gather"
    return kernel_source(w, params, f"{what} over {list(geo.space)}")


def lower_indexed(low, op: Operation) -> list:
    geo = geometry(op)
    indices = op.operands[1]
    data = op.operands[0] if geo.scatter else op.result
    indexed = op.result if geo.scatter else op.operands[0]
    flag = low.scratch(Scratch(int64, 1))
    n, dtype = size_of(indexed.type.shape), indexed.type.dtype
    sums = indexed  # what a scatter adds into
    if geo.scatter and dtype.is_narrow_float:
        sums = low.scratch(Scratch(float32, n))
    launches = []
    if geo.scatter:
        launches.append(Launch(fill(_dtype(sums), n, 0), low.cfg.grid(n), low.cfg.block, (sums,)))
    kernel = indexed_kernel(geo, data.type.dtype, indices.type.dtype, _dtype(sums))
    args = (data, indices, sums, flag)
    launches.append(Launch(kernel, low.cfg.grid(size_of(geo.space)), low.cfg.block, args))
    if sums is not indexed:
        rounding = narrowing_copy(dtype, n)
        launches.append(Launch(rounding, low.cfg.grid(n), low.cfg.block, (sums, indexed)))
    none_bad = size_of(indices.type.shape)  # past every position: no index failed
    return [_reset(flag, none_bad), *low.launch(launches), _check(op, flag, none_bad, geo)]


def _dtype(buffer):
    """The element type of a value or a Scratch buffer."""
    return buffer.dtype if isinstance(buffer, Scratch) else buffer.type.dtype


def _reset(flag, value: int):
    start = np.array([value], np.int64)
    return lambda frame: frame[flag].copy_to_device(start)


def _check(op: Operation, flag, none_bad: int, geo: IndexGeometry):
    indices, axis = op.operands[1], op.attrs["axis"]

    def check(frame):
        at = int(frame[flag].copy_to_host()[0])
        if at < none_bad:
            bad = int(frame[indices][at : at + 1].copy_to_host()[0])
            message = out_of_range_message(axis, geo.axis_size, bad, geo.wrap_negative)
            raise RuntimeCheckError(message, op=op)

    return check


LOWERINGS: dict = dict.fromkeys(
    ("gather", "scatter_add", "take_along_axis", "scatter_add_along_axis"), lower_indexed
)

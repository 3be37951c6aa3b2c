"""Kernels that move data rather than compute it: one strided copy serves transpose,
broadcast, slice, unslice (after a fill with zeros), concat and split (one copy per
piece); plus fill, the element-by-element add of tensor-list gradients, argmax and argmin.
Each is a grid-stride loop over its elements. Copies move a narrow float's 16 bits as they
are; the others compute in float32 (narrow.py)."""

from __future__ import annotations

from graphjit.codegen.cuda.narrow import load, store
from graphjit.codegen.cuda.scalar import convert
from graphjit.codegen.cuda.source import (
    KernelSource,
    Launch,
    Writer,
    coordinates,
    header,
    kernel_source,
    offset,
    stored_literal,
)
from graphjit.codegen.cuda.target import LaunchConfig
from graphjit.codegen.layout import (
    broadcast_strides,
    coalesce,
    contiguous_strides,
    size_of,
    slice_geometry,
)
from graphjit.ir.core import Operation
from graphjit.ir.types import DType, float32, int64


def _loop(w: Writer, n: int, index: str = "i"):
    return w.block(f"for {index} in range(cuda.grid(1), {n}, cuda.gridsize(1))")


def strided_copy(
    dtype: DType, space, src_strides, dst_strides, src_base: int = 0, dst_base: int = 0
) -> KernelSource:
    """dst[dst_base + c . dst_strides] = src[src_base + c . src_strides] for every
    coordinate c of `space`."""
    params = [("src", dtype), ("dst", dtype)]
    shape, (ss, ds) = coalesce(space, [src_strides, dst_strides])
    w = Writer()
    with w.block(header(params)):
        with _loop(w, size_of(space)):
            coords = coordinates(w, "i", shape, "c")
            w.line(f"dst[{offset(coords, ds, dst_base)}] = src[{offset(coords, ss, src_base)}]")
    return kernel_source(w, params, f"strided copy over {list(space)}")


def fill(dtype: DType, n: int, value) -> KernelSource:
    params = [("dst", dtype)]
    w = Writer()
    with w.block(header(params)):
        with _loop(w, n):
            w.line(f"dst[i] = {stored_literal(value, dtype)}")
    return kernel_source(w, params, f"fill {n} with {value}")


def add(dtype: DType, n: int) -> KernelSource:
    """out = a + b, element by element (tensor-list cotangents accumulate with it)."""
    params = [("a", dtype), ("b", dtype), ("out", dtype)]
    w = Writer()
    with w.block(header(params)):
        with _loop(w, n):
            total = convert(f"{load('a[i]', dtype)} + {load('b[i]', dtype)}", dtype)
            w.line(f"total = {total}")
            w.line(f"out[i] = {store('total', dtype)}")
    return kernel_source(w, params, f"add {n} elements")


def narrowing_copy(dtype: DType, n: int) -> KernelSource:
    """dst = src rounded to float16/bfloat16, src a float32 accumulator."""
    params = [("src", float32), ("dst", dtype)]
    w = Writer()
    with w.block(header(params)):
        with _loop(w, n):
            w.line("x = src[i]")
            w.line(f"dst[i] = {store('x', dtype)}")
    return kernel_source(w, params, f"round {n} elements to {dtype.name}")


# argmax/argmin: how an element beats the best so far
ARG_EXTREMA = {"argmax": ">", "argmin": "<"}


def arg_extremum(name: str, dtype: DType, shape, axis: int) -> KernelSource:
    """argmax/argmin: the index of the first maximum/minimum along `axis` (the first NaN
    wins, as in NumPy); a thread per output element scans the axis."""
    params = [("x", dtype), ("out", int64)]
    strides = contiguous_strides(shape)
    outer = [d for k, d in enumerate(shape) if k != axis]
    outer_strides = [s for k, s in enumerate(strides) if k != axis]
    w = Writer()
    with w.block(header(params)):
        with _loop(w, size_of(outer), "o"):
            coords = coordinates(w, "o", outer, "c")
            w.line(f"base = {offset(coords, outer_strides)}")
            w.line(f"best = {load('x[base]', dtype)}")
            w.line("best_j = 0")
            with w.block(f"for j in range(1, {shape[axis]})"):
                w.line(f"v = {load(f'x[base + j * {strides[axis]}]', dtype)}")
                with w.block(f"if v {ARG_EXTREMA[name]} best or (v != v and best == best)"):
                    w.line("best = v")
                    w.line("best_j = j")
            w.line("out[o] = best_j")
    return kernel_source(w, params, f"{name} over axis {axis} of {list(shape)}")


# ---- ops -> launches --------------------------------------------------------------------


def _copy(cfg, src, dst, space, src_strides, dst_strides, src_base=0, dst_base=0) -> Launch:
    kernel = strided_copy(dst.type.dtype, space, src_strides, dst_strides, src_base, dst_base)
    return Launch(kernel, cfg.grid(size_of(space)), cfg.block, (src, dst))


def _transpose(op: Operation, cfg: LaunchConfig) -> list[Launch]:
    x, out = op.operands[0], op.result
    src = contiguous_strides(x.type.shape)
    perm = op.attrs["perm"]
    space = out.type.shape
    return [_copy(cfg, x, out, space, [src[p] for p in perm], contiguous_strides(space))]


def _broadcast(op: Operation, cfg: LaunchConfig) -> list[Launch]:
    x, out = op.operands[0], op.result
    space = out.type.shape
    strides = broadcast_strides(x.type.shape, space)
    return [_copy(cfg, x, out, space, strides, contiguous_strides(space))]


def _slice(op: Operation, cfg: LaunchConfig) -> list[Launch]:
    x, out = op.operands[0], op.result
    base, steps = slice_geometry(x.type.shape, op.attrs["spec"])
    space = out.type.shape
    return [_copy(cfg, x, out, space, steps, contiguous_strides(space), src_base=base)]


def _unslice(op: Operation, cfg: LaunchConfig) -> list[Launch]:
    """Zeros, then the operand written into the slice."""
    g, out = op.operands[0], op.result
    n = size_of(out.type.shape)
    zeros = Launch(fill(out.type.dtype, n, 0), cfg.grid(n), cfg.block, (out,))
    base, steps = slice_geometry(out.type.shape, op.attrs["spec"])
    space = g.type.shape
    return [zeros, _copy(cfg, g, out, space, contiguous_strides(space), steps, dst_base=base)]


def _pieces(whole, parts, axis: int):
    """(part, flat offset of its first element in whole) for parts side by side on axis."""
    stride = contiguous_strides(whole.type.shape)[axis]
    start = 0
    for part in parts:
        yield part, start * stride
        start += part.type.shape[axis]


def _concat(op: Operation, cfg: LaunchConfig) -> list[Launch]:
    out = op.result
    dst = contiguous_strides(out.type.shape)
    return [
        _copy(cfg, part, out, part.type.shape, contiguous_strides(part.type.shape), dst, 0, at)
        for part, at in _pieces(out, op.operands, op.attrs["axis"])
    ]


def _split_like(op: Operation, cfg: LaunchConfig) -> list[Launch]:
    g = op.operands[0]
    src = contiguous_strides(g.type.shape)
    return [
        _copy(cfg, g, part, part.type.shape, src, contiguous_strides(part.type.shape), at)
        for part, at in _pieces(g, op.results, op.attrs["axis"])
    ]


def _arg_extremum(op: Operation, cfg: LaunchConfig) -> list[Launch]:
    x, out = op.operands[0], op.result
    kernel = arg_extremum(op.name, x.type.dtype, x.type.shape, op.attrs["axis"])
    return [Launch(kernel, cfg.grid(size_of(out.type.shape)), cfg.block, (x, out))]


def _count(op: Operation, cfg: LaunchConfig) -> list[Launch]:
    """The number of elements along `axes`, known once shapes are: a one-element fill."""
    x, out = op.operands[0], op.result
    n = size_of([x.type.shape[a] for a in op.attrs["axes"]])
    return [Launch(fill(out.type.dtype, 1, n), 1, cfg.block, (out,))]


# op name -> launches(op, cfg): the ops whose work is moving (or placing) elements
COPY_LAUNCHES = {
    "transpose": _transpose,
    "broadcast_to": _broadcast,
    "broadcast_like": _broadcast,
    "slice": _slice,
    "unslice": _unslice,
    "concat": _concat,
    "split_like": _split_like,
    "argmax": _arg_extremum,
    "argmin": _arg_extremum,
    "count": _count,
}

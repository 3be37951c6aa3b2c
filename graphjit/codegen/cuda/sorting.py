"""The cuda lowerings of ir/ops/sorting.py: op name -> lowering(low, op).

One thread per row (the elements along the sorted axis), each running the llvm backend's
algorithm: a bottom-up, stable merge sort of (value, position) pairs between two scratch
buffers (a row's slice of each), NaN largest. The merge code is written twice, once per
direction between the buffers, since a kernel cannot rebind which array a name means.
float16/bfloat16 values are sorted as their float32 values (exact) in float32 scratch."""

from __future__ import annotations

from contextlib import contextmanager

from graphjit.codegen.cuda.narrow import load, store
from graphjit.codegen.cuda.source import (
    KernelSource,
    Launch,
    Scratch,
    Writer,
    coordinates,
    header,
    kernel_source,
    offset,
    register_dtype,
)
from graphjit.codegen.layout import contiguous_strides, size_of
from graphjit.ir.core import Operation
from graphjit.ir.types import DType, int64


def _without(items, axis: int) -> list:
    return [d for i, d in enumerate(items) if i != axis]


@contextmanager
def _row_loop(w: Writer, shape, axis: int, bases: dict):
    """A grid-stride loop over the rows along `axis` of `shape`; inside it, each name in
    `bases` is the flat offset of the row's first element in a buffer with those strides
    (each a full stride list; the axis's entry is skipped)."""
    rows = _without(shape, axis)
    with w.block(f"for r in range(cuda.grid(1), {size_of(rows)}, cuda.gridsize(1))"):
        coords = coordinates(w, "r", rows, "c")
        for name, strides in bases.items():
            w.line(f"{name} = {offset(coords, _without(strides, axis))}")
        yield


def _before(dtype: DType, descending: bool) -> str:
    """A format string: whether pair element {a} must come strictly before {c} (NaN is
    the largest float; False < True)."""
    first, second = ("{c}", "{a}") if descending else ("{a}", "{c}")
    if dtype.is_floating:
        return f"({first} < {second} or ({second} != {second} and {first} == {first}))"
    if dtype.is_bool:
        return f"(not {first} and {second})"
    return f"{first} < {second}"


def _merge(w: Writer, src: tuple[str, str], dst: tuple[str, str], n: int, before: str) -> None:
    """Merge runs of `width` pairs in src into runs of 2 * width in dst (the row starts at
    `s` in both)."""
    (sv, sp), (dv, dp) = src, dst
    with w.block(f"for lo in range(0, {n}, 2 * width)"):
        w.line(f"mid = min(lo + width, {n})")
        w.line(f"hi = min(lo + 2 * width, {n})")
        w.line("i = lo")
        w.line("j = mid")
        with w.block("for at in range(lo, hi)"):
            w.line("take_right = i >= mid")
            with w.block("if not take_right and j < hi"):
                w.line("take_right = " + before.format(a=f"{sv}[s + j]", c=f"{sv}[s + i]"))
            with w.block("if take_right"):
                w.line(f"{dv}[s + at] = {sv}[s + j]")
                w.line(f"{dp}[s + at] = {sp}[s + j]")
                w.line("j += 1")
            with w.block("else"):
                w.line(f"{dv}[s + at] = {sv}[s + i]")
                w.line(f"{dp}[s + at] = {sp}[s + i]")
                w.line("i += 1")


def _passes(n: int) -> int:
    return max(0, (n - 1).bit_length())  # ceil(log2 n)


def sort_kernel(dtype: DType, shape, axis: int, k: int, descending: bool) -> KernelSource:
    wide = register_dtype(dtype)  # the scratch's
    params = [("x", dtype), ("values", dtype), ("positions", int64)]
    params += [("va", wide), ("pa", int64), ("vb", wide), ("pb", int64)]
    n, passes = shape[axis], _passes(shape[axis])
    out_shape = [k if i == axis else d for i, d in enumerate(shape)]
    x_strides, out_strides = contiguous_strides(shape), contiguous_strides(out_shape)
    before = _before(dtype, descending)
    w = Writer()
    with w.block(header(params)):
        with _row_loop(w, shape, axis, {"base": x_strides, "out": out_strides}):
            w.line(f"s = r * {n}")
            with w.block(f"for j in range({n})"):
                w.line(f"va[s + j] = {load(f'x[base + j * {x_strides[axis]}]', dtype)}")
                w.line("pa[s + j] = j")
            with w.block(f"for p in range({passes})"):
                w.line("width = 1 << p")
                with w.block("if p % 2 == 0"):
                    _merge(w, ("va", "pa"), ("vb", "pb"), n, before)
                with w.block("else"):
                    _merge(w, ("vb", "pb"), ("va", "pa"), n, before)
            rv, rp = ("va", "pa") if passes % 2 == 0 else ("vb", "pb")
            with w.block(f"for j in range({k})"):
                w.line(f"v = {rv}[s + j]")
                w.line(f"values[out + j * {out_strides[axis]}] = {store('v', dtype)}")
                w.line(f"positions[out + j * {out_strides[axis]}] = {rp}[s + j]")
    order = "descending" if descending else "ascending"
    return kernel_source(w, params, f"sort {order} along axis {axis} of {list(shape)}")


def _sort(low, op: Operation) -> list:
    x, (values, positions) = op.operands[0], op.results
    axis, dtype = op.attrs["axis"], x.type.dtype
    if size_of(values.type.shape) == 0:
        return []
    shape, k = x.type.shape, values.type.shape[axis]
    kernel = sort_kernel(dtype, shape, axis, k, op.attrs["descending"])
    n = size_of(shape)  # every row's pairs, twice: a slice of each scratch buffer per row
    wide = register_dtype(dtype)
    scratch = (Scratch(wide, n), Scratch(int64, n), Scratch(wide, n), Scratch(int64, n))
    rows = size_of(_without(shape, axis))
    args = (x, values, positions, *scratch)
    return low.launch([Launch(kernel, low.cfg.grid(rows), low.cfg.block, args)])


LOWERINGS: dict = {
    "sort": _sort,
}

"""Gather and scatter: gather/take_along_axis, scatter_add (gather's transpose) and segment sums, with
out-of-range indices checked when the op runs (a RuntimeCheckError, never a read out of bounds).

Two pairs of primitives, each the other's transpose, so gradients of any order exist:

- `gather(params, indices) {axis}` (TF1's tf.gather): the result is
  params.shape[:axis] + indices.shape + params.shape[axis + 1:]; `scatter_add(updates,
  indices, like) {axis}` adds those rows back into zeros whose size along `axis` is
  like's (the operand is read for that dimension alone).
- `take_along_axis(x, indices) {axis}` (NumPy's; PyTorch's torch.gather when the index has
  x's shape off the axis): one index per result element; `scatter_add_along_axis(updates,
  indices, like) {axis}` is its transpose (PyTorch's scatter_add into zeros like `like`).

With `wrap_negative` (the default: NumPy's x[idx], which `x[idx]` needs) negative indices
count from the end and those outside [-n, n) are a RuntimeCheckError on every backend;
without it (TF1's tf.gather and embedding_lookup, PyTorch's gather, index_select,
scatter_add and embedding, whose frontend functions set it) every index outside [0, n) is,
negative ones included: counting -1 as the last row would be a silent wrong answer in
code written for those libraries (an id of -1 is often padding there, and refused).

The code generators lower all four with one loop: `geometry(op)` says, for the op's
iteration space, where each element's data, index and indexed row base are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from graphjit.errors import DTypeError, RuntimeCheckError, ShapeError
from graphjit.ir.core import Operation
from graphjit.ir.ops import NONDIFF, REQUIRED, VALUE_SHAPED, OpDef, P, register
from graphjit.ir.types import TensorType, computes_in_float32, int64, shape_str

# ---- the run-time check ------------------------------------------------------------------


def out_of_range_message(axis: int, size: int, index=None, wrap_negative: bool = True) -> str:
    """The RuntimeCheckError's words (the error names the op): the bad index when the
    backend knows it (the interpreter, eager and cuda; llvm knows only that one failed)."""
    which = f"index {index}" if index is not None else "an index"
    lowest = -size if wrap_negative else 0
    return (
        f"{which} is out of range for axis {axis} of size {size} "
        f"(indices must be in [{lowest}, {size}))"
    )


def checked_indices(indices, size: int, axis: int, wrap_negative: bool = True) -> np.ndarray:
    """indices as int64, negative ones counted from the end (with `wrap_negative`); the first
    index (in row-major order) outside [-size, size) (without: [0, size)) is a
    RuntimeCheckError naming it."""
    idx = np.asarray(indices).astype(np.int64)
    bad = (idx < (-size if wrap_negative else 0)) | (idx >= size)
    if bad.any():
        message = out_of_range_message(axis, size, int(idx[bad][0]), wrap_negative)
        raise RuntimeCheckError(message)
    return np.where(idx < 0, idx + size, idx) if wrap_negative else idx


# ---- shape rules -------------------------------------------------------------------------


def _integer_indices(t: TensorType) -> None:
    if t.dtype.name not in ("int32", "int64"):
        raise DTypeError(f"indices must be int32 or int64, got {t.dtype.name}")


def _axis_of(rank: int, axis: int) -> None:
    if not 0 <= axis < rank:
        raise ShapeError(f"axis {axis} is out of range for a rank-{rank} tensor")


def _merged(a, b, what: str):
    """One dimension known from either side (None: unknown); unequal known ones are an error."""
    if a is not None and b is not None and a != b:
        raise ShapeError(what)
    return a if a is not None else b


def _merged_shape(a, b, skip: int, what: str) -> list:
    return [x if i == skip else _merged(x, y, what) for i, (x, y) in enumerate(zip(a, b))]


def _gather_infer(types, attrs):
    params, indices = types
    _integer_indices(indices)
    axis = attrs["axis"]
    _axis_of(params.rank, axis)
    shape = params.shape[:axis] + indices.shape + params.shape[axis + 1 :]
    return [params.with_shape(shape)]


def _scatter_add_infer(types, attrs):
    updates, indices, like = types
    _integer_indices(indices)
    _numeric(updates)
    axis, k = attrs["axis"], indices.rank
    _axis_of(like.rank, axis)
    if updates.rank < axis + k:
        raise ShapeError(
            f"updates {shape_str(updates.shape)} have too few axes for indices "
            f"{shape_str(indices.shape)} at axis {axis}"
        )
    message = (
        f"updates {shape_str(updates.shape)} do not match indices {shape_str(indices.shape)} "
        f"at axis {axis}"
    )
    for u, i in zip(updates.shape[axis : axis + k], indices.shape):
        _merged(u, i, message)
    shape = updates.shape[:axis] + (like.shape[axis],) + updates.shape[axis + k :]
    return [updates.with_shape(shape)]


def _numeric(t: TensorType) -> None:
    if t.dtype.is_bool:
        raise DTypeError("scatter_add needs numeric updates, got bool")


def _along_axis_infer(types, attrs):
    x, indices = types
    _integer_indices(indices)
    axis = attrs["axis"]
    _axis_of(x.rank, axis)
    if x.rank != indices.rank:
        raise ShapeError(
            f"indices {shape_str(indices.shape)} must have the rank of x {shape_str(x.shape)}"
        )
    message = (
        f"indices {shape_str(indices.shape)} must match x {shape_str(x.shape)} off axis {axis}"
    )
    return [x.with_shape(_merged_shape(indices.shape, x.shape, axis, message))]


def _scatter_along_axis_infer(types, attrs):
    updates, indices, like = types
    _integer_indices(indices)
    _numeric(updates)
    axis = attrs["axis"]
    _axis_of(like.rank, axis)
    if not updates.rank == indices.rank == like.rank:
        raise ShapeError(
            f"updates {shape_str(updates.shape)}, indices {shape_str(indices.shape)} and the "
            f"target {shape_str(like.shape)} must have one rank"
        )
    same = f"updates {shape_str(updates.shape)} must match indices {shape_str(indices.shape)}"
    shape = _merged_shape(updates.shape, indices.shape, -1, same)
    off_axis = f"updates {shape_str(updates.shape)} must match {shape_str(like.shape)} off axis"
    shape = _merged_shape(like.shape, shape, axis, off_axis)
    return [updates.with_shape(shape)]


# ---- reference kernels -------------------------------------------------------------------


def _gather(params, indices, axis, wrap_negative):
    idx = checked_indices(indices, params.shape[axis], axis, wrap_negative)
    return np.take(params, idx, axis=axis)


def _rows(a: np.ndarray, axis: int, k: int) -> np.ndarray:
    """a as (outer, rows, inner): axes [axis, axis + k) become the middle one."""
    return a.reshape(math.prod(a.shape[:axis]), -1, math.prod(a.shape[axis + k :]))


def _scatter_add(updates, indices, like, axis, wrap_negative):
    size = like.shape[axis]
    idx = checked_indices(indices, size, axis, wrap_negative).reshape(-1)
    shape = updates.shape[:axis] + (size,) + updates.shape[axis + np.ndim(indices) :]
    out = np.zeros(shape, updates.dtype)
    np.add.at(_rows(out, axis, 1), (slice(None), idx), _rows(updates, axis, np.ndim(indices)))
    return out


def _take_along_axis(x, indices, axis, wrap_negative):
    idx = checked_indices(indices, x.shape[axis], axis, wrap_negative)
    return np.take_along_axis(x, idx, axis=axis)


def _scatter_add_along_axis(updates, indices, like, axis, wrap_negative):
    idx = checked_indices(indices, like.shape[axis], axis, wrap_negative)
    out = np.zeros(like.shape, updates.dtype)
    where = list(np.ogrid[tuple(slice(d) for d in updates.shape)])
    where[axis] = idx
    np.add.at(out, tuple(where), updates)
    return out


# ---- registration ------------------------------------------------------------------------

INDEXED = {"axis": REQUIRED, "wrap_negative": True}


def _same_rule(a: dict) -> dict:
    """The attributes a VJP rule passes on: the transpose checks indices as the op did."""
    return {"axis": a["axis"], "wrap_negative": a["wrap_negative"]}


register(
    OpDef(
        "gather",
        _gather_infer,
        _gather,
        lambda cts, ins, outs, a: [P.scatter_add(cts[0], ins[1], ins[0], **_same_rule(a)), None],
        attrs=INDEXED,
    )
)
register(
    OpDef(
        "scatter_add",
        _scatter_add_infer,
        computes_in_float32(_scatter_add),  # (float16/bfloat16: float32 sums, one rounding)
        lambda cts, ins, outs, a: [P.gather(cts[0], ins[1], **_same_rule(a)), None, None],
        attrs=INDEXED,
        shape_only=(2,),
    )
)
register(
    OpDef(
        "take_along_axis",
        _along_axis_infer,
        _take_along_axis,
        lambda cts, ins, outs, a: [
            P.scatter_add_along_axis(cts[0], ins[1], ins[0], **_same_rule(a)),
            None,
        ],
        attrs=INDEXED,
    )
)
register(
    OpDef(
        "scatter_add_along_axis",
        _scatter_along_axis_infer,
        computes_in_float32(_scatter_add_along_axis),
        lambda cts, ins, outs, a: [P.take_along_axis(cts[0], ins[1], **_same_rule(a)), None, None],
        attrs=INDEXED,
        shape_only=(2,),
    )
)


def _flatnonzero_infer(types, attrs):
    (mask,) = types
    if not mask.dtype.is_bool:
        raise DTypeError(f"flatnonzero takes a boolean mask, got {mask.dtype.name}")
    return [TensorType((None,), int64)]  # (as many as the mask holds True: see VALUE_SHAPED)


# The positions, in the flattened mask, of its True elements (NumPy's flatnonzero): what a
# boolean mask that is a graph tensor selects, so `x[mask]` is a gather at these positions.
register(
    OpDef(
        "flatnonzero",
        _flatnonzero_infer,
        lambda mask: np.flatnonzero(mask).astype(np.int64),
        NONDIFF,
        traits=frozenset({VALUE_SHAPED}),
    )
)

# ---- what the code generators need -------------------------------------------------------

# The ops that add into zeros (the others copy).
SCATTERS = frozenset({"scatter_add", "scatter_add_along_axis"})


@dataclass(frozen=True)
class IndexGeometry:
    """One loop over `space` (static dims) for every op here. At each point, with offsets
    (in elements) `data` = point . data_strides (the gathered result or the scattered
    updates, contiguous), `index` = point . index_strides (into the indices) and `base` =
    point . base_strides (into the indexed tensor with the indexed axis at 0): the element
    read or written is indexed[base + wrap(indices[index]) * axis_stride], where the index
    must lie in [-axis_size, axis_size) (without `wrap_negative`: in [0, axis_size), and
    wrap is the identity).

    The last `inner_axes` axes of the space (a gather's params.shape[axis + 1:]) share one
    index and are contiguous on both sides: a backend may check the index once per row
    of `row_length` elements and copy the row (`rows()`: the loop over the rows)."""

    space: tuple
    data_strides: tuple
    index_strides: tuple
    base_strides: tuple
    axis_stride: int
    axis_size: int
    scatter: bool
    inner_axes: int
    wrap_negative: bool

    @property
    def row_length(self) -> int:
        return math.prod(self.space[len(self.space) - self.inner_axes :])

    def rows(self) -> tuple[tuple, list[tuple]]:
        """The space without the inner axes, and the data, index and base strides on it."""
        n = len(self.space) - self.inner_axes
        strides = [self.data_strides[:n], self.index_strides[:n], self.base_strides[:n]]
        return self.space[:n], strides


def _strides(shape) -> list:
    out, step = [], 1
    for d in reversed(shape):
        out.append(step)
        step *= d
    return out[::-1]


def geometry(op: Operation) -> IndexGeometry:
    """The loop of op (shapes known) as the code generators run it."""
    axis, scatter = op.attrs["axis"], op.name in SCATTERS
    indices = op.operands[1]
    data = op.operands[0] if scatter else op.result
    indexed = op.result if scatter else op.operands[0]
    space = tuple(data.type.shape)
    table = _strides(indexed.type.shape)
    if op.name in ("gather", "scatter_add"):  # space = outer + indices.shape + inner
        k = indices.type.rank
        inner_axes = len(space) - axis - k
        index_strides = [0] * axis + _strides(indices.type.shape) + [0] * inner_axes
        base_strides = table[:axis] + [0] * k + table[axis + 1 :]
    else:  # space = indices.shape = the indexed tensor's shape off the axis
        inner_axes = 0
        index_strides = _strides(space)
        base_strides = [0 if i == axis else s for i, s in enumerate(table)]
    return IndexGeometry(
        space,
        tuple(_strides(space)),
        tuple(index_strides),
        tuple(base_strides),
        table[axis],
        indexed.type.shape[axis],
        scatter,
        inner_axes,
        op.attrs["wrap_negative"],
    )

"""Geometry of tensors over static shapes, shared by both code generators.

Every tensor buffer is C-contiguous, so a buffer is its shape, and reading it in another
shape (a broadcast, a transpose, a slice, a fused kernel's iteration space) is a matter
of element strides. The LLVM backend turns these numbers into loop nests (llvm/loops.py),
the CUDA backend into index arithmetic in generated source (cuda/source.py); the numbers
themselves are the same, so they are computed here, once, in pure Python. Strides and
offsets are in elements, not bytes.

Only `graphjit.ir` and `graphjit.passes` may be imported here: this module sits below both
backends."""

from __future__ import annotations

import math

from graphjit.ir.core import Block, Operation, Value
from graphjit.ir.ops import CONSTANT, REDUCTION
from graphjit.ir.symbolic import is_symbolic, slice_indices


def size_of(shape) -> int:
    """The number of elements of `shape` (1 for a 0-d shape, 0 when any dimension is 0), as
    a Python int (or a SymInt: a size of the run, ir/symbolic.py): it is baked into
    generated code, and must not wrap."""
    return math.prod(d if is_symbolic(d) else int(d) for d in shape)


def nbytes(v: Value) -> int:
    """The bytes of a tensor value of static shape (what a whole-buffer copy moves)."""
    return size_of(v.type.shape) * v.type.dtype.np.itemsize


def contiguous_strides(shape) -> list[int]:
    """Element strides of a C-contiguous array of `shape`: the last axis has stride 1, each
    axis before it the product of the dimensions after it. A dimension of 0 makes the
    strides before it 0, which is harmless: such a buffer has no element to address."""
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return strides[::-1]


def broadcast_strides(shape, space) -> list[int]:
    """Strides over iteration space `space` of an operand of `shape` broadcast to it
    (NumPy rules: shapes align at the right): 0 along the leading axes the operand lacks and
    along its size-1 axes that the space stretches, so every coordinate of the space reads
    the operand's one element there. `shape` must broadcast to `space`."""
    lead = len(space) - len(shape)
    own = contiguous_strides(shape)
    return [0] * lead + [
        0 if d == 1 and s != 1 else st for d, s, st in zip(shape, space[lead:], own, strict=True)
    ]


def coalesce(space, strides_list) -> tuple[list[int], list[list[int]]]:
    """The same walk over `space` with fewer axes: returns (space', strides') visiting the
    same offsets of every buffer in the same (row-major) order.

    Size-1 axes are dropped first: their only coordinate is 0, so their strides (which may
    be anything: a broadcast 0, a contiguous stride, a padded keepdims axis) say nothing and
    must not stop the axes around them from merging. A space whose every axis has size 1
    therefore becomes the 0-d space `[]`, exactly like a 0-d space: one element at offset 0.
    (Both backends handle a 0-d space: the LLVM loop nest emits no loop, the CUDA index
    arithmetic no coordinate; the LLVM copy once kept a 1-long axis here and the CUDA copy
    did not, so one element was a loop in one backend and none in the other.)

    Then adjacent axes k, k+1 merge when every buffer steps along axis k exactly as far as
    a whole sweep of axis k+1 (stride[k] == stride[k+1] * space[k+1]): same-shaped
    contiguous buffers become one flat loop, which vectorises best and needs the fewest
    divisions per element on a GPU. Axes of size 0 are kept (the walk is empty either
    way)."""
    keep = [k for k, d in enumerate(space) if d != 1]
    space = [space[k] for k in keep]
    strides_list = [[s[k] for k in keep] for s in strides_list]
    for k in range(len(space) - 2, -1, -1):
        if all(s[k] == s[k + 1] * space[k + 1] for s in strides_list):
            space[k : k + 2] = [space[k] * space[k + 1]]
            for s in strides_list:
                s[k : k + 2] = [s[k + 1]]
    return space, strides_list


def slice_geometry(shape, spec) -> tuple[int, list[int]]:
    """A basic slice of a C-contiguous array of `shape` as a strided view of its buffer:
    (flat offset of the slice's first element, element step along each axis). `spec` holds
    one (start, stop, step) triple per leading axis (None for a default), resolved the way
    Python resolves a slice (`slice.indices`: negative indices count from the end, clipped
    to the axis); axes after the spec are taken whole. A negative step gives a negative
    stride, walking back from the first element. The slice's own shape is its result
    type's; a copy walks that shape with these steps."""
    strides = contiguous_strides(shape)
    base, steps = 0, list(strides)
    for axis, (start, stop, step) in enumerate(spec):
        first, _, stride, _ = slice_indices(start, stop, step, shape[axis])
        base += first * strides[axis]
        steps[axis] = stride * strides[axis]
    return base, steps


def iteration_space(body: Block) -> tuple:
    """The shape a fused region's kernel loops over. The fusion pass only groups ops whose
    iteration spaces agree, so the first op that is not a constant says it: for a reduction
    its operand's shape (the kernel visits every element it folds), for any other op its
    result's. A region of constants alone iterates over the shape it yields."""
    for op in body.ops[:-1]:
        if op.opdef.has(REDUCTION):
            return op.operands[0].type.shape
        if not op.opdef.has(CONSTANT):
            return op.result.type.shape
    return body.terminator.operands[0].type.shape


def keepdims_shape(reduction: Operation, space) -> tuple:
    """The shape of a fused reduction's result aligned to the iteration space's rank, its
    reduced axes kept as 1: the same memory layout as the result, so its broadcast strides
    over `space` map every element of the space to the output it folds into. `sum_to`'s
    result is already its operand's shape with reduced axes as 1, lacking only the leading
    axes it sums away."""
    if reduction.name == "sum_to":
        shape = reduction.result.type.shape
        return (1,) * (len(space) - len(shape)) + tuple(shape)
    axes = reduction.attrs["axes"]
    return tuple(1 if i in axes else d for i, d in enumerate(space))

"""Gather and scatter (graphjit/ir/ops/indexing.py) in upstream MLIR.

A gather is a `linalg.generic` over its result that reads the indexed tensor with
`tensor.extract` at the wrapped index. A scatter-add has no upstream form that writes
where an index points (`tensor.scatter` cannot add), so it is the dense sum it equals:
out[.., r, ..] = the sum over index positions j with index[j] == r of updates[.., j, ..],
a reduction over the index positions (O(rows x indices) work, every output in parallel;
the updates are added in index order, as the interpreter adds them).

Indices outside [-n, n) are a RuntimeCheckError on every backend: here one reduction
checks them all and a `cf.assert` on the host fails the call (writer.Writer.check),
before the result is returned; a gather also clamps its index so that it never reads
outside the tensor while the check is pending. Indices that are constants are checked
when the module is written."""

from __future__ import annotations

from graphjit.ir.ops.indexing import out_of_range_message
from graphjit.ir.patterns import constant_value
from graphjit.mlir.emit_checks import check_all
from graphjit.mlir.structured import (
    affine_map,
    as_index,
    generic,
    identity_map,
    loop_indices,
    operands,
)
from graphjit.mlir.writer import element_type, tensor_type

# ---- indices: the check, wrapping, clamping ---------------------------------------------


def check_indices(w, op, indices, t, size, axis: int) -> None:
    """Fail the call unless every index lies in [-size, size) (without the op's
    `wrap_negative`: [0, size)); skipped for constant indices that do."""
    wraps = op.attrs["wrap_negative"]
    constant = constant_value(op.operands[1])
    if constant is not None and isinstance(size, int):
        if ((constant >= (-size if wraps else 0)) & (constant < size)).all():
            return
    ty = element_type(t.dtype)
    bound = w.op(f"arith.index_cast {as_index(w, size)} : index to {ty}")
    zero = w.scalar(0, t.dtype)
    low = w.op(f"arith.subi {zero}, {bound} : {ty}") if wraps else zero

    def inside(w, s):
        above = w.op(f"arith.cmpi sge, {s[0]}, {low} : {ty}")
        below = w.op(f"arith.cmpi slt, {s[0]}, {bound} : {ty}")
        return w.op(f"arith.andi {above}, {below} : i1")

    check_all(w, [(indices, t)], inside, _message(axis, size, wraps), op)


def _message(axis: int, size, wraps: bool) -> str:
    if isinstance(size, int):
        return out_of_range_message(axis, size, wrap_negative=wraps)
    lowest = "-n" if wraps else "0"
    return (
        f"an index is out of range for axis {axis} (indices must be in [{lowest}, n), n its size)"
    )


def wrapped(w, index: str, dtype, size, wraps: bool) -> str:
    """An index scalar as an `index`, negative ones counted from the end (where the op
    `wraps` them: otherwise the check refused them)."""
    i = w.op(f"arith.index_cast {index} : {element_type(dtype)} to index")
    if not wraps:
        return i
    n = as_index(w, size)
    negative = w.op(f"arith.cmpi slt, {i}, {w.index(0)} : index")
    from_end = w.op(f"arith.addi {i}, {n} : index")
    return w.op(f"arith.select {negative}, {from_end}, {i} : index")


def clamped(w, index: str, dtype, size, wraps: bool) -> str:
    """wrapped(), then kept inside [0, size): a bad index (which fails the call) reads
    inside the tensor meanwhile."""
    i = w.op(f"arith.maxsi {wrapped(w, index, dtype, size, wraps)}, {w.index(0)} : index")
    last = w.op(f"arith.subi {as_index(w, size)}, {w.index(1)} : index")
    return w.op(f"arith.minsi {i}, {last} : index")


# ---- gathers ---------------------------------------------------------------------------------


def emit_gather(w, op):
    """params.shape[:axis] + indices.shape + params.shape[axis + 1:], each element read at
    the index its position along the index axes gives."""
    (params, tp), (indices, ti) = operands(w, op)
    axis, k, out = op.attrs["axis"], len(ti.shape), op.result.type
    size = w.dim(params, tp, axis)
    check_indices(w, op, indices, ti, size, axis)
    dims = (
        [w.dim(params, tp, i) for i in range(axis)]
        + [w.dim(indices, ti, i) for i in range(k)]
        + [w.dim(params, tp, i) for i in range(axis + 1, len(tp.shape))]
    )
    if size == 0:  # nothing to read: every index fails the check
        return [w.filled(out, dims, 0)]
    rank = len(out.shape)
    index_map = affine_map(rank, [f"d{axis + j}" for j in range(k)])

    def body(w, s):
        loops = loop_indices(w, rank)
        index = clamped(w, s[0], ti.dtype, size, op.attrs["wrap_negative"])
        at = loops[:axis] + [index] + loops[axis + k :]
        return [w.op(f"tensor.extract {params}[{', '.join(at)}] : {tensor_type(tp)}")]

    init = w.empty(out, dims)
    maps = [index_map, identity_map(rank)]
    return generic(w, [(indices, ti)], [(init, out)], maps, ["parallel"] * rank, body)


def emit_take_along_axis(w, op):
    """One index per result element: x read at the result's position, the index along
    `axis`."""
    (x, tx), (indices, ti) = operands(w, op)
    axis, out = op.attrs["axis"], op.result.type
    size = w.dim(x, tx, axis)
    check_indices(w, op, indices, ti, size, axis)
    rank = len(out.shape)
    dims = [w.dim(indices, ti, i) for i in range(rank)]
    if size == 0:  # nothing to read: every index fails the check
        return [w.filled(out, dims, 0)]

    def body(w, s):
        at = loop_indices(w, rank)
        at[axis] = clamped(w, s[0], ti.dtype, size, op.attrs["wrap_negative"])
        return [w.op(f"tensor.extract {x}[{', '.join(at)}] : {tensor_type(tx)}")]

    init = w.empty(out, dims)
    maps = [identity_map(rank)] * 2
    return generic(w, [(indices, ti)], [(init, out)], maps, ["parallel"] * rank, body)


# ---- scatters: the dense sums they equal -----------------------------------------------------


def skipped_addend(w, dtype) -> str:
    """What a position that does not match adds: -0.0 for floats (x + -0.0 is x for
    every x, -0.0 included), 0 for integers."""
    return w.scalar(-0.0 if dtype.is_floating else 0, dtype)


def add_where_index_matches(w, op, update, index, accumulator, index_dtype, size, dtype):
    """accumulator + update when the wrapped index is the output's position on op's
    axis."""
    here = w.op(f"linalg.index {op.attrs['axis']} : index")
    at = wrapped(w, index, index_dtype, size, op.attrs["wrap_negative"])
    match = w.op(f"arith.cmpi eq, {at}, {here} : index")
    ty = element_type(dtype)
    addend = w.op(f"arith.select {match}, {update}, {skipped_addend(w, dtype)} : {ty}")
    add = "arith.addf" if dtype.is_floating else "arith.addi"
    return w.op(f"{add} {accumulator}, {addend} : {ty}")


def emit_scatter_add(w, op):
    """Zeros shaped like the updates with the index axes replaced by like's `axis`, each
    row the sum of the update rows whose index points at it."""
    (updates, tu), (indices, ti), (like, tl) = operands(w, op)
    axis, k, out = op.attrs["axis"], len(ti.shape), op.result.type
    size = w.dim(like, tl, axis)
    check_indices(w, op, indices, ti, size, axis)
    rank = len(out.shape)
    after = range(axis + k, len(tu.shape))
    dims = [w.dim(updates, tu, i) for i in range(axis)] + [size]
    dims += [w.dim(updates, tu, i) for i in after]
    positions = [f"d{rank + j}" for j in range(k)]  # the reduction loops over the indices
    outer = [f"d{i}" for i in range(axis)]
    inner = [f"d{i}" for i in range(axis + 1, rank)]
    maps = [
        affine_map(rank + k, outer + positions + inner),
        affine_map(rank + k, positions),
        affine_map(rank + k, [f"d{i}" for i in range(rank)]),
    ]

    def body(w, s):
        return [add_where_index_matches(w, op, s[0], s[1], s[2], ti.dtype, size, out.dtype)]

    init = w.filled(out, dims, 0)
    iterators = ["parallel"] * rank + ["reduction"] * k
    inputs = [(updates, tu), (indices, ti)]
    return generic(w, inputs, [(init, out)], maps, iterators, body)


def emit_scatter_add_along_axis(w, op):
    """Zeros like `like`; update p added at p with its axis coordinate replaced by its
    index (PyTorch's scatter_add): a sum over the positions along `axis`."""
    (updates, tu), (indices, ti), (like, tl) = operands(w, op)
    axis, out = op.attrs["axis"], op.result.type
    size = w.dim(like, tl, axis)
    check_indices(w, op, indices, ti, size, axis)
    rank = len(out.shape)
    dims = [w.dim(like, tl, i) for i in range(rank)]
    along = [f"d{rank}" if i == axis else f"d{i}" for i in range(rank)]
    maps = [affine_map(rank + 1, along)] * 2 + [
        affine_map(rank + 1, [f"d{i}" for i in range(rank)])
    ]

    def body(w, s):
        return [add_where_index_matches(w, op, s[0], s[1], s[2], ti.dtype, size, out.dtype)]

    init = w.filled(out, dims, 0)
    iterators = ["parallel"] * rank + ["reduction"]
    inputs = [(updates, tu), (indices, ti)]
    return generic(w, inputs, [(init, out)], maps, iterators, body)


EMITTERS: dict = {
    "gather": emit_gather,
    "take_along_axis": emit_take_along_axis,
    "scatter_add": emit_scatter_add,
    "scatter_add_along_axis": emit_scatter_add_along_axis,
}

"""Windows with run-time starts (graphjit/ir/ops/dynamic_slice.py) in upstream MLIR:
`tensor.extract_slice` / `tensor.insert_slice` with SSA offsets.

Each start is read on the host (`tensor.extract` of its 0-d tensor) and resolved as
`resolve_start` defines it: wrapped from the end on the `wrap` axes, then in mode "check"
a `cf.assert` that it lies in [0, dim - size] (the RuntimeCheckError of the other
backends), and in both modes clamped into that range, so the window always lies inside
the operand."""

from __future__ import annotations

from graphjit.ir.ops.dynamic_slice import FIRST_START, out_of_range_message
from graphjit.mlir.emit_checks import check_scalar
from graphjit.mlir.structured import as_index, operands
from graphjit.mlir.writer import element_type, tensor_type


def resolved_start(w, op, start, t, axis: int, dim, size) -> str:
    """The window's first index along `axis` (an SSA index): `dim` and `size` are ints
    or SSA indices."""
    value = w.op(f"tensor.extract {start}[] : {tensor_type(t)}")
    i = w.op(f"arith.index_cast {value} : {element_type(t.dtype)} to index")
    wraps = axis in op.attrs["wrap"]
    if wraps:
        negative = w.op(f"arith.cmpi slt, {i}, {w.index(0)} : index")
        from_end = w.op(f"arith.addi {i}, {as_index(w, dim)} : index")
        i = w.op(f"arith.select {negative}, {from_end}, {i} : index")
    last = w.op(f"arith.subi {as_index(w, dim)}, {as_index(w, size)} : index")
    if op.attrs["mode"] == "check":
        above = w.op(f"arith.cmpi sge, {i}, {w.index(0)} : index")
        below = w.op(f"arith.cmpi sle, {i}, {last} : index")
        inside = w.op(f"arith.andi {above}, {below} : i1")
        check_scalar(w, inside, _message(axis, size, dim, wraps), op)
    i = w.op(f"arith.maxsi {i}, {w.index(0)} : index")
    return w.op(f"arith.minsi {i}, {last} : index")


def _message(axis: int, size, dim, wraps: bool) -> str:
    if isinstance(size, int) and isinstance(dim, int):
        return out_of_range_message(axis, size, dim, wraps)
    return f"slice start out of range on axis {axis}: the window does not fit the dimension"


def window(w, op, x, tx, sizes: list) -> tuple[list, list]:
    """(offsets, sizes) of the window over every axis of x: `sizes` gives the extent on
    each axis that has a start (ints or SSA indices); the other axes are taken whole."""
    starts = operands(w, op)[FIRST_START[op.name] :]
    dims = [w.dim(x, tx, axis) for axis in range(len(tx.shape))]
    offsets = [
        resolved_start(w, op, start, t, axis, dims[axis], sizes[axis])
        for axis, (start, t) in enumerate(starts)
    ]
    return offsets + [0] * (len(dims) - len(offsets)), list(sizes) + dims[len(sizes) :]


def slice_attrs(offsets: list, sizes: list) -> str:
    """`[offsets] [sizes] [strides]` of a unit-stride slice, each entry an int or SSA."""
    return (
        f"[{', '.join(map(str, offsets))}] [{', '.join(map(str, sizes))}] "
        f"[{', '.join('1' for _ in sizes)}]"
    )


def emit_dynamic_slice(w, op):
    x, tx = operands(w, op)[0]
    sizes = [
        w.dim(x, tx, axis) if size is None else int(size)
        for axis, size in enumerate(op.attrs["sizes"])
    ]
    offsets, sizes = window(w, op, x, tx, sizes)
    return [_extract(w, x, tx, offsets, sizes, op.result.type)]


def emit_dynamic_slice_like(w, op):
    """A window shaped like the second operand (read for its shape alone)."""
    (x, tx), (ref, tref) = operands(w, op)[:2]
    n_starts = len(op.operands) - FIRST_START[op.name]
    offsets, sizes = window(w, op, x, tx, [w.dim(ref, tref, a) for a in range(n_starts)])
    return [_extract(w, x, tx, offsets, sizes, op.result.type)]


def _extract(w, x, tx, offsets, sizes, out) -> str:
    return w.op(
        f"tensor.extract_slice {x}{slice_attrs(offsets, sizes)} : {tensor_type(tx)} to "
        f"{tensor_type(out)}"
    )


def emit_dynamic_update_slice(w, op):
    """x with the window replaced by the update."""
    (x, tx), (update, tu) = operands(w, op)[:2]
    n_starts = len(op.operands) - FIRST_START[op.name]
    offsets, sizes = window(w, op, x, tx, [w.dim(update, tu, a) for a in range(n_starts)])
    sizes = [w.dim(update, tu, a) for a in range(len(tu.shape))]
    placed = w.op(
        f"tensor.insert_slice {update} into {x}{slice_attrs(offsets, sizes)} : "
        f"{tensor_type(tu)} into {tensor_type(tx)}"
    )
    return [w.cast(placed, tx, op.result.type)]


EMITTERS: dict = {
    "dynamic_slice": emit_dynamic_slice,
    "dynamic_slice_like": emit_dynamic_slice_like,
    "dynamic_update_slice": emit_dynamic_update_slice,
}

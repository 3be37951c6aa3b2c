"""Sorting along an axis: sort (values and the stable permutation), and top-k.

`sort(x) {axis, descending, k}` has two results: the values in order and the int64
positions along `axis` they came from. It is stable in both directions, as NumPy's
`argsort(kind="stable")` and PyTorch's `sort(stable=True)`: equal elements keep their
order, descending too (so descending is not ascending reversed). NaN sorts as the largest
value, as in both libraries: last ascending, first descending. `k` keeps the first k
positions of the order (top-k and kth-value read only those); None keeps them all.

Its gradient sends each value's cotangent back to the position it came from with
indexing.py's `scatter_add_along_axis`, whose VJP is `take_along_axis` and back, so sort
differentiates to any order.
"""

from __future__ import annotations

import numpy as np

from graphjit.errors import ShapeError
from graphjit.ir.ops import OpDef, P, register, require
from graphjit.ir.types import TensorType, int64


def _check_axis(rank: int, axis: int) -> None:
    require(0 <= axis < rank, f"axis {axis} is out of range for rank {rank}")


def _sort_infer(types, attrs):
    (x,) = types
    axis, k = attrs["axis"], attrs["k"]
    _check_axis(x.rank, axis)
    n = x.shape[axis]
    if k is not None:
        require(k >= 0, f"k must be non-negative, got {k}")
        if n is not None and k > n:  # (checked again once a fed shape is known)
            raise ShapeError(f"k = {k} is out of range for an axis of {n} elements")
    shape = tuple(x.shape) if k is None else x.shape[:axis] + (k,) + x.shape[axis + 1 :]
    return [TensorType(shape, x.dtype), TensorType(shape, int64)]


def stable_order(x: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """The stable sorting permutation along `axis`, NaN largest. Descending: the ascending
    order of x reversed, read backwards, so that equal elements keep their order and NaN
    (last ascending) comes first, as PyTorch's stable descending sort gives."""
    if not descending:
        return np.argsort(x, axis=axis, kind="stable")
    flipped = np.flip(np.argsort(np.flip(x, axis), axis=axis, kind="stable"), axis)
    return x.shape[axis] - 1 - flipped


def _sort_kernel(x, axis, descending, k):
    order = stable_order(x, axis, descending)
    if k is not None:
        order = np.take(order, np.arange(k), axis=axis)
    return np.take_along_axis(x, order, axis), order.astype(np.int64)


def _sort_vjp(cts, ins, outs, attrs):
    values_ct = cts[0]  # (the indices are integers: they carry no cotangent)
    if values_ct is None:
        return [None]
    return [P.scatter_add_along_axis(values_ct, outs[1], ins[0], axis=attrs["axis"])]


register(
    OpDef(
        "sort",
        _sort_infer,
        _sort_kernel,
        _sort_vjp,
        attrs={"axis": 0, "descending": False, "k": None},
    )
)

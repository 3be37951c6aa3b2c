"""Scans along an axis: cumsum (and its transpose, a reversed cumsum)."""

from __future__ import annotations

import numpy as np

from graphjit.errors import DTypeError, ShapeError
from graphjit.ir.ops import REQUIRED, OpDef, P, register
from graphjit.ir.types import TensorType


def _cumsum_infer(types, attrs):
    (x,) = types
    if x.dtype.kind not in "fiu":  # (the frontend sums booleans as int64)
        raise DTypeError(f"cumsum needs numeric operands, got {x.dtype.name}")
    if not 0 <= attrs["axis"] < len(x.shape):
        raise ShapeError(f"axis {attrs['axis']} is out of range for a rank-{len(x.shape)} tensor")
    return [TensorType(x.shape, x.dtype)]


def cumsum_kernel(x, axis, reverse):
    """Running sums along `axis` (from its end when `reverse`), accumulated in x's dtype
    one element after another, as np.cumsum does (so every backend matches bit for bit)."""
    if reverse:
        return np.flip(np.cumsum(np.flip(x, axis), axis, dtype=x.dtype), axis)
    return np.cumsum(x, axis, dtype=x.dtype)


def _cumsum_vjp(cts, ins, outs, attrs):
    """Each input element reaches every later output (earlier for reverse): its cotangent
    sums the output cotangents from there on, a cumsum in the other direction."""
    return [P.cumsum(cts[0], axis=attrs["axis"], reverse=not attrs["reverse"])]


register(
    OpDef(
        "cumsum",
        _cumsum_infer,
        cumsum_kernel,
        _cumsum_vjp,
        attrs={"axis": REQUIRED, "reverse": False},
    )
)

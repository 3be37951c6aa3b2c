"""Reductions over `axes` (a sorted tuple of non-negative axes), with `keepdims`."""

from __future__ import annotations

import math

import numpy as np

from graphjit.errors import DTypeError, ShapeError
from graphjit.ir.core import Value
from graphjit.ir.ops import NONDIFF, REDUCTION, OpDef, P, register, vjp_reading
from graphjit.ir.ops.elementwise import known_shape
from graphjit.ir.types import BY_NP, TensorType, computes_in_float32, int64, np_kind


def reduced_shape(shape, axes, keepdims) -> tuple:
    for a in axes:
        if not 0 <= a < len(shape):
            raise ShapeError(f"axis {a} is out of range for rank {len(shape)}")
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _reduce_infer(types, attrs):
    (x,) = types
    if x.dtype.is_bool:
        raise DTypeError("cannot reduce a boolean tensor; cast it first")
    return [TensorType(reduced_shape(x.shape, attrs["axes"], attrs["keepdims"]), x.dtype)]


def _no_empty_axis(name: str, shape, axes) -> None:
    """max/min/argmax over an axis of length 0 have no value (NumPy raises, even when the
    result is empty). Checked in the shape rule, so every backend and eager mode raise
    the same ShapeError once the length is known (at specialisation for fed shapes)."""
    if any(shape[a] == 0 for a in axes if 0 <= a < len(shape)):
        raise ShapeError(f"{name} of an empty axis has no value (zero-size operand)")


def _extremum_infer(name: str):
    def infer(types, attrs):
        _no_empty_axis(name, types[0].shape, attrs["axes"])
        return _reduce_infer(types, attrs)

    return infer


def expand_back(g, x, attrs):
    """Broadcast a reduction's cotangent back to the operand's shape. (A 0-d cotangent, of
    a reduction over every axis, broadcasts as it is: one op fewer in every loss's
    backward.)"""
    if not attrs["keepdims"] and attrs["axes"] and known_shape(g) != ():
        g = P.expand_dims(g, axes=attrs["axes"])
    return P.broadcast_like(g, x)


def _sum_vjp(cts, ins, outs, attrs):
    return [expand_back(cts[0], ins[0], attrs)]


def _extremum_vjp(cts, ins, outs, attrs):
    """Split the cotangent evenly between the elements that attain the extremum."""
    x = ins[0]
    hit = P.cast(P.equal(x, expand_back(outs[0], x, attrs)), dtype=x.dtype.name)
    count = P.reduce_sum(hit, axes=attrs["axes"], keepdims=True)
    return [P.mul(expand_back(cts[0], x, attrs), P.div(hit, P.broadcast_like(count, x)))]


AXES = {"axes": (), "keepdims": False}


# What a fold over no elements gives (the start of every backend's accumulation): +0.0 for
# sums, as NumPy's add.reduce starts (so a sum of -0.0s is +0.0 there, and on every backend:
# the CUDA code generator started from -0.0 until the identity moved here), and the far end
# of the dtype's range for max and min.
def sum_identity(dtype: np.dtype):
    return dtype.type(0)


def prod_identity(dtype: np.dtype):
    return dtype.type(1)


def _extremum_identity(sign: int):
    def identity(dtype: np.dtype):
        if np_kind(dtype) == "f":
            return dtype.type(sign * np.inf)
        info = np.iinfo(dtype)
        return dtype.type(info.min if sign < 0 else info.max)

    return identity


def _reducer(np_fn):
    """float16/bfloat16 accumulate in float32 and round once at the end, as PyTorch does.
    `np_fn` is the ufunc's reduce (what np.sum, np.max, ... call, without their ~1 us of
    Python: every eager sum and the backward of every broadcast run this)."""
    return computes_in_float32(
        lambda x, axes, keepdims: _as_array_of(np_fn(x, axis=axes, keepdims=keepdims), x.dtype)
    )


def _as_array_of(out, dtype: np.dtype) -> np.ndarray:
    """A reduction's result (a NumPy scalar where every axis went) as an array of `dtype`
    (NumPy sums small integers as int64)."""
    out = np.asarray(out)
    return out if out.dtype is dtype else out.astype(dtype)


REDUCES = frozenset({REDUCTION})
register(
    OpDef(
        "reduce_sum",
        _reduce_infer,
        _reducer(np.add.reduce),
        vjp_reading(_sum_vjp, outputs=False),
        attrs=AXES,
        traits=REDUCES,
        identity=sum_identity,
    )
)


def _prod_vjp(cts, ins, outs, attrs):
    """Each element's cotangent is g times the product of the other elements. Dividing the
    product by the element would fail at zeros, so the zeros along the axes are counted:
    with none, the product divided by the element; with one, the product of the nonzero
    elements for the zero and 0 for the rest; with more, 0 everywhere. Built from
    primitives, so it differentiates again (exactly where no element is zero: at a zero,
    the rule's branches are constant in the other elements)."""
    x, axes = ins[0], attrs["axes"]
    is_zero = P.equal(x, 0)
    safe = P.select(is_zero, 1, x)
    nonzero_product = P.broadcast_like(P.reduce_prod(safe, axes=axes, keepdims=True), x)
    zeros = P.broadcast_like(
        P.reduce_sum(P.cast(is_zero, dtype=x.dtype.name), axes=axes, keepdims=True), x
    )
    others = P.select(
        is_zero,
        P.select(P.equal(zeros, 1), nonzero_product, 0),
        P.select(P.equal(zeros, 0), P.div(nonzero_product, safe), 0),
    )
    return [P.mul(expand_back(cts[0], x, attrs), others)]


register(
    OpDef(
        "reduce_prod",
        _reduce_infer,
        _reducer(np.multiply.reduce),
        _prod_vjp,
        attrs=AXES,
        traits=REDUCES,
        identity=prod_identity,
    )
)
for _name, _np_fn, _sign in (
    ("reduce_max", np.maximum.reduce, -1),
    ("reduce_min", np.minimum.reduce, 1),
):
    register(
        OpDef(
            _name,
            _extremum_infer(_name),
            _reducer(_np_fn),
            _extremum_vjp,
            attrs=AXES,
            traits=REDUCES,
            identity=_extremum_identity(_sign),
        )
    )


def _arg_extremum_infer(name: str):
    def infer(types, attrs):
        (x,) = types
        _no_empty_axis(name, x.shape, (attrs["axis"],))
        return [TensorType(reduced_shape(x.shape, (attrs["axis"],), attrs["keepdims"]), int64)]

    return infer


def _arg_extremum_kernel(np_fn):
    return lambda x, axis, keepdims: np_fn(x, axis=axis, keepdims=keepdims).astype(np.int64)


# The index of the first extremum along `axis` (the first NaN, if any, as in NumPy).
for _name, _np_fn in (("argmax", np.argmax), ("argmin", np.argmin)):
    register(
        OpDef(
            _name,
            _arg_extremum_infer(_name),
            _arg_extremum_kernel(_np_fn),
            NONDIFF,
            attrs={"axis": 0, "keepdims": False},
        )
    )


def _count_infer(types, attrs):
    (x,) = types
    reduced_shape(x.shape, attrs["axes"], False)
    return [TensorType((), x.dtype)]


def _count_kernel(x, axes):
    return np.asarray(np.prod([x.shape[a] for a in axes], dtype=np.int64), dtype=x.dtype)


# The number of elements along `axes` as a scalar of x's dtype: `mean` is sum / count, and
# the count is only known once the Session has specialised unknown dimensions.
register(OpDef("count", _count_infer, _count_kernel, NONDIFF, attrs={"axes": ()}, shape_only=(0,)))


# `mean` as one op where it was two (reduce_sum, then div by the count): eager mode runs and
# records one op for every loss's mean instead of two (~2 us each forward, ~5 us each in
# backward on small tensors; PyTorch has mean and MeanBackward). A graph holds it only
# until a program is built: `decompose` gives back the sum, count and division that `mean`
# bound before, in the same order, so every backend computes what it did; the kernel is
# those operations in NumPy (the count rounded to x's dtype, as the count op gives it).
def _mean_infer(types, attrs):
    _floating_operand(types[0].dtype)
    return _reduce_infer(types, attrs)


def _floating_operand(dtype) -> None:
    """(`mean` casts integers to float64 first; the op's division would truncate them)"""
    if not dtype.is_floating:
        raise DTypeError(f"reduce_mean needs a floating-point operand, got {dtype.name}")


def _mean_kernel(x, axes, keepdims):
    if x.dtype.kind != "f":  # (eager runs no shape rule: the same error as a graph's)
        _floating_operand(BY_NP[x.dtype])
    total = np.add.reduce(x, axis=axes, keepdims=keepdims)
    count = x.dtype.type(math.prod([x.shape[a] for a in axes]))
    return _as_array_of(np.true_divide(total, count), x.dtype)


def _count_of(x, axes):
    """The number of elements along `axes`: a Python number for an eager tensor (its shape
    is known; a number beside one tensor is eager's short path), else the count op."""
    if type(x) is not Value:
        return math.prod([x.shape[a] for a in axes])
    return P.count(x, axes=axes)


def _mean_ops(x, attrs):
    total = P.reduce_sum(x, axes=attrs["axes"], keepdims=attrs["keepdims"])
    return [P.div(total, P.count(x, axes=attrs["axes"]))]


def _mean_vjp(cts, ins, outs, attrs):
    """The division's cotangent, then the sum's: the ops the two rules wrote."""
    x = ins[0]
    return [expand_back(P.div(cts[0], _count_of(x, attrs["axes"])), x, attrs)]


register(
    OpDef(
        "reduce_mean",
        _mean_infer,
        computes_in_float32(_mean_kernel),
        vjp_reading(_mean_vjp, outputs=False),
        attrs=AXES,
        decompose=lambda op: _mean_ops(op.operands[0], op.attrs),
    )
)

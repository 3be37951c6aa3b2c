"""Matrix multiplication, batched like np.matmul (rank >= 2; the frontend handles rank 1).

`transpose_a` / `transpose_b` (as in tf.matmul) multiply by an operand's last two axes
swapped without moving any data: BLAS reads the operand transposed. The VJP uses them for
the cotangents (g @ bᵀ, aᵀ @ g), and canonicalize folds an explicit swap of the last two
axes into them, so no backward pass copies a weight matrix just to transpose it.

`gemm(a, b, c)` is BLAS's own form, c + alpha·op(a)·op(b): the gemm pass makes it from a
matmul whose only use is to be scaled and added to a tensor of its type, so that an SGD
step `w - lr * (xᵀ @ g)` is one BLAS call accumulating into w's storage."""

from __future__ import annotations

import numpy as np

from graphjit.errors import DTypeError, ShapeError
from graphjit.ir.ops import OpDef, P, register, wants_cotangent
from graphjit.ir.ops.elementwise import _same_dtype, broadcast_shapes, unbroadcast
from graphjit.ir.types import TensorType, shape_str


def matrix_dims(shape, transposed: bool) -> tuple:
    """(rows, columns) of the matrices in `shape` as the product sees them."""
    rows, cols = shape[-2:]
    return (cols, rows) if transposed else (rows, cols)


def _matmul_infer(types, attrs):
    a, b = types
    _same_dtype(types)
    if a.dtype.is_bool:
        raise ShapeError("matmul of boolean tensors; cast them first")
    if a.rank < 2 or b.rank < 2:
        raise ShapeError(f"matmul needs rank >= 2, got {shape_str(a.shape)} @ {shape_str(b.shape)}")
    m, k1 = matrix_dims(a.shape, attrs["transpose_a"])
    k2, n = matrix_dims(b.shape, attrs["transpose_b"])
    if k1 is not None and k2 is not None and k1 != k2:
        raise ShapeError(
            f"matmul inner dimensions differ: {shape_str(a.shape)} @ {shape_str(b.shape)}"
            + _flags(attrs)
        )
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return [TensorType(batch + (m, n), a.dtype)]


def _flags(attrs) -> str:
    flags = [name for name in ("transpose_a", "transpose_b") if attrs[name]]
    return f" ({', '.join(flags)})" if flags else ""


def swap_last(x):
    return np.swapaxes(x, -1, -2)


def _matmul_kernel(a, b, transpose_a=False, transpose_b=False):
    return np.matmul(swap_last(a) if transpose_a else a, swap_last(b) if transpose_b else b)


def _matmul_vjp(cts, ins, outs, attrs):
    """For C = op(A) op(B), op a transpose where flagged: dop(A) = g op(B)ᵀ and
    dop(B) = op(A)ᵀ g, each written as one matmul with flags (no transposes)."""
    g, (a, b) = cts[0], ins
    ta, tb = attrs["transpose_a"], attrs["transpose_b"]
    da = db = None
    if wants_cotangent(a):
        if ta:  # dA = (g op(B)ᵀ)ᵀ = op(B) gᵀ
            da = P.matmul(b, g, transpose_a=tb, transpose_b=True)
        else:
            da = P.matmul(g, b, transpose_b=not tb)
        da = unbroadcast(da, a)
    if wants_cotangent(b):
        if tb:  # dB = (op(A)ᵀ g)ᵀ = gᵀ op(A)
            db = P.matmul(g, a, transpose_a=True, transpose_b=ta)
        else:
            db = P.matmul(a, g, transpose_a=not ta)
        db = unbroadcast(db, b)
    return [da, db]


def _gemm_infer(types, attrs):
    (out,) = _matmul_infer(types[:2], attrs)
    if not out.dtype.is_floating:
        raise DTypeError(f"gemm needs floating-point operands, got {out.dtype.name}")
    if types[2] != out:
        raise ShapeError(f"gemm accumulates into {types[2]}, but the product is {out}")
    return [out]


def _gemm_kernel(a, b, c, alpha=1.0, transpose_a=False, transpose_b=False):
    product = _matmul_kernel(a, b, transpose_a, transpose_b)
    return (c + c.dtype.type(alpha) * product).astype(c.dtype, copy=False)


def _gemm_vjp(cts, ins, outs, attrs):
    g, alpha = cts[0], attrs["alpha"]
    da, db = _matmul_vjp([g if alpha == 1 else P.mul(g, alpha)], ins[:2], outs, attrs)
    return [da, db, g]


register(
    OpDef(
        "gemm",
        _gemm_infer,
        _gemm_kernel,
        _gemm_vjp,
        attrs={"alpha": 1.0, "transpose_a": False, "transpose_b": False},
        overwrites=((0, 2),),  # BLAS reads C[i, j], then writes alpha·(AB)[i, j] + C[i, j]
    )
)
register(
    OpDef(
        "matmul",
        _matmul_infer,
        _matmul_kernel,
        _matmul_vjp,
        attrs={"transpose_a": False, "transpose_b": False},
    )
)

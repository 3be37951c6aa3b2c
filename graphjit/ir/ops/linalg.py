"""Matrix multiplication, batched like np.matmul (rank >= 2; the frontend handles rank 1)."""

from __future__ import annotations

import numpy as np

from graphjit.errors import ShapeError
from graphjit.ir.ops import OpDef, P, register, wants_cotangent
from graphjit.ir.ops.elementwise import _same_dtype, broadcast_shapes, unbroadcast
from graphjit.ir.types import TensorType, shape_str


def _matmul_infer(types, attrs):
    a, b = types
    _same_dtype(types)
    if a.dtype.is_bool:
        raise ShapeError("matmul of boolean tensors; cast them first")
    if a.rank < 2 or b.rank < 2:
        raise ShapeError(f"matmul needs rank >= 2, got {shape_str(a.shape)} @ {shape_str(b.shape)}")
    k1, k2 = a.shape[-1], b.shape[-2]
    if k1 is not None and k2 is not None and k1 != k2:
        raise ShapeError(
            f"matmul inner dimensions differ: {shape_str(a.shape)} @ {shape_str(b.shape)}"
        )
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return [TensorType(batch + (a.shape[-2], b.shape[-1]), a.dtype)]


def swap_last(x):
    perm = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return P.transpose(x, perm=perm)


def _matmul_vjp(cts, ins, outs, attrs):
    g, (a, b) = cts[0], ins
    return [
        unbroadcast(P.matmul(g, swap_last(b)), a) if wants_cotangent(a) else None,
        unbroadcast(P.matmul(swap_last(a), g), b) if wants_cotangent(b) else None,
    ]


register(OpDef("matmul", _matmul_infer, np.matmul, _matmul_vjp))

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
from graphjit.ir import builder
from graphjit.ir.ops import OpDef, P, get_op, register, vjp_reading, wants_cotangent
from graphjit.ir.ops.elementwise import _same_dtype, broadcast_shapes, known_shape, unbroadcast
from graphjit.ir.patterns import producer, scalar_constant
from graphjit.ir.types import TensorType, computes_in_float32, shape_str


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
    return x.swapaxes(-1, -2)  # (the method: np.swapaxes adds ~0.3 us of Python)


@computes_in_float32  # float16/bfloat16: float32 products and sums, one rounding (PyTorch's)
def _matmul_kernel(a, b, transpose_a=False, transpose_b=False):
    op_b = swap_last(b) if transpose_b else b
    if b.ndim == 2 and a.ndim > 2 and not transpose_a and a.flags.c_contiguous and a.shape[-1]:
        # A batch of rows times one matrix (a Linear layer on (batch, seq, d)) is one
        # product of all the rows: np.matmul would make one BLAS call per matrix of the
        # batch, each too small to keep two threads busy (16x128x128 @ 128x512: 1.30
        # against 1.11 ms), and each element is the same dot product either way. (Rows of
        # no elements have no -1 to reshape to: np.matmul's own rule.)
        rows = np.matmul(a.reshape(-1, a.shape[-1]), op_b)
        return rows.reshape(a.shape[:-1] + rows.shape[-1:])
    return np.matmul(swap_last(a) if transpose_a else a, op_b)


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
        db = _weight_cotangent(g, a, b, ta, tb)
        if db is None:
            if tb:  # dB = (op(A)ᵀ g)ᵀ = gᵀ op(A)
                db = P.matmul(g, a, transpose_a=True, transpose_b=ta)
            else:
                db = P.matmul(a, g, transpose_a=not ta)
            db = unbroadcast(db, b)
    return [da, db]


def _weight_cotangent(g, a, b, ta: bool, tb: bool):
    """dB for one matrix B times a batch of A's rows (`x @ w` on (batch, seq, d)): the sum
    over the batch of op(A)ᵀ g is one product of all the rows, (rows x k)ᵀ (rows x n),
    rather than a batch of products summed (a batch-sized intermediate, then a reduction).
    None where that does not apply: B batched, A transposed, or a matrix size unknown."""
    a_shape = known_shape(a)
    if ta or a_shape is None or len(a_shape) <= 2:  # (most products: two matrices)
        return None
    b_shape, g_shape = known_shape(b), known_shape(g)
    if b_shape is None or g_shape is None or len(b_shape) != 2:
        return None
    k, n = a_shape[-1], g_shape[-1]
    if not k or not n:  # (unknown, or zero: no -1 to reshape to)
        return None
    rows_a, rows_g = P.reshape(a, shape=(-1, k)), P.reshape(g, shape=(-1, n))
    if tb:  # dB = (op(A)ᵀ g)ᵀ = gᵀ A
        return P.matmul(rows_g, rows_a, transpose_a=True)
    return P.matmul(rows_a, rows_g, transpose_a=True)


def _gemm_infer(types, attrs):
    (out,) = _matmul_infer(types[:2], attrs)
    if not out.dtype.is_floating:
        raise DTypeError(f"gemm needs floating-point operands, got {out.dtype.name}")
    if types[2] != out:
        raise ShapeError(f"gemm accumulates into {types[2]}, but the product is {out}")
    return [out]


@computes_in_float32
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
        vjp_reading(_gemm_vjp, outputs=False),
        attrs={"alpha": 1.0, "transpose_a": False, "transpose_b": False},
        overwrites=((0, 2),),  # BLAS reads C[i, j], then writes alpha·(AB)[i, j] + C[i, j]
    )
)


def _swaps_last_two_axes(v) -> bool:
    transpose = producer(v, get_op("transpose"))
    if transpose is None:
        return False
    perm = list(transpose.attrs["perm"])
    n = len(perm)
    return n >= 2 and perm == list(range(n - 2)) + [n - 1, n - 2]


def fold_transposed_operands(op):
    """matmul(transpose(x), y) -> matmul(x, y, transpose_a): BLAS reads x transposed, so
    the transpose (a copy of the whole matrix) is gone once nothing else uses it."""
    operands, attrs = list(op.operands), dict(op.attrs)
    for i, flag in enumerate(("transpose_a", "transpose_b")):
        if _swaps_last_two_axes(operands[i]):
            operands[i] = operands[i].op.operands[0]
            attrs[flag] = not attrs[flag]
    if attrs == op.attrs:
        return None
    return builder.create("matmul", operands, attrs, loc=op.loc).results


MATMUL = register(
    OpDef(
        "matmul",
        _matmul_infer,
        _matmul_kernel,
        vjp_reading(_matmul_vjp, outputs=False),
        attrs={"transpose_a": False, "transpose_b": False},
        canonicalize=(fold_transposed_operands,),
    )
)

# ---- forming a gemm (the gemm pass applies this pattern) -------------------------------------
# c ± s * matmul(a, b) -> gemm(a, b, c) {alpha = ±s}, when nothing else reads the product.
ACCUMULATE_SIGN = {get_op("add"): 1.0, get_op("sub"): -1.0}


def _scaled_product(v, uses):
    """(the matmul, its scale) when v is matmul(a, b), or it times a scalar constant, and
    nothing else reads the matmul or v."""
    if v.op is None or uses[v] != 1:
        return None
    if v.op.opdef is MATMUL:
        return v.op, 1.0
    scaling = producer(v, get_op("mul"))
    for m, s in (scaling.operands, scaling.operands[::-1]) if scaling else ():
        scale = scalar_constant(s)
        matmul = producer(m, MATMUL)
        if scale is not None and matmul is not None and uses[m] == 1 and m.type == v.type:
            return matmul, scale
    return None


def accumulate_into_gemm(uses):
    """The pattern, given how many operands in the whole function each value is."""

    def pattern(op):
        sign = ACCUMULATE_SIGN.get(op.opdef)
        if sign is None or not op.result.type.dtype.is_floating:
            return None
        if op.result.type.dtype.is_narrow_float:  # (it rounds the product, a gemm would not)
            return None
        x, y = op.operands
        for acc, product in [(x, y)] if sign < 0 else [(x, y), (y, x)]:
            found = _scaled_product(product, uses)
            if found is None or acc.type != op.result.type or product.type != op.result.type:
                continue
            matmul, scale = found
            alpha = sign * scale
            if not np.isfinite(alpha):
                continue
            attrs = {"alpha": alpha, **matmul.attrs}
            return builder.create("gemm", [*matmul.operands, acc], attrs, loc=op.loc).results
        return None

    return pattern

"""gemm: a matmul whose only use is to be scaled by a constant and added to (or subtracted
from) a tensor of its own type becomes one `gemm` that accumulates into that tensor:

    c - s * matmul(a, b)   ->   gemm(a, b, c) {alpha = -s}

Why: in an SGD step `w - lr * (hᵀ @ g)` the product would be written to a buffer, then read
back with w and written over w: three passes over a matrix that is often megabytes. As a
gemm, BLAS accumulates straight into its output (C = alpha·A·B + C), which the memory plan
places in w's own storage. Runs before fusion, so that the add and the scaling are not
fused into a kernel first; the matmul and mul it replaces are left for DCE."""

from __future__ import annotations

from collections import Counter

import numpy as np

from graphjit.ir import builder
from graphjit.ir.core import Function, Value
from graphjit.passes.canonicalize import constant_value
from graphjit.passes.manager import Pass
from graphjit.passes.rewrite import apply_patterns


def use_counts(fn: Function) -> Counter:
    """How many operands, in the whole function, each value is."""
    return Counter(v for op in fn.walk() for v in op.operands)


def scalar_constant(v: Value) -> float | None:
    value = constant_value(v)
    return float(value.item()) if value is not None and value.size == 1 else None


def scaled_product(v: Value, uses: Counter):
    """(the matmul, its scale) when v is matmul(a, b), or it times a scalar constant, and
    nothing else reads the matmul or v."""
    op = v.op
    if op is None or uses[v] != 1:
        return None
    if op.name == "matmul":
        return op, 1.0
    if op.name != "mul":
        return None
    for m, s in (op.operands, op.operands[::-1]):
        scale = scalar_constant(s)
        if scale is not None and m.op is not None and m.op.name == "matmul":
            if uses[m] == 1 and m.type == v.type:
                return m.op, scale
    return None


def accumulate_into_gemm(uses: Counter):
    def pattern(op):
        if op.name not in ("add", "sub") or not op.result.type.dtype.is_floating:
            return None
        x, y = op.operands
        for acc, product in [(x, y)] if op.name == "sub" else [(x, y), (y, x)]:
            found = scaled_product(product, uses)
            if found is None or acc.type != op.result.type or product.type != op.result.type:
                continue
            matmul, scale = found
            alpha = -scale if op.name == "sub" else scale
            if not np.isfinite(alpha):
                continue
            attrs = {"alpha": alpha, **matmul.attrs}
            return builder.create("gemm", [*matmul.operands, acc], attrs, loc=op.loc).results
        return None

    return pattern


class Gemm(Pass):
    name = "gemm"

    def run(self, fn: Function) -> None:
        apply_patterns(fn, [accumulate_into_gemm(use_counts(fn))])

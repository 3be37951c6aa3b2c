"""gemm: a matmul whose only use is to be scaled by a constant and added to (or subtracted
from) a tensor of its own type becomes one `gemm` that accumulates into that tensor:

    c - s * matmul(a, b)   ->   gemm(a, b, c) {alpha = -s}

Why: in an SGD step `w - lr * (hᵀ @ g)` the product would be written to a buffer, then read
back with w and written over w: three passes over a matrix that is often megabytes. As a
gemm, BLAS accumulates straight into its output (C = alpha·A·B + C), which the memory plan
places in w's own storage. Runs before fusion, so that the add and the scaling are not
fused into a kernel first; the matmul and mul it replaces are left for DCE. The pattern is
declared beside the gemm op (ir/ops/linalg.py); this pass counts uses and applies it."""

from __future__ import annotations

from collections import Counter

from graphjit.ir.core import Function
from graphjit.ir.ops.linalg import accumulate_into_gemm
from graphjit.passes.manager import Pass
from graphjit.passes.rewrite import apply_patterns


def use_counts(fn: Function) -> Counter:
    """How many operands, in the whole function, each value is."""
    return Counter(v for op in fn.walk() for v in op.operands)


class Gemm(Pass):
    name = "gemm"

    def run(self, fn: Function) -> None:
        apply_patterns(fn, [accumulate_into_gemm(use_counts(fn))])

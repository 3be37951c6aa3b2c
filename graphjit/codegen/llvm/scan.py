"""The llvm lowerings of ir/ops/scan.py: op name -> lowering(low, op).

cumsum views its operand as (outer, n, inner) around the scanned axis and walks the axis
in order, adding each slice of `inner` elements to the previous output slice: the same
order of additions as np.cumsum (so the same rounding), and the innermost loop runs over
contiguous elements, so it vectorises whenever the axis is not the last.

float16/bfloat16 accumulate in their own dtype, as the reference's np.cumsum(dtype=x.dtype)
does: each running sum is one float32 addition of the stored (rounded) previous sum and the
element, rounded once as it is stored, so the next step reads it rounded. (Not one rounding
of a float32 running sum: that is what a narrow reduction does, not NumPy's cumsum.)"""

from __future__ import annotations

from graphjit.codegen.layout import size_of
from graphjit.codegen.llvm import types as T
from graphjit.codegen.llvm.loops import for_range, polls
from graphjit.codegen.llvm.sizes import i64
from graphjit.ir.core import Operation


def _scan_geometry(shape, axis: int) -> tuple[int, int, int]:
    return size_of(shape[:axis]), shape[axis], size_of(shape[axis + 1 :])


def op_cumsum(low, op: Operation) -> None:
    x, out = op.operands[0], op.result
    outer, n, inner = _scan_geometry(x.type.shape, op.attrs["axis"])
    if not (outer and n and inner):
        return  # nothing to sum
    b, dtype = low.b, x.type.dtype
    xp, outp = low.typed(x), low.typed(out)
    reverse = op.attrs["reverse"]

    def at(ptr, base, row, k):
        return b.gep(ptr, [b.add(base, b.add(b.mul(row, i64(inner, b)), k))])

    with for_range(b, outer, "scan.outer") as o:
        if polls(x.type.shape):
            low.poll_interrupt()
        base = b.mul(o, i64(n * inner, b))
        first = i64(n - 1 if reverse else 0, b)
        with for_range(b, inner, "scan.first") as k:
            b.store(b.load(at(xp, base, first, k)), at(outp, base, first, k))
        with for_range(b, n, "scan.row", start=1) as i:
            row = b.sub(i64(n - 1, b), i) if reverse else i
            prev = b.add(row, i64(1)) if reverse else b.sub(row, i64(1))
            with for_range(b, inner, "scan.inner") as k:
                previous = T.load(b, at(outp, base, prev, k), dtype)
                total = _add(b, previous, T.load(b, at(xp, base, row, k), dtype), dtype)
                T.store(b, total, at(outp, base, row, k), dtype)


def _add(b, acc, x, dtype):
    return b.fadd(acc, x) if dtype.is_floating else b.add(acc, x)


LOWERINGS: dict = {"cumsum": op_cumsum}

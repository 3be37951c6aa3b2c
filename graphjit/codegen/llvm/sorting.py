"""The llvm lowerings of ir/ops/sorting.py: op name -> lowering(low, op).

`sort` runs a bottom-up merge sort on (value, position) pairs, one row (the elements along
the sorted axis) at a time: O(n log n) and stable, since a merge takes from its left run
unless the right run's element must come strictly before. The pairs live in two arena
scratch buffers (`Lowering.scratch`: nothing the size of a row goes on the native stack)
that the passes merge back and forth between; the number of passes, ceil(log2 n), and so
which buffer holds the result, is computed from n (when the program runs, for a length
known only then: ir/symbolic.py). NaN orders as
the reference kernel orders it: largest (last ascending, first descending). float16 and
bfloat16 values are moved as their 16 stored bits and compared widened to float32 (exact,
so the order, ties and NaNs are those of the narrow values), as NumPy sorts them."""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from graphjit.codegen.layout import contiguous_strides, size_of
from graphjit.codegen.llvm import types as T
from graphjit.codegen.llvm.loops import for_range, loop_nest, polls
from graphjit.codegen.llvm.sizes import i64
from graphjit.ir.core import Operation
from graphjit.ir.symbolic import is_symbolic


def _without(items, axis: int) -> list:
    return [d for i, d in enumerate(items) if i != axis]


def _const(n: int) -> ir.Constant:
    return ir.Constant(T.I64, n)


# ---- sort ------------------------------------------------------------------------------


def _before(b: ir.IRBuilder, dtype, descending: bool):
    """`before(a, c)`: whether element a must come strictly before element c. Floats: NaN
    is larger than every number (and equal to NaN); booleans compare as unsigned bytes."""

    def before(a, c):
        first, second = (c, a) if descending else (a, c)  # first < second puts a first
        if not dtype.is_floating:
            compare = b.icmp_unsigned if dtype.is_bool else b.icmp_signed
            return compare("<", first, second)
        if dtype.is_narrow_float:  # (stored bits: compared as their exact float32 values)
            first, second = T.widen(b, first, dtype), T.widen(b, second, dtype)
        second_nan = b.fcmp_unordered("uno", second, second)
        first_number = b.fcmp_ordered("ord", first, first)
        return b.or_(b.fcmp_ordered("<", first, second), b.and_(second_nan, first_number))

    return before


@dataclass(frozen=True)
class _Pairs:
    """A buffer of (value, position) pairs: typed pointers to its two arrays."""

    values: ir.Value
    positions: ir.Value

    @classmethod
    def in_scratch(cls, b, values_raw, positions_raw, dtype) -> _Pairs:
        values = T.typed_pointer(b, values_raw, dtype)
        return cls(values, b.bitcast(positions_raw, T.I64.as_pointer()))

    def select(self, b, condition, other: _Pairs) -> _Pairs:
        """This buffer where `condition` holds, else `other`."""
        return _Pairs(
            b.select(condition, self.values, other.values),
            b.select(condition, self.positions, other.positions),
        )

    def load(self, b, at):
        return b.load(b.gep(self.values, [at])), b.load(b.gep(self.positions, [at]))

    def store(self, b, at, pair):
        b.store(pair[0], b.gep(self.values, [at]))
        b.store(pair[1], b.gep(self.positions, [at]))


def _merge_pass(low, src: _Pairs, dst: _Pairs, n, width, before) -> None:
    """Merge the adjacent runs of `width` pairs in src into runs of 2 * width in dst."""
    b = low.b
    n = i64(n, b)
    span = b.shl(width, _const(1))
    runs = b.udiv(b.add(n, b.sub(span, _const(1))), span)  # ceil(n / span)
    left, right = low.local(T.I64), low.local(T.I64)
    with for_range(b, runs, "sort.run") as r:
        lo = b.mul(r, span)
        mid = _smaller(b, b.add(lo, width), n)
        hi = _smaller(b, b.add(lo, span), n)
        b.store(lo, left)
        b.store(mid, right)
        with for_range(b, hi, "sort.merge", start=lo) as at:
            i, j = b.load(left), b.load(right)
            # loads stay inside [lo, hi) even once a run is used up: read its last pair
            left_pair = src.load(b, b.select(b.icmp_signed("<", i, mid), i, b.sub(mid, _const(1))))
            right_pair = src.load(b, b.select(b.icmp_signed("<", j, hi), j, b.sub(hi, _const(1))))
            take_right = b.or_(
                b.icmp_signed(">=", i, mid),
                b.and_(b.icmp_signed("<", j, hi), before(right_pair[0], left_pair[0])),
            )
            dst.store(
                b, at, [b.select(take_right, r_, l_) for r_, l_ in zip(right_pair, left_pair)]
            )
            b.store(b.add(j, b.zext(take_right, T.I64)), right)
            b.store(b.add(i, b.zext(b.not_(take_right), T.I64)), left)


def _smaller(b, x, y):
    return b.select(b.icmp_signed("<", x, y), x, y)


def _passes(b: ir.IRBuilder, n) -> ir.Value:
    """ceil(log2 n), the bit length of n - 1: merge passes until one run covers the row."""
    if not is_symbolic(n):
        return _const(max(0, (n - 1).bit_length()))
    leading = b.ctlz(b.sub(i64(n, b), _const(1)), ir.Constant(T.I1, 0))
    return b.sub(_const(64), leading)  # (n >= 2: a symbol's least size)


def _sort_row(low, buffers: list[_Pairs], n, before) -> _Pairs:
    """Merge-sort the n pairs in buffers[0], passes alternating between the buffers;
    returns the one holding the sorted row. A long row polls for Ctrl-C between passes."""
    b = low.b
    passes = _passes(b, n)
    with for_range(b, passes, "sort.pass") as p:
        if polls((n,)):
            low.poll_interrupt()
        even = b.icmp_unsigned("==", b.and_(p, _const(1)), _const(0))
        src = buffers[0].select(b, even, buffers[1])
        dst = buffers[1].select(b, even, buffers[0])
        _merge_pass(low, src, dst, n, b.shl(_const(1), p), before)
    odd = b.icmp_unsigned("!=", b.and_(passes, _const(1)), _const(0))
    return buffers[1].select(b, odd, buffers[0])


def op_sort(low, op: Operation) -> None:
    x, (values, positions) = op.operands[0], op.results
    axis, dtype, shape = op.attrs["axis"], x.type.dtype, x.type.shape
    n, k = shape[axis], values.type.shape[axis]
    if size_of(values.type.shape) == 0:
        return
    b = low.b
    raw = low.scratch([n * dtype.np.itemsize, n * 8] * 2)
    buffers = [_Pairs.in_scratch(b, raw[0], raw[1], dtype)]
    buffers.append(_Pairs.in_scratch(b, raw[2], raw[3], dtype))
    before = _before(b, dtype, op.attrs["descending"])
    x_strides, out_strides = contiguous_strides(shape), contiguous_strides(values.type.shape)
    xp, vp, pp = low.typed(x), low.typed(values), low.typed(positions)
    row_strides = [_without(x_strides, axis), _without(out_strides, axis)]
    with loop_nest(b, _without(shape, axis), row_strides, "sort") as (x_row, out_row):
        if polls(shape):  # a poll per row: many short rows take long too
            low.poll_interrupt()
        with for_range(b, n, "sort.load") as j:
            element = b.load(b.gep(xp, [b.add(x_row, b.mul(j, i64(x_strides[axis], b)))]))
            buffers[0].store(b, j, [element, j])
        result = _sort_row(low, buffers, n, before)
        with for_range(b, k, "sort.store") as j:  # the first k: all, or a top-k's
            element, position = result.load(b, j)
            at = b.add(out_row, b.mul(j, i64(out_strides[axis], b)))
            b.store(element, b.gep(vp, [at]))
            b.store(position, b.gep(pp, [at]))


LOWERINGS: dict = {"sort": op_sort}

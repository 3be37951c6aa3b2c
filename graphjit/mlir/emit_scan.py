"""Ops that walk an axis, cumsum (graphjit/ir/ops/scan.py) and sort
(graphjit/ir/ops/sorting.py), in upstream MLIR.

Upstream linalg has neither a scan nor a sort (IREE's `iree_linalg_ext.scan` and `.sort`
are IREE's own dialect), and a loop of `tensor.insert`s would run one element at a time.
Both are written as the dense reductions they equal, every output in parallel, O(n²)
work along the axis, which gj.ir.parse reads back. The IREE backend (`Writer.linalg_ext`)
takes IREE's scan for cumsum instead: O(n), and its sequential sum has the interpreter's
bits; and sorts by a bitonic network in loops, O(n log² n) (IREE's own sort is an O(n²)
exchange sort on the CPU, and not stable).

- cumsum: out[i] = the sum of x[j] over j <= i (j >= i reversed), added in the order the
  interpreter adds them (from the far end when reversed), so results match bit for bit
  where the reduction runs in order;
- sort: each element's rank (how many elements precede it: smaller ones, NaN largest, and
  equal ones further left, which makes the order stable; the mirror image descending),
  then out[r] = the element whose rank is r. top-k keeps the first k ranks."""

from __future__ import annotations

from graphjit.ir.types import TensorType, int64
from graphjit.mlir.structured import (
    affine_map,
    as_index,
    dims_of,
    generic,
    operands,
    reverse,
)
from graphjit.mlir.writer import element_type, tensor_type

# ---- cumsum --------------------------------------------------------------------------------


def neutral(dtype):
    """The addend that changes no sum: -0.0 for floats (-0.0 + x is x, -0.0 too)."""
    return -0.0 if dtype.is_floating else 0


def emit_cumsum(w, op):
    """out[i] = the sum of x[j] over j <= i along the axis (j >= i reversed)."""
    x, t = operands(w, op)[0]
    axis, backwards = op.attrs["axis"], op.attrs["reverse"]
    if w.linalg_ext:
        return [_scan(w, x, t, axis, backwards)]
    rank = len(t.shape)
    size = w.dim(x, t, axis)
    loops = [f"d{i}" for i in range(rank)]
    ty = element_type(t.dtype)
    add = "arith.addf" if t.dtype.is_floating else "arith.addi"

    def body(w, s):
        here = w.op(f"linalg.index {axis} : index")
        j = w.op(f"linalg.index {rank} : index")
        if backwards:  # the j-th addend is x[n - 1 - j]: the far end first, as the interpreter
            last = w.op(f"arith.subi {as_index(w, size)}, {w.index(1)} : index")
            j = w.op(f"arith.subi {last}, {j} : index")
            at = [j if i == axis else w.op(f"linalg.index {i} : index") for i in range(rank)]
            value = w.op(f"tensor.extract {x}[{', '.join(at)}] : {tensor_type(t)}")
            counts = w.op(f"arith.cmpi sge, {j}, {here} : index")
        else:
            value = s[0]
            counts = w.op(f"arith.cmpi sle, {j}, {here} : index")
        addend = w.op(
            f"arith.select {counts}, {value}, {w.scalar(neutral(t.dtype), t.dtype)} : {ty}"
        )
        return [w.op(f"{add} {s[-1]}, {addend} : {ty}")]

    init = w.filled(t, dims_of(w, x, t), neutral(t.dtype))
    along = [f"d{rank}" if i == axis else d for i, d in enumerate(loops)]
    inputs = [(x, t)]  # (read through the map unless reversed; it bounds the j loop)
    maps = [affine_map(rank + 1, along), affine_map(rank + 1, loops)]
    iterators = ["parallel"] * rank + ["reduction"]
    return generic(w, inputs, [(init, t)], maps, iterators, body)


def _scan(w, x: str, t: TensorType, axis: int, backwards: bool) -> str:
    """cumsum as IREE's `iree_linalg_ext.scan`: a running sum from -0.0 (or 0) along the
    axis, in order; reversed, of x read back to front and written back to front."""
    dims = dims_of(w, x, t)
    if backwards:
        x = reverse(w, x, t, [axis])
    rest = TensorType(t.shape[:axis] + t.shape[axis + 1 :], t.dtype)
    start = w.filled(rest, dims[:axis] + dims[axis + 1 :], neutral(t.dtype))
    ty, types = element_type(t.dtype), f"{tensor_type(t)}, {tensor_type(rest)}"
    element, total, result = w.fresh("a"), w.fresh("a"), w.fresh("s")
    w.emit(
        f"{result}:2 = iree_linalg_ext.scan dimension({axis}) inclusive(true) "
        f"ins({x} : {tensor_type(t)}) outs({w.empty(t, dims)}, {start} : {types}) {{"
    )
    w.emit(f"^bb0({element}: {ty}, {total}: {ty}):")
    w.depth += 1
    add = "arith.addf" if t.dtype.is_floating else "arith.addi"
    w.emit(f"iree_linalg_ext.yield {w.op(f'{add} {element}, {total} : {ty}')} : {ty}")
    w.depth -= 1
    w.emit(f"}} -> {types}")
    return reverse(w, f"{result}#0", t, [axis]) if backwards else f"{result}#0"


# ---- sort ----------------------------------------------------------------------------------


def precedes(w, b: str, a: str, dtype, descending: bool) -> str:
    """i1: b sorts strictly before a (NaN is the largest value)."""
    ty = element_type(dtype)
    if descending:
        a, b = b, a  # b before a descending: a before b ascending
    if not dtype.is_floating:
        return w.op(f"arith.cmpi slt, {b}, {a} : {ty}")
    smaller = w.op(f"arith.cmpf olt, {b}, {a} : {ty}")
    a_nan = w.op(f"arith.cmpf uno, {a}, {a} : {ty}")
    b_number = w.op(f"arith.cmpf ord, {b}, {b} : {ty}")
    nan_after = w.op(f"arith.andi {a_nan}, {b_number} : i1")
    return w.op(f"arith.ori {smaller}, {nan_after} : i1")


def equivalent(w, a: str, b: str, dtype) -> str:
    """i1: neither sorts before the other (equal, or both NaN)."""
    ty = element_type(dtype)
    if not dtype.is_floating:
        return w.op(f"arith.cmpi eq, {a}, {b} : {ty}")
    equal = w.op(f"arith.cmpf oeq, {a}, {b} : {ty}")
    a_nan = w.op(f"arith.cmpf uno, {a}, {a} : {ty}")
    b_nan = w.op(f"arith.cmpf uno, {b}, {b} : {ty}")
    both_nan = w.op(f"arith.andi {a_nan}, {b_nan} : i1")
    return w.op(f"arith.ori {equal}, {both_nan} : i1")


def sorts_before(w, b: str, a: str, dtype, descending: bool, b_earlier: str) -> str:
    """i1: b goes before a in a stable sort (b_earlier: b's position is before a's)."""
    tie = w.op(f"arith.andi {equivalent(w, a, b, dtype)}, {b_earlier} : i1")
    return w.op(f"arith.ori {precedes(w, b, a, dtype, descending)}, {tie} : i1")


def ranks(w, x, t: TensorType, axis: int, descending: bool) -> tuple[str, TensorType]:
    """int64 tensor shaped like x: how many elements along `axis` sort before each."""
    rank = len(t.shape)
    loops = [f"d{i}" for i in range(rank)]
    other = [f"d{rank}" if i == axis else d for i, d in enumerate(loops)]
    out = TensorType(t.shape, int64)

    def body(w, s):
        a, b, count = s
        i = w.op(f"linalg.index {axis} : index")
        j = w.op(f"linalg.index {rank} : index")
        left = w.op(f"arith.cmpi slt, {j}, {i} : index")
        before = sorts_before(w, b, a, t.dtype, descending, left)
        one = w.op(f"arith.extui {before} : i1 to i64")
        return [w.op(f"arith.addi {count}, {one} : i64")]

    init = w.filled(out, dims_of(w, x, t), 0)
    maps = [affine_map(rank + 1, loops), affine_map(rank + 1, other), affine_map(rank + 1, loops)]
    iterators = ["parallel"] * rank + ["reduction"]
    return generic(w, [(x, t), (x, t)], [(init, out)], maps, iterators, body)[0], out


def emit_sort(w, op):
    """The values in order and the int64 positions they came from: out[r] is the element
    of rank r (the first k ranks for top-k)."""
    x, t = operands(w, op)[0]
    axis, descending = op.attrs["axis"], op.attrs["descending"]
    if w.linalg_ext:  # (the IREE backend: its own loops, which the export does not read)
        values, indices = _bitonic(w, x, t, axis, descending)
        return [_first(w, v, r.type, axis, t) for v, r in zip((values, indices), op.results)]
    order, order_t = ranks(w, x, t, axis, descending)
    values_t, indices_t = (r.type for r in op.results)
    rank = len(t.shape)
    dims = dims_of(w, x, t)
    dims[axis] = values_t.shape[axis] if op.attrs["k"] is not None else dims[axis]
    loops = [f"d{i}" for i in range(rank)]
    source = [f"d{rank}" if i == axis else d for i, d in enumerate(loops)]

    def body(w, s):
        value, its_rank, best, position = s
        r = w.op(f"linalg.index {axis} : index")
        r = w.op(f"arith.index_cast {r} : index to i64")
        match = w.op(f"arith.cmpi eq, {its_rank}, {r} : i64")
        i = w.op(f"arith.index_cast {w.op(f'linalg.index {rank} : index')} : index to i64")
        ty = element_type(t.dtype)
        return [
            w.op(f"arith.select {match}, {value}, {best} : {ty}"),
            w.op(f"arith.select {match}, {i}, {position} : i64"),
        ]

    outs = [(w.filled(values_t, dims, 0), values_t), (w.filled(indices_t, dims, 0), indices_t)]
    maps = [affine_map(rank + 1, source)] * 2 + [affine_map(rank + 1, loops)] * 2
    iterators = ["parallel"] * rank + ["reduction"]
    return generic(w, [(x, t), (order, order_t)], outs, maps, iterators, body)


def _bitonic(w, x: str, t: TensorType, axis: int, descending: bool) -> tuple[str, str]:
    """(values, int64 positions) sorted along `axis` by a bitonic network, O(n log² n):
    stage p merges blocks of 2^(p+1), its first step comparing each element with its
    mirror in the block, the next ones with the element j = 2^(p-q) away; the lower of
    each pair takes the one that sorts first. Positions past the axis's end are +inf
    (nothing moves there), and ties go by original position: the order is total, so the
    network sorts stably, as the interpreter. Every step is one parallel linalg.generic
    in two scf.for loops."""
    rank, positions_t = len(t.shape), TensorType(t.shape, int64)
    dims, loops = dims_of(w, x, t), [f"d{i}" for i in range(rank)]
    types = f"{tensor_type(t)}, {tensor_type(positions_t)}"
    n = as_index(w, w.dim(x, t, axis))

    def position(w, _):
        return [w.op(f"arith.index_cast {w.op(f'linalg.index {axis} : index')} : index to i64")]

    identity = affine_map(rank, loops)
    start = w.empty(positions_t, dims)
    iota = generic(w, [], [(start, positions_t)], [identity], ["parallel"] * rank, position)[0]
    stages = _bit_length_of_less(w, n)
    one, zero = w.index(1), w.index(0)
    sorted_ = w.fresh("sorted")
    p, v, ix = w.fresh("p"), w.fresh("v"), w.fresh("ix")
    w.emit(
        f"{sorted_}:2 = scf.for {p} = {zero} to {stages} step {one} "
        f"iter_args({v} = {x}, {ix} = {iota}) -> ({types}) {{"
    )
    w.depth += 1
    steps = w.op(f"arith.addi {p}, {one} : index")
    merged, q, v2, ix2 = w.fresh("merged"), w.fresh("q"), w.fresh("v"), w.fresh("ix")
    w.emit(
        f"{merged}:2 = scf.for {q} = {zero} to {steps} step {one} "
        f"iter_args({v2} = {v}, {ix2} = {ix}) -> ({types}) {{"
    )
    w.depth += 1
    block = w.op(f"arith.shli {one}, {steps} : index")  # 2^(p+1)
    mirror = w.op(f"arith.subi {block}, {one} : index")
    away = w.op(f"arith.shli {one}, {w.op(f'arith.subi {p}, {q} : index')} : index")
    first = w.op(f"arith.cmpi eq, {q}, {zero} : index")
    flip = w.op(f"arith.select {first}, {mirror}, {away} : index")

    def step(w, s):
        mine, mine_at = s[0], s[1]
        i = w.op(f"linalg.index {axis} : index")
        other = w.op(f"arith.xori {i}, {flip} : index")
        inside = w.op(f"arith.cmpi ult, {other}, {n} : index")
        other = w.op(f"arith.select {inside}, {other}, {i} : index")
        at = [other if k == axis else w.op(f"linalg.index {k} : index") for k in range(rank)]
        theirs = w.op(f"tensor.extract {v2}[{', '.join(at)}] : {tensor_type(t)}")
        theirs_at = w.op(f"tensor.extract {ix2}[{', '.join(at)}] : {tensor_type(positions_t)}")
        earlier = w.op(f"arith.cmpi slt, {theirs_at}, {mine_at} : i64")
        before = sorts_before(w, theirs, mine, t.dtype, descending, earlier)
        lower = w.op(f"arith.cmpi ult, {i}, {other} : index")
        wanted = w.op(f"arith.cmpi eq, {lower}, {before} : i1")  # lower takes the first
        take = w.op(f"arith.andi {inside}, {wanted} : i1")
        value = w.op(f"arith.select {take}, {theirs}, {mine} : {element_type(t.dtype)}")
        return [value, w.op(f"arith.select {take}, {theirs_at}, {mine_at} : i64")]

    outs = [(w.empty(t, dims), t), (w.empty(positions_t, dims), positions_t)]
    parallel = ["parallel"] * rank
    pair = generic(w, [(v2, t), (ix2, positions_t)], outs, [identity] * 4, parallel, step)
    w.emit(f"scf.yield {', '.join(pair)} : {types}")
    w.depth -= 1
    w.emit("}")
    w.emit(f"scf.yield {merged}#0, {merged}#1 : {types}")
    w.depth -= 1
    w.emit("}")
    return f"{sorted_}#0", f"{sorted_}#1"


def _bit_length_of_less(w, n: str) -> str:
    """The index ceil(log2(n)) (0 for n <= 1): the bitonic network's stages."""
    wide = w.op(f"arith.index_cast {n} : index to i64")
    below = w.op(f"arith.subi {wide}, {w.scalar(1, int64)} : i64")
    zeros = w.op(f"math.ctlz {below} : i64")
    bits = w.op(f"arith.subi {w.scalar(64, int64)}, {zeros} : i64")
    small = w.op(f"arith.cmpi sle, {wide}, {w.scalar(1, int64)} : i64")
    bits = w.op(f"arith.select {small}, {w.scalar(0, int64)}, {bits} : i64")
    return w.op(f"arith.index_cast {bits} : i64 to index")


def _first(w, ssa: str, want: TensorType, axis: int, t: TensorType) -> str:
    """The first want.shape[axis] entries along `axis` (top-k), else `ssa` itself."""
    if want.shape[axis] == t.shape[axis] or want.shape[axis] is None:
        return ssa
    full = TensorType(t.shape, want.dtype)
    sizes = [
        str(want.shape[k]) if k == axis or t.shape[k] is not None else w.dim(ssa, full, k)
        for k in range(len(t.shape))
    ]
    zeros, ones = ", ".join(["0"] * len(sizes)), ", ".join(["1"] * len(sizes))
    return w.op(
        f"tensor.extract_slice {ssa}[{zeros}] [{', '.join(sizes)}] [{ones}] : "
        f"{tensor_type(full)} to {tensor_type(want)}"
    )


EMITTERS: dict = {"cumsum": emit_cumsum, "sort": emit_sort}

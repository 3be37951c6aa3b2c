"""THE table of op emitters: graphjit op name -> `emit(w, op) -> [SSA names of its
results]`, writing upstream `linalg`/`tensor`/`arith`/`scf` through a Writer. An op without
an entry has no upstream form and export names it (see docs/mlir.md)."""

from __future__ import annotations

import functools
import math

import numpy as np

from graphjit.ir.ops import get_op
from graphjit.ir.types import TensorType, float16, float32, float64
from graphjit.mlir import (
    emit_checks,
    emit_conv,
    emit_dynamic_slice,
    emit_indexing,
    emit_random,
    emit_scan,
    own_math,
)
from graphjit.mlir.scalar import SCALAR
from graphjit.mlir.structured import (
    affine_map,
    gathered,
    generic,
    if_else,
    map_elementwise,
    operands,
    output_dims,
    reverse,
)
from graphjit.mlir.writer import ExportError, element_type, tensor_type, with_shape

# ---- elementwise: one linalg.generic with broadcasting indexing maps ------------------------


def emit_elementwise(w, op):
    scalar = SCALAR[op.name]
    dtype = op.operands[-1].type.dtype
    out = op.result.type
    emit_checks.check_values(w, op)
    return [map_elementwise(w, operands(w, op), out, lambda w, s: scalar(w, s, dtype, out.dtype))]


def emit_sin_cos(w, op, cosine: bool):
    """sin and cos where graphjit writes them (own_math.py): the cheap reduction's
    vectorised generic when every element allows it (the usual case), else the one
    whose elements also take Payne and Hanek's table, chosen at run time (`scf.if` on
    the largest |x|), since a table lookup in every element is several times slower,
    and a branch in the generic's body keeps IREE from vectorising it."""
    (x, t), out = operands(w, op)[0], op.result.type
    if ("cos" if cosine else "sin", t.dtype.name) not in w.own_math:
        return emit_elementwise(w, op)
    limit = own_math.NEAR_MAX[t.dtype.name]

    def body(near_only):
        return lambda w, s: own_math.sin_cos(w, s[0], t.dtype, cosine, near_only)

    if limit == math.inf:
        return [map_elementwise(w, [(x, t)], out, body(True))]
    largest = w.op(
        f"tensor.extract {_largest_magnitude(w, x, t)}[] : tensor<{element_type(t.dtype)}>"
    )
    near = w.op(f"arith.cmpf ole, {largest}, {w.scalar(limit, t.dtype)} : {element_type(t.dtype)}")

    def branch(near_only):
        return lambda w: [map_elementwise(w, [(x, t)], out, body(near_only))]

    return if_else(w, near, [tensor_type(out)], branch(True), branch(False))[:1]


def _largest_magnitude(w, x: str, t: TensorType) -> str:
    """A 0-d tensor: the largest |x| that is not NaN (0 for none). A float maximum, which
    vectorises, rather than a reduction of i1 flags."""
    ty, scalar = element_type(t.dtype), TensorType((), t.dtype)
    init = w.filled(scalar, [], 0.0)
    rank = len(t.shape)
    maps = [affine_map(rank, [f"d{i}" for i in range(rank)]), affine_map(rank, [])]

    def body(w, s):
        return [w.op(f"arith.maxnumf {s[1]}, {w.op(f'math.absf {s[0]} : {ty}')} : {ty}")]

    return generic(w, [(x, t)], [(init, scalar)], maps, ["reduction"] * rank, body)[0]


def emit_broadcast(w, op):
    """broadcast_to / broadcast_like: a copy through a broadcasting map."""
    ins = operands(w, op)
    return [map_elementwise(w, ins[:1], op.result.type, lambda w, s: s[0], dim_sources=ins)]


# ---- reductions --------------------------------------------------------------------------

COMBINE = {
    "reduce_sum": "add",
    "reduce_prod": "mul",
    "reduce_max": "maximum",
    "reduce_min": "minimum",
    "sum_to": "add",
}


def reduce(w, x: str, t: TensorType, axes: list, kind: str, identity) -> tuple[str, TensorType]:
    """`x` folded over `axes` with the scalar op `kind`, the axes dropped."""
    kept = [i for i in range(len(t.shape)) if i not in axes]
    out = with_shape(t, [t.shape[i] for i in kept])
    dims = [w.dim(x, t, i) for i in kept]
    if kind == "add" and t.dtype in (float16, float32) and axes:
        return _sum_in_double(w, x, t, axes, kept, dims), out
    init = w.filled(out, dims, identity)
    ty, scalar = element_type(t.dtype), SCALAR[kind]
    a, acc, result = w.fresh("a"), w.fresh("a"), w.fresh("r")
    w.emit(
        f"{result} = linalg.reduce ins({x} : {tensor_type(t)}) outs({init} : "
        f"{tensor_type(out)}) dimensions = [{', '.join(map(str, axes))}]"
    )
    w.emit(f"  ({a}: {ty}, {acc}: {ty}) {{")
    w.depth += 2
    w.emit(f"linalg.yield {scalar(w, [a, acc], t.dtype, t.dtype)} : {ty}")
    w.depth -= 2
    w.emit("  }")
    return result, out


def _sum_in_double(w, x: str, t: TensorType, axes: list, kept: list, dims: list) -> str:
    """A float32 or float16 sum accumulated in float64 and rounded once. IREE folds a
    reduction in order into one accumulator of the element type: the mean of 16M float32
    terms (exp(a + b), a 4096 x 1 and b 1 x 4096) came out 5% low, where the interpreter's
    pairwise sum and the llvm backend's blocked one are within 1e-7, and a float16 sum of
    100000 values in [0, 1) stopped at 2048 (the interpreter sums float16 in float32 and
    rounds once, as PyTorch)."""
    rank = len(t.shape)
    wide = TensorType(tuple(t.shape[i] for i in kept), float64)
    maps = [
        affine_map(rank, [f"d{i}" for i in range(rank)]),
        affine_map(rank, [f"d{i}" for i in kept]),
    ]
    iterators = ["reduction" if i in axes else "parallel" for i in range(rank)]

    def add(w, s):
        wide_x = SCALAR["cast"](w, s[:1], t.dtype, float64)
        return [SCALAR["add"](w, [s[1], wide_x], float64, float64)]

    (total,) = generic(w, [(x, t)], [(w.filled(wide, dims, 0.0), wide)], maps, iterators, add)
    return _rounded_once(w, total, wide, t.dtype)


def _rounded_once(w, x: str, wide: TensorType, dtype) -> str:
    """`x`, computed in `wide`'s dtype, rounded to `dtype` element by element."""
    out = TensorType(wide.shape, dtype)
    return map_elementwise(
        w, [(x, wide)], out, lambda w, s: SCALAR["cast"](w, s, wide.dtype, dtype)
    )


def emit_reduce(w, op):
    x, t = operands(w, op)[0]
    axes = sorted(a % len(t.shape) for a in op.attrs["axes"]) if t.shape else []
    result, out = reduce(w, x, t, axes, COMBINE[op.name], get_op(op.name).identity(t.dtype.np))
    if op.attrs["keepdims"]:
        target = op.result.type
        dims = [1 if i in axes else w.dim(x, t, i) for i in range(len(t.shape))]
        result = w.expand_units(result, out, target, axes, dims)
    return [result]


def emit_sum_to(w, op):
    """Sum the leading axes and the axes where the target has 1, then reshape to it."""
    (x, t), (_, like) = operands(w, op)
    lead = len(t.shape) - len(like.shape)
    axes = list(range(lead)) + [
        lead + i for i, d in enumerate(like.shape) if d == 1 and t.shape[lead + i] != 1
    ]
    result, out = reduce(w, x, t, axes, "add", 0)
    target = op.result.type
    unit_axes = [i for i in range(len(like.shape)) if lead + i in axes]
    dims = [1 if i in unit_axes else w.dim(x, t, lead + i) for i in range(len(like.shape))]
    return [
        w.expand_units(result, out, target, unit_axes, dims)
        if unit_axes
        else w.cast(result, out, target)
    ]


# argmax/argmin: (float predicate, integer predicate) for "x beats the best so far"; the
# float one is unordered so that a NaN beats any number
BETTER = {"argmax": ("ugt", "sgt"), "argmin": ("ult", "slt")}


def emit_arg_extremum(w, op):
    """argmax/argmin: one linalg.generic carrying the best value and its index; the first
    extremum wins, and the first NaN (NumPy's rule)."""
    x, t = operands(w, op)[0]
    axis = op.attrs["axis"] % len(t.shape)
    kept = [i for i in range(len(t.shape)) if i != axis]
    value_t = with_shape(t, [t.shape[i] for i in kept])
    index_t = with_shape(op.result.type, value_t.shape)
    dims = [w.dim(x, t, i) for i in kept]
    better = BETTER[op.name]
    worst = _worst(t.dtype, is_max=better[1] == "sgt")
    best = w.filled(value_t, dims, worst)
    index = w.filled(index_t, dims, 0)
    rank = len(t.shape)
    out_map = affine_map(rank, [f"d{i}" for i in kept])
    iterators = ["reduction" if i == axis else "parallel" for i in range(rank)]
    maps = [affine_map(rank, [f"d{i}" for i in range(rank)]), out_map, out_map]

    def body(w, s):
        x_, best_, index_ = s
        ty = element_type(t.dtype)
        if t.dtype.is_floating:  # take x when best is not NaN and x is better or NaN
            ordered = w.op(f"arith.cmpf ord, {best_}, {best_} : {ty}")
            wins = w.op(f"arith.cmpf {better[0]}, {x_}, {best_} : {ty}")
            take = w.op(f"arith.andi {ordered}, {wins} : i1")
        else:
            take = w.op(f"arith.cmpi {better[1]}, {x_}, {best_} : {ty}")
        position = w.op(f"linalg.index {axis} : index")
        position = w.op(f"arith.index_cast {position} : index to {element_type(index_t.dtype)}")
        new_best = w.op(f"arith.select {take}, {x_}, {best_} : {ty}")
        new_index = w.op(
            f"arith.select {take}, {position}, {index_} : {element_type(index_t.dtype)}"
        )
        return [new_best, new_index]

    result = generic(w, [(x, t)], [(best, value_t), (index, index_t)], maps, iterators, body)[1]
    if op.attrs["keepdims"]:
        full = [1 if i == axis else d for i, d in zip(range(rank), [*dims[:axis], 1, *dims[axis:]])]
        result = w.expand_units(result, index_t, op.result.type, [axis], full)
    return [result]


def _worst(dtype, is_max: bool):
    if dtype.is_floating:
        return -np.inf if is_max else np.inf
    info = np.iinfo(dtype.np)
    return info.min if is_max else info.max


def emit_count(w, op):
    """The number of elements along `axes`, as a 0-d tensor of the result's dtype."""
    x, t = operands(w, op)[0]
    out = op.result.type
    sizes = [t.shape[a] for a in op.attrs["axes"]]
    if all(s is not None for s in sizes):
        return [w.tensor_constant(np.asarray(int(np.prod(sizes, dtype=np.int64))), out)]
    total = w.index(1)
    for a in op.attrs["axes"]:
        total = w.op(f"arith.muli {total}, {_as_index(w, w.dim(x, t, a))} : index")
    as_int = w.op(f"arith.index_cast {total} : index to i64")
    ty = element_type(out.dtype)
    scalar = (
        w.op(f"arith.sitofp {as_int} : i64 to {ty}")
        if out.dtype.is_floating
        else (as_int if ty == "i64" else w.op(f"arith.trunci {as_int} : i64 to {ty}"))
    )
    return [w.op(f"tensor.from_elements {scalar} : {tensor_type(out)}")]


def _as_index(w, dim):
    return w.index(dim) if isinstance(dim, int) else dim


# ---- linear algebra -------------------------------------------------------------------------


def matmul(w, a, ta: TensorType, b, tb: TensorType, attrs, out: TensorType) -> str:
    """NumPy's matmul (vectors, broadcast batches, transposed operands) as `linalg.matmul`
    or `batch_matmul` where it is one, else one contraction `linalg.generic`. float16
    products accumulate in float32 and round once, as the interpreter's and PyTorch's (in
    float16, IREE's 4 x 8192 @ 8192 x 3 product of values in [0, 1) was 24% off)."""
    if out.dtype != float16:
        return _matmul(w, a, ta, b, tb, attrs, out)
    wide = TensorType(out.shape, float32)
    return _rounded_once(w, _matmul(w, a, ta, b, tb, attrs, wide), wide, out.dtype)


def _matmul(w, a, ta: TensorType, b, tb: TensorType, attrs, out: TensorType) -> str:
    """matmul's product, accumulated in `out`'s dtype (operands extended to it)."""
    transposed = attrs["transpose_a"] or attrs["transpose_b"]
    same_batch = len(ta.shape) == len(tb.shape) == 3 and ta.shape[0] == tb.shape[0] != 1
    if not transposed and (len(ta.shape) == len(tb.shape) == 2 or same_batch):
        named = "linalg.matmul" if len(ta.shape) == 2 else "linalg.batch_matmul"
        dims = (
            output_dims(w, out, [(a, ta), (b, tb)])
            if out.is_static
            else _matmul_dims(w, a, ta, b, tb)
        )
        init = w.filled(out, dims, 0)
        return w.op(
            f"{named} ins({a}, {b} : {tensor_type(ta)}, {tensor_type(tb)}) outs({init} : "
            f"{tensor_type(out)}) -> {tensor_type(out)}"
        )
    return _contraction(w, a, ta, b, tb, attrs, out)


def _matmul_dims(w, a, ta, b, tb):
    """The dynamic sizes of a named (batch) matmul's result: batch and m from a, n from b."""
    return [w.dim(a, ta, i) for i in range(len(ta.shape) - 1)] + [w.dim(b, tb, len(tb.shape) - 1)]


def _contraction(w, a, ta, b, tb, attrs, out):
    if not out.is_static:
        raise ExportError("a broadcast or transposed matmul exports only with known shapes")
    rank, k = len(out.shape), f"d{len(out.shape)}"
    a_vector, b_vector = len(ta.shape) == 1, len(tb.shape) == 1
    batch = rank - (not a_vector) - (not b_vector)
    m = f"d{batch}"
    n = f"d{rank - 1}"

    def operand_map(t, vector, inner, transpose):
        if vector:
            return [k]
        lead = batch - (len(t.shape) - 2)
        exprs = [
            "0" if size == 1 and out.shape[lead + i] != 1 else f"d{lead + i}"
            for i, size in enumerate(t.shape[:-2])
        ]
        return exprs + (inner[::-1] if transpose else inner)

    a_map = operand_map(ta, a_vector, [m, k], attrs["transpose_a"])
    b_map = operand_map(tb, b_vector, [k, n], attrs["transpose_b"])
    init = w.filled(out, list(out.shape), 0)
    maps = [affine_map(rank + 1, e) for e in (a_map, b_map, [f"d{i}" for i in range(rank)])]
    iterators = ["parallel"] * rank + ["reduction"]

    def body(w, s):
        wide = [SCALAR["cast"](w, [v], t.dtype, out.dtype) for v, t in ((s[0], ta), (s[1], tb))]
        product = SCALAR["mul"](w, wide, out.dtype, out.dtype)
        return [SCALAR["add"](w, [s[2], product], out.dtype, out.dtype)]

    return generic(w, [(a, ta), (b, tb)], [(init, out)], maps, iterators, body)[0]


def emit_matmul(w, op):
    (a, ta), (b, tb) = operands(w, op)
    return [matmul(w, a, ta, b, tb, op.attrs, op.result.type)]


def emit_gemm(w, op):
    """c + alpha * (a @ b): the product, then one elementwise generic."""
    (a, ta), (b, tb), (c, tc) = operands(w, op)
    attrs = {k: op.attrs[k] for k in ("transpose_a", "transpose_b")}
    product_t = get_op("matmul").infer([ta, tb], attrs)[0]
    product = matmul(w, a, ta, b, tb, attrs, product_t)
    dtype = op.result.type.dtype

    def body(w, s):
        alpha = w.scalar(op.attrs["alpha"], dtype)
        scaled = SCALAR["mul"](w, [alpha, s[1]], dtype, dtype)
        return SCALAR["add"](w, [s[0], scaled], dtype, dtype)

    return [map_elementwise(w, [(c, tc), (product, product_t)], op.result.type, body)]


# ---- shapes ----------------------------------------------------------------------------------


def emit_transpose(w, op):
    x, t = operands(w, op)[0]
    perm = list(op.attrs["perm"])
    out = op.result.type
    init = w.empty(out, [w.dim(x, t, p) for p in perm])
    return [
        w.op(
            f"linalg.transpose ins({x} : {tensor_type(t)}) outs({init} : {tensor_type(out)}) "
            f"permutation = [{', '.join(map(str, perm))}]"
        )
    ]


def emit_reshape(w, op):
    x, t = operands(w, op)[0]
    return [w.reshape(x, t, op.result.type)]


def emit_expand_dims(w, op):
    x, t = operands(w, op)[0]
    out = op.result.type
    axes = sorted(a % len(out.shape) for a in op.attrs["axes"])
    sources = iter(w.dim(x, t, i) for i in range(len(t.shape)))
    dims = [1 if i in axes else next(sources) for i in range(len(out.shape))]
    return [w.expand_units(x, t, out, axes, dims)]


def emit_squeeze(w, op):
    x, t = operands(w, op)[0]
    axes = [a % len(t.shape) for a in op.attrs["axes"]]
    return [w.collapse_units(x, t, op.result.type, axes)]


def emit_alias(w, op):
    """Ops whose result is their operand (identity, assign's new value), cast to the
    result's type where it differs (shape_invariant relaxes dimensions)."""
    x, t = operands(w, op)[0]
    return [w.cast(x, t, op.result.type)]


def emit_constant(w, op):
    return [w.tensor_constant(op.attrs["value"], op.result.type)]


def _slice_geometry(t: TensorType, spec) -> list:
    """(offset, size, stride, reversed) per axis, from Python slice triples."""
    if not t.is_static:
        raise ExportError("slice exports only with known shapes: pass feed_dict")
    spec = list(spec) + [(None, None, None)] * (len(t.shape) - len(spec))
    geometry = []
    for (start, stop, step), n in zip(spec, t.shape, strict=True):
        start, stop, step = slice(start, stop, step).indices(n)
        size = len(range(start, stop, step))
        low = start if step > 0 else start + (size - 1) * step
        geometry.append((low if size else 0, size, abs(step), step < 0))
    return geometry


def _slice_attrs(geometry) -> str:
    offsets, sizes, strides = ([str(g[i]) for g in geometry] for i in range(3))
    return f"[{', '.join(offsets)}] [{', '.join(sizes)}] [{', '.join(strides)}]"


def emit_slice(w, op):
    """tensor.extract_slice; with a negative step, one generic reading x at each
    element's mirrored position (IREE's llvm-cpu cannot translate a tensor.extract from
    a strided slice, nor accept an `n-1-d` indexing map)."""
    x, t = operands(w, op)[0]
    geometry = _slice_geometry(t, op.attrs["spec"])
    out = op.result.type
    if not any(g[3] for g in geometry):
        return [
            w.op(
                f"tensor.extract_slice {x}{_slice_attrs(geometry)} : {tensor_type(t)} to "
                f"{tensor_type(out)}"
            )
        ]

    def position(w, loops):
        at = []
        for (low, size, stride, reversed_), i in zip(geometry, loops, strict=True):
            if reversed_:
                i = w.op(f"arith.subi {w.index(size - 1)}, {i} : index")
            if stride != 1:
                i = w.op(f"arith.muli {i}, {w.index(stride)} : index")
            at.append(w.op(f"arith.addi {i}, {w.index(low)} : index") if low else i)
        return at

    return [gathered(w, x, t, out, position)]


def emit_unslice(w, op):
    """Zeros of the reference's shape with `g` written where the slice read."""
    (g, tg), (_, like) = operands(w, op)
    out = op.result.type
    geometry = _slice_geometry(out, op.attrs["spec"])
    g = reverse(w, g, tg, [i for i, geo in enumerate(geometry) if geo[3]])
    zeros = w.filled(out, list(out.shape), 0)
    return [
        w.op(
            f"tensor.insert_slice {g} into {zeros}{_slice_attrs(geometry)} : {tensor_type(tg)} "
            f"into {tensor_type(out)}"
        )
    ]


def emit_concat(w, op):
    parts = operands(w, op)
    axis = op.attrs["axis"] % len(op.result.type.shape)
    types = ", ".join(tensor_type(t) for _, t in parts)
    names = ", ".join(s for s, _ in parts)
    return [w.op(f"tensor.concat dim({axis}) {names} : ({types}) -> {tensor_type(op.result.type)}")]


def emit_split_like(w, op):
    """The pieces of x along `axis` with the sizes of the other operands."""
    (x, t), *likes = operands(w, op)
    axis = op.attrs["axis"] % len(t.shape)
    if not t.is_static:
        raise ExportError("split_like exports only with known shapes: pass feed_dict")
    results, offset = [], 0
    for result in op.results:
        size = result.type.shape[axis]
        geometry = [
            (offset if i == axis else 0, size if i == axis else n, 1, False)
            for i, n in enumerate(t.shape)
        ]
        results.append(
            w.op(
                f"tensor.extract_slice {x}{_slice_attrs(geometry)} : {tensor_type(t)} to {tensor_type(result.type)}"
            )
        )
        offset += size
    return results


def emit_nothing(w, op):
    return []


# ---- control flow: scf.if and scf.while ---------------------------------------------------


def emit_cond(w, op):
    emit_checks.flush(w)
    pred = w.op(f"tensor.extract {w.name(op.operands[0])}[] : tensor<i1>")
    types = [r.type for r in op.results]
    names = _results_head(w, len(types))
    arrow = f" -> ({', '.join(tensor_type(t) for t in types)})" if types else ""
    w.emit(f"{names[0]}scf.if {pred}{arrow} {{")
    for i, region in enumerate(op.regions):
        if i:
            w.emit("} else {")
        _emit_block(w, region.block, [], types, "scf.yield")
    w.emit("}")
    return names[1]


def emit_while(w, op):
    """scf.while; `max_iterations` (TF1's bound) is an extra carried counter."""
    emit_checks.flush(w)
    inits = [
        w.cast(w.name(v), v.type, r.type) for v, r in zip(op.operands, op.results, strict=True)
    ]
    types = [r.type for r in op.results]
    limit = op.attrs.get("max_iterations")
    carried = [tensor_type(t) for t in types] + (["i64"] if limit is not None else [])
    if limit is not None:
        inits.append(w.op("arith.constant 0 : i64", "c"))
    names = _results_head(w, len(carried))
    before = [w.fresh("b") for _ in carried]
    signature = f"({', '.join(carried)}) -> ({', '.join(carried)})"
    pairs = ", ".join(f"{b} = {i}" for b, i in zip(before, inits, strict=True))
    w.emit(f"{names[0]}scf.while ({pairs}) : {signature} {{")
    w.depth += 1
    _bind_args(w, op.regions[0].block, before)
    _emit_ops(w, op.regions[0].block)
    emit_checks.flush(w)
    pred = w.op(
        f"tensor.extract {w.name(op.regions[0].block.terminator.operands[0])}[] : tensor<i1>"
    )
    if limit is not None:
        below = w.op(
            f"arith.cmpi slt, {before[-1]}, {w.op(f'arith.constant {int(limit)} : i64', 'c')} : i64"
        )
        pred = w.op(f"arith.andi {pred}, {below} : i1")
    w.emit(f"scf.condition({pred}) {', '.join(before)} : {', '.join(carried)}")
    w.depth -= 1
    after = [w.fresh("b") for _ in carried]
    w.emit(
        f"}} do {{\n{'  ' * w.depth}^bb0({', '.join(f'{a}: {c}' for a, c in zip(after, carried, strict=True))}):"
    )
    extra = None
    if limit is not None:
        w.depth += 1
        extra = w.op(f"arith.addi {after[-1]}, {w.op('arith.constant 1 : i64', 'c')} : i64")
        w.depth -= 1
    _emit_block(w, op.regions[1].block, after, types, "scf.yield", extra)
    w.emit("}")
    return names[1][: len(types)]


def _results_head(w, n: int):
    """('%r:n = ' or '', the n result names) for an op with n results."""
    if not n:
        return "", []
    name = w.fresh("r")
    if n == 1:
        return f"{name} = ", [name]
    return f"{name}:{n} = ", [f"{name}#{i}" for i in range(n)]


def _bind_args(w, block, names):
    for arg, name in zip(block.args, names, strict=False):
        w.names[arg] = name


def _emit_ops(w, block):
    for op in block.ops:
        if not op.opdef.is_terminator:
            emit_op(w, op)


def _emit_block(w, block, arg_names, types, terminator, extra=None):
    """A region's ops and its terminator, the yielded values cast to `types`."""
    w.depth += 1
    _bind_args(w, block, arg_names)
    _emit_ops(w, block)
    emit_checks.flush(w)
    values = block.terminator.operands
    yielded = [w.cast(w.name(v), v.type, t) for v, t in zip(values, types, strict=True)]
    all_types = [tensor_type(t) for t in types]
    if extra is not None:
        yielded, all_types = yielded + [extra], all_types + ["i64"]
    w.emit(f"{terminator} {', '.join(yielded)} : {', '.join(all_types)}" if yielded else terminator)
    w.depth -= 1


def emit_fused(w, op):
    """A fused kernel (from an optimised program) exports as the ops it holds: IREE
    forms its own dispatch regions."""
    block = op.regions[0].block
    _bind_args(w, block, [w.name(v) for v in op.operands])
    _emit_ops(w, block)
    return [w.name(v) for v in block.terminator.operands]


# ---- the table -------------------------------------------------------------------------------

EMITTERS = {
    **dict.fromkeys(SCALAR, emit_elementwise),
    "sin": functools.partial(emit_sin_cos, cosine=False),
    "cos": functools.partial(emit_sin_cos, cosine=True),
    **dict.fromkeys(["broadcast_to", "broadcast_like"], emit_broadcast),
    **dict.fromkeys(["reduce_sum", "reduce_prod", "reduce_max", "reduce_min"], emit_reduce),
    "sum_to": emit_sum_to,
    **dict.fromkeys(["argmax", "argmin"], emit_arg_extremum),
    "count": emit_count,
    "matmul": emit_matmul,
    "gemm": emit_gemm,
    "transpose": emit_transpose,
    **dict.fromkeys(["reshape", "reshape_like"], emit_reshape),
    "expand_dims": emit_expand_dims,
    "squeeze": emit_squeeze,
    **dict.fromkeys(["assign", "shape_invariant"], emit_alias),
    "constant": emit_constant,
    "slice": emit_slice,
    "unslice": emit_unslice,
    "concat": emit_concat,
    "split_like": emit_split_like,
    "group": emit_nothing,
    "check_numerics": emit_checks.emit_check_numerics,
    "cond": emit_cond,
    "while": emit_while,
    "fused": emit_fused,
    **emit_indexing.EMITTERS,
    **emit_dynamic_slice.EMITTERS,
    **emit_scan.EMITTERS,
    **emit_conv.EMITTERS,
    **emit_random.EMITTERS,
}

# Why the ops with no entry do not export (docs/mlir.md lists them too).
NOT_EXPORTED = {
    **dict.fromkeys(
        ["list_new", "list_push", "list_get", "list_add", "list_add_at", "list_zeros_like"],
        "tensor lists (the tapes of loop gradients) have no upstream MLIR type",
    ),
    "all_reduce": "a collective across processes (MPI) has no upstream MLIR form",
    "flatnonzero": "its result's length depends on the values (no static shape to export)",
}


def emit_op(w, op) -> None:
    emitter = EMITTERS.get(op.name)
    if emitter is None:
        why = NOT_EXPORTED.get(op.name, "it has no upstream MLIR emitter yet")
        raise ExportError(f"op '{op.name}' does not export to upstream MLIR: {why}", op=op)
    for value, name in zip(op.results, emitter(w, op), strict=True):
        w.names[value] = name
    if w.check_numerics:
        emit_checks.check_results(w, op)

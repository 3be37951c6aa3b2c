"""linalg read back: structured ops as graphjit ops on whole tensors.

A structured op (linalg.generic; linalg.map, linalg.reduce and the matmuls are special
cases of it) runs its body once per point of a loop space d0 .. dn-1, reading each
operand through an indexing map. To read one back, each input becomes a *view*: the
tensor with its axes put in loop order, right-aligned as NumPy broadcasts, with a 1 for
each loop dimension its map does not read. The body's arith/math ops then apply to the
views as graphjit elementwise ops (import_scalar.py), and broadcasting computes every
point at once; each result is moved from loop order to its output's map.

A reduction body must end in one combining op (add, mul, maximum or minimum) of the
accumulator and a value: the value, over the whole loop space, is folded with
reduce_sum/prod/max/min over the reduction dimensions, then combined with the output's
starting value unless that is the fold's identity (what linalg.fill writes before a
reduction). A body adding the product of its two inputs (linalg.matmul's, and every
matmul the exporter writes) reads back as graphjit's matmul, not as a product over the
whole loop space; the exporter's argmax/argmin generic reads back as argmax/argmin."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from graphjit.ir.ops import get_op
from graphjit.ir.ops.elementwise import broadcast_shapes
from graphjit.ir.types import int32
from graphjit.mlir.import_core import Deferred, Pending, static_ints, tensor_type


@dataclass
class LoopSpace:
    rank: int
    sizes: dict  # loop dimension -> its size, where an operand's static shape tells it


@contextmanager
def _in_loop(im, space: LoopSpace):
    outer, im.loop = im.loop, space
    try:
        yield
    finally:
        im.loop = outer


# ---- indexing maps and views ----------------------------------------------------------------


def map_exprs(im, affine_map) -> list:
    """An indexing map as one entry per operand axis: the loop dimension it reads, or None
    for the constant 0 (a unit axis read by broadcasting)."""
    exprs = []
    for e in affine_map.results:
        if isinstance(e, im.ir.AffineDimExpr):
            exprs.append(e.position)
        elif isinstance(e, im.ir.AffineConstantExpr) and e.value == 0:
            exprs.append(None)
        else:
            raise im.unsupported(f"an indexing map that is not a projection ({affine_map})")
    return exprs


def view(im, x, exprs: list, rank: int):
    """`x` read through `exprs` as a loop-space tensor: unit axes read at 0 dropped, the
    others in loop order, a 1 for each loop dimension after the first it reads."""
    dims = [k for k in exprs if k is not None]
    if len(set(dims)) != len(dims):
        raise im.unsupported("an indexing map reading a loop dimension twice (a diagonal)")
    unit_axes = tuple(i for i, k in enumerate(exprs) if k is None)
    if unit_axes:
        x = im.create("squeeze", [x], axes=unit_axes)
    order = sorted(range(len(dims)), key=dims.__getitem__)
    if order != list(range(len(dims))):
        x = im.create("transpose", [x], perm=tuple(order))
    if dims:
        first = min(dims)
        missing = tuple(k - first for k in range(first, rank) if k not in dims)
        if missing:
            x = im.create("expand_dims", [x], axes=missing)
    return x


def to_output(im, v, dims: list, exprs: list, out):
    """`v`, whose axes are the loop dimensions `dims` (right-aligned: leading ones may be
    missing), as the output operand `out` read through `exprs`."""
    dims = list(dims)
    if v.type.rank < len(dims):
        v = im.create("expand_dims", [v], axes=tuple(range(len(dims) - v.type.rank)))
    present = [k for k in exprs if k is not None]
    unread = tuple(i for i, k in enumerate(dims) if k not in present)
    if unread:
        if any(v.type.shape[i] != 1 for i in unread):
            raise im.unsupported("an output map without a loop dimension its value varies along")
        v = im.create("squeeze", [v], axes=unread)
        dims = [k for k in dims if k in present]
    perm = tuple(dims.index(k) for k in present)
    if perm != tuple(range(len(perm))):
        v = im.create("transpose", [v], perm=perm)
    unit_axes = tuple(i for i, k in enumerate(exprs) if k is None)
    if unit_axes:
        v = im.create("expand_dims", [v], axes=unit_axes)
    return broadcast_to_output(im, v, out)


def broadcast_to_output(im, v, out):
    """`v` broadcast to the shape of the output operand `out` where it is smaller (a `?`
    in both is taken to be the same size, as the exporter assumes)."""
    want = tensor_type(out.type).shape
    if broadcast_shapes(v.type.shape, want) == v.type.shape:
        return v
    if None not in want:
        return im.create("broadcast_to", [v], shape=want)
    return im.create("broadcast_like", [v, im.value(out)])


def _segments(op) -> tuple[list, list]:
    """A structured op's inputs and outputs."""
    n_in, n_out = list(op.attributes["operandSegmentSizes"])
    operands = list(op.operands)
    return operands[:n_in], operands[n_in : n_in + n_out]


def _static_sizes(operands, maps) -> dict:
    sizes = {}
    for v, exprs in zip(operands, maps):
        for size, k in zip(tensor_type(v.type).shape, exprs):
            if k is not None and size is not None:
                sizes[k] = size
    return sizes


# ---- structured ops ---------------------------------------------------------------------------


def structured(im, op, ins: list, outs: list, maps: list, iterators: list) -> list:
    rank = len(iterators)
    reductions = [k for k, kind in enumerate(iterators) if kind == "reduction"]
    body = op.regions[0].blocks[0]
    combining = _combinings(body, len(ins)) if reductions else None
    product = _contraction(im, body, ins, outs, maps, combining)
    if product is not None:
        return product
    space = LoopSpace(rank, _static_sizes(ins + outs, maps))
    views = [view(im, im.value(x), exprs, rank) for x, exprs in zip(ins, maps)]
    out_maps = maps[len(ins) :]
    if not reductions:
        return _parallel(im, body, space, views, outs, out_maps)
    if combining is None:
        return _arg_extremum(im, body, views, outs, out_maps, reductions, rank)
    return _reduction(im, body, space, views, outs, out_maps, reductions, combining)


def _parallel(im, body, space, views, outs, out_maps) -> list:
    """Every result computed at every point: the body on the views."""
    out_views = [
        Deferred(lambda out=out, exprs=exprs: view(im, im.value(out), exprs, space.rank))
        for out, exprs in zip(outs, out_maps)
    ]
    with _in_loop(im, space):
        term = im.read_block(body, (views + out_views)[: len(body.arguments)])
    loop_dims = list(range(space.rank))
    return [
        to_output(im, im.value(y), loop_dims, exprs, out)
        for y, exprs, out in zip(term.operands, out_maps, outs, strict=True)
    ]


# combining op of a reduction body -> (graphjit reduction, graphjit op that combines two)
COMBINERS = {
    **dict.fromkeys(["arith.addf", "arith.addi"], ("reduce_sum", "add")),
    **dict.fromkeys(["arith.mulf", "arith.muli"], ("reduce_prod", "mul")),
    **dict.fromkeys(["arith.maximumf", "arith.maxsi"], ("reduce_max", "maximum")),
    **dict.fromkeys(["arith.minimumf", "arith.minsi"], ("reduce_min", "minimum")),
    "arith.andi": ("reduce_min", "logical_and"),  # (on i1: all; graphjit reduces no bools,
    "arith.ori": ("reduce_max", "logical_or"),  # so they fold as int32)
}
LOGICAL_IDENTITY = {"logical_and": True, "logical_or": False}


def _combinings(body, n_inputs: int) -> list | None:
    """Per output, (reduction, combine op, the value combined with the accumulator), or
    None unless each output's yielded value is one combining op of its accumulator."""
    term = [o.operation for o in body.operations][-1]
    accumulators = list(body.arguments)[n_inputs:]
    combining = []
    for yielded, accumulator in zip(term.operands, accumulators, strict=True):
        owner = getattr(yielded.owner, "operation", yielded.owner)
        rules = COMBINERS.get(getattr(owner, "name", None))
        operands = list(owner.operands) if rules else []
        if len(operands) != 2 or accumulator not in operands:
            return None
        value = operands[1] if operands[0] == accumulator else operands[0]
        combining.append((*rules, value))
    return combining


def _reduction(im, body, space, views, outs, out_maps, reductions, combining) -> list:
    term = [o.operation for o in body.operations][-1]
    what = "a reduction body that reads its accumulator before its last op"
    for y in term.operands:
        im.env[y] = im.unreadable(what)
    with _in_loop(im, space):
        im.read_block(body, views + [im.unreadable(what)] * len(outs), skip=set(term.operands))
    parallel = [k for k in range(space.rank) if k not in reductions]
    results = []
    for (reduction, combine, value), out, exprs in zip(combining, outs, out_maps, strict=True):
        folded = _fold(im, im.value(value), views, reduction, combine, reductions, space.rank)
        result = to_output(im, folded, parallel, exprs, out)
        results.append(with_start(im, result, out, reduction, combine))
    return results


def _fold(im, value, views, reduction: str, combine: str, reductions: list, rank: int):
    """`value` spread over the loop space the views span, folded over `reductions`."""
    if value.type.dtype.is_bool != (combine in LOGICAL_IDENTITY):
        raise im.unsupported(f"a reduction by '{combine}' of {value.type.dtype.name}")
    for v in views:
        if broadcast_shapes(value.type.shape, v.type.shape) != value.type.shape:
            value = im.create("broadcast_like", [value, v])
    lead = rank - value.type.rank
    axes = tuple(k - lead for k in reductions)
    if min(axes) < 0:
        raise im.error("a reduction dimension that no input reads")
    dtype = value.type.dtype
    foldable = im.cast(value, int32 if dtype.is_bool else dtype)
    return im.cast(im.create(reduction, [foldable], axes=axes, keepdims=False), dtype)


def with_start(im, result, out, reduction: str, combine: str):
    """`result` combined with the output's starting value, unless that is the identity."""
    pending = im.pending(out)
    if combine in LOGICAL_IDENTITY:
        identity = LOGICAL_IDENTITY[combine]
    else:
        identity = get_op(reduction).identity(result.type.dtype.np)
    if pending is not None and im.is_fill_of(pending, identity):
        return result
    return im.create(combine, [im.value(out), result])


PRODUCTS = {"arith.mulf", "arith.muli"}


def _contraction(im, body, ins, outs, maps, combining) -> list | None:
    """A body adding the product of its two inputs (linalg.matmul's, the exporter's
    transposed and vector matmuls) as graphjit's matmul (BLAS, not a product tensor of
    the whole loop space): the inputs' axes put in (batch, row, inner) and (batch, inner,
    column) order. None for any other body, or dimensions that do not sort so."""
    if combining is None or len(ins) != 2 or len(combining) != 1 or combining[0][1] != "add":
        return None
    owner = getattr(combining[0][2].owner, "operation", None)  # (None: a block argument)
    factors = list(owner.operands) if getattr(owner, "name", None) in PRODUCTS else []
    args = list(body.arguments)[:2]
    if factors not in (args, args[::-1]):
        return None
    if len({tensor_type(v.type).dtype for v in ins + outs}) != 1 or None in sum(maps, []):
        return None
    a, b, c = (set(exprs) for exprs in maps)
    batch, rows, columns, inner = sorted(a & b & c), sorted(a & c - b), sorted(b & c - a), a & b - c
    summed_alone, unread = (a ^ b) - c, c - (a | b)  # (a matmul has neither)
    if len(rows) > 1 or len(columns) > 1 or len(inner) != 1 or summed_alone or unread:
        return None
    lhs = _arranged(im, ins[0], maps[0], batch + rows + [*inner])
    rhs = _arranged(im, ins[1], maps[1], batch + [*inner] + columns)
    if not rows:  # a vector: one row
        lhs = im.create("expand_dims", [lhs], axes=(len(batch),))
    if not columns:  # one column
        rhs = im.create("expand_dims", [rhs], axes=(len(batch) + 1,))
    product = im.create("matmul", [lhs, rhs])
    units = tuple([len(batch)] * (not rows) + [len(batch) + 1] * (not columns))
    if units:
        product = im.create("squeeze", [product], axes=units)
    result = to_output(im, product, batch + rows + columns, maps[2], outs[0])
    return [with_start(im, result, outs[0], "reduce_sum", "add")]


def _arranged(im, operand, exprs: list, order: list):
    """The operand with its axes (loop dimensions `exprs`) in `order`."""
    x = im.value(operand)
    perm = tuple(exprs.index(k) for k in order)
    return x if perm == tuple(range(len(perm))) else im.create("transpose", [x], perm=perm)


# (cmp op, predicate) that makes a two-output reduction graphjit's exported argmax/argmin
ARG_EXTREMUM = {
    ("arith.cmpf", 9): "max",  # ugt: a NaN wins (the first NaN, as NumPy)
    ("arith.cmpi", 4): "max",  # sgt
    ("arith.cmpf", 11): "min",  # ult
    ("arith.cmpi", 2): "min",  # slt
}


def _arg_extremum(im, body, views, outs, out_maps, reductions, rank) -> list:
    """The exporter's argmax/argmin generic (the best value and its first index, by
    linalg.index) read back; any other reduction body is not imported."""
    kinds = {
        ARG_EXTREMUM.get((o.name, im.ir.IntegerAttr(o.attributes["predicate"]).value))
        for o in (op.operation for op in body.operations)
        if "predicate" in o.attributes
    } - {None}
    index_type = tensor_type(outs[-1].type).dtype
    if not (len(views) == 1 and len(outs) == 2 and len(reductions) == 1 and len(kinds) == 1):
        raise im.unsupported(
            "a reduction body that does not end in one add, mul, maximum or minimum of its "
            "accumulator and a value (or in graphjit's argmax/argmin form)"
        )
    kind, x = kinds.pop(), views[0]
    axis = reductions[0] - (rank - x.type.rank)
    best = im.create(f"reduce_{kind}", [x], axes=(axis,), keepdims=False)
    index = im.create(f"arg{kind}", [x], axis=axis, keepdims=False)
    index = im.cast(index, index_type)
    parallel = [k for k in range(rank) if k not in reductions]
    return [
        to_output(im, value, parallel, exprs, out)
        for value, exprs, out in zip((best, index), out_maps, outs, strict=True)
    ]


# ---- the ops ----------------------------------------------------------------------------------


def read_generic(im, op):
    ins, outs = _segments(op)
    maps = [map_exprs(im, m.value) for m in op.attributes["indexing_maps"]]
    iterators = [
        "reduction" if "reduction" in str(kind) else "parallel"
        for kind in op.attributes["iterator_types"]
    ]
    return structured(im, op, ins, outs, maps, iterators)


def read_map(im, op):
    """linalg.map: a parallel generic whose operands all read the loop space as it is."""
    operands = list(op.operands)
    rank = tensor_type(operands[-1].type).rank
    identity = list(range(rank))
    return structured(
        im, op, operands[:-1], operands[-1:], [identity] * len(operands), ["parallel"] * rank
    )


def read_reduce(im, op):
    """linalg.reduce: inputs and starting values in equal numbers, `dimensions` folded."""
    operands = list(op.operands)
    ins, outs = operands[: len(operands) // 2], operands[len(operands) // 2 :]
    dims = static_ints(op.attributes["dimensions"])
    rank = tensor_type(ins[0].type).rank
    maps = [list(range(rank))] * len(ins) + [[k for k in range(rank) if k not in dims]] * len(outs)
    iterators = ["reduction" if k in dims else "parallel" for k in range(rank)]
    return structured(im, op, ins, outs, maps, iterators)


# the indexing maps of linalg.matmul and batch_matmul when their operands are not transposed
MATMUL_MAPS = {3: [[0, 2], [2, 1], [0, 1]], 4: [[0, 1, 3], [0, 3, 2], [0, 1, 2]]}


def read_matmul(im, op):
    """linalg.matmul / batch_matmul: contractions by their indexing maps (the plain ones
    when the text gives none), which read back as graphjit's matmul."""
    ins, outs = _segments(op)
    rank = tensor_type(outs[0].type).rank + 1
    maps = MATMUL_MAPS[rank]
    if "indexing_maps" in op.attributes:
        maps = [map_exprs(im, m.value) for m in op.attributes["indexing_maps"]]
    iterators = ["parallel" if k in maps[-1] else "reduction" for k in range(rank)]
    return structured(im, op, ins, outs, maps, iterators)


def read_fill(im, op):
    scalar, out = op.operands
    value = im.value(scalar)
    pending = im.pending(out)
    if pending is not None:
        return [Pending(tensor_type(op.results[0].type), pending.dims, value)]
    target = im.value(out)
    return [im.create("broadcast_like", [im.cast(value, target.type.dtype), target])]


def read_transpose(im, op):
    perm = tuple(static_ints(op.attributes["permutation"]))
    return [im.create("transpose", [im.value(op.operands[0])], perm=perm)]


def read_broadcast(im, op):
    """linalg.broadcast: `dimensions` are the output axes the input lacks."""
    x, out = op.operands
    dims = tuple(static_ints(op.attributes["dimensions"]))
    value = im.value(x)
    if dims:
        value = im.create("expand_dims", [value], axes=dims)
    return [broadcast_to_output(im, value, out)]


def read_index(im, op):
    """linalg.index k in a body: 0, 1, ... along loop dimension k (a constant, so the size
    of that dimension must be static)."""
    space = im.loop
    k = im.ir.IntegerAttr(op.attributes["dim"]).value
    if space is None or k not in space.sizes:
        raise im.unsupported("linalg.index over a dimension of unknown size")
    size = space.sizes[k]
    return [
        im.constant(np.arange(size, dtype=np.int64).reshape((size,) + (1,) * (space.rank - 1 - k)))
    ]


LINALG_RULES = {
    "linalg.generic": read_generic,
    "linalg.map": read_map,
    "linalg.reduce": read_reduce,
    **dict.fromkeys(["linalg.matmul", "linalg.batch_matmul"], read_matmul),
    "linalg.fill": read_fill,
    "linalg.transpose": read_transpose,
    "linalg.broadcast": read_broadcast,
    "linalg.copy": lambda im, op: [im.value(op.operands[0])],
    "linalg.index": read_index,
}

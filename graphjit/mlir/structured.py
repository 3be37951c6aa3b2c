"""linalg.generic and its indexing maps: the structured op that every emitter family
builds on (elementwise maps, reductions, gathers, convolutions), and the small helpers
around it (operands as (SSA, type) pairs, dimensions, scalars in index arithmetic)."""

from __future__ import annotations

from graphjit.ir.types import TensorType, bool_
from graphjit.mlir.writer import ExportError, element_type, tensor_type


def output_dims(w, out: TensorType, sources: list) -> list:
    """Each dimension of `out`: its size when static, else `tensor.dim` of a source (an
    (ssa, type) pair, right-aligned) whose dimension there is unknown too. A `?` is
    assumed not to be a broadcast 1 (the Session always exports with known shapes)."""
    dims = []
    for axis, size in enumerate(out.shape):
        if size is not None:
            dims.append(size)
            continue
        for ssa, t in sources:
            k = axis - (len(out.shape) - len(t.shape))
            if k >= 0 and t.shape[k] is None:
                dims.append(w.dim(ssa, t, k))
                break
        else:
            raise ExportError(f"cannot tell the size of dimension {axis} of {out}")
    return dims


def broadcast_map(t: TensorType, out: TensorType) -> str:
    """The indexing map reading `t` broadcast NumPy-style to `out`."""
    rank, lead = len(out.shape), len(out.shape) - len(t.shape)
    exprs = [
        "0" if size == 1 and out.shape[lead + k] != 1 else f"d{lead + k}"
        for k, size in enumerate(t.shape)
    ]
    return affine_map(rank, exprs)


def affine_map(rank: int, exprs: list) -> str:
    return f"affine_map<({', '.join(f'd{i}' for i in range(rank))}) -> ({', '.join(exprs)})>"


def quoted(text: str) -> str:
    return f'"{text}"'


def generic(w, inputs: list, outs: list, maps: list, iterators: list, body) -> list:
    """A linalg.generic: `inputs`/`outs` are (ssa, type) pairs, `maps` one per input then
    output, `body(w, scalars) -> [yielded scalars]` given the block's scalar arguments."""
    scalars = [w.fresh("a") for _ in inputs + outs]
    results = w.fresh("g")
    types = [tensor_type(t) for _, t in outs]
    head = (
        f"{results}{':' + str(len(outs)) if len(outs) > 1 else ''} = linalg.generic "
        f"{{indexing_maps = [{', '.join(maps)}], iterator_types = "
        f"[{', '.join(map(quoted, iterators))}]}}"
    )
    ins = ", ".join(s for s, _ in inputs)
    w.emit(
        f"{head} ins({ins} : {', '.join(tensor_type(t) for _, t in inputs)}) "
        if inputs
        else f"{head} "
    )
    w.lines[-1] += f"outs({', '.join(s for s, _ in outs)} : {', '.join(types)}) {{"
    w.emit(
        f"^bb0({', '.join(f'{s}: {element_type(t.dtype)}' for s, (_, t) in zip(scalars, inputs + outs))}):"
    )
    w.depth += 1
    yielded = body(w, scalars)
    w.emit(
        f"linalg.yield {', '.join(yielded)} : {', '.join(element_type(t.dtype) for _, t in outs)}"
    )
    w.depth -= 1
    w.emit(f"}} -> {', '.join(types)}" if len(outs) == 1 else f"}} -> ({', '.join(types)})")
    return [results] if len(outs) == 1 else [f"{results}#{i}" for i in range(len(outs))]


def map_elementwise(w, inputs: list, out: TensorType, body, dim_sources=None) -> str:
    """`out` computed element by element from `inputs` (broadcast NumPy-style)."""
    dims = output_dims(w, out, dim_sources or inputs)
    init = w.empty(out, dims)
    maps = [broadcast_map(t, out) for _, t in inputs] + [
        affine_map(len(out.shape), [f"d{i}" for i in range(len(out.shape))])
    ]
    parallel = ["parallel"] * len(out.shape)
    return generic(
        w, inputs, [(init, out)], maps, parallel, lambda w, s: [body(w, s[: len(inputs)])]
    )[0]


def operands(w, op) -> list:
    return [(w.name(v), v.type) for v in op.operands]


def identity_map(rank: int) -> str:
    return affine_map(rank, [f"d{i}" for i in range(rank)])


def dims_of(w, ssa: str, t: TensorType) -> list:
    """Every dimension of `ssa`: ints where static, `tensor.dim` SSA names where not."""
    return [w.dim(ssa, t, axis) for axis in range(len(t.shape))]


def as_index(w, size) -> str:
    """A dimension (an int, or an SSA index already) as an SSA index."""
    return w.index(size) if isinstance(size, int) else size


def loop_indices(w, rank: int) -> list:
    """The SSA indices of a generic's loops 0 .. rank - 1, inside its body."""
    return [w.op(f"linalg.index {i} : index") for i in range(rank)]


def all_true(w, inputs: list, predicate, over: TensorType | None = None) -> str:
    """A 0-d tensor<i1>: whether `predicate(w, scalars) -> i1` holds at every element of
    `inputs` ((ssa, type) pairs of one shape), or, given `over`, at every element of that
    shape, the inputs broadcast to it. One reduction, for run-time checks."""
    rank = len((over if over is not None else inputs[0][1]).shape)
    result = TensorType((), bool_)
    init = w.filled(result, [], True)
    reads = [identity_map(rank) if over is None else broadcast_map(t, over) for _, t in inputs]
    maps = reads + [affine_map(rank, [])]

    def body(w, s):
        holds = predicate(w, s[:-1])
        return [w.op(f"arith.andi {s[-1]}, {holds} : i1")]

    return generic(w, inputs, [(init, result)], maps, ["reduction"] * rank, body)[0]


def gathered(w, x: str, t: TensorType, out: TensorType, position, dims=None) -> str:
    """`out` whose element at loop indices `i` is x[position(w, i)]: a generic reading
    with tensor.extract, for reads no indexing map expresses (IREE accepts no negative
    coefficient in one, such as the mirrored `n-1-d`). `dims`: out's sizes (dims_of) where
    some are unknown."""
    rank = len(out.shape)
    init = w.empty(out, list(out.shape) if dims is None else dims)

    def body(w, _):
        at = position(w, loop_indices(w, rank))
        return [w.op(f"tensor.extract {x}[{', '.join(at)}] : {tensor_type(t)}")]

    return generic(w, [], [(init, out)], [identity_map(rank)], ["parallel"] * rank, body)[0]


def reverse(w, x: str, t: TensorType, axes: list) -> str:
    """`x` with `axes` reversed (of any sizes: an unknown one read with tensor.dim)."""
    if not axes:
        return x
    dims = dims_of(w, x, t)
    last = {i: w.op(f"arith.subi {as_index(w, dims[i])}, {w.index(1)} : index") for i in axes}

    def mirrored(w, loops):
        return [
            w.op(f"arith.subi {last[i]}, {index} : index") if i in axes else index
            for i, index in enumerate(loops)
        ]

    return gathered(w, x, t, t, mirrored, dims)


def while_loop(w, start: list, types: list, condition, body) -> list:
    """An `scf.while` carrying `start` (SSA values of MLIR `types`): `condition(w,
    values) -> i1` before each iteration, `body(w, values) -> next values`; the values
    it ends with."""
    before, after = [w.fresh("b") for _ in start], [w.fresh("b") for _ in start]
    listed = ", ".join(types)
    results = w.fresh("loop")
    pairs = ", ".join(f"{b} = {s}" for b, s in zip(before, start, strict=True))
    w.emit(f"{results}:{len(start)} = scf.while ({pairs}) : ({listed}) -> ({listed}) {{")
    w.depth += 1
    w.emit(f"scf.condition({condition(w, before)}) {', '.join(before)} : {listed}")
    w.depth -= 1
    arguments = ", ".join(f"{a}: {t}" for a, t in zip(after, types, strict=True))
    w.emit(f"}} do {{\n{'  ' * w.depth}^bb0({arguments}):")
    w.depth += 1
    w.emit(f"scf.yield {', '.join(body(w, after))} : {listed}")
    w.depth -= 1
    w.emit("}")
    return [f"{results}#{i}" for i in range(len(start))]


def if_else(w, condition: str, types: list, then, otherwise) -> list:
    """An `scf.if` yielding values of MLIR `types`: `then(w)` or `otherwise(w)` (each
    returns the SSA values to yield)."""
    results = w.fresh("if")
    listed = ", ".join(types)
    w.emit(f"{results}:{len(types)} = scf.if {condition} -> ({listed}) {{")
    for branch, closing in ((then, "} else {"), (otherwise, "}")):
        w.depth += 1
        w.emit(f"scf.yield {', '.join(branch(w))} : {listed}")
        w.depth -= 1
        w.emit(closing)
    return [f"{results}#{i}" for i in range(len(types))]

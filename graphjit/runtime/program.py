"""From a graph and its fetches to the function a backend compiles.

Pruning keeps the ops the fetches need; placeholders and variables become the function's
arguments; the results are the fetched values followed by the variables' new values.
Cloning re-infers every type from the fed shapes, which specialises unknown dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graphjit import config
from graphjit.errors import FetchError, ResourceError
from graphjit.ir import builder
from graphjit.ir.clone import clone_op
from graphjit.ir.core import Block, Function, Operation, Value, captured_values
from graphjit.ir.ops import FEED, STATE, STATE_UPDATE
from graphjit.ir.symbolic import MIN_SIZE, ShapeEnv, hint
from graphjit.ir.types import TensorType
from graphjit.passes.rewrite import apply_patterns


@dataclass
class Program:
    """A function plus how its arguments and results map to feeds, variables, fetches."""

    function: Function
    placeholders: list[Value]  # graph placeholder values, one per leading argument
    variables: list[str]  # variable names, one per remaining argument
    fetches: list  # fetched graph values (None for op fetches), one per leading result
    assigned: list[str]  # variable written by each remaining result, in order
    # Compiled for every batch size (symbolic.py): per symbol, the (argument, axis) whose
    # size it is at run time; the guards the compile took on the symbols.
    sizes: list[tuple[int, int]] = field(default_factory=list)
    shape_env: ShapeEnv | None = None
    # the working memory its runs keep between them (None: GRAPHJIT_HELD_BUFFER_BYTES)
    held_buffer_bytes: int | None = None

    def size_values(self, args) -> list[int]:
        """The symbols' values in a run on `args`: each read from a fed dimension, or for a
        symbol no placeholder of the program has (the fetches need none that did), the
        value it was compiled with (`sizes` holds (None, that value): nothing reads it)."""
        return [args[i].shape[axis] if i is not None else axis for i, axis in self.sizes]


def needed_ops(block: Block, roots: list[Operation]) -> list[Operation]:
    """The top-level ops of `block` that `roots` depend on, in block order."""
    needed: set[Operation] = set()
    stack = list(roots)
    while stack:
        op = stack.pop()
        if op in needed:
            continue
        if op.parent is not block:
            raise FetchError(f"'{op.name}' is not a top-level op of this graph", op=op)
        needed.add(op)
        for v in list(op.operands) + captured_values(op):
            if v.op is not None and v.op not in needed:
                stack.append(v.op)
    return [op for op in block.ops if op in needed]


def build_program(
    graph, fetch_values: list, fetch_ops: list, feed_types: dict, max_tensor_bytes=None
) -> Program:
    """`feed_types` maps each fed placeholder value to its concrete TensorType. Raises
    ResourceError, before anything is allocated, when a specialised tensor would exceed
    `max_tensor_bytes` (default: `config.tensor_bytes_limit()`)."""
    roots = [v.op for v in fetch_values] + fetch_ops
    for v in fetch_values:
        if v.op is None or v.op.parent is not graph.block:
            raise FetchError(f"cannot fetch {v!r}: it is not a top-level value of this graph")
    ops = needed_ops(graph.block, roots)
    placeholders = [op.result for op in ops if op.opdef.has(FEED)]
    variables = [op for op in ops if op.opdef.has(STATE)]
    arg_types = [feed_types.get(p, p.type) for p in placeholders] + [
        op.result.type for op in variables
    ]
    fn = Function("main")
    fn.body.blocks[0] = block = Block(
        arg_types, [p.name_hint for p in placeholders] + [op.attrs["name"] for op in variables]
    )
    block.parent = fn.body
    vmap = dict(zip(placeholders + [op.result for op in variables], block.args))
    assigned, new_values = [], []
    for op in ops:
        if op.opdef.traits & {FEED, STATE}:  # the function's arguments
            continue
        clone = clone_op(op, vmap, block)
        if op.opdef.has(STATE_UPDATE):
            assigned.append(op.attrs["var"])
            new_values.append(clone.result)
    results = [vmap[v] for v in fetch_values] + new_values
    builder.create("return", results, block=block, loc=None)
    decompose(fn)
    check_tensor_sizes(
        fn, config.tensor_bytes_limit() if max_tensor_bytes is None else max_tensor_bytes
    )
    return Program(
        fn, placeholders, [op.attrs["name"] for op in variables], list(fetch_values), assigned
    )


def decompose(fn: Function) -> None:
    """Replace each op that stands for others (OpDef.decompose: tanh_grad) by them, so that
    no pass, backend or exporter meets one."""
    if any(op.opdef.decompose is not None for op in fn.walk()):
        apply_patterns(fn, [_decomposed])


def _decomposed(op: Operation):
    rule = op.opdef.decompose
    if rule is None:
        return None
    scratch = builder.current_block()  # (the driver's: the rule's ops land here)
    start = len(scratch.ops)
    values = rule(op)
    for new in scratch.ops[start:]:
        new.loc = op.loc  # (an error names the user's line that made the op, not the run's)
    return values


def size_class(feeds: dict) -> tuple[tuple, list, list]:
    """The fed shapes with each unknown dimension (a None of the placeholder's shape, or
    every dimension of an unknown rank) of size >= MIN_SIZE replaced by a symbol number,
    equal sizes sharing one ("duck sizing", symbolic.py). Returns (the class: the shapes
    so written, the symbols' values, the (placeholder, axis) pairs each is read from)."""
    numbers: dict[int, int] = {}
    values, sources, shapes = [], [], []
    for p, a in feeds.items():
        declared = p.type.shape if p.type.shape is not None else (None,) * a.ndim
        dims = []
        for axis, (d, n) in enumerate(zip(declared, a.shape)):
            if d is None and n >= MIN_SIZE:
                if n not in numbers:
                    numbers[n] = len(values)
                    values.append(n)
                    sources.append([])
                sources[numbers[n]].append((p, axis))
                dims.append(("s", numbers[n]))
            else:
                dims.append(n)
        shapes.append((p, tuple(dims)))
    return tuple(shapes), values, sources


def size_sources(placeholders: list, sources: list, values: list) -> list[tuple]:
    """Program.sizes: for each symbol the (placeholder index, axis) of the first of its
    sources the program kept, else (None, its value) (pruned with the placeholders it
    came from: `x.shape` folded away, or the fetches do not read x at all)."""
    kept = {p: i for i, p in enumerate(placeholders)}
    return [
        next(((kept[p], axis) for p, axis in pairs if p in kept), (None, value))
        for pairs, value in zip(sources, values, strict=True)
    ]


def symbolic_feed_types(feeds: dict, values: list) -> tuple[dict, ShapeEnv]:
    """Each fed placeholder's type with the symbols of `size_class` in its shape."""
    env = ShapeEnv()
    symbols = [env.symbol(n) for n in values]
    shapes, _, _ = size_class(feeds)
    types = {
        p: p.type.with_shape(symbols[d[1]] if isinstance(d, tuple) else d for d in dims)
        for p, dims in shapes
    }
    return types, env


def check_tensor_sizes(fn: Function, limit: int) -> None:
    """Raise ResourceError naming the first op (and its line) whose result would not fit."""
    for op in fn.walk():
        for v in op.results:
            if not isinstance(v.type, TensorType) or not v.type.is_static:
                continue
            size = v.type.size * v.type.dtype.np.itemsize
            if size > limit:  # (named at the fed sizes, not as the symbolic type's ?)
                fed = v.type.with_shape(hint(d) for d in v.type.shape)
                raise ResourceError(
                    f"'{op.name}' would make a {fed} of {_human(hint(size))}, more than "
                    f"the {_human(limit)} a tensor may take (max_tensor_bytes)",
                    op=op,
                )


def _human(nbytes: int) -> str:
    units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"]
    size, i = float(nbytes), 0
    while size >= 1024 and i < len(units) - 1:
        size, i = size / 1024, i + 1
    return f"{size:.3g} {units[i]}"

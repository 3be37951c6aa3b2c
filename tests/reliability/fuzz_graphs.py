"""Random well-typed programs for differential fuzzing.

A program is a few expression trees (`Node`) over shared float inputs. Each tree is drawn
top-down for a target shape, so every node is well typed by construction: an op picks
operand shapes that give its target shape. One `build` function turns a tree into ops; the
same function runs on graph placeholders (static), on eager tensors and inside
`gj.function`, because the gj ops serve every mode.

Kinds: elementwise unary and binary ops (with broadcasting), scalar affine maps,
reductions (sum/mean/max/min over an axis, two axes or all, with keepdims), matmul (plain,
batched, operands transposed by flag), transpose, reshape, slices (steps ±1, ±2) and
integer indexing, concat, expand_dims, squeeze, broadcast_to, where, cond, while loops
whose trip count depends on the data, and loops that swap two carried values, nested in
each other. Dimensions are now and then 0. Magnitudes stay moderate (tanh, 1 + x²
denominators) so that values, not overflow, are compared.

Some programs are meant to fail (max/min over an empty axis): every mode must then raise
the same GraphjitError subclass as the interpreter. `big_loop_programs` draws elementwise
programs around loops whose carried values are 8 MiB or more (the native stack's size),
with inputs made from a drawn seed (hypothesis does not draw megabytes well).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np

import graphjit as gj

UNARY = {
    "neg": gj.neg,
    "tanh": gj.tanh,
    "sigmoid": gj.sigmoid,
    "abs": gj.abs,
    "relu": gj.relu,
    "square": lambda x: gj.square(x) * 0.5,
    "exp_tanh": lambda x: gj.exp(gj.tanh(x)),
    "log1p_sq": lambda x: gj.log(gj.square(x) + 1.0),
    "sqrt1p_sq": lambda x: gj.sqrt(gj.square(x) + 1.0),
}
BINARY = {
    "add": gj.add,
    "sub": gj.sub,
    "mul": gj.mul,
    "div": lambda x, y: x / (gj.square(y) + 1.0),
    "maximum": gj.maximum,
    "minimum": gj.minimum,
    "pow": lambda x, y: gj.pow(gj.square(x) + 0.5, gj.tanh(y)),
}
REDUCE = {"sum": gj.sum, "mean": gj.mean, "max": gj.max, "min": gj.min}
# Integer programs: wrapping arithmetic over the whole range, and pow whose exponent may be
# negative (an error every mode must raise alike).
INT_UNARY = {"ineg": gj.neg, "iabs": gj.abs, "isquare": lambda x: x * x}
INT_BINARY = {
    "iadd": gj.add,
    "isub": gj.sub,
    "imul": gj.mul,
    "imaximum": gj.maximum,
    "iminimum": gj.minimum,
    "ipow": lambda x, y: gj.pow(x, gj.minimum(gj.maximum(y, -1), 3)),
}
INT_REDUCE = ("sum", "max", "min")
MAX_RANK = 3
DIMS = st.integers(1, 4)  # where an op needs a non-empty axis
SIZES = st.sampled_from([1, 2, 3, 4, 2, 3, 1, 0])  # tensor dims: now and then empty


@dataclass
class Node:
    kind: str
    shape: tuple
    args: tuple = ()
    attrs: dict = field(default_factory=dict)

    def size(self) -> int:
        return 1 + sum(a.size() for a in self.args)


@dataclass
class Context:
    """What a tree being drawn may refer to: the inputs drawn so far (shapes, by index) and
    the loop variables in scope (innermost last)."""

    inputs: list = field(default_factory=list)
    loops: list = field(default_factory=list)
    kinds: frozenset | None = None  # the node kinds allowed (None: all)
    integer: bool = False  # draw integer ops (INT_UNARY, ...)
    branches: int = 0  # cond branches being drawn (eager mode runs only one of them)

    def may_be_skipped(self) -> bool:
        """Inside a cond branch or a loop body: code a graph builds but eager mode may
        never run, so an error there is a graph's alone (TF1 and PyTorch differ alike)."""
        return bool(self.branches or self.loops)


# ---- building ops from a tree ------------------------------------------------------------


def build(node: Node, leaves: list, loop_vars: tuple = ()):
    """The tensor that `node` computes, with `leaves[i]` for input i."""
    kind, a = node.kind, node.attrs

    def arg(i, extra=()):
        return build(node.args[i], leaves, loop_vars + extra)

    if kind == "leaf":
        return leaves[a["index"]]
    if kind == "loop_var":
        return loop_vars[a["level"]]
    if kind == "counted_while":
        return _build_counted_while(node, arg)
    if kind in _BUILDERS:
        return _BUILDERS[kind](node, arg)
    raise AssertionError(kind)


def _build_while(node, arg):
    a = node.attrs

    def body(acc):
        return acc * 0.8 + gj.tanh(arg(1, (acc,))) * 0.5

    (out,) = gj.while_loop(
        lambda acc: gj.sum(gj.square(acc)) < a["limit"],
        body,
        [arg(0)],
        max_iterations=a["max_iterations"],
    )
    return out


def _build_counted_while(node, arg):
    """Two loop variables, an int counter and a tensor; the trip count depends on the data
    through both the count limit and the tensor's size."""
    a = node.attrs
    init = arg(0)
    total = gj.sum(gj.abs(init)) * 2.0
    # NaN or a huge float cast to int is undefined (NumPy and LLVM differ): keep it small
    limit = gj.cast(gj.where(total < 6.0, total, 6.0), gj.int32) + 1

    def cond(i, acc):
        return gj.logical_and(i < limit, gj.sum(gj.square(acc)) < a["limit"])

    def body(i, acc):
        return i + 1, acc * 0.7 + gj.tanh(arg(1, (acc,))) * 0.6

    _, out = gj.while_loop(cond, body, [0, init], max_iterations=a["max_iterations"])
    return out


def _build_swap_while(node, arg):
    """Two carried values that trade places every iteration (the second also mixed with
    the first), so each yield lives in the other's buffer: a parallel copy."""
    a = node.attrs

    def body(i, x, y):
        if a["mix"]:
            return i + 1, y, x * 0.5 + gj.tanh(arg(2, (x,))) * 0.5
        return i + 1, y, x

    _, x, y = gj.while_loop(lambda i, x, y: i < a["trips"], body, [0, arg(0), arg(1)])
    return x + y * 0.25


_BUILDERS = {
    "unary": lambda n, arg: {**UNARY, **INT_UNARY}[n.attrs["fn"]](arg(0)),
    "affine": lambda n, arg: arg(0) * n.attrs["scale"] + n.attrs["shift"],
    "binary": lambda n, arg: {**BINARY, **INT_BINARY}[n.attrs["fn"]](arg(0), arg(1)),
    "reduce": lambda n, arg: REDUCE[n.attrs["fn"]](
        arg(0), axis=n.attrs["axis"], keepdims=n.attrs["keepdims"]
    ),
    "matmul": lambda n, arg: gj.matmul(arg(0), arg(1), **n.attrs),
    "transpose": lambda n, arg: gj.transpose(arg(0), n.attrs["perm"]),
    "reshape": lambda n, arg: gj.reshape(arg(0), n.shape),
    "index": lambda n, arg: arg(0)[n.attrs["key"]],
    "concat": lambda n, arg: gj.concat([arg(0), arg(1)], axis=n.attrs["axis"]),
    "expand": lambda n, arg: gj.expand_dims(arg(0), n.attrs["axis"]),
    "squeeze": lambda n, arg: gj.squeeze(arg(0), n.attrs["axis"]),
    "broadcast": lambda n, arg: gj.broadcast_to(arg(0), n.shape),
    "where": lambda n, arg: gj.where(arg(0) > arg(1), arg(2), arg(3)),
    "cond": lambda n, arg: gj.cond(
        gj.sum(arg(0)) > n.attrs["threshold"], lambda: arg(1), lambda: arg(2)
    ),
    "while": _build_while,
    "counted_while": _build_counted_while,
    "swap_while": _build_swap_while,
}


# ---- drawing trees -----------------------------------------------------------------------


def draw_expr(draw, shape: tuple, depth: int, ctx: Context) -> Node:
    """A tree of at most `depth` levels of ops computing a tensor of `shape`. Leaves come
    last among the choices: below the depth limit most nodes are ops (hypothesis favours,
    and shrinks towards, the first choices)."""
    kinds = [
        k
        for k, (ok, _) in _DRAWERS.items()
        if ok(shape, ctx) and (ctx.kinds is None or k in ctx.kinds)
    ]
    kinds = kinds if depth > 0 else []
    kind = draw(st.sampled_from(kinds + ["leaf"]))
    if kind == "leaf":
        return _draw_leaf(draw, shape, ctx)
    return _DRAWERS[kind][1](draw, shape, depth - 1, ctx)


def _draw_leaf(draw, shape, ctx) -> Node:
    levels = [i for i, s in enumerate(ctx.loops) if s == shape]
    same = [i for i, s in enumerate(ctx.inputs) if s == shape]
    choices = [("loop_var", i) for i in levels] + [("leaf", i) for i in same] + [("new", 0)]
    kind, i = draw(st.sampled_from(choices))
    if kind == "loop_var":
        return Node("loop_var", shape, attrs={"level": i})
    if kind == "new":
        ctx.inputs.append(shape)
        i = len(ctx.inputs) - 1
    return Node("leaf", shape, attrs={"index": i})


def _unary(draw, shape, depth, ctx):
    fn = draw(st.sampled_from(sorted(INT_UNARY if ctx.integer else UNARY)))
    return Node("unary", shape, (draw_expr(draw, shape, depth, ctx),), {"fn": fn})


def _affine(draw, shape, depth, ctx):
    scale = draw(st.sampled_from([0.5, -1.25, 2.0]))
    shift = draw(st.sampled_from([0.0, 0.75, -0.3]))
    child = draw_expr(draw, shape, depth, ctx)
    return Node("affine", shape, (child,), {"scale": scale, "shift": shift})


def _smaller(draw, shape) -> tuple:
    """A shape that broadcasts to `shape`: leading axes dropped, some dims set to 1."""
    lead = draw(st.integers(0, len(shape)))
    return tuple(d if draw(st.booleans()) else 1 for d in shape[lead:])


def _pair(draw, shape) -> list:
    """Two shapes that broadcast together to `shape`, each axis kept by one or both (an
    outer product when they alternate); one may also drop leading axes."""
    left, right = [], []
    for d in shape:
        keep = draw(st.sampled_from(["both", "left", "right"])) if d != 1 else "both"
        left.append(d if keep != "right" else 1)
        right.append(d if keep != "left" else 1)
    lead = draw(st.integers(0, len(shape)))
    if all(d == 1 for d in left[:lead]):  # dropping them keeps the broadcast shape
        left = left[lead:]
    return [tuple(left), tuple(right)]


def _binary(draw, shape, depth, ctx):
    fn = draw(st.sampled_from(sorted(INT_BINARY if ctx.integer else BINARY)))
    if draw(st.booleans()):
        shapes = [shape, _smaller(draw, shape)]
    else:
        shapes = _pair(draw, shape)
    if draw(st.booleans()):
        shapes.reverse()
    args = tuple(draw_expr(draw, s, depth, ctx) for s in shapes)
    return Node("binary", shape, args, {"fn": fn})


def _reduce(draw, shape, depth, ctx):
    fn = draw(st.sampled_from(sorted(INT_REDUCE if ctx.integer else REDUCE)))
    how = draw(st.sampled_from(["axis", "two_axes", "keepdims", "all"]))
    ones = [i for i, d in enumerate(shape) if d == 1]
    if how == "keepdims" and ones:
        p = draw(st.sampled_from(ones))
        child = shape[:p] + (draw(SIZES),) + shape[p + 1 :]
        axis, keepdims, reduced = p - len(child) * draw(st.booleans()), True, [child[p]]
    elif how == "all" and shape == ():
        child = tuple(draw(st.lists(SIZES, min_size=1, max_size=MAX_RANK)))
        axis, keepdims, reduced = None, False, child
    elif how == "two_axes" and len(shape) <= MAX_RANK - 2:
        p = draw(st.integers(0, len(shape)))
        child = shape[:p] + (draw(SIZES), draw(SIZES)) + shape[p:]
        axis, keepdims, reduced = (p, p + 1 - len(child)), False, child[p : p + 2]
    else:
        p = draw(st.integers(0, len(shape)))
        child = shape[:p] + (draw(SIZES),) + shape[p:]
        axis, keepdims, reduced = p, False, [child[p]]
    # max/min of nothing has no value: now and then kept, to compare errors. Not in integer
    # programs, whose errors are pow's: with two, graph mode meets the shape error first
    # (when the graph is built), eager mode whichever op runs first.
    erring = not (ctx.integer or ctx.may_be_skipped()) and draw(st.integers(0, 3)) == 0
    if 0 in reduced and fn in ("max", "min") and not erring:
        fn = "sum"
    arg = draw_expr(draw, child, depth, ctx)
    return Node("reduce", shape, (arg,), {"fn": fn, "axis": axis, "keepdims": keepdims})


def _matmul(draw, shape, depth, ctx):
    k = draw(SIZES)
    if len(shape) == 1:
        shapes = [(k,), (k,) + shape] if draw(st.booleans()) else [shape + (k,), (k,)]
    else:
        batch, (m, n) = shape[:-2], shape[-2:]
        right_batch = draw(st.sampled_from([batch, (), tuple(1 for _ in batch)]))
        flags = {"transpose_a": draw(st.booleans()), "transpose_b": draw(st.booleans())}
        a, b = (
            (k, m) if flags["transpose_a"] else (m, k),
            (n, k) if flags["transpose_b"] else (k, n),
        )
        shapes = [batch + a, right_batch + b]
        return Node("matmul", shape, tuple(draw_expr(draw, s, depth, ctx) for s in shapes), flags)
    return Node("matmul", shape, tuple(draw_expr(draw, s, depth, ctx) for s in shapes))


def _transpose(draw, shape, depth, ctx):
    perm = tuple(draw(st.permutations(range(len(shape)))))
    child = [0] * len(shape)
    for i, p in enumerate(perm):  # transpose(child, perm)[i] has child's axis perm[i]
        child[p] = shape[i]
    return Node("transpose", shape, (draw_expr(draw, tuple(child), depth, ctx),), {"perm": perm})


def _reshape(draw, shape, depth, ctx):
    size = math.prod(shape)
    options = [(size,), tuple(reversed(shape)), shape + (1,)]
    options = [s for s in options if len(s) <= MAX_RANK] + ([()] if size == 1 else [])
    child = draw(st.sampled_from(options))
    return Node("reshape", shape, (draw_expr(draw, child, depth, ctx),))


def _index(draw, shape, depth, ctx):
    """A slice along one axis (steps ±1, ±2), or an integer index that adds an axis."""
    if draw(st.booleans()) or not shape:
        axis = draw(st.integers(0, len(shape)))
        dim = draw(DIMS)
        child = shape[:axis] + (dim,) + shape[axis:]
        key = (slice(None),) * axis + (draw(st.integers(-dim, dim - 1)),)
        return Node("index", shape, (draw_expr(draw, child, depth, ctx),), {"key": key})
    axis = draw(st.integers(0, len(shape) - 1))
    n, step = shape[axis], draw(st.sampled_from([1, 2, -1, -2]))
    dim = n * abs(step) + draw(st.integers(0, 2))
    span = (n - 1) * abs(step)
    if n == 0:  # an empty slice: start == stop, whatever the step
        start = stop = draw(st.integers(0, dim))
    elif step > 0:
        start = draw(st.integers(0, dim - span - 1))
        stop = start + span + 1
    else:
        start = draw(st.integers(span, dim - 1))
        stop = start - span - 1 if start - span - 1 >= 0 else None
    child = shape[:axis] + (dim,) + shape[axis + 1 :]
    key = (slice(None),) * axis + (slice(start, stop, step),)
    return Node("index", shape, (draw_expr(draw, child, depth, ctx),), {"key": key})


def _concat(draw, shape, depth, ctx):
    axis = draw(st.sampled_from([i for i, d in enumerate(shape) if d >= 2]))
    cut = draw(st.integers(1, shape[axis] - 1))
    parts = [cut, shape[axis] - cut]
    args = tuple(
        draw_expr(draw, shape[:axis] + (p,) + shape[axis + 1 :], depth, ctx) for p in parts
    )
    return Node("concat", shape, args, {"axis": axis - len(shape) * draw(st.booleans())})


def _expand(draw, shape, depth, ctx):
    p = draw(st.sampled_from([i for i, d in enumerate(shape) if d == 1]))
    child = shape[:p] + shape[p + 1 :]
    return Node("expand", shape, (draw_expr(draw, child, depth, ctx),), {"axis": p})


def _squeeze(draw, shape, depth, ctx):
    p = draw(st.integers(0, len(shape)))
    child = shape[:p] + (1,) + shape[p:]
    return Node("squeeze", shape, (draw_expr(draw, child, depth, ctx),), {"axis": p})


def _broadcast(draw, shape, depth, ctx):
    child = _smaller(draw, shape)
    return Node("broadcast", shape, (draw_expr(draw, child, depth, ctx),))


def _where(draw, shape, depth, ctx):
    shapes = [_smaller(draw, shape), _smaller(draw, shape), shape, _smaller(draw, shape)]
    return Node("where", shape, tuple(draw_expr(draw, s, depth, ctx) for s in shapes))


def _cond(draw, shape, depth, ctx):
    pred_shape = tuple(draw(st.lists(SIZES, max_size=2)))
    pred = draw_expr(draw, pred_shape, depth, ctx)
    ctx.branches += 1
    try:
        args = (pred, draw_expr(draw, shape, depth, ctx), draw_expr(draw, shape, depth, ctx))
    finally:
        ctx.branches -= 1
    return Node("cond", shape, args, {"threshold": draw(st.sampled_from([0.137, -0.61, 1.29]))})


def _while(draw, shape, depth, ctx, kind="while"):
    init = draw_expr(draw, shape, depth, ctx)
    ctx.loops.append(shape)
    try:
        body = draw_expr(draw, shape, depth, ctx)
    finally:
        ctx.loops.pop()
    size = math.prod(shape)
    attrs = {
        "limit": size * draw(st.sampled_from([0.3, 1.1, 2.7])),
        "max_iterations": draw(st.integers(1, 4)),
    }
    return Node(kind, shape, (init, body), attrs)


def _swap_while(draw, shape, depth, ctx):
    first, second = draw_expr(draw, shape, depth, ctx), draw_expr(draw, shape, depth, ctx)
    ctx.loops.append(shape)
    try:
        mixed = draw_expr(draw, shape, depth, ctx)
    finally:
        ctx.loops.pop()
    attrs = {"trips": draw(st.integers(0, 3)), "mix": draw(st.booleans())}
    return Node("swap_while", shape, (first, second, mixed), attrs)


_DRAWERS = {  # kind -> (applies to this target shape?, drawer)
    "unary": (lambda s, c: True, _unary),
    "affine": (lambda s, c: True, _affine),
    "binary": (lambda s, c: True, _binary),
    "reduce": (lambda s, c: len(s) < MAX_RANK, _reduce),
    "matmul": (lambda s, c: len(s) >= 1, _matmul),
    "transpose": (lambda s, c: len(s) >= 2, _transpose),
    "reshape": (lambda s, c: True, _reshape),
    "index": (lambda s, c: len(s) < MAX_RANK, _index),
    "concat": (lambda s, c: any(d >= 2 for d in s), _concat),
    "expand": (lambda s, c: 1 in s, _expand),
    "squeeze": (lambda s, c: len(s) < MAX_RANK, _squeeze),
    "broadcast": (lambda s, c: True, _broadcast),
    "where": (lambda s, c: True, _where),
    "cond": (lambda s, c: True, _cond),
    "while": (lambda s, c: len(c.loops) < 2, _while),
    "counted_while": (
        lambda s, c: len(c.loops) < 2,
        lambda draw, shape, depth, ctx: _while(draw, shape, depth, ctx, "counted_while"),
    ),
    "swap_while": (lambda s, c: len(c.loops) < 2, _swap_while),
}


# ---- whole programs ------------------------------------------------------------------------


@dataclass
class Program:
    exprs: list  # Node per output
    inputs: list  # input arrays, by leaf index
    weights: list  # one array per output: the loss is sum(out * weight) over outputs

    def loss(self, outputs):
        return sum(gj.sum(out * w) for out, w in zip(outputs, self.weights, strict=True))


SHAPES = st.lists(SIZES, max_size=MAX_RANK).map(tuple)
VALUES = st.floats(-2, 2, allow_nan=False, allow_subnormal=False, width=64)


def without_subnormals(x: np.ndarray) -> np.ndarray:
    """x with values so small that a few products of them are subnormal set to 0 (a float64
    draw of 1e-45 is a float32 subnormal; 2.2e-308 * 0.5 a float64 one, found by the long
    profile). Native code flushes subnormals to zero by default, a documented difference
    from the interpreter (Session(flush_denormals=...)), so the backends are compared
    where they are meant to agree: products of a few values of at least tiny ** (1/8)
    (squares of squares, scales by 0.5) stay out of the subnormal range."""
    small = np.finfo(x.dtype).tiny ** 0.125
    return np.where(np.abs(x) < small, np.zeros_like(x), x)


@st.composite
def programs(draw, max_exprs: int = 3, max_depth: int = 3, dtype=np.float64) -> Program:
    ctx = Context()
    n = draw(st.integers(1, max_exprs))
    exprs = [draw_expr(draw, draw(SHAPES), max_depth, ctx) for _ in range(n)]
    inputs = [
        without_subnormals(draw(hnp.arrays(np.float64, s, elements=VALUES)).astype(dtype))
        for s in ctx.inputs
    ]
    weights = [
        (1.0 + 0.5 * np.cos(np.arange(math.prod(e.shape)))).reshape(e.shape).astype(dtype)
        for e in exprs
    ]
    return Program(exprs, inputs, weights)


# Elementwise kinds and loops: programs whose every value has the drawn (large) shape.
BIG_KINDS = frozenset({"unary", "affine", "binary", "while", "counted_while", "swap_while"})
BIG_BYTES = 8 << 20  # the default native stack: loop values at least this large


@st.composite
def big_loop_programs(draw, dtype=np.float32) -> Program:
    """A program around loops carrying values of >= 8 MiB (a loop at the top)."""
    n = BIG_BYTES // np.dtype(dtype).itemsize * draw(st.sampled_from([1, 2]))
    ctx = Context(kinds=BIG_KINDS)
    kind = draw(st.sampled_from(["swap_while", "while", "counted_while"]))
    expr = _DRAWERS[kind][1](draw, (n,), 2, ctx)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    inputs = [rng.uniform(-2, 2, s).astype(dtype) for s in ctx.inputs]
    weights = [(1.0 + 0.5 * np.cos(np.arange(n))).astype(dtype)]
    return Program([expr], inputs, weights)


# Kinds that keep an integer program integer (no tanh in loops, no scalar float maps).
INT_KINDS = frozenset(
    {"unary", "binary", "reduce", "matmul", "transpose", "reshape", "index", "concat"}
    | {"expand", "squeeze", "broadcast", "where"}
)


@st.composite
def integer_programs(draw, dtype=np.int32) -> Program:
    """Integer programs over values from the whole range (INT_MIN and INT_MAX included):
    arithmetic wraps, and pow meets negative exponents."""
    ctx = Context(kinds=INT_KINDS, integer=True)
    exprs = [draw_expr(draw, draw(SHAPES), 3, ctx) for _ in range(draw(st.integers(1, 2)))]
    info = np.iinfo(dtype)
    edges = st.sampled_from([info.min, info.max, 0, -1, 1, 2])
    elements = st.one_of(st.integers(-3, 3), st.integers(info.min, info.max), edges)
    inputs = [draw(hnp.arrays(dtype, s, elements=elements)) for s in ctx.inputs]
    return Program(exprs, inputs, [None] * len(exprs))

"""`cond` and `while_loop`: region ops in a graph, plain Python control flow in eager mode."""

from __future__ import annotations

import operator
import threading
from contextlib import contextmanager

import numpy as np

from graphjit.errors import ControlFlowError
from graphjit.frontend.convert import as_tensor, is_tensor, operands, unwrap
from graphjit.frontend.graph import get_default_graph
from graphjit.ir import builder
from graphjit.ir.core import Block, Region, Value, user_location
from graphjit.ir.ops import P, bind
from graphjit.ir.ops.control import MAX_ITERATIONS_LIMIT, merge_types
from graphjit.ir.types import TensorType, as_dtype, int64
from graphjit.nest import describe, flatten, flatten_up_to, leaf_count, unflatten


def _is_graph(x) -> bool:
    return isinstance(unwrap(x), Value)


def _trace_branch(fn, frame) -> tuple[Block, list, object]:
    """Run a branch function in a new block (its `yield` comes later, see `cond`)."""
    block = Block()
    with builder.insertion_point(block), _tracing(frame):
        leaves, spec = flatten(fn())
        leaves = [as_tensor(v) for v in leaves]
    return block, leaves, spec


def cond(pred, true_fn, false_fn, strict=False, name=None):
    """`true_fn()` if pred else `false_fn()`; in a graph both branches become regions and
    must return the same nested structure (tuples, lists, dicts, namedtuples) with the same
    dtypes and ranks. Where the branches' shapes differ the result's dimension is unknown
    (None), as TensorFlow 1 merges them. `strict` and `name` are TensorFlow 1's and have
    no effect (a one-value structure is never unpacked here)."""
    del strict, name
    if not _is_graph(pred):
        return true_fn() if bool(unwrap(pred)) else false_fn()
    pred = as_tensor(pred)
    enclosing = _innermost_frame()
    frames = [None if enclosing is None else _BranchFrame(enclosing) for _ in range(2)]
    then_block, then_leaves, then_spec = _trace_branch(true_fn, frames[0])
    else_block, else_leaves, else_spec = _trace_branch(false_fn, frames[1])
    if then_spec != else_spec:
        raise ControlFlowError(
            "cond branches return different structures: "
            f"{describe(then_spec)} vs {describe(else_spec)}",
            location=user_location(),
        )
    # a loop inside a branch moved the draw counter on: the cond passes the count out
    counts = enclosing is not None and any(f.advanced for f in frames)
    for block, leaves, frame in zip((then_block, else_block), (then_leaves, else_leaves), frames):
        with builder.insertion_point(block):
            builder.create("yield", leaves + ([frame.counter()] if counts else []))
    op = builder.create("cond", [pred], regions=[Region(then_block), Region(else_block)])
    if counts:
        enclosing.advance(op.results[-1])
    return unflatten(then_spec, op.results[: len(then_leaves)])


def while_loop(
    cond,
    body,
    loop_vars,
    shape_invariants=None,
    parallel_iterations=10,
    back_prop=True,
    swap_memory=False,
    name=None,
    maximum_iterations=None,
    return_same_structure=True,
    *,
    max_iterations=None,
):
    """Repeat `loop_vars = body(*loop_vars)` while `cond(*loop_vars)`, at most
    `maximum_iterations` times (`max_iterations` is an alias), as TensorFlow 1's
    `tf.while_loop`.

    `loop_vars` is a list or tuple (a namedtuple included) whose items may be nested
    structures (tuples, lists, dicts, namedtuples, TensorArrays). As in TensorFlow 1, `cond`
    and `body` receive the items unpacked, `cond(*loop_vars)`, so a namedtuple's fields
    arrive as separate arguments; a dict must be wrapped in a list (`[d]`) and arrives as
    one argument. The body returns the same structure (its top level may be a list or a
    tuple; a one-variable body may return the value itself), with each tensor keeping its
    dtype and its shape, or the shape given for it in `shape_invariants` (the structure of
    `loop_vars`, one shape per tensor: a list of dimensions with None where the shape may
    change between iterations, or None for the tensor's own shape).

    The result has the structure of `loop_vars`. TensorFlow 1 returns a lone loop variable
    unpacked unless `return_same_structure=True`; here that is the default, and
    `return_same_structure=False` gives TensorFlow 1's unpacking. `back_prop=False` stops
    gradients at the results; `parallel_iterations`, `swap_memory` and `name` have no
    effect (the loop's iterations run in order, on one device)."""
    del parallel_iterations, swap_memory, name  # accepted for TensorFlow 1 code
    limit = _iteration_limit(_either(maximum_iterations, max_iterations))
    _check_loop_vars(loop_vars)
    items = list(loop_vars)
    if _any_graph(items) or _condition_is_graph(cond, items):
        values = _graph_while(cond, body, items, shape_invariants, limit)
    else:
        values = _eager_while(cond, body, items, limit)
    if not back_prop:
        values = _stop_gradients(values)
    if not return_same_structure and len(values) == 1:
        return values[0]
    return _repack(loop_vars, values)


def _either(maximum_iterations, max_iterations):
    if maximum_iterations is not None and max_iterations is not None:
        raise ControlFlowError(
            "while_loop takes maximum_iterations or its alias max_iterations, not both",
            location=user_location(),
        )
    return max_iterations if maximum_iterations is None else maximum_iterations


def _check_loop_vars(loop_vars) -> None:
    if isinstance(loop_vars, dict):
        raise ControlFlowError(
            "while_loop's loop_vars is a dict: as in TensorFlow 1, cond and body are called "
            "with *loop_vars, so wrap it in a list ([d]) to pass the dict as one argument",
            location=user_location(),
        )
    if not isinstance(loop_vars, (tuple, list)) or not loop_vars:
        raise ControlFlowError(
            "while_loop's loop_vars must be a non-empty list or tuple of tensors or nested "
            "structures of them",
            location=user_location(),
        )


def _any_graph(structure) -> bool:
    return any(_is_graph(v) for v in flatten(structure)[0])


def _repack(loop_vars, values: list):
    if hasattr(type(loop_vars), "_fields"):  # namedtuple
        return type(loop_vars)(*values)
    return type(loop_vars)(values)


def _stop_gradients(values: list) -> list:
    leaves, spec = flatten(values)
    leaves = [P.stop_gradient(v) if _is_floating_tensor(v) else v for v in leaves]
    return unflatten(spec, leaves)


def _is_floating_tensor(v) -> bool:
    dtype = getattr(unwrap(v), "dtype", None)
    return is_tensor(unwrap(v)) and dtype is not None and as_dtype(dtype).is_floating


def _condition_is_graph(cond_fn, items) -> bool:
    """Python loop variables still make a graph loop when the condition reads a graph
    tensor (`i < n` with `n` a placeholder). The probe's ops go to a scratch block that is
    dropped."""
    with builder.insertion_point(Block()):
        return _is_graph(cond_fn(*items))


def _graph_while(cond_fn, body_fn, items: list, shape_invariants, limit) -> list:
    leaves, spec = flatten(items)
    invariants = _invariant_shapes(spec, items, shape_invariants)
    inits = [_with_invariant(_carried(v), shape) for v, shape in zip(leaves, invariants)]
    types = [v.type for v in inits]
    before = Block(types)
    with builder.insertion_point(before):
        pred = as_tensor(cond_fn(*unflatten(spec, before.args)))
        builder.create("condition", [pred])
    after = Block(types)
    frame = _LoopFrame(_innermost_frame(), before, after)
    with builder.insertion_point(after), _tracing(frame):
        out = _body_leaves(body_fn(*unflatten(spec, after.args)), spec, len(items))
        nexts = [_next_value(v, t) for v, t in zip(out, types)]
        builder.create("yield", nexts + frame.next_count())
    counter_init = frame.initial_count()
    regions = [Region(before), Region(after)]
    op = builder.create("while", inits + counter_init, {"max_iterations": limit}, regions)
    if counter_init and frame.enclosing is not None:
        frame.enclosing.advance(op.results[-1])
    return unflatten(spec, op.results[: len(inits)])


def _carried(v):
    """A loop value as the loop carries it: a tensor (Python numbers become constants) or a
    tensor list (a TensorArray's storage)."""
    v = unwrap(v)
    return v if isinstance(v, Value) else as_tensor(v)


def _invariant_shapes(spec, items: list, shape_invariants) -> list:
    """One shape (or None: the value's own) per leaf of `items`."""
    if shape_invariants is None:
        return [None] * leaf_count(spec)
    if isinstance(items, (tuple, list)) and len(shape_invariants) != len(items):
        raise ControlFlowError(
            f"while_loop's shape_invariants has {len(shape_invariants)} entries for "
            f"{len(items)} loop variables",
            location=user_location(),
        )
    return flatten_up_to(spec, list(shape_invariants))


def _with_invariant(v: Value, shape) -> Value:
    if shape is None or not isinstance(v.type, TensorType):
        return v
    shape = tuple(None if d is None else operator.index(d) for d in _dims(shape))
    if shape == v.type.shape and v.type.is_static:
        return v  # (a None dimension stays one when the Session specialises the feeds)
    try:
        return bind("shape_invariant", v, shape=shape)
    except ControlFlowError as e:
        raise ControlFlowError(
            f"while_loop: {e.raw_message} (a loop variable's initial value)",
            location=user_location(),
        ) from None


def _dims(shape) -> list:
    """A shape as a list of dimensions: a list or tuple, or anything with `as_list()`
    (TensorFlow's TensorShape) or `.shape`."""
    if hasattr(shape, "as_list"):
        return list(shape.as_list())
    if isinstance(shape, (tuple, list)):
        return list(shape)
    raise ControlFlowError(
        f"a shape invariant must be a list of dimensions (None where unknown), got {shape!r}",
        location=user_location(),
    )


def _body_leaves(out, spec, n: int) -> list:
    """The body's result flattened, after checking it has the loop variables' structure
    (its top level may be a list or a tuple, as in TensorFlow 1)."""
    leaves, out_spec = flatten(_body_outputs(out, n, spec))
    if out_spec != spec:
        raise ControlFlowError(
            f"while_loop body returns {describe(out_spec)} for loop variables that are "
            f"{describe(spec)}",
            location=user_location(),
        )
    return leaves


def _next_value(v, carried):
    """A body result as the carried type: Python numbers take the variable's dtype, and a
    tensor whose shape is more specific than its shape invariant is declared to have it."""
    v = unwrap(v)
    if not is_tensor(v):
        return operands(v, dtype=carried.dtype)[0]
    if isinstance(v, Value) and v.type != carried and merge_types(v.type, carried) == carried:
        return bind("shape_invariant", v, shape=carried.shape)
    return v


def _iteration_limit(max_iterations) -> int | None:
    """None, or the integer bound (not a float: `inf` or `2.5` is an error, not a guess)."""
    if max_iterations is None:
        return None
    try:
        limit = operator.index(max_iterations)
    except TypeError:
        limit = -1
    if limit < 0:
        raise ControlFlowError(
            f"while_loop's max_iterations must be None or an integer >= 0, got {max_iterations!r}",
            location=user_location(),
        )
    return min(limit, MAX_ITERATIONS_LIMIT)


def _body_outputs(out, n: int, spec) -> list:
    """The body's result as a list of n items: a one-variable body may return the value
    itself (even a nested one, when it has that variable's structure) or a 1-tuple."""
    if n == 1 and (not isinstance(out, (tuple, list)) or flatten([out])[1] == spec):
        return [out]
    if not isinstance(out, (tuple, list)) or len(out) != n:
        got = f"{len(out)} values" if isinstance(out, (tuple, list)) else "one value"
        raise ControlFlowError(
            f"while_loop body returns {got} for {n} loop variables",
            location=user_location(),
        )
    return list(out)


def _eager_while(cond_fn, body_fn, items: list, max_iterations) -> list:
    spec = flatten(items)[1]
    count = 0
    while (max_iterations is None or count < max_iterations) and bool(unwrap(cond_fn(*items))):
        items = _body_outputs(body_fn(*items), len(items), spec)
        out_spec = flatten(items)[1]
        if out_spec != spec:
            raise ControlFlowError(
                f"while_loop body returns {describe(out_spec)} for loop variables that are "
                f"{describe(spec)}",
                location=user_location(),
            )
        count += 1
    return items


# ---- draw counters: fresh random numbers in every iteration ------------------------------
#
# A random op reads one rng value per Session run (frontend/random.py), so inside a loop body
# it would draw the same numbers in every iteration. While a graph loop body (or a cond
# branch inside one) is traced, a frame for it is on a stack, and random ops built there
# fold `draw_counter()` into their rng: an int64 scalar that no two iterations of the loops
# of one nest share. Only the body is traced under its loop's frame: a random op in a
# loop's condition reads the enclosing loop's counter (or none), so it draws the same
# numbers in each test of one run of that loop.

COUNTER_TYPE = TensorType((), int64)
_local = threading.local()


def _frames() -> list:
    if not hasattr(_local, "frames"):
        _local.frames = []
    return _local.frames


@contextmanager
def _tracing(frame):
    """Make `frame` the innermost frame while a body or branch is traced (None: no frame)."""
    if frame is None:
        yield
        return
    _frames().append(frame)
    try:
        yield
    finally:
        _frames().pop()


def _innermost_frame():
    """The frame of the loop body or branch being traced into the default graph, or None
    (a gj.function traced inside a body builds a graph of its own, outside the loop)."""
    frames = _frames()
    if frames and frames[-1].graph is get_default_graph():
        return frames[-1]
    return None


def draw_counter() -> Value | None:
    """For random ops: the current iteration's draw counter (an int64 scalar), or None
    outside graph loop bodies. The first request makes the loops around it carry one."""
    frame = _innermost_frame()
    return None if frame is None else frame.counter()


class _LoopFrame:
    """A graph while loop whose body is being traced. The first `counter()` adds one hidden
    loop value, the draw counter (one more block argument in both regions), which the body
    yields plus one. An inner loop that draws starts from this body's current count, and
    the body goes on from the inner loop's final count (`advance`), so every iteration of
    every loop in a nest has a count of its own. A loop nobody asks is left as the user
    wrote it."""

    def __init__(self, enclosing, before: Block, after: Block):
        self.graph = get_default_graph()
        self.enclosing = enclosing
        self.blocks = (before, after)
        self.current = None  # the count the body has reached, once asked

    def counter(self) -> Value:
        if self.current is None:
            for block in self.blocks:
                block.args.append(Value(COUNTER_TYPE, block, len(block.args)))
            self.current = self.blocks[1].args[-1]
        return self.current

    def advance(self, count: Value) -> None:
        self.current = count

    def next_count(self) -> list:
        """What the body yields for the counter: [] when the loop carries none. (One more
        than the last count used: the next iteration starts past every count this one and
        its inner loops used.)"""
        return [] if self.current is None else [P.add(self.current, 1)]

    def initial_count(self) -> list:
        """The while op's operand for the counter, built where the op goes: the enclosing
        body's current count, or 0 for an outermost loop; [] when the loop carries none."""
        if self.current is None:
            return []
        if self.enclosing is not None:
            return [self.enclosing.counter()]
        return [builder.create("constant", (), {"value": np.zeros((), np.int64)}).result]


class _BranchFrame:
    """A cond branch traced inside a loop body. A branch runs at most once per iteration, so
    its random ops use the enclosing count as it is; an inner loop that draws advances the
    branch's count, and `cond` then passes the branch's final count out as one more
    result."""

    def __init__(self, enclosing):
        self.graph = enclosing.graph
        self.enclosing = enclosing
        self.current = None
        self.advanced = False

    def counter(self) -> Value:
        if self.current is None:
            self.current = self.enclosing.counter()
        return self.current

    def advance(self, count: Value) -> None:
        self.current, self.advanced = count, True

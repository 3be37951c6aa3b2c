"""`cond` and `while_loop`: region ops in a graph, plain Python control flow in eager mode."""

from __future__ import annotations

import operator

from graphjit.errors import ControlFlowError
from graphjit.frontend.convert import as_tensor, is_tensor, operands, unwrap
from graphjit.ir import builder
from graphjit.ir.core import Block, Region, Value, user_location
from graphjit.ir.ops import bind
from graphjit.ir.ops.control import MAX_ITERATIONS_LIMIT, merge_types
from graphjit.ir.types import TensorType, as_dtype
from graphjit.nest import describe, flatten, flatten_up_to, leaf_count, unflatten


def _is_graph(x) -> bool:
    return isinstance(unwrap(x), Value)


def _branch_region(fn) -> tuple[Region, object]:
    """Run a branch function in a new region that ends in `yield`."""
    block = Block()
    with builder.insertion_point(block):
        leaves, spec = flatten(fn())
        builder.create("yield", [as_tensor(v) for v in leaves])
    return Region(block), spec


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
    then_region, then_spec = _branch_region(true_fn)
    else_region, else_spec = _branch_region(false_fn)
    if then_spec != else_spec:
        raise ControlFlowError(
            "cond branches return different structures: "
            f"{describe(then_spec)} vs {describe(else_spec)}",
            location=user_location(),
        )
    op = builder.create("cond", [pred], regions=[then_region, else_region])
    return unflatten(then_spec, op.results)


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
    from graphjit.ir.ops import P

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
    with builder.insertion_point(after):
        out = _body_leaves(body_fn(*unflatten(spec, after.args)), spec, len(items))
        builder.create("yield", [_next_value(v, t) for v, t in zip(out, types)])
    op = builder.create("while", inits, {"max_iterations": limit}, [Region(before), Region(after)])
    return unflatten(spec, op.results)


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
    if shape == v.type.shape:
        return v
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

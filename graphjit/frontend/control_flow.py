"""`cond` and `while_loop`: region ops in a graph, plain Python control flow in eager mode."""

from __future__ import annotations

import operator

from graphjit.errors import ControlFlowError
from graphjit.frontend.convert import as_tensor, is_tensor, operands, unwrap
from graphjit.ir import builder
from graphjit.ir.core import Block, Region, Value, user_location
from graphjit.ir.ops.control import MAX_ITERATIONS_LIMIT
from graphjit.nest import describe, flatten, unflatten


def _is_graph(x) -> bool:
    return isinstance(unwrap(x), Value)


def _branch_region(fn) -> tuple[Region, object]:
    """Run a branch function in a new region that ends in `yield`."""
    block = Block()
    with builder.insertion_point(block):
        leaves, spec = flatten(fn())
        builder.create("yield", [as_tensor(v) for v in leaves])
    return Region(block), spec


def cond(pred, true_fn, false_fn):
    """`true_fn()` if pred else `false_fn()`; in a graph both branches become regions and
    must return the same structure with the same dtypes and shapes."""
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


def while_loop(cond_fn, body_fn, loop_vars, max_iterations=None):
    """Repeat `loop_vars = body_fn(*loop_vars)` while `cond_fn(*loop_vars)`, at most
    `max_iterations` times; the body must keep each variable's dtype and shape."""
    if not isinstance(loop_vars, (tuple, list)):
        raise ControlFlowError(
            "while_loop's loop_vars must be a list or tuple of tensors", location=user_location()
        )
    if any(_is_graph(v) for v in loop_vars) or _condition_is_graph(cond_fn, loop_vars):
        values = _graph_while(cond_fn, body_fn, list(loop_vars), max_iterations)
    else:
        values = _eager_while(cond_fn, body_fn, list(loop_vars), _iteration_limit(max_iterations))
    return type(loop_vars)(values)


def _condition_is_graph(cond_fn, loop_vars) -> bool:
    """Python loop variables still make a graph loop when the condition reads a graph
    tensor (`i < n` with `n` a placeholder). The probe's ops go to a scratch block that is
    dropped."""
    with builder.insertion_point(Block()):
        return _is_graph(cond_fn(*loop_vars))


def _graph_while(cond_fn, body_fn, loop_vars, max_iterations):
    inits = [as_tensor(v) for v in loop_vars]
    types = [v.type for v in inits]
    before = Block(types)
    with builder.insertion_point(before):
        pred = as_tensor(cond_fn(*before.args))
        builder.create("condition", [pred])
    after = Block(types)
    with builder.insertion_point(after):
        new = _body_outputs(body_fn(*after.args), len(inits))
        new = [
            as_tensor(v) if is_tensor(unwrap(v)) else operands(v, dtype=t.dtype)[0]
            for v, t in zip(new, types)
        ]
        builder.create("yield", new)
    limit = _iteration_limit(max_iterations)
    op = builder.create("while", inits, {"max_iterations": limit}, [Region(before), Region(after)])
    return op.results


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


def _body_outputs(out, n: int) -> list:
    """A one-variable loop body may return the tensor itself or a 1-tuple."""
    if n == 1 and not isinstance(out, (tuple, list)):
        return [out]
    if not isinstance(out, (tuple, list)) or len(out) != n:
        got = f"{len(out)} values" if isinstance(out, (tuple, list)) else "one value"
        raise ControlFlowError(
            f"while_loop body returns {got} for {n} loop variables",
            location=user_location(),
        )
    return list(out)


def _eager_while(cond_fn, body_fn, values, max_iterations):
    count = 0
    while (max_iterations is None or count < max_iterations) and bool(unwrap(cond_fn(*values))):
        values = _body_outputs(body_fn(*values), len(values))
        count += 1
    return values

"""Turning user arguments into operands: tensors of either mode, variables, constants.

One promotion rule for both modes (NumPy's, with Python scalars weak: a Python scalar
combined with a tensor takes the tensor's dtype unless it needs a float).
"""

from __future__ import annotations

import numbers

import numpy as np

from graphjit.errors import DTypeError, GraphjitError
from graphjit.ir import builder
from graphjit.ir.core import Block, Value, user_location
from graphjit.ir.ops import handler_for
from graphjit.ir.types import DType, as_dtype, float32, int32

_TENSOR_TYPES: list[type] = [Value]  # the eager Tensor class adds itself when imported


def register_tensor_type(cls: type) -> None:
    _TENSOR_TYPES.append(cls)


def is_tensor(x) -> bool:
    return isinstance(x, tuple(_TENSOR_TYPES))


def unwrap(x):
    """Variables stand for the value they hold when the run starts."""
    hook = getattr(x, "__graphjit_value__", None)
    return hook() if hook is not None else x


def default_dtype(value) -> DType:
    """Static-graph constants follow TensorFlow 1: Python floats are float32, ints int32."""
    if isinstance(value, (bool, np.bool_)):
        return as_dtype(np.bool_)
    if isinstance(value, np.ndarray) or isinstance(value, np.generic):
        return as_dtype(value.dtype)
    array = np.asarray(value)
    if array.dtype.kind == "f":
        return float32
    if array.dtype.kind in "iu":
        return int32
    return as_dtype(array.dtype)


def graph_constant(value, dtype=None) -> Value:
    dtype = as_dtype(dtype) if dtype is not None else default_dtype(value)
    try:
        array = np.array(value, dtype=dtype.np)
    except (TypeError, ValueError) as e:
        raise DTypeError(
            f"cannot make a {dtype.name} constant from {value!r}: {e}", location=user_location()
        ) from None
    return builder.create("constant", (), {"value": array}).result


def _is_weak(x) -> bool:
    return isinstance(x, (numbers.Number, bool)) and not isinstance(x, np.generic)


def result_dtype(args) -> DType:
    """NumPy promotion over tensors, arrays and weak Python scalars."""
    parts = [
        a.dtype.np if is_tensor(a) else (a if _is_weak(a) else np.asarray(a).dtype) for a in args
    ]
    if not any(is_tensor(a) or not _is_weak(a) for a in args):
        return default_dtype(np.result_type(*parts).type(0).item())
    try:
        promoted = np.result_type(*parts)
    except TypeError as e:
        raise DTypeError(f"cannot combine dtypes: {e}", location=user_location()) from None
    return as_dtype(promoted)


def _top_block(block: Block | None) -> Block | None:
    """The function-level block that `block` is nested in; None while a region being built
    (a cond branch, a loop body) is not attached to its op yet."""
    while block is not None and block.parent is not None and block.parent.parent is not None:
        block = block.parent.parent.parent
    return block if block is not None and block.parent is not None else None


def check_same_graph(values) -> None:
    """Graph values used by a new op must belong to the graph it is built in."""
    here = _top_block(builder.current_block())
    if here is None:  # inside a region being built: the graph is the default one
        from graphjit.frontend.graph import get_default_graph

        here = get_default_graph().block
    for v in values:
        if not isinstance(v, Value):
            continue
        home = _top_block(v.owner if isinstance(v.owner, Block) else v.owner.parent)
        if home is not None and home is not here:
            raise GraphjitError(
                f"tensor '{v.name}' belongs to another graph than the one being built; "
                "build it in this graph (with g.as_default(): ...)",
                location=user_location(),
            )


def operands(*args, dtype=None) -> list:
    """Convert arguments to tensors of one mode and one dtype (the promoted one, or `dtype`)."""
    args = [unwrap(a) for a in args]
    check_same_graph(args)
    target = as_dtype(dtype) if dtype is not None else result_dtype(args)
    tensors = [a for a in args if is_tensor(a)]
    handler = handler_for(tensors) if tensors else None
    out = []
    for a in args:
        if not is_tensor(a):
            a = handler.lift(a, target) if handler else graph_constant(a, target)
        elif a.dtype != target:
            from graphjit.ir.ops import bind

            a = bind("cast", a, dtype=target.name)
        out.append(a)
    return out


def as_tensor(x, dtype=None):
    """One argument as a tensor, keeping its own dtype unless `dtype` is given."""
    x = unwrap(x)
    if is_tensor(x):
        check_same_graph([x])
        return operands(x, dtype=dtype)[0] if dtype is not None else x
    return graph_constant(x, dtype)

"""Turning user arguments into operands: tensors of either mode, variables, constants.

One promotion rule for both modes (NumPy's, with Python scalars weak: a Python scalar
combined with a tensor takes the tensor's dtype unless it needs a float).

Which mode a Python or NumPy constant takes: that of the tensors it is combined with; with
none, the op functions (`eager_ok=True`) compute eagerly unless a graph is being built
(`with g.as_default()`, a cond branch or loop body, gj.function tracing), as jax.numpy and
torch do; graph-building callers (control flow, gradients, Variable.assign) always get graph
constants.
"""

from __future__ import annotations

import numbers

import numpy as np

from graphjit.errors import DTypeError, GraphjitError
from graphjit.ir import builder
from graphjit.ir.core import Block, Value, user_location
from graphjit.ir.ops import handler_for
from graphjit.ir.types import DType, array_of, as_dtype, float32, int32, int64

_TENSOR_TYPES: list[type] = [Value]  # the eager Tensor class adds itself when imported
_EAGER_HANDLER: list = []  # the eager mode's handler, once it is imported


def register_tensor_type(cls: type, eager_handler=None) -> None:
    _TENSOR_TYPES.append(cls)
    if eager_handler is not None:
        _EAGER_HANDLER[:] = [eager_handler]


def building_graph() -> bool:
    """True while ops land at an explicit insertion point: inside `with g.as_default()`, a
    cond branch or loop body being built, or a gj.function trace."""
    return bool(builder._stack())  # (the builder's own stack; empty means the default graph)


def context_handler():
    """The handler for constants that no tensor gives a mode to: eager outside graph
    building (when the eager mode is loaded), else None (graph constants)."""
    return _EAGER_HANDLER[0] if _EAGER_HANDLER and not building_graph() else None


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
        array = array_of(value, dtype)
    except DTypeError as e:
        raise DTypeError(f"constant: {e.raw_message}", location=user_location()) from None
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


def eager_dtype(value) -> DType:
    """An eager constant's dtype: PyTorch's defaults (Python ints are int64), else as
    `default_dtype`."""
    dtype = default_dtype(value)
    if dtype == int32 and not isinstance(value, (np.ndarray, np.generic)):
        return int64
    return dtype


def operands(*args, dtype=None, eager_ok: bool = False) -> list:
    """Convert arguments to tensors of one mode and one dtype (the promoted one, or `dtype`).
    Constants take the mode of the tensors among `args`; with none, graph constants, or
    with `eager_ok` the mode of the context (see `context_handler`)."""
    args = [unwrap(a) for a in args]
    check_same_graph(args)
    tensors = [a for a in args if is_tensor(a)]
    handler = handler_for(tensors) if tensors else (context_handler() if eager_ok else None)
    if dtype is not None:
        target = as_dtype(dtype)
    else:
        target = result_dtype(args)
        if handler is not None and not tensors and all(map(_is_weak, args)):
            target = int64 if target == int32 else target  # (eager: PyTorch's int64)
    out = []
    for a in args:
        if not is_tensor(a):
            a = handler.lift(a, target) if handler else graph_constant(a, target)
        elif a.dtype != target:
            from graphjit.ir.ops import bind

            a = bind("cast", a, dtype=target.name)
        out.append(a)
    return out


def as_tensor(x, dtype=None, eager_ok: bool = False):
    """One argument as a tensor, keeping its own dtype unless `dtype` is given. A constant
    becomes a graph constant, or with `eager_ok` takes the mode of the context."""
    x = unwrap(x)
    if is_tensor(x):
        check_same_graph([x])
        return operands(x, dtype=dtype)[0] if dtype is not None else x
    handler = context_handler() if eager_ok else None
    if handler is None:
        return graph_constant(x, dtype)
    return lift(handler, x, as_dtype(dtype) if dtype is not None else eager_dtype(x))


def constant_like(value, dtype, context=(), eager_ok: bool = True):
    """`value` as a tensor of `dtype` (an already-tensor value is cast), in the mode of the
    tensors among `context`, or with none the mode of the context."""
    value = unwrap(value)
    if is_tensor(value):
        return operands(value, dtype=dtype)[0]
    tensors = [t for t in map(unwrap, context) if is_tensor(t)]
    handler = handler_for(tensors) if tensors else (context_handler() if eager_ok else None)
    if handler is None:
        return graph_constant(value, dtype)
    return lift(handler, value, as_dtype(dtype))


def lift(handler, value, dtype: DType):
    try:
        return handler.lift(value, dtype)
    except (TypeError, ValueError) as e:
        raise DTypeError(
            f"cannot make a {dtype.name} constant from {value!r}: {e}", location=user_location()
        ) from None

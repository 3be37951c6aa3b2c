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
from graphjit.ir.ops import bind as ir_bind
from graphjit.ir.ops import get_op, handler_for
from graphjit.ir.types import DType, array_of, as_dtype, float32, int32, int64

_TENSOR_TYPES: list[type] = [Value]  # the eager Tensor class adds itself when imported
_TENSOR_TUPLE: tuple = (Value,)  # the same, as isinstance wants it (built once, not per call)
_EAGER_HANDLER: list = []  # the eager mode's handler, once it is imported
_EAGER_CLASS: list = []  # the eager mode's tensor class, once it is imported
# By type: whether its instances are eager tensors that stand for themselves (no
# `__graphjit_value__` hook), so that the all-eager fast paths below may skip `unwrap`,
# `check_same_graph` and handler lookup for them. Filled on first sight of each type.
_PLAIN_EAGER: dict[type, bool] = {}


def register_tensor_type(cls: type, eager_handler=None) -> None:
    global _TENSOR_TUPLE
    _TENSOR_TYPES.append(cls)
    _TENSOR_TUPLE = tuple(_TENSOR_TYPES)
    if eager_handler is not None:
        _EAGER_HANDLER[:] = [eager_handler]
        _EAGER_CLASS[:] = [cls]
    _PLAIN_EAGER.clear()


def plain_eager(kind: type) -> bool:
    """Whether instances of `kind` are eager tensors (the eager class or a subclass, such
    as Parameter) that no hook turns into another value."""
    known = _PLAIN_EAGER.get(kind)
    if known is None:
        known = _PLAIN_EAGER[kind] = (
            bool(_EAGER_CLASS)
            and issubclass(kind, _EAGER_CLASS[0])
            and getattr(kind, "__graphjit_value__", None) is None
        )
    return known


def building_graph() -> bool:
    """True while ops land at an explicit insertion point: inside `with g.as_default()`, a
    cond branch or loop body being built, or a gj.function trace."""
    return bool(builder._stack())  # (the builder's own stack; empty means the default graph)


def context_handler():
    """The handler for constants that no tensor gives a mode to: eager outside graph
    building (when the eager mode is loaded), else None (graph constants)."""
    return _EAGER_HANDLER[0] if _EAGER_HANDLER and not building_graph() else None


def is_tensor(x) -> bool:
    return isinstance(x, _TENSOR_TUPLE)


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


class WeakNumber:
    """A stand-in for a Python number, which ops treat as that number: weak (it takes the
    dtype of the tensors it meets; alone, TF1's float32 or int32), made a tensor where the
    number would have been made a constant (gj.function's traced numbers:
    frontend/traced_numbers.py)."""

    __slots__ = ()
    sample: int | float  # the number it stands for now: its type decides promotion

    def as_tensor(self, dtype: DType) -> Value:
        raise NotImplementedError


def graph_constant(value, dtype=None) -> Value:
    if isinstance(value, WeakNumber):
        return value.as_tensor(
            as_dtype(dtype) if dtype is not None else default_dtype(value.sample)
        )
    dtype = as_dtype(dtype) if dtype is not None else default_dtype(value)
    try:
        array = array_of(value, dtype)
    except DTypeError as e:
        raise DTypeError(f"constant: {e.raw_message}", location=user_location()) from None
    return builder.create("constant", (), {"value": array}).result


def _is_weak(x) -> bool:
    """A Python number, or a stand-in for one (`WeakNumber`)."""
    return isinstance(x, (numbers.Number, bool, WeakNumber)) and not isinstance(x, np.generic)


def _promoted_as(a):
    """What `a` is to NumPy's promotion: a dtype, or a Python scalar (weak)."""
    if is_tensor(a):
        return a.dtype.np
    if not _is_weak(a):
        return np.asarray(a).dtype
    return a.sample if isinstance(a, WeakNumber) else a


def result_dtype(args) -> DType:
    """NumPy promotion over tensors, arrays and weak Python scalars."""
    parts = [_promoted_as(a) for a in args]
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
    for v in values:
        if isinstance(v, Value):
            break
    else:  # no graph value (all eager, or constants): nothing to check, no builder state
        return
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
    if dtype is None:
        fast = _eager_operands(args)
        if fast is not None:
            return fast
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
            lift = handler is not None and not isinstance(a, WeakNumber)  # (a graph value)
            a = handler.lift(a, target) if lift else graph_constant(a, target)
        elif a.dtype != target:
            a = ir_bind("cast", a, dtype=target.name)
        out.append(a)
    return out


def _eager_operands(args):
    """`operands(*args)` for the common all-eager cases, or None for the general path to
    handle: eager tensors of one dtype (promotion has nothing to do), or an eager tensor
    with a Python scalar that takes the tensor's dtype under NumPy's rule for weak scalars
    (an int with an integer or float tensor, a float with a float tensor). Same results as
    the general path; only its bookkeeping is skipped."""
    if len(args) == 2:
        a, b = args
        kind_a, kind_b = type(a), type(b)
        if plain_eager(kind_a):
            if plain_eager(kind_b):
                return [a, b] if a._data.dtype is b._data.dtype else None
            if _takes_dtype_of(kind_b, a._data.dtype):
                return [a, _EAGER_HANDLER[0].lift(b, a.dtype)]
        elif plain_eager(kind_b) and _takes_dtype_of(kind_a, b._data.dtype):
            return [_EAGER_HANDLER[0].lift(a, b.dtype), b]
        return None
    if not args:
        return None
    np_dtype = args[0]._data.dtype if plain_eager(type(args[0])) else None
    for a in args:
        if not plain_eager(type(a)) or a._data.dtype is not np_dtype:
            return None
    return list(args)


def _takes_dtype_of(scalar_type: type, np_dtype) -> bool:
    """Whether a Python scalar of `scalar_type` combined with a tensor of `np_dtype` gives
    that dtype (np.result_type's answer, for every value: a value that does not fit is
    refused later, by the lift, on either path). bool is neither int nor float here."""
    if scalar_type is int:
        return np_dtype.kind in "iuf"
    return scalar_type is float and np_dtype.kind == "f"


def as_tensor(x, dtype=None, eager_ok: bool = False):
    """One argument as a tensor, keeping its own dtype unless `dtype` is given. A constant
    becomes a graph constant, or with `eager_ok` takes the mode of the context."""
    if dtype is None and plain_eager(type(x)):  # (an eager tensor is itself: the hot path)
        return x
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
    if plain_eager(type(value)) and value.dtype == as_dtype(dtype):
        return value  # (what the general path gives: an eager tensor of the dtype, itself)
    value = unwrap(value)
    if is_tensor(value):
        return operands(value, dtype=dtype)[0]
    tensors = [t for t in map(unwrap, context) if is_tensor(t)]
    handler = handler_for(tensors) if tensors else (context_handler() if eager_ok else None)
    if handler is None:
        return graph_constant(value, dtype)
    return lift(handler, value, as_dtype(dtype))


def bind(name: str, *operands, **attrs):
    """graphjit.ir.ops.bind for the op functions: straight to the eager handler when every
    operand is a plain eager tensor (their hot path), else ir.ops.bind itself (graph
    values, constants to lift, mixed modes and their errors)."""
    if operands:
        for x in operands:
            if not plain_eager(type(x)):
                break
        else:
            return bind_eager(get_op(name), list(operands), attrs)
    return ir_bind(name, *operands, **attrs)


def bind_eager(opdef, operands: list, attrs: dict):
    """`bind(opdef.name, *operands, **attrs)` for operands known to be plain eager tensors
    (see `plain_eager`): straight to the eager handler, without bind's per-call lookups
    of the op, of the handler and of constants to lift (there are none); the handler's
    bind takes its short path for a float elementwise op (`gj.tanh(x)` as `x.tanh()`)."""
    return _EAGER_HANDLER[0].bind(opdef, operands, attrs)


def lift(handler, value, dtype: DType):
    try:
        return handler.lift(value, dtype)
    except (TypeError, ValueError) as e:
        raise DTypeError(
            f"cannot make a {dtype.name} constant from {value!r}: {e}", location=user_location()
        ) from None

"""THE op registry: every primitive is declared once, with its attributes, shape/dtype rule,
NumPy reference kernel and VJP rule, next to each other (JAX's primitives are the model).

Other layers look ops up here by name. `bind(name, *operands, **attrs)` applies an op to
whatever its operands are: graph values get an op emitted at the builder's insertion point;
eager tensors (whose handler the eager mode registers when imported) compute at once. VJP
rules are written against `P`, a namespace of such binders, so one rule serves eager
autograd, static autodiff and higher-order gradients.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from graphjit.errors import GradientError, GraphjitError, ShapeError
from graphjit.ir.core import Value, user_location
from graphjit.ir.registry import (  # noqa: F401 (re-exported: the registry's public names)
    BROADCAST,
    CONSTANT,
    ENDS_FUNCTION,
    ENDS_REGION,
    FEED,
    INDEX_MAP,
    KERNEL,
    NONDIFF,
    REDUCTION,
    REQUIRED,
    REST,
    STATE,
    STATE_UPDATE,
    VALUE_SHAPED,
    VIEW,
    WINDOWED,
    OpDef,
    RegionSpec,
    all_ops,
    get_op,
    register,
    vjp_reading,
)
from graphjit.ir.types import TensorType, as_dtype, constant_array


def as_list(results) -> list:
    """bind returns one value or a tuple; VJP rules want a list either way."""
    return list(results) if isinstance(results, tuple) else [results]


# ---- bind: one entry point for both modes -------------------------------------------------


class Handler:
    """How ops apply to one kind of operand (graph values, eager tensors)."""

    def apply(self, opdef: OpDef, operands: list, attrs: dict) -> list:
        raise NotImplementedError

    def bind(self, opdef: OpDef, operands, attrs: dict):
        """bind_op, for operands all of this handler's exact type: one result, or a tuple.
        (A handler may override it with a shorter path for its common cases.)"""
        if attrs or opdef.attr_names:
            attrs = opdef.normalize_attrs(attrs)
        results = self.apply(opdef, operands, attrs)
        return results[0] if len(results) == 1 else tuple(results)

    def lift(self, value, dtype) -> Any:
        """Turn a Python/NumPy constant into an operand of this kind, of graphjit `dtype`."""
        raise NotImplementedError


_HANDLERS: dict[type, Handler] = {}


class _GradientScope(threading.local):
    """Whether the graph ops being built take part in gradients. While a gj.function is
    traced the frontend sets `stops` to a predicate that is true inside `gj.no_grad()`:
    the float results of the ops built then are wrapped in stop_gradient (GraphHandler),
    as PyTorch's no_grad makes them constants to autograd."""

    stops: Callable[[], bool] | None = None


GRADIENT_SCOPE = _GradientScope()


def _is_float_tensor(value: Value) -> bool:
    return isinstance(value.type, TensorType) and value.dtype.is_floating


def register_handler(cls: type, handler: Handler) -> None:
    _HANDLERS[cls] = handler


def handler_for(operands) -> Handler:
    for x in operands:
        h = _HANDLERS.get(type(x))
        if h is None:
            for cls, candidate in _HANDLERS.items():
                if isinstance(x, cls):
                    h = candidate
                    break
        if h is not None:
            return h
    raise GraphjitError(f"no tensor among operands {[type(x).__name__ for x in operands]}")


def bind(name: str, *operands, **attrs):
    """Apply op `name`; returns one result, or a tuple when the op has several."""
    return bind_op(get_op(name), operands, attrs)


def bind_op(opdef: OpDef, operands: tuple, attrs: dict):
    """bind, for a caller that has the OpDef (the binders of `P`: VJP rules, eager's hot
    path)."""
    for x in operands:  # (a plain loop, not all(...): bind is the eager mode's hot path)
        if type(x) not in _HANDLERS:  # a number to lift, or a subclass: the general rules
            return _bind_lifted(opdef, operands, attrs)
    if not operands:
        handler_for(operands)  # (raises: no tensor among them)
    return _HANDLERS[type(operands[0])].bind(opdef, operands, attrs)


def _bind_lifted(opdef: OpDef, operands, attrs: dict):
    """bind_op where an operand is not of a handler's exact type: a number, lifted by the
    handler of the first operand that is not one (handler_for's choice where that operand
    is of a subclass)."""
    if len(operands) == 2:  # (a rule's `1 - y` or `g * 0.5`: _constant_dtype's answer, sooner)
        x, y = operands
        number_first = type(x) in _NUMBERS
        tensor, number = (y, x) if number_first else (x, y)
        handler = _HANDLERS.get(type(tensor))
        dtype = getattr(tensor, "dtype", None) if handler is not None else None
        if dtype is not None and type(number) in _NUMBERS and not dtype.is_bool:
            lifted = handler.lift(number, dtype)
            return handler.bind(opdef, [lifted, y] if number_first else [x, lifted], attrs)
    handler = None
    for x in operands:
        kind = type(x)
        handler = _HANDLERS.get(kind)
        if handler is not None or kind not in _NUMBERS:
            break
    if handler is None:
        handler = handler_for(operands)
    for x in operands:
        if not _is_handled(x):
            operands = [
                y if _is_handled(y) else handler.lift(y, _constant_dtype(y, operands))
                for y in operands
            ]
            break
    return handler.bind(opdef, operands, attrs)  # (the handler's short path: a rule's `1 - y`)


def _constant_dtype(constant, operands):
    """NumPy constants keep their dtype; a Python scalar takes the dtype of the first tensor
    operand that is not boolean (`select(mask, g, 0)` makes a 0 of g's dtype)."""
    if isinstance(constant, (np.ndarray, np.generic)):
        return as_dtype(constant.dtype)
    for x in operands:  # (the common case: the first operand not a number is a tensor
        kind = type(x)  # of a handler's exact type, of a numeric dtype)
        if kind in _HANDLERS:
            dtype = getattr(x, "dtype", None)
            if dtype is not None and not dtype.is_bool:
                return dtype
            break
        if kind not in _NUMBERS:
            break
    tensors = [x for x in operands if _is_handled(x) and getattr(x, "dtype", None) is not None]
    return next((x for x in tensors if not x.dtype.is_bool), tensors[0]).dtype


def _is_handled(x) -> bool:
    kind = type(x)
    if kind in _HANDLERS:
        return True
    if kind in _NUMBERS:  # (a rule's `1 - y`: no isinstance tests for a number)
        return False
    return any(isinstance(x, cls) for cls in _HANDLERS)


_NUMBERS = frozenset({int, float, bool, complex})


class _Namespace:
    """`P.mul(a, b)` is `bind("mul", a, b)`: the op-building namespace VJP rules use."""

    def __getattr__(self, name: str) -> Callable:
        opdef = get_op(name)

        def binder(*operands, **attrs):
            return bind_op(opdef, operands, attrs)

        binder.__name__ = binder.__qualname__ = name
        setattr(self, name, binder)  # later lookups find it without calling __getattr__
        return binder


P = _Namespace()


class GraphHandler(Handler):
    """Graph values: emit the op at the current insertion point."""

    def apply(self, opdef, operands, attrs):
        from graphjit.ir import builder

        for x in operands:
            if not isinstance(x, Value):
                if _is_handled(x):  # a tensor of another mode: eager
                    raise GraphjitError(
                        f"op '{opdef.name}' mixes a graph tensor with a {type(x).__name__} "
                        "(an eager tensor): use gj.constant(t.numpy()) to put an eager "
                        "tensor's value in a graph",
                        location=user_location(),
                    )
                raise GraphjitError(
                    f"op '{opdef.name}' got an operand of type {type(x).__name__}, not a tensor",
                    location=user_location(),
                )
        results = builder.create(opdef.name, operands, attrs).results
        stops = GRADIENT_SCOPE.stops
        if stops is None or opdef.name == "stop_gradient" or not stops():
            return results
        return [P.stop_gradient(r) if _is_float_tensor(r) else r for r in results]

    def lift(self, value, dtype):
        from graphjit.ir import builder

        array = constant_array(value, dtype, copy=False)
        return builder.create("constant", (), {"value": array}).result


register_handler(Value, GraphHandler())


def wants_cotangent(x) -> bool:
    """False for an operand that says it needs no gradient (an eager tensor with
    requires_grad False), so VJP rules can skip computing a cotangent nobody reads (for
    example of the constant in `x * 0.5`). Graph values always get one."""
    return getattr(x, "requires_grad", True)


def require(cond: bool, message: str, err=ShapeError) -> None:
    if not cond:
        raise err(message)


def no_vjp_error(opdef: OpDef, loc=None) -> GradientError:
    return GradientError(f"op '{opdef.name}' has no gradient (VJP) rule", location=loc)


# Op families register themselves on import; the order here is the printer's catalogue order.
from graphjit.ir.ops import elementwise, reduce, shape, linalg, state, control, lists, debug  # noqa: E402,F401,I001
from graphjit.ir.ops import indexing, dynamic_slice, conv, random, scan, sorting, collectives  # noqa: E402,F401,I001

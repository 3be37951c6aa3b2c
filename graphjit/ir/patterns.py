"""What rewrite patterns ask about values, shared by the patterns that ops declare beside
themselves (`OpDef.canonicalize`) and the passes' own generic patterns.

A pattern is `pattern(op) -> list[Value] | None` (see passes/rewrite.py for the driver):
it may build ops at the builder's insertion point and returns the values that replace
op's results, or None when it does not apply."""

from __future__ import annotations

import numpy as np

from graphjit.ir.core import Value
from graphjit.ir.registry import CONSTANT
from graphjit.ir.types import TensorType, is_float_array


def constant_value(v: Value):
    """The NumPy value of a constant, or None for anything else."""
    op = v.op
    return op.attrs["value"] if op is not None and op.opdef.has(CONSTANT) else None


def scalar_constant(v: Value) -> float | None:
    value = constant_value(v)
    return float(value.item()) if value is not None and value.size == 1 else None


def is_scalar_constant(v: Value, number) -> bool:
    """v is a constant holding `number` in every element. A float zero must match in
    sign too: IEEE's -0.0 + 0.0 is +0.0, so only x + (-0.0) and x - (+0.0) are exactly x."""
    value = constant_value(v)
    if value is None or value.size != 1 or not np.all(value == number):
        return False
    return not is_float_array(value) or bool(np.signbit(value).all() == np.signbit(number))


def is_static(v: Value) -> bool:
    return isinstance(v.type, TensorType) and v.type.is_static


def same_static_type(a: Value, b: Value) -> bool:
    return a.type == b.type and is_static(a)


def producer(v: Value, opdef=None):
    """The op that computes v (None for a block argument), when it is an op of `opdef`'s
    kind (any kind when opdef is None)."""
    op = v.op
    if op is None or (opdef is not None and op.opdef is not opdef):
        return None
    return op


# ---- patterns more than one op declares ----------------------------------------------------


def same_type_is_identity(op):
    """A shape or type change whose result has its operand's type is that operand."""
    x = op.operands[0]
    return [x] if same_static_type(op.result, x) else None


def unit_element(number, commutes: bool):
    """x ∘ unit -> x (and unit ∘ x -> x when ∘ commutes), when the result has x's type: for
    x*1, x+(-0.0), x-0.0, x/1."""

    def pattern(op):
        x, y = op.operands
        if is_scalar_constant(y, number) and same_static_type(op.result, x):
            return [x]
        if commutes and is_scalar_constant(x, number) and same_static_type(op.result, y):
            return [y]
        return None

    return pattern


def involution(op):
    """f(f(x)) -> x, for an f that is its own inverse (neg)."""
    inner = producer(op.operands[0], op.opdef)
    return [inner.operands[0]] if inner is not None else None

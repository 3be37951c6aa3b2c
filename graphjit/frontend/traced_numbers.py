"""Python floats that a gj.function traces as values of the call, not as constants.

A Python float argument is first baked into the trace as a constant (`lr` in
`step(x, lr)`); when a later call passes another value for it, the function is traced
once more with the argument as a `TracedFloat`, fed on every call, so that a learning-rate
schedule does not compile a program per step (torch.compile's "automatic dynamic" rule
for numbers; jax.jit traces Python scalars from the first call).

A TracedFloat stands for the float exactly where the trace can follow it:
- Python's float arithmetic with Python numbers and other TracedFloats (`1 - lr`,
  `lr * 0.5`, `2 ** lr`, `-lr`, `abs(lr)`) is float64 arithmetic in the graph, as Python
  computes it (where Python would raise ZeroDivisionError or make a complex number,
  the graph gives NumPy's inf or NaN);
- where it meets a tensor, or a graphjit function (`x * lr`, `gj.exp(lr)`), it is weak, as
  the Python float would be: it takes the tensor's dtype, or float32 alone, rounded once
  (convert.py's promotion rule; the `__graphjit_weak__` hook).
Anything that needs the value while tracing -- a truth test (`if lr > 0`), a comparison,
`float(lr)`, `math.sqrt(lr)`, formatting, hashing, NumPy -- raises TypeError, and the
function is traced per value instead, as before.
"""

from __future__ import annotations

from graphjit.frontend import math_ops, ops
from graphjit.frontend.convert import graph_constant
from graphjit.ir.core import Value
from graphjit.ir.types import DType, float64


class TracedFloat:
    """A Python float argument of a traced function: a float64 graph value."""

    __slots__ = ("value", "path")
    __array_ufunc__ = None  # (NumPy scalars and arrays defer to it, then refuse: per value)

    def __init__(self, value: Value, path: str):
        self.value, self.path = value, path

    def __graphjit_weak__(self, dtype: DType) -> Value:
        """Its value as a tensor of `dtype`, where a Python float would be a constant."""
        return self.value if dtype == float64 else ops.cast(self.value, dtype)

    def __repr__(self) -> str:
        return f"<the traced float argument {self.path!r}>"

    def _needs_value(self, *_):
        raise TypeError(
            f"gj.function argument {self.path!r} is traced as a value of the call; its "
            "value is not known while tracing"
        )

    __bool__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _needs_value
    __float__ = __int__ = __index__ = __round__ = __format__ = __array__ = _needs_value
    __hash__ = None  # type: ignore[assignment]

    def __pos__(self) -> TracedFloat:
        return self

    def __neg__(self) -> TracedFloat:
        return TracedFloat(ops.neg(self.value), self.path)

    def __abs__(self) -> TracedFloat:
        return TracedFloat(ops.abs(self.value), self.path)


def _float_arithmetic(fn, swapped: bool = False):
    """Python's `a <op> b` for a TracedFloat and a Python number (or another TracedFloat),
    in float64; anything else is left to the other operand (a tensor's reflected operator,
    where the TracedFloat is weak) or refused."""

    def method(self: TracedFloat, other):
        if isinstance(other, TracedFloat):
            other_value = other.value
        elif type(other) in (float, int, bool):
            other_value = graph_constant(float(other), float64)
        else:
            return NotImplemented
        a, b = (other_value, self.value) if swapped else (self.value, other_value)
        return TracedFloat(fn(a, b), self.path)

    return method


for _name, _fn in {
    "add": ops.add,
    "sub": ops.sub,
    "mul": ops.mul,
    "truediv": ops.div,
    "floordiv": math_ops.floordiv_,
    "mod": math_ops.mod_,
    "pow": ops.pow,
}.items():
    setattr(TracedFloat, f"__{_name}__", _float_arithmetic(_fn))
    setattr(TracedFloat, f"__r{_name}__", _float_arithmetic(_fn, swapped=True))

"""Python numbers that a gj.function traces as values of the call, not as constants.

A Python int or float argument is first a constant of the trace (`lr` in
`step(model, x, y, lr)`); when a later call passes another value for it, the function is
traced once more with the argument as a `TracedNumber`, so that a learning-rate schedule
or a step counter does not compile a program per call (torch.compile's "automatic
dynamic" rule for numbers; jax.jit traces Python scalars from the first call).

A TracedNumber gives exactly what a trace per value would, because the trace never does
Python's arithmetic itself: it records it. `1 - lr`, `lr * 0.5`, `2 ** step`, `-lr` make
TracedNumbers whose value for a call is recomputed by Python from that call's arguments.
Where one meets the graph -- beside a tensor (`x * lr`: weak, it takes the tensor's dtype,
convert.py's rule for Python numbers), in a graphjit function (`gj.exp(lr)`: float32 alone)
-- the trace makes a placeholder of that dtype instead of a constant (`NumberSites`), fed on
every call with the number converted as the constant would have been. A call whose
numbers do not convert so (an int that the dtype cannot hold, a value whose type changes,
`1 / 0`) is traced per value, raising what that trace raises.

Anything that needs the value while tracing -- a truth test (`if lr > 0`), a comparison,
`float(lr)`, `range(n)`, `math.sqrt(lr)`, formatting, hashing, NumPy -- raises TypeError,
and the function is traced per value instead.
"""

from __future__ import annotations

import operator

import numpy as np

from graphjit.errors import DTypeError
from graphjit.frontend.convert import WeakNumber
from graphjit.frontend.graph import placeholder
from graphjit.ir.core import Value
from graphjit.ir.types import DType, array_of, number_array

_OPERAND_TYPES = (int, float, bool)  # Python numbers a TracedNumber combines with


class NumberSites:
    """The placeholders one trace made for its TracedNumbers: one per number and dtype
    where the number met the graph, fed on each call with its value for that call."""

    def __init__(self):
        # (placeholder, the number, its dtype, the type of its value when traced)
        self.sites: list[tuple[Value, TracedNumber, DType, type]] = []
        self._made: dict = {}  # (id(number), dtype name) -> placeholder (sites keep numbers)

    def placeholder_for(self, number: TracedNumber, dtype: DType) -> Value:
        key = (id(number), dtype.name)
        made = self._made.get(key)
        if made is None:
            array_of(number.sample, dtype)  # (what the constant would have raised, raised now)
            made = self._made[key] = placeholder(dtype, (), name=number.path)
            self.sites.append((made, number, dtype, type(number.sample)))
        return made

    @property
    def placeholders(self) -> list[Value]:
        return [site[0] for site in self.sites]

    def feeds(self, values: tuple) -> list | None:
        """Each site's value for a call whose traced arguments are `values`, converted as
        its constant would have been; None where one is not what the trace assumed (a
        value of another type, one its dtype cannot hold, one Python's arithmetic refuses):
        such a call is traced per value."""
        out = []
        for _, number, dtype, kind in self.sites:
            try:
                value = number.evaluate(values)
                if type(value) is not kind:
                    return None
                out.append(_converted(value, dtype))
            except (ArithmeticError, DTypeError, TypeError, ValueError):
                return None
        return out


def _converted(value, dtype: DType) -> np.ndarray:
    """`array_of(value, dtype)` (a constant's conversion), the common cases by a short way."""
    array = number_array(value, dtype.np)
    return array if array is not None else array_of(value, dtype)


class TracedNumber(WeakNumber):
    """A Python number argument of a traced function (or Python's arithmetic on such
    arguments): `evaluate` gives its value from the values of the traced arguments,
    `sample` is its value in the call being traced."""

    __slots__ = ("evaluate", "sample", "path", "sites")
    __array_ufunc__ = None  # (NumPy scalars and arrays defer to it, then refuse: per value)

    def __init__(self, evaluate, sample, path: str, sites: NumberSites):
        self.evaluate, self.sample, self.path, self.sites = evaluate, sample, path, sites

    def as_tensor(self, dtype: DType) -> Value:
        return self.sites.placeholder_for(self, dtype)

    def __repr__(self) -> str:
        return f"<the traced {type(self.sample).__name__} argument {self.path!r}>"

    def _needs_value(self, *_):
        raise TypeError(
            f"gj.function argument {self.path!r} is traced as a value of the call; its "
            "value is not known while tracing"
        )

    __bool__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _needs_value
    __float__ = __int__ = __index__ = __round__ = __format__ = __array__ = _needs_value
    __hash__ = None  # type: ignore[assignment]

    def __pos__(self) -> TracedNumber:
        return self

    def __neg__(self) -> TracedNumber:
        return _derived(operator.neg, self)

    def __abs__(self) -> TracedNumber:
        return _derived(operator.abs, self)


def _derived(fn, *operands) -> TracedNumber:
    """`fn(*operands)` as Python computes it, on each call's values: the first operand a
    TracedNumber, the others TracedNumbers or Python numbers."""
    traced = [isinstance(x, TracedNumber) for x in operands]
    sample = fn(*[x.sample if t else x for x, t in zip(operands, traced)])  # (raises as Python)

    def evaluate(values):
        return fn(*[x.evaluate(values) if t else x for x, t in zip(operands, traced)])

    return TracedNumber(evaluate, sample, operands[0].path, operands[0].sites)


def _python_arithmetic(fn, swapped: bool = False):
    """Python's `a <op> b` for a TracedNumber and a Python number (or another
    TracedNumber); anything else is left to the other operand (a tensor's reflected
    operator, where the TracedNumber is weak) or refused."""

    def method(self: TracedNumber, other):
        if not (isinstance(other, TracedNumber) or type(other) in _OPERAND_TYPES):
            return NotImplemented
        return (
            _derived(lambda a, b: fn(b, a), self, other) if swapped else _derived(fn, self, other)
        )

    return method


for _name in ["add", "sub", "mul", "truediv", "floordiv", "mod", "pow"]:
    _fn = getattr(operator, _name)
    setattr(TracedNumber, f"__{_name}__", _python_arithmetic(_fn))
    setattr(TracedNumber, f"__r{_name}__", _python_arithmetic(_fn, swapped=True))


def traced_arguments(leaves: list, paths: list, indices: tuple) -> tuple[dict, NumberSites]:
    """TracedNumbers for the leaves at `indices` (by leaf index), and their trace's sites:
    the k-th evaluates to the k-th of a call's values."""
    sites = NumberSites()
    numbers = {
        i: TracedNumber(operator.itemgetter(k), leaves[i], paths[i], sites)
        for k, i in enumerate(indices)
    }
    return numbers, sites

"""Elementwise primitives: NumPy broadcasting between operands of one dtype.

The frontend inserts casts so that operands agree in dtype; the IR keeps broadcasting
implicit (shape rule below) and autodiff undoes it with `sum_to`.
"""

from __future__ import annotations

import math

import numpy as np

from graphjit.errors import DTypeError, RuntimeCheckError, ShapeError
from graphjit.ir.core import Value
from graphjit.ir.ops import (
    NONDIFF,
    REQUIRED,
    OpDef,
    P,
    register,
    vjp_reading,
    wants_cotangent,
)
from graphjit.ir.patterns import involution, same_type_is_identity, unit_element
from graphjit.ir.types import (
    TensorType,
    as_dtype,
    bool_,
    computes_in_float32,
    is_narrow_float_array,
    shape_str,
)


def broadcast_shapes(*shapes) -> tuple:
    """NumPy broadcasting where a dimension may be None (unknown until specialisation)."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(rank):
        dims = [s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ShapeError(f"shapes {', '.join(shape_str(s) for s in shapes)} do not broadcast")
        if known:
            out.append(known.pop())
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def _same_dtype(types) -> None:
    dtypes = {t.dtype for t in types}
    if len(dtypes) > 1:
        names = ", ".join(sorted(d.name for d in dtypes))
        raise DTypeError(f"operands have different dtypes ({names}); cast one of them first")


def _kinds(types, allowed: str, what: str) -> None:
    for t in types:
        if t.dtype.kind not in allowed:
            raise DTypeError(f"needs {what} operands, got {t.dtype.name}")


def elementwise_rule(result_dtype=None, kinds="fiub", what="numeric"):
    def infer(types, attrs):
        _same_dtype(types)
        _kinds(types, kinds, what)
        shape = broadcast_shapes(*(t.shape for t in types))
        return [TensorType(shape, result_dtype or types[0].dtype)]

    return infer


def known_shape(x) -> tuple | None:
    """x's shape as far as it is known: a graph value's may have unknown (None) dimensions,
    or be None for an unknown rank. Reads an eager tensor's shape directly: its `.type` is
    built per call."""
    return x.type.shape if isinstance(x, Value) else x.shape


def statically_same_shape(a, b) -> bool:
    """Both shapes known and equal."""
    if type(a) is not Value and type(b) is not Value:  # (eager tensors: shapes known)
        return a.shape == b.shape
    sa, sb = known_shape(a), known_shape(b)
    return sa is not None and sa == sb and None not in sa


def unbroadcast(ct, x):
    """Sum a cotangent down to operand `x`'s shape (the transpose of implicit broadcasting)."""
    if type(ct) is not Value and type(x) is not Value:  # (eager: statically_same_shape's
        return ct if ct.shape == x.shape else P.sum_to(ct, x)  # test, without its call)
    return ct if statically_same_shape(ct, x) else P.sum_to(ct, x)


def unary(fn, reads: str):
    """A VJP rule for a one-operand op from `fn(g, x, y) -> cotangent of x`; `reads` says
    which of x and y fn reads ("", "x", "y", "xy"): eager mode keeps only those (fn gets None
    for the others)."""
    if not set(reads) <= {"x", "y"}:
        raise ValueError(f"unary: reads names x and y only, got {reads!r}")
    rule = lambda cts, ins, outs, attrs: [fn(cts[0], ins[0], outs[0])]  # noqa: E731
    return vjp_reading(rule, inputs="x" in reads, outputs="y" in reads)


def binary(fx, fy, reads_out: bool, symmetric: bool = False):
    """A VJP rule for a broadcasting two-operand op; each of fx, fy is `(g, x, y, out)`.
    Both read the operands (for their shapes at least); `reads_out`: whether either reads
    `out` (eager mode keeps it only then). `symmetric`: fx(g, x, x, out) is fy(g, x, x,
    out), so for one tensor twice (`x * x`) the rule computes it once for both operands
    (the caller adds it to itself: the same bits as adding the two)."""

    def vjp(cts, ins, outs, attrs):
        g, (x, y), out = cts[0], ins, outs[0]
        if symmetric and x is y and wants_cotangent(x):
            both = unbroadcast(fx(g, x, y, out), x)
            return [both, both]
        return [
            unbroadcast(fx(g, x, y, out), x) if wants_cotangent(x) else None,
            unbroadcast(fy(g, x, y, out), y) if wants_cotangent(y) else None,
        ]

    return vjp_reading(vjp, outputs=reads_out)


def _elementwise(
    name, kernel, vjp, kinds="fiub", what="numeric", result_dtype=None, canonicalize=()
):
    rule = elementwise_rule(result_dtype, kinds, what)
    kernel = computes_in_float32(kernel)  # float16/bfloat16: one float32 op, one rounding
    register(OpDef(name, rule, kernel, vjp, elementwise=True, canonicalize=canonicalize))


def _scipy_special(name: str):
    """scipy.special's ufunc `name`, imported at its first call: importing scipy.special
    took 0.17 s, a sixth of `import graphjit`, for two reference kernels."""
    found = []

    def kernel(*args, **kwargs):
        if not found:
            import scipy.special

            found.append(getattr(scipy.special, name))
        return found[0](*args, **kwargs)

    kernel.__name__ = name
    return kernel


FLOAT = dict(kinds="f", what="floating-point")
NUMERIC = dict(kinds="fiu", what="numeric")
INTEGRAL = dict(kinds="iub", what="integer or boolean")
LOGICAL = dict(kinds="b", what="boolean", result_dtype=bool_)
COMPARE = dict(result_dtype=bool_)


# ---- unary -------------------------------------------------------------------------------

_elementwise(
    "neg",
    np.negative,
    unary(lambda g, x, y: P.neg(g), reads=""),
    canonicalize=(involution,),
    **NUMERIC,
)
_elementwise("exp", np.exp, unary(lambda g, x, y: P.mul(g, y), reads="y"), **FLOAT)
_elementwise("log", np.log, unary(lambda g, x, y: P.div(g, x), reads="x"), **FLOAT)
_elementwise("sqrt", np.sqrt, unary(lambda g, x, y: P.div(g, P.mul(y, 2)), reads="y"), **FLOAT)
_elementwise("abs", np.abs, unary(lambda g, x, y: P.mul(g, P.sign(x)), reads="x"), **NUMERIC)
_elementwise("sign", np.sign, NONDIFF, **NUMERIC)
_elementwise("sin", np.sin, unary(lambda g, x, y: P.mul(g, P.cos(x)), reads="x"), **FLOAT)
_elementwise("cos", np.cos, unary(lambda g, x, y: P.neg(P.mul(g, P.sin(x))), reads="x"), **FLOAT)
_elementwise("tanh", np.tanh, unary(lambda g, x, y: P.tanh_grad(g, y), reads="y"), **FLOAT)
_elementwise(
    "sigmoid",
    _scipy_special("expit"),
    unary(lambda g, x, y: P.sigmoid_grad(g, y), reads="y"),
    **FLOAT,
)


# The cotangents of tanh and sigmoid from their results, g (1 - y^2) and g y (1 - y): one op
# each where eager mode would run three (~1.1 us each on small tensors; PyTorch has
# tanh_backward and sigmoid_backward for this). A graph holds them only until a program is
# built: `decompose` gives back the three ops the rules wrote before, in the same order, so
# every backend computes what it did. The kernels are those three ops in NumPy (a narrow
# float rounds after each, as the three ops do). Their own VJPs serve higher orders.
def _tanh_grad_ops(g, y):
    return [P.mul(g, P.sub(1, P.mul(y, y)))]


def _sigmoid_grad_ops(g, y):
    return [P.mul(g, P.mul(y, P.sub(1, y)))]


register(
    OpDef(
        "tanh_grad",
        elementwise_rule(**FLOAT),
        lambda g, y: g * (1 - y * y),
        binary(
            lambda ct, g, y, out: P.tanh_grad(ct, y),
            lambda ct, g, y, out: P.mul(P.mul(ct, g), P.mul(y, -2)),  # d/dy: -2 g y
            reads_out=False,
        ),
        elementwise=True,
        decompose=lambda op: _tanh_grad_ops(*op.operands),
    )
)
register(
    OpDef(
        "sigmoid_grad",
        elementwise_rule(**FLOAT),
        lambda g, y: g * (y * (1 - y)),
        binary(
            lambda ct, g, y, out: P.sigmoid_grad(ct, y),
            lambda ct, g, y, out: P.mul(P.mul(ct, g), P.sub(1, P.mul(y, 2))),  # g (1 - 2y)
            reads_out=False,
        ),
        elementwise=True,
        decompose=lambda op: _sigmoid_grad_ops(*op.operands),
    )
)

# d/dx erf(x) = 2/sqrt(pi) exp(-x^2); log1p and expm1 keep their precision near 0, and
# their derivatives are written with the result where that is exact (expm1' = y + 1).
_TWO_OVER_SQRT_PI = float(2.0 / np.sqrt(np.pi))  # (a Python float: weakly typed)
_elementwise(
    "erf",
    _scipy_special("erf"),
    unary(lambda g, x, y: P.mul(g, P.mul(P.exp(P.neg(P.mul(x, x))), _TWO_OVER_SQRT_PI)), reads="x"),
    **FLOAT,
)
_elementwise("log1p", np.log1p, unary(lambda g, x, y: P.div(g, P.add(x, 1)), reads="x"), **FLOAT)
_elementwise("expm1", np.expm1, unary(lambda g, x, y: P.mul(g, P.add(y, 1)), reads="y"), **FLOAT)
# Rounding to an integer is piecewise constant: no gradient, as for sign. `round` is
# NumPy's (and PyTorch's): halves go to the even neighbour. Integer operands never reach
# these (the frontend returns them unchanged), so they are floating-point only.
_elementwise("floor", np.floor, NONDIFF, **FLOAT)
_elementwise("ceil", np.ceil, NONDIFF, **FLOAT)
_elementwise("round", np.round, NONDIFF, **FLOAT)
_elementwise("logical_not", np.logical_not, NONDIFF, **LOGICAL)
register(
    OpDef(
        "stop_gradient",
        elementwise_rule(),
        lambda x: x.copy(),
        NONDIFF,
        elementwise=True,
        canonicalize=(same_type_is_identity,),
    )
)


def cast_values(x: np.ndarray, to: np.dtype) -> np.ndarray:
    """x.astype(to), with float -> integer defined where C leaves it undefined: NaN and
    values outside the integer's range become its minimum (what x86 and so NumPy there
    give), on every platform and backend alike."""
    x = np.asarray(x)
    if is_narrow_float_array(x):  # (bfloat16 has no NumPy float kind: widen it exactly)
        x = x.astype(np.float32)
    if x.dtype.kind != "f" or np.dtype(to).kind not in "iu":
        return x.astype(to)
    low, high = float_range_of(to)
    inside = (x >= low) & (x < high)
    safe = np.where(inside, x, 0).astype(to)
    return np.where(inside, safe, np.iinfo(to).min).astype(to, copy=False)


def float_range_of(to) -> tuple[float, float]:
    """[low, high): the floats whose truncation fits integer dtype `to` (exact powers of 2)."""
    info = np.iinfo(to)
    return float(info.min), float(info.max) + 1.0


def _cast_infer(types, attrs):
    return [TensorType(types[0].shape, as_dtype(attrs["dtype"]))]


def _cast_vjp(cts, ins, outs, attrs):
    x = ins[0]
    if not x.dtype.is_floating or not as_dtype(attrs["dtype"]).is_floating:
        return [None]
    return [P.cast(cts[0], dtype=x.dtype.name)]


register(
    OpDef(
        "cast",
        _cast_infer,
        lambda x, dtype: cast_values(x, as_dtype(dtype).np),
        vjp_reading(_cast_vjp, outputs=False),
        attrs={"dtype": REQUIRED},
        elementwise=True,
        canonicalize=(same_type_is_identity,),
    )
)

# ---- binary ------------------------------------------------------------------------------

# Each declares its unit element (x + -0.0, x - 0.0, x * 1, x / 1 are exactly x); IEEE's
# -0.0 + 0.0 = +0.0 is why add's unit is -0.0.
_elementwise(
    "add",
    np.add,
    binary(lambda g, x, y, o: g, lambda g, x, y, o: g, reads_out=False),
    canonicalize=(unit_element(-0.0, commutes=True),),
    **NUMERIC,
)
_elementwise(
    "sub",
    np.subtract,
    binary(lambda g, x, y, o: g, lambda g, x, y, o: P.neg(g), reads_out=False),
    canonicalize=(unit_element(0.0, commutes=False),),
    **NUMERIC,
)
_elementwise(
    "mul",
    np.multiply,
    binary(
        lambda g, x, y, o: P.mul(g, y),
        lambda g, x, y, o: P.mul(g, x),
        reads_out=False,
        symmetric=True,  # (g * y and g * x, for y = x: one product)
    ),
    canonicalize=(unit_element(1, commutes=True),),
    **NUMERIC,
)
_elementwise(
    "div",
    np.true_divide,
    binary(
        lambda g, x, y, o: P.div(g, y),
        lambda g, x, y, o: P.neg(P.div(P.mul(g, o), y)),
        reads_out=True,
    ),
    canonicalize=(unit_element(1, commutes=False),),
    **FLOAT,
)


def _pow_dy(g, x, y, out):
    positive = P.greater(x, 0)
    safe_x = P.select(positive, x, 1)
    return P.select(positive, P.mul(P.mul(g, out), P.log(safe_x)), 0)


# NumPy refuses integer powers with a negative exponent (the result is not an integer);
# every backend raises RuntimeCheckError with this message, checked on the values.
NEGATIVE_INTEGER_POWER = "integers to negative integer powers are not allowed"
# NumPy gives 0 (and a warning) for an integer // or % by zero; Python and PyTorch raise.
# A silent 0 is a wrong answer, so every backend raises RuntimeCheckError (Python's words).
INTEGER_DIVISION_BY_ZERO = "integer division or modulo by zero"
# Ops whose integer results are checked on their values at run time, and the message of
# the RuntimeCheckError; each code generator has a table of the conditions.
VALUE_CHECKS = {
    "pow": NEGATIVE_INTEGER_POWER,
    "floor_divide": INTEGER_DIVISION_BY_ZERO,
    "floor_mod": INTEGER_DIVISION_BY_ZERO,
}


def value_checked_ops(body) -> list:
    """The ops of a fused region (a block) whose values are checked, in program order."""
    return [
        op for op in body.ops if op.name in VALUE_CHECKS and not op.result.type.dtype.is_floating
    ]


def _computes_any(x, y) -> bool:
    """Whether x and y broadcast to any element. NumPy checks an integer exponent or
    divisor only where it computes with it: an empty result raises nothing, and a
    non-empty one uses every element of both operands."""
    return math.prod(np.broadcast_shapes(np.shape(x), np.shape(y))) > 0


def _power(x, y):
    if np.asarray(y).dtype.kind in "iu" and _computes_any(x, y) and np.any(np.asarray(y) < 0):
        raise RuntimeCheckError(NEGATIVE_INTEGER_POWER)
    return np.power(x, y)


_elementwise(
    "pow",
    _power,
    binary(lambda g, x, y, o: P.mul(g, P.mul(y, P.pow(x, P.sub(y, 1)))), _pow_dy, reads_out=True),
    **NUMERIC,
)
# Ties send the gradient to the second operand, so relu(x) = maximum(x, 0) has gradient 0 at 0.
_elementwise(
    "maximum",
    np.maximum,
    binary(
        lambda g, x, y, o: P.select(P.greater(x, y), g, 0),
        lambda g, x, y, o: P.select(P.greater(x, y), 0, g),
        reads_out=False,
    ),
    **NUMERIC,
)
_elementwise(
    "minimum",
    np.minimum,
    binary(
        lambda g, x, y, o: P.select(P.less(x, y), g, 0),
        lambda g, x, y, o: P.select(P.less(x, y), 0, g),
        reads_out=False,
    ),
    **NUMERIC,
)
for _name, _fn in [
    ("equal", np.equal),
    ("not_equal", np.not_equal),
    ("less", np.less),
    ("less_equal", np.less_equal),
    ("greater", np.greater),
    ("greater_equal", np.greater_equal),
]:
    _elementwise(_name, _fn, NONDIFF, **COMPARE)
_elementwise("logical_and", np.logical_and, NONDIFF, **LOGICAL)
_elementwise("logical_or", np.logical_or, NONDIFF, **LOGICAL)

# ---- integer arithmetic ------------------------------------------------------------------

# Bitwise ops on integers and booleans (where they are the logical ops), as NumPy's.
_elementwise("bitwise_and", np.bitwise_and, NONDIFF, **INTEGRAL)
_elementwise("bitwise_or", np.bitwise_or, NONDIFF, **INTEGRAL)
_elementwise("bitwise_xor", np.bitwise_xor, NONDIFF, **INTEGRAL)
_elementwise("bitwise_not", np.invert, NONDIFF, **INTEGRAL)


def _checked_division(np_fn):
    """NumPy's floor_divide or mod, with an integer divisor of 0 a RuntimeCheckError. The
    one overflow, MIN // -1, wraps to MIN as NumPy's does (without NumPy's warning)."""

    def kernel(x, y):
        if np.asarray(y).dtype.kind in "iu":
            if _computes_any(x, y) and np.any(np.asarray(y) == 0):
                raise RuntimeCheckError(INTEGER_DIVISION_BY_ZERO)
            with np.errstate(over="ignore"):
                return np_fn(x, y)
        return np_fn(x, y)

    return kernel


# Floor division is piecewise constant: no gradient, as for sign. The floor modulo
# x - y * floor(x / y) has d/dx = 1 and d/dy = -floor(x / y), both built from primitives,
# so it differentiates again.
_elementwise("floor_divide", _checked_division(np.floor_divide), NONDIFF, **NUMERIC)
_elementwise(
    "floor_mod",
    _checked_division(np.mod),
    binary(
        lambda g, x, y, o: g,
        lambda g, x, y, o: P.neg(P.mul(g, P.floor_divide(x, y))),
        reads_out=False,
    ),
    **NUMERIC,
)

# ---- select ------------------------------------------------------------------------------


def _select_infer(types, attrs):
    c, a, b = types
    if not c.dtype.is_bool:
        raise DTypeError(f"condition must be bool, got {c.dtype.name}")
    _same_dtype([a, b])
    return [TensorType(broadcast_shapes(c.shape, a.shape, b.shape), a.dtype)]


def _select_vjp(cts, ins, outs, attrs):
    g, (c, a, b) = cts[0], ins
    return [
        None,
        unbroadcast(P.select(c, g, 0), a) if wants_cotangent(a) else None,
        unbroadcast(P.select(c, 0, g), b) if wants_cotangent(b) else None,
    ]


register(
    OpDef(
        "select",
        _select_infer,
        np.where,
        vjp_reading(_select_vjp, outputs=False),
        elementwise=True,
    )
)

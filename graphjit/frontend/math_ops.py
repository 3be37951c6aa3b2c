"""Integer and bitwise arithmetic with NumPy's semantics (bitwise ops, floor division,
modulo) and the reductions prod, argmin, any and all, for graph values and eager tensors
alike; with the functions the Python operators `& | ^ ~ // %` call.

Operands are promoted as by every op function (NumPy's rule, Python scalars weak:
`int32_tensor & 1` stays int32, `5 // t` takes t's dtype). Integer // and % by zero raise
RuntimeCheckError on every backend, where NumPy would give 0 and a warning.
"""

from __future__ import annotations

from graphjit.errors import DTypeError
from graphjit.frontend.convert import bind  # (ir.ops.bind, with the all-eager fast path)
from graphjit.frontend.ops import (
    as_tensor,
    axis_aliases,
    isfinite,
    isinf,
    isnan,
    normalize_axes,
    operands,
    reduction_axes,
)
from graphjit.ir.core import user_location
from graphjit.ir.types import int64

__all__ = [
    "isnan",
    "isinf",
    "isfinite",
    "is_nan",
    "is_inf",
    "is_finite",
    "bitwise_and",
    "bitwise_or",
    "bitwise_xor",
    "bitwise_not",
    "invert",
    "floor_divide",
    "floordiv",
    "remainder",
    "mod",
    "floormod",
    "prod",
    "argmin",
    "any",
    "all",
    "and_",
    "or_",
    "xor",
    "invert_",
    "floordiv_",
    "mod_",
]


# ---- bitwise -----------------------------------------------------------------------------


def _integral(name: str, tensors: list) -> list:
    """The operands of a bitwise op: integers or booleans (floats have no bits to combine)."""
    for t in tensors:
        if t.dtype.is_floating:
            raise DTypeError(
                f"{name} needs integer or boolean operands, got {t.dtype.name}",
                location=user_location(),
            )
    return tensors


def bitwise_and(x, y):
    """x & y bit by bit (integers), or logically (booleans), as np.bitwise_and."""
    return bind("bitwise_and", *_integral("bitwise_and", operands(x, y)))


def bitwise_or(x, y):
    """x | y bit by bit (integers), or logically (booleans), as np.bitwise_or."""
    return bind("bitwise_or", *_integral("bitwise_or", operands(x, y)))


def bitwise_xor(x, y):
    """x ^ y bit by bit (integers), or logically (booleans), as np.bitwise_xor."""
    return bind("bitwise_xor", *_integral("bitwise_xor", operands(x, y)))


def bitwise_not(x):
    """~x: every bit flipped (-x - 1 for integers), or `not` for booleans, as np.invert."""
    return bind("bitwise_not", *_integral("bitwise_not", [as_tensor(x)]))


invert = bitwise_not


# ---- floor division and modulo -----------------------------------------------------------


def _numeric(name: str, tensors: list) -> list:
    for t in tensors:
        if t.dtype.is_bool:
            raise DTypeError(
                f"{name} needs numeric operands, got bool; cast them to an integer dtype",
                location=user_location(),
            )
    return tensors


def floor_divide(x, y):
    """x // y rounded toward -inf (np.floor_divide, Python's //); integer division by zero
    raises RuntimeCheckError, and MIN // -1 wraps to MIN as in NumPy. No gradient (the
    result is piecewise constant)."""
    return bind("floor_divide", *_numeric("floor_divide", operands(x, y)))


def remainder(x, y):
    """x - y * floor(x / y): the remainder with the divisor's sign (np.mod, Python's %,
    torch.remainder); integer modulo by zero raises RuntimeCheckError."""
    return bind("floor_mod", *_numeric("remainder", operands(x, y)))


floordiv = floor_divide  # TF1's tf.floordiv
mod = floormod = remainder  # TF1's tf.mod and tf.floormod


# ---- the Python operators ----------------------------------------------------------------


def _operator_operands(symbol: str, x, y=None) -> list:
    """Operands of `&`, `|`, `^` or `~`, promoted; a float among them is an error that
    names the operator."""
    tensors = operands(x) if y is None else operands(x, y)
    dtype = tensors[0].dtype
    if dtype.is_floating:
        raise DTypeError(
            f"operator {symbol} needs integer or boolean tensors (bitwise on integers, "
            f"logical on booleans), got {dtype.name}",
            location=user_location(),
        )
    return tensors


def _logical_or_bitwise(symbol: str, logical: str, bitwise: str):
    def operator(x, y):
        a, b = _operator_operands(symbol, x, y)
        return bind(logical if a.dtype.is_bool else bitwise, a, b)

    operator.__name__ = f"{bitwise}_operator"
    operator.__doc__ = (
        f"`x {symbol} y`: logical on booleans, bitwise on integers (NumPy's rule); a "
        "DTypeError on floats."
    )
    return operator


and_ = _logical_or_bitwise("&", "logical_and", "bitwise_and")
or_ = _logical_or_bitwise("|", "logical_or", "bitwise_or")
xor = _logical_or_bitwise("^", "not_equal", "bitwise_xor")  # (for booleans, xor is !=)


def invert_(x):
    """`~x`: logical not on booleans, bitwise not on integers; a DTypeError on floats."""
    (a,) = _operator_operands("~", x)
    return bind("logical_not" if a.dtype.is_bool else "bitwise_not", a)


def floordiv_(x, y):
    """`x // y`, as floor_divide."""
    return bind("floor_divide", *_numeric("operator //", operands(x, y)))


def mod_(x, y):
    """`x % y`, as remainder."""
    return bind("floor_mod", *_numeric("operator %", operands(x, y)))


# ---- reductions (each also takes PyTorch's dim=/keepdim=: ops.axis_aliases) -------------


@axis_aliases
def prod(x, axis=None, keepdims=False):
    """The product of the elements along `axis` (all by default), 1 for none. Booleans and
    int32 are multiplied as int64, as in NumPy and PyTorch. The gradient is right where
    elements are zero (each gets the product of the others)."""
    x = as_tensor(x)
    if x.dtype.is_bool or x.dtype.name == "int32":
        x = bind("cast", x, dtype=int64.name)
    x, axes = reduction_axes(x, axis, keepdims)
    return bind("reduce_prod", x, axes=axes, keepdims=keepdims)


@axis_aliases
def argmin(x, axis=None, keepdims=False):
    """Index of the smallest element (the first one; of the flattened tensor when axis is
    None), as int64; a NaN counts as the smallest, as in NumPy."""
    x = as_tensor(x)
    if x.dtype.is_bool:
        x = bind("cast", x, dtype=int64.name)
    if axis is None:
        out = bind("argmin", bind("reshape", x, shape=(-1,)), axis=0, keepdims=False)
        return bind("reshape", out, shape=(1,) * x.ndim) if keepdims else out
    (axis,) = normalize_axes(axis, x.ndim)
    return bind("argmin", x, axis=axis, keepdims=keepdims)


def _count_true(x, axis, keepdims, negate: bool):
    """The number of true (with `negate`: false) elements of bool(x) along `axis`."""
    x = as_tensor(x)
    truth = x if x.dtype.is_bool else bind("not_equal", x, 0)
    if negate:
        truth = bind("logical_not", truth)
    counts = bind("cast", truth, dtype=int64.name)
    counts, axes = reduction_axes(counts, axis, keepdims)
    return bind("reduce_sum", counts, axes=axes, keepdims=keepdims)


# any/all count elements rather than take a max or min of booleans: a count of an empty
# axis is 0, so any() of nothing is False and all() of nothing is True, as in NumPy.
@axis_aliases
def any(x, axis=None, keepdims=False):  # noqa: A001
    """Whether some element along `axis` (all by default) is nonzero (TF1's reduce_any)."""
    return bind("not_equal", _count_true(x, axis, keepdims, negate=False), 0)


@axis_aliases
def all(x, axis=None, keepdims=False):  # noqa: A001
    """Whether every element along `axis` (all by default) is nonzero (TF1's reduce_all)."""
    return bind("equal", _count_true(x, axis, keepdims, negate=True), 0)


is_nan, is_inf, is_finite = isnan, isinf, isfinite  # (TF1's names)

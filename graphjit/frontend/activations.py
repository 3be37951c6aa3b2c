"""Activations and elementwise math beyond the core set: gelu, silu, softplus, leaky_relu, elu,
erf, log1p, expm1, rsqrt, floor, ceil, round, cumsum, flip, triu/tril, pad.

Each works on graph values and eager tensors alike (the op functions of frontend/ops.py
underneath) and takes PyTorch's arguments. Compositions get their gradients from the
primitives they use; branches that `where` discards are computed on clamped inputs, so that
their (discarded) gradients are 0 rather than 0 * inf = NaN."""

from __future__ import annotations

import math
import operator

import numpy as np

from graphjit.errors import DTypeError, GraphjitError, ShapeError
from graphjit.frontend import shape_ops
from graphjit.frontend.convert import constant_like, is_tensor, unwrap
from graphjit.frontend.eager_compiled import compiled_when_hot
from graphjit.frontend.ops import (
    add,
    as_tensor,
    axis_aliases,
    cast,
    div,
    exp,
    greater,
    greater_equal,
    less_equal,
    mul,
    normalize_axes,
    sigmoid,
    sqrt,
    sub,
    tanh,
    where,
)
from graphjit.ir.core import user_location
from graphjit.ir.ops import bind
from graphjit.ir.types import float32, float64, int64

__all__ = [
    "ceil", "cumsum", "elu", "erf", "expm1", "flip", "floor", "gelu", "leaky_relu", "log1p",
    "pad", "round", "rsqrt", "silu", "softplus", "tril", "triu",
]  # fmt: skip


# ---- elementwise primitives --------------------------------------------------------------


def _as_float(x):
    """x as a tensor; integers and booleans as float (float64 for 64-bit ones, as NumPy)."""
    x = as_tensor(x)
    if x.dtype.is_floating:
        return x
    return cast(x, float64 if x.dtype.np.itemsize > 4 else float32)


def erf(x):
    """The error function, 2/sqrt(pi) * integral of exp(-t^2) from 0 to x (torch.erf)."""
    return bind("erf", _as_float(x))


def log1p(x):
    """log(1 + x), accurate for tiny x (torch.log1p, np.log1p)."""
    return bind("log1p", _as_float(x))


def expm1(x):
    """exp(x) - 1, accurate for tiny x (torch.expm1, np.expm1)."""
    return bind("expm1", _as_float(x))


def rsqrt(x):
    """1 / sqrt(x) (torch.rsqrt). A composition: without fast-math, LLVM has no reciprocal
    square root that is both faster and as accurate as the correctly rounded sqrt and
    division, so a primitive would buy nothing."""
    return div(1, sqrt(_as_float(x)))


def _rounding(name: str, x):
    """An integer (or boolean) is its own floor, ceil and round: returned unchanged, as in
    PyTorch (NumPy would make it float64)."""
    x = as_tensor(x)
    return bind(name, x) if x.dtype.is_floating else x


def floor(x):
    """The largest integer <= x, elementwise, in x's dtype (zero gradient)."""
    return _rounding("floor", x)


def ceil(x):
    """The smallest integer >= x, elementwise, in x's dtype (zero gradient)."""
    return _rounding("ceil", x)


def round(x, decimals: int = 0):  # noqa: A001 (PyTorch's name)
    """x rounded to the nearest integer, halves to even (torch.round, np.round); with
    `decimals`, round(x * 10^decimals) / 10^decimals, as PyTorch computes it."""
    decimals = operator.index(decimals)
    if decimals == 0:
        return _rounding("round", x)
    x = as_tensor(x)
    if not x.dtype.is_floating:
        return x
    scale = 10.0**decimals
    return div(_rounding("round", mul(x, scale)), scale)


# ---- activations -------------------------------------------------------------------------

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@compiled_when_hot
def gelu(x, approximate: str = "none"):
    """x * Phi(x), Phi the standard normal CDF (torch.nn.functional.gelu): exactly with
    erf (approximate="none") or with PyTorch's tanh approximation (approximate="tanh")."""
    x = _as_float(x)
    if approximate == "none":
        phi = mul(add(erf(mul(x, 1.0 / math.sqrt(2.0))), 1.0), 0.5)
    elif approximate == "tanh":
        inner = mul(add(x, mul(mul(mul(x, x), x), 0.044715)), _SQRT_2_OVER_PI)
        phi = mul(add(tanh(inner), 1.0), 0.5)
    else:
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return mul(x, phi)


def silu(x):
    """x * sigmoid(x), also called swish (torch.nn.functional.silu)."""
    x = _as_float(x)
    return mul(x, sigmoid(x))


def softplus(x, beta: float = 1.0, threshold: float = 20.0):
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold, as PyTorch
    (torch.nn.functional.softplus). exp sees beta * x clamped to the threshold, so it never
    overflows, and log1p keeps the result accurate where exp(beta * x) is tiny."""
    x = _as_float(x)
    scaled = mul(x, beta)
    linear = greater(scaled, threshold)
    clamped = where(linear, threshold, scaled)
    smooth = div(log1p(exp(clamped)), beta)
    return where(linear, x, smooth)


def leaky_relu(x, negative_slope: float = 0.01):
    """x where x > 0, else negative_slope * x (torch.nn.functional.leaky_relu)."""
    x = _as_float(x)
    return where(greater(x, 0), x, mul(x, negative_slope))


def elu(x, alpha: float = 1.0):
    """x where x > 0, else alpha * (exp(x) - 1) (torch.nn.functional.elu); expm1 sees x
    clamped to <= 0, so the discarded branch cannot overflow."""
    x = _as_float(x)
    positive = greater(x, 0)
    return where(positive, x, mul(expm1(where(positive, 0, x)), alpha))


# ---- scans, flips, masks, padding --------------------------------------------------------


@axis_aliases
def cumsum(x, axis=0, reverse: bool = False):
    """Running sums along `axis` (torch.cumsum(x, dim), np.cumsum, tf.cumsum; `reverse`
    sums from the end, as TF1's). Booleans and int32 are summed as int64, as NumPy does."""
    x = as_tensor(x)
    if x.dtype.is_bool or x.dtype.name == "int32":
        x = cast(x, int64)
    if x.ndim == 0:
        x = bind("reshape", x, shape=(1,))  # NumPy: a scalar's cumsum is one element
    (axis,) = normalize_axes(axis, x.ndim)
    return bind("cumsum", x, axis=axis, reverse=bool(reverse))


def _axes_of(dims, rank: int, what: str) -> tuple:
    if isinstance(dims, int) or np.ndim(dims) == 0:
        dims = (dims,)
    axes = normalize_axes(dims, rank)
    if len(axes) != len(tuple(dims)):
        raise ShapeError(f"{what}: dims {tuple(dims)} repeat an axis", location=user_location())
    return axes


def flip(x, dims):
    """x reversed along each axis in `dims` (torch.flip): a slice with step -1."""
    x = as_tensor(x)
    axes = _axes_of(dims, x.ndim, "flip")
    key = tuple(slice(None, None, -1) if a in axes else slice(None) for a in range(x.ndim))
    return shape_ops.getitem(x, key)


def _band_mask(x, diagonal: int, upper: bool):
    """True where column - row >= diagonal (upper) or <= diagonal (lower), over x's last
    two axes: a constant when their sizes are known, else built from running counts."""
    diagonal = operator.index(diagonal)
    rows, cols = x.shape[-2:]
    if rows is not None and cols is not None:
        band = np.triu if upper else np.tril
        return band(np.ones((rows, cols), bool), diagonal)
    plane = shape_ops.getitem(x, (0,) * (x.ndim - 2)) if x.ndim > 2 else x
    ones = bind("broadcast_like", constant_like(np.ones((1, 1), np.int64), int64, [x]), plane)
    row = bind("cumsum", ones, axis=0, reverse=False)
    col = bind("cumsum", ones, axis=1, reverse=False)
    offset = sub(col, row)
    return greater_equal(offset, diagonal) if upper else less_equal(offset, diagonal)


def _band(x, diagonal: int, upper: bool, what: str):
    x = as_tensor(x)
    if x.ndim < 2:
        raise ShapeError(f"{what} needs a tensor of rank >= 2, got rank {x.ndim}")
    zero = np.zeros((), x.dtype.np)
    return where(_band_mask(x, diagonal, upper), x, zero)


def triu(x, diagonal: int = 0):
    """x with the elements below the `diagonal`-th diagonal of its last two axes zeroed
    (torch.triu); diagonal > 0 moves the band up. tril(ones, 0) is a causal mask."""
    return _band(x, diagonal, True, "triu")


def tril(x, diagonal: int = 0):
    """x with the elements above the `diagonal`-th diagonal of its last two axes zeroed
    (torch.tril)."""
    return _band(x, diagonal, False, "tril")


def pad(x, pad=None, mode: str = "constant", value=0, *, paddings=None, constant_values=None):
    """x padded with `value` (torch.nn.functional.pad, constant mode): `pad` lists (before,
    after) amounts from the last axis backwards, (left, right, top, bottom, ...); a
    negative amount crops. Differentiable in x: the pad's gradient is the slice back.
    TF1's form (tf.pad(x, paddings, "CONSTANT", constant_values)) gives one [before,
    after] pair per axis, first axis first: a nested `pad` (or `paddings=`) is read so."""
    if paddings is not None:
        pad = paddings
    if constant_values is not None:
        value = constant_values
    if str(mode).lower() != "constant":
        raise GraphjitError(
            f"pad: only mode='constant' is supported, got {mode!r}", location=user_location()
        )
    x = as_tensor(x)
    amounts = _torch_pad_amounts(pad, x.ndim)
    if len(amounts) % 2 or len(amounts) // 2 > x.ndim:
        raise ShapeError(
            f"pad: needs an even number of amounts, at most 2 per axis (rank {x.ndim}), "
            f"got {len(amounts)}",
            location=user_location(),
        )
    for k in range(len(amounts) // 2):
        x = _pad_axis(x, x.ndim - 1 - k, amounts[2 * k], amounts[2 * k + 1], value)
    return x


def _torch_pad_amounts(pad, rank: int) -> list:
    """`pad` as torch's flat list of amounts, read from TF1's per-axis pairs if nested."""
    if is_tensor(unwrap(pad)):
        raise ShapeError(
            "pad: the amounts must be known when the op is built (Python ints or a NumPy "
            "array), not a tensor",
            location=user_location(),
        )
    rows = np.asarray(pad, dtype=object)
    if rows.ndim != 2:
        return [operator.index(p) for p in pad]
    if rows.shape != (rank, 2):
        raise ShapeError(
            f"pad: TF1's paddings need one [before, after] pair per axis (shape ({rank}, 2)), "
            f"got shape {rows.shape}",
            location=user_location(),
        )
    return [operator.index(n) for pair in reversed(rows.tolist()) for n in pair]


def _pad_axis(x, axis: int, before: int, after: int, value):
    crop = slice(max(-before, 0), after if after < 0 else None)
    if crop != slice(0, None):
        x = shape_ops.getitem(x, (slice(None),) * axis + (crop,))
    pieces = [_filled(x, axis, n, value) for n in (before, after)]
    parts = [p for p in (pieces[0], x, pieces[1]) if p is not None]
    return shape_ops.concat(parts, axis=axis) if len(parts) > 1 else x


def _filled(x, axis: int, n: int, value):
    """`value` in x's shape with `n` elements along `axis` (None for n <= 0), in x's mode;
    unknown dimensions are taken from a one-element-thick slice of x."""
    if n <= 0:
        return None
    try:
        fill = np.asarray(value, x.dtype.np)
    except (TypeError, ValueError):
        raise DTypeError(f"pad: value {value!r} is not a {x.dtype.name}") from None
    if None not in x.shape:
        shape = x.shape[:axis] + (n,) + x.shape[axis + 1 :]
        return constant_like(np.full(shape, fill), x.dtype, [x])
    block = np.full((1,) * axis + (n,) + (1,) * (x.ndim - axis - 1), fill)
    reference = shape_ops.getitem(x, (slice(None),) * axis + (slice(0, 1),))
    return bind("broadcast_like", constant_like(block, x.dtype, [x]), reference)

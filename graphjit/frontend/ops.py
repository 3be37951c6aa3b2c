"""The op functions of the public namespace, shared by the static and eager modes.

Each is a thin wrapper over `bind`: it converts arguments (promotion, constants), checks
them, and applies primitives; compositions (`relu`, `mean`, `softmax`, ...) get gradients
and code generation from the primitives they use.
"""

from __future__ import annotations

import functools
import math
import operator
from typing import Any, NamedTuple

import numpy as np

from graphjit import config
from graphjit.errors import DTypeError, ResourceError, ShapeError
from graphjit.frontend import convert
from graphjit.frontend.convert import (
    bind,
    bind_eager,
    constant_like,
    is_tensor,
    plain_eager,
    result_dtype,
    unwrap,
)
from graphjit.frontend.eager_compiled import compiled_when_hot
from graphjit.ir.core import user_location
from graphjit.ir.ops import get_op, handler_for
from graphjit.ir.types import as_dtype, bool_, float32, float64


def as_tensor(x, dtype=None):
    """An op function's argument as a tensor: constants combined with no tensor compute
    eagerly unless a graph is being built (see convert.py)."""
    if dtype is None and plain_eager(type(x)):  # (convert.as_tensor's answer, one call less)
        return x
    return convert.as_tensor(x, dtype, eager_ok=True)


def operands(*args, dtype=None) -> list:
    return convert.operands(*args, dtype=dtype, eager_ok=True)


# ---- elementwise -------------------------------------------------------------------------


def _binary(name):
    opdef = get_op(name)

    def op(x, y):
        x, y = operands(x, y)
        if plain_eager(type(x)) and plain_eager(type(y)):  # (eager's hot path)
            return bind_eager(opdef, [x, y], {})
        return bind(name, x, y)

    op.__name__ = name
    op.__doc__ = f"Elementwise `{name}` with NumPy broadcasting and type promotion."
    return op


def _unary(name, float_only=False):
    opdef = get_op(name)

    def op(x):
        x = as_tensor(x)
        if float_only and not x.dtype.is_floating:
            x = bind("cast", x, dtype=float64.name if x.dtype.np.itemsize > 4 else float32.name)
        if plain_eager(type(x)):  # (eager's hot path)
            return bind_eager(opdef, [x], {})
        return bind(name, x)

    op.__name__ = name
    op.__doc__ = f"Elementwise `{name}`" + (" (integers are cast to float)." if float_only else ".")
    return op


add, sub, mul, maximum, minimum, pow = map(
    _binary, ["add", "sub", "mul", "maximum", "minimum", "pow"]
)
equal, not_equal, less, less_equal, greater, greater_equal = map(
    _binary, ["equal", "not_equal", "less", "less_equal", "greater", "greater_equal"]
)
neg, abs, sign = map(_unary, ["neg", "abs", "sign"])
exp, log, sqrt, sin, cos, tanh, sigmoid = (
    _unary(n, float_only=True) for n in ["exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid"]
)


def div(x, y):
    """True division; integer operands are divided as float64, as in NumPy."""
    x, y = operands(x, y)
    if not x.dtype.is_floating:
        x, y = operands(x, y, dtype=float64)
    return bind("div", x, y)


def square(x):
    x = as_tensor(x)
    return bind("mul", x, x)


def relu(x):
    return maximum(x, 0)


def cast(x, dtype):
    x = as_tensor(x)
    dtype = as_dtype(dtype)
    return x if x.dtype == dtype else bind("cast", x, dtype=dtype.name)


def stop_gradient(x):
    """The identity, through which no gradient flows."""
    return bind("stop_gradient", as_tensor(x))


def check_numerics(x, message: str):
    """x unchanged; where x holds NaN or ±inf, the run (eagerly: this call) raises
    NumericsError with `message` (TensorFlow's tf.debugging.check_numerics)."""
    return bind("check_numerics", as_tensor(x), message=str(message))


def isnan(x):
    """Elementwise: whether x is NaN (False for integers and booleans)."""
    x = as_tensor(x)
    return not_equal(x, x)


def isinf(x):
    """Elementwise: whether x is +inf or -inf."""
    x = as_tensor(x)
    return equal(abs(x), np.inf) if x.dtype.is_floating else not_equal(x, x)


def isfinite(x):
    """Elementwise: whether x is neither infinite nor NaN."""
    x = as_tensor(x)
    return less(abs(x), np.inf) if x.dtype.is_floating else equal(x, x)


def _as_bool(x, *context):
    """x as a boolean tensor; a Python or NumPy constant takes the mode of the tensors in
    `context` (so `logical_and(True, t)` stays eager with an eager t)."""
    return constant_like(x, bool_, context)


def logical_and(x, y):
    return bind("logical_and", *operands(_as_bool(x, y), _as_bool(y, x)))


def logical_or(x, y):
    return bind("logical_or", *operands(_as_bool(x, y), _as_bool(y, x)))


def logical_not(x):
    return bind("logical_not", _as_bool(x))


def logical_xor(x, y):
    """Elementwise exclusive or, True where exactly one of x and y holds (numbers: nonzero
    is True), as TF1's tf.math.logical_xor and torch.logical_xor."""
    return bind("not_equal", *operands(_as_bool(x, y), _as_bool(y, x)))


def where(condition, x=None, y=None):
    """Elements of x where condition holds, else of y (broadcasting all three). With the
    condition alone, TF1's tf.where(condition): the coordinates of its True elements."""
    if x is None and y is None:
        from graphjit.frontend.indexing import argwhere  # (indexing builds on this module)

        return argwhere(condition)
    condition = _as_bool(condition, x, y)
    if not (is_tensor(unwrap(x)) or is_tensor(unwrap(y))):
        # constant branches take the condition's mode (eager tensors or graph constants)
        dtype = result_dtype([x, y])
        x, y = (handler_for([condition]).lift(v, dtype) for v in (x, y))
    x, y = operands(x, y)
    return bind("select", condition, x, y)


# ---- reductions --------------------------------------------------------------------------


class ValuesIndices(NamedTuple):
    """PyTorch's result of `max`/`min` along a dimension: `values, indices = x.max(dim=1)`."""

    values: Any
    indices: Any


_TORCH_KEYWORDS = {"dim": "axis", "keepdim": "keepdims"}


def axis_aliases(fn=None, *, indices=None):
    """Decorator: the function takes PyTorch's `dim=`/`keepdim=` as well as TF1's and
    NumPy's `axis=`/`keepdims=`, so that code written for either runs unchanged.

    With `indices` (for max and min), the spelling selects the result, as it does in each
    library: `dim=` returns PyTorch's named tuple `(values, indices)` (torch.max(x, dim=1)),
    `axis=` TF1's values alone (tf.reduce_max(x, axis=1))."""
    if fn is None:
        return functools.partial(axis_aliases, indices=indices)

    @functools.wraps(fn)
    def function(*args, **kwargs):
        if not kwargs:  # (the common call, kept cheap: eager loops call these a lot)
            return fn(*args)
        wants_indices = indices is not None and kwargs.get("dim") is not None
        for torch_name, name in _TORCH_KEYWORDS.items():
            if torch_name in kwargs:
                if name in kwargs:
                    raise TypeError(f"{fn.__name__}() got both {name}= and {torch_name}=")
                kwargs[name] = kwargs.pop(torch_name)
        if not wants_indices:
            return fn(*args, **kwargs)
        at = indices(*args, **kwargs)
        return ValuesIndices(_values_at(args[0], at, kwargs.get("axis"), kwargs), at)

    return function


def _values_at(x, at, axis, kwargs):
    """The values max/min(x, dim=axis) return beside their indices `at`: x taken at them,
    so that the gradient goes to that one element, as PyTorch's does (the reduction's own
    gradient shares it among ties)."""
    from graphjit.frontend.indexing import take_along_axis  # (indexing builds on this module)

    keepdims = kwargs.get("keepdims", False)
    x = _numeric(x)
    axis = normalize_axes(axis, x.ndim)[0]
    values = take_along_axis(x, at if keepdims else bind("expand_dims", at, axes=(axis,)), axis)
    return values if keepdims else bind("squeeze", values, axes=(axis,))


def reduction_axes(x, axis, keepdims) -> tuple:
    """`(x, axes)` for a reduction of x over `axis`: the axes normalised against x's rank;
    a tensor of unknown rank reduced over every axis is flattened first (the result's
    rank is 0 whatever x's is)."""
    # (x.type last: building an eager tensor's type costs more than the rest of this, and
    # an eager tensor's rank is always known)
    if axis is None and not keepdims and not plain_eager(type(x)) and x.type.rank is None:
        return bind("reshape", x, shape=(-1,)), (0,)
    return x, normalize_axes(axis, x.ndim)


def normalize_axes(axis, rank: int) -> tuple:
    """None means every axis; negative axes count from the end; result sorted, unique."""
    if axis is None:
        return tuple(range(rank))
    if type(axis) is int and -rank <= axis < rank:  # (the common case, without np.ndim)
        return (axis % rank,)
    try:
        axes = tuple(map(operator.index, (axis,) if np.ndim(axis) == 0 else axis))
    except TypeError:
        raise ShapeError(f"axes must be integers, got {axis!r}", location=user_location()) from None
    out = set()
    for a in axes:
        if not -rank <= a < rank:
            raise ShapeError(
                f"axis {a} is out of range for a rank-{rank} tensor", location=user_location()
            )
        out.add(int(a) % rank)
    return tuple(sorted(out))


def _numeric(x):
    x = as_tensor(x)
    return cast(x, "int64") if x.dtype.is_bool else x


@axis_aliases
def sum(x, axis=None, keepdims=False):
    """Sum; booleans and integers narrower than int64 are summed as int64, as in NumPy."""
    x = as_tensor(x)
    dtype = x.dtype
    if dtype.is_bool or (dtype.is_integer and dtype.np.itemsize < 8):
        x = cast(x, "int64")
    x, axes = reduction_axes(x, axis, keepdims)
    return bind("reduce_sum", x, axes=axes, keepdims=keepdims)


@axis_aliases
def mean(x, axis=None, keepdims=False):
    x = _numeric(x)
    dtype = x.dtype
    if dtype.is_narrow_float:  # float32 sum and division, one rounding (PyTorch's)
        return cast(mean(cast(x, float32), axis, keepdims), dtype)
    if not dtype.is_floating:
        x = cast(x, float64)
    x, axes = reduction_axes(x, axis, keepdims)
    return bind("reduce_mean", x, axes=axes, keepdims=keepdims)


@axis_aliases
def argmax(x, axis=None, keepdims=False):
    """Index of the largest element (of the flattened tensor when axis is None), as int64."""
    x = _numeric(x)
    if axis is None:
        flat = bind("reshape", x, shape=(-1,))
        out = bind("argmax", flat, axis=0, keepdims=False)
        return bind("reshape", out, shape=(1,) * x.ndim) if keepdims else out
    (axis,) = normalize_axes(axis, x.ndim)
    return bind("argmax", x, axis=axis, keepdims=keepdims)


def _argmin(x, axis=None, keepdims=False):
    """min's indices: math_ops.argmin (imported here, since math_ops builds on this module)."""
    from graphjit.frontend.math_ops import argmin

    return argmin(x, axis=axis, keepdims=keepdims)


@axis_aliases(indices=argmax)
def max(x, axis=None, keepdims=False):
    """The largest element along `axis` (every axis by default); `dim=` gives PyTorch's
    `(values, indices)`; a tensor in axis's place is torch.max(a, b): `maximum`."""
    if is_tensor(unwrap(axis)):
        return maximum(x, axis)
    x = _numeric(x)
    x, axes = reduction_axes(x, axis, keepdims)
    return bind("reduce_max", x, axes=axes, keepdims=keepdims)


@axis_aliases(indices=_argmin)
def min(x, axis=None, keepdims=False):
    """The smallest element along `axis` (every axis by default); `dim=` gives PyTorch's
    `(values, indices)`; a tensor in axis's place is torch.min(a, b): `minimum`."""
    if is_tensor(unwrap(axis)):
        return minimum(x, axis)
    x = _numeric(x)
    x, axes = reduction_axes(x, axis, keepdims)
    return bind("reduce_min", x, axes=axes, keepdims=keepdims)


@axis_aliases
def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))), computed stably by shifting with the (constant) maximum. Where
    the maximum is infinite, x - max is NaN (inf - inf) for a row of -inf or a row holding
    inf: such differences count as 0, so that the row gives -inf or inf, as SciPy and
    PyTorch do, and a row holding NaN still gives NaN (the maximum, added back)."""
    x = as_tensor(x)
    if _empty_along(x, axis):  # (no maximum to shift by: the sum of nothing is 0, log -inf)
        out = log(sum(exp(x), axis=axis, keepdims=True))
        return out if keepdims else bind("squeeze", out, axes=normalize_axes(axis, x.ndim))
    shift = stop_gradient(max(x, axis=axis, keepdims=True))
    shifted = sub(x, shift)
    # (elementwise, not a select on the maximum: it stays in the kernel of exp and sum)
    shifted = where(equal(shifted, shifted), shifted, 0)
    out = add(log(sum(exp(shifted), axis=axis, keepdims=True)), shift)
    return out if keepdims else bind("squeeze", out, axes=normalize_axes(axis, x.ndim))


def _empty_along(x, axis) -> bool:
    """Whether one of the axes (all when None) has a known length of 0."""
    return any(x.shape[a] == 0 for a in normalize_axes(axis, x.ndim))


def _softmax_vjp(y, g, axis):
    """softmax's VJP from its result: y * (g - sum(g * y))."""
    return mul(y, sub(g, sum(mul(g, y), axis=axis, keepdims=True)))


def _log_softmax_vjp(y, g, axis):
    """log_softmax's VJP from its result: g - exp(y) * sum(g)."""
    return sub(g, mul(exp(y), sum(g, axis=axis, keepdims=True)))


@axis_aliases
@compiled_when_hot(vjp_of_result=_softmax_vjp)
def softmax(x, axis=-1):
    x = as_tensor(x)
    if _empty_along(x, axis):  # (as PyTorch: an empty result, no maximum to shift by)
        return mul(x, 1)
    e = exp(sub(x, stop_gradient(max(x, axis=axis, keepdims=True))))
    return div(e, sum(e, axis=axis, keepdims=True))


@axis_aliases
@compiled_when_hot(vjp_of_result=_log_softmax_vjp)
def log_softmax(x, axis=-1):
    x = as_tensor(x)
    return mul(x, 1) if _empty_along(x, axis) else sub(x, logsumexp(x, axis=axis, keepdims=True))


def _floating(x):
    x = _numeric(x)
    return x if x.dtype.is_floating else cast(x, float64)


@axis_aliases
def var(x, axis=None, keepdims=False, correction=0, *, unbiased=None):
    """Variance: the sum of squared deviations from the mean over (n - correction).

    The default, correction=0, is the population variance of NumPy (`np.var`) and TF1
    (`tf.math.reduce_variance`); PyTorch's sample variance is `correction=1` or
    `unbiased=True`, the default of the method `x.var(...)`."""
    if unbiased is not None:
        correction = 1 if unbiased else 0
    x = _floating(x)
    axes = normalize_axes(axis, x.ndim)
    deviations = square(sub(x, mean(x, axis=axes, keepdims=True)))
    total = bind("reduce_sum", deviations, axes=axes, keepdims=keepdims)
    return div(total, sub(bind("count", x, axes=axes), correction))


@axis_aliases
def std(x, axis=None, keepdims=False, correction=0, *, unbiased=None):
    """Standard deviation, sqrt(var(...)): population by default (NumPy, TF1's
    reduce_std); `correction=1` or `unbiased=True` for PyTorch's sample statistic."""
    return sqrt(var(x, axis, keepdims, correction, unbiased=unbiased))


@axis_aliases
def norm(x, p=2, axis=None, keepdims=False):
    """The p-norm over `axis` (every element by default; PyTorch's torch.norm and
    Tensor.norm): (sum |x|^p)^(1/p); p=2 and "fro" the Euclidean norm, p=inf the largest
    |x|, -inf the smallest, 0 the number of nonzero elements."""
    x = _floating(x)
    reduce = {"axis": axis, "keepdims": keepdims}
    if p in ("fro", 2):
        return _root(sum(square(x), **reduce), 2)
    if isinstance(p, str) or not np.isscalar(p):
        raise ValueError(f"norm: p must be a number or 'fro', got {p!r}")
    if p == math.inf:
        return max(abs(x), **reduce)
    if p == -math.inf:
        return min(abs(x), **reduce)
    if p == 0:
        return sum(cast(not_equal(x, 0), x.dtype), **reduce)
    if p == 1:
        return sum(abs(x), **reduce)
    return _root(sum(pow(abs(x), p), **reduce), p)


def _root(total, p):
    """total ** (1/p), whose gradient is 0 where total is 0 (PyTorch's subgradient of a
    norm at zero), not the NaN the chain rule gives there (inf * 0). The select is taken
    twice: the root of a placeholder 1 keeps an infinite derivative out of the other
    branch, whose gradient the select would otherwise multiply by 0."""
    positive = greater(total, 0)
    safe = where(positive, total, 1)
    root = sqrt(safe) if p == 2 else pow(safe, 1.0 / p)
    return where(positive, root, 0)


# ---- linear algebra ----------------------------------------------------------------------


def matmul(a, b, transpose_a=False, transpose_b=False):
    """Matrix product with np.matmul's rules: batched, and rank-1 operands promoted.
    `transpose_a`/`transpose_b` (as in tf.matmul) swap an operand's last two axes first,
    without copying it."""
    a, b = operands(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(
            "matmul operands must have rank >= 1 (use mul for scalars)", location=user_location()
        )
    if (transpose_a and a.ndim < 2) or (transpose_b and b.ndim < 2):
        raise ShapeError(
            "matmul can transpose only operands of rank >= 2", location=user_location()
        )
    squeeze_axes = []
    if a.ndim == 1:
        a = bind("expand_dims", a, axes=(0,))
        squeeze_axes.append(-2)
    if b.ndim == 1:
        b = bind("expand_dims", b, axes=(1,))
        squeeze_axes.append(-1)
    out = bind("matmul", a, b, transpose_a=bool(transpose_a), transpose_b=bool(transpose_b))
    if squeeze_axes:
        out = bind("squeeze", out, axes=normalize_axes(squeeze_axes, out.ndim))
    return out


def _classes(depth, dtype: np.dtype) -> np.ndarray:
    """0, 1, ..., depth - 1: refused before it is allocated if it could not be."""
    try:
        depth = operator.index(depth)
    except TypeError:
        raise DTypeError(
            f"one_hot's depth must be an integer, got {depth!r}", location=user_location()
        ) from None
    if depth < 0:
        raise ShapeError(f"one_hot's depth must be >= 0, got {depth}", location=user_location())
    if depth * dtype.itemsize > config.tensor_bytes_limit():
        raise ResourceError(
            f"one_hot's depth {depth} would need more memory than a tensor may take "
            "(GRAPHJIT_MAX_TENSOR_BYTES, else physical memory)",
            location=user_location(),
        )
    return np.arange(depth, dtype=dtype)


def one_hot(indices, depth: int, dtype=float32):
    """A `depth`-long one-hot vector per index (out-of-range indices give zeros)."""
    indices = as_tensor(indices)
    if not indices.dtype.is_integer:
        raise DTypeError(
            f"one_hot needs integer indices, got {indices.dtype.name}", location=user_location()
        )
    classes = operands(indices, _classes(depth, indices.dtype.np))[1]
    hits = equal(bind("expand_dims", indices, axes=(indices.ndim,)), classes)
    return cast(hits, dtype)

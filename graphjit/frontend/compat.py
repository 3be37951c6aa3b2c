"""Names TF1 and PyTorch programs commonly use that graphjit's own spellings lack: TF1's
multiply, add_n, squared_difference, fill, range, no_op and tf.nn's bias_add, moments,
l2_normalize, embedding_lookup; PyTorch's clamp, mm, mv, outer, amax, amin, fmod, isclose,
allclose, nan_to_num, roll, diag and F.one_hot.

Each is a short composition of the op functions both modes share, so it works on graph
values (TF1 graphs, gj.function traces) and eager tensors, and is differentiated through
the primitives it uses. Each docstring says whose semantics it follows. The tf.nn names
and F.one_hot are exported by gj.nn (and gj.nn.functional), the others by gj."""

from __future__ import annotations

import builtins
import math
import operator

import numpy as np

from graphjit.errors import DTypeError, GraphjitError, RuntimeCheckError, ShapeError
from graphjit.frontend import activations, math_ops, methods, ops, shape_ops
from graphjit.frontend.activations import _as_float, pad, rsqrt
from graphjit.frontend.convert import constant_like, is_tensor, unwrap
from graphjit.frontend.eager.factories import arange
from graphjit.frontend.graph import group, named
from graphjit.frontend.indexing import gather
from graphjit.frontend.methods import _known_dim
from graphjit.frontend.ops import as_tensor, normalize_axes, operands
from graphjit.ir.core import Value, user_location
from graphjit.ir.types import float32, int32, int64

__all__ = [
    "add_n", "allclose", "amax", "amin", "clamp", "diag", "divide", "fill", "fmod", "isclose",
    "log10", "log2", "logical_xor", "mm", "multiply", "mv", "nan_to_num", "no_op", "outer",
    "range", "reciprocal", "roll", "squared_difference", "subtract", "tan",
]  # fmt: skip


def _rank(x, ranks: tuple, what: str) -> None:
    if x.ndim not in ranks:
        want = " or ".join(f"{r}-D" for r in ranks)
        raise ShapeError(
            f"{what} needs a {want} tensor, got rank {x.ndim}", location=user_location()
        )


# ---- TensorFlow 1 --------------------------------------------------------------------------


def multiply(x, y, name=None):
    """TF1's tf.multiply: `mul`, x * y elementwise."""
    return named(ops.mul(x, y), name)


def subtract(x, y, name=None):
    """TF1's tf.subtract: `sub`, x - y elementwise."""
    return named(ops.sub(x, y), name)


def divide(x, y, name=None):
    """TF1's tf.divide: `div`, x / y elementwise (integers are divided as float64)."""
    return named(ops.div(x, y), name)


def logical_xor(x, y, name=None):
    """TF1's tf.math.logical_xor (torch.logical_xor): True where exactly one of x and y
    holds (numbers: nonzero is True)."""
    return named(ops.logical_xor(x, y), name)


def add_n(inputs, name=None):
    """TF1's tf.add_n: the elementwise sum of a list of tensors of one shape."""
    if isinstance(inputs, (Value, np.ndarray)) or is_tensor(unwrap(inputs)) or not len(inputs):
        raise GraphjitError("add_n takes a non-empty list of tensors", location=user_location())
    tensors = operands(*inputs)
    for t in tensors[1:]:
        if t.ndim != tensors[0].ndim or any(
            a is not None and b is not None and a != b
            for a, b in zip(t.shape, tensors[0].shape, strict=True)
        ):
            raise ShapeError(
                f"add_n needs tensors of one shape, got {tensors[0].shape} and {t.shape}",
                location=user_location(),
            )
    total = tensors[0]
    for t in tensors[1:]:
        total = ops.add(total, t)
    return named(total, name)


def squared_difference(x, y, name=None):
    """TF1's tf.math.squared_difference: (x - y) ** 2 elementwise."""
    return named(ops.square(ops.sub(x, y)), name)


def reciprocal(x, name=None):
    """1 / x elementwise (torch.reciprocal, TF1's tf.math.reciprocal); integers are divided
    as float64, as by `div`."""
    return named(ops.div(1, x), name)


def fill(dims, value, name=None):
    """TF1's tf.fill: a tensor of shape `dims` (Python ints) holding the scalar `value`,
    whose dtype it takes (a Python float is float32 and an int int32 in a graph, as TF1's)."""
    dims = shape_ops.static_dims(dims)
    value = as_tensor(value)
    if value.ndim != 0:
        raise ShapeError(
            f"fill: value must be a scalar, got shape {value.shape}", location=user_location()
        )
    return named(shape_ops.broadcast_to(value, dims) if dims else value, name)


def range_(start, limit=None, delta=1, dtype=None, name=None):
    """TF1's tf.range: start, start + delta, ... up to (not including) limit; `range(n)`
    counts from 0. int32 for integer arguments, float32 if one is a float (TF1's), unless
    `dtype`. The bounds are Python numbers: the length must be known when the op is built.
    Computed by gj.arange (a constant in a graph)."""
    for bound in (start, limit, delta):
        if is_tensor(unwrap(bound)):
            raise ShapeError(
                "range: start, limit and delta must be Python numbers (the length must be "
                "known when the graph is built)",
                location=user_location(),
            )
    if limit is None:
        start, limit = 0, start
    if dtype is None:
        floats = builtins.any(isinstance(v, (float, np.floating)) for v in (start, limit, delta))
        dtype = float32 if floats else int32
    return named(arange(start, limit, delta, dtype=dtype), name)


range = range_  # noqa: A001 (TF1's name; the module uses builtins.range)


def log2(x, name=None):
    """The base-2 logarithm elementwise (integers are cast to float, as by `log`): within
    an ulp or two of NumPy's, and exact at powers of 2."""
    return named(_log_base(x, 2), name)


def log10(x, name=None):
    """The base-10 logarithm elementwise (integers are cast to float, as by `log`): within
    an ulp or two of NumPy's, and exact at powers of 10 (log10(1000) is 3, not
    2.9999999999999996, so that floor(log10(x)) counts digits)."""
    return named(_log_base(x, 10), name)


def _log_base(x, base: int):
    """log(x) / log(base), moved onto the integer k where x is the float nearest base**k
    (a table of them, compared exactly), keeping the gradient of the quotient there."""
    x = _as_float(x)
    y = ops.div(ops.log(x), math.log(base))
    info = np.finfo(np.float64 if x.dtype.np.itemsize > 4 else np.float32)
    if base == 2:  # (every power of 2 the dtype holds, subnormals included)
        low, high = info.minexp - info.nmant, info.maxexp - 1
    else:
        low = math.floor(math.log10(float(info.smallest_subnormal)))
        high = math.floor(math.log10(float(info.max)))
    powers = np.array([_power(base, k) for k in builtins.range(low, high + 1)])
    k = activations.round(ops.where(ops.isfinite(y), y, 0))
    index = ops.cast(methods.clamp(ops.sub(k, low), 0, high - low), int64)
    exact = ops.equal(gather(constant_like(powers, x.dtype, [x]), index), x)
    return ops.where(exact, ops.add(y, ops.stop_gradient(ops.sub(k, y))), y)


def _power(base: int, k: int) -> float:
    """The float64 nearest base**k (decimal parsing rounds 10**k correctly)."""
    return math.ldexp(1.0, k) if base == 2 else float(f"1e{k}")


def tan(x, name=None):
    """The tangent elementwise, sin(x) / cos(x) (integers are cast to float, as by `sin`)."""
    x = _as_float(x)
    return named(ops.div(ops.sin(x), ops.cos(x)), name)


def no_op(name=None):
    """TF1's tf.no_op: an op that does nothing (an empty `group`); fetching it returns None."""
    del name  # (a group has no result to name)
    return group()


# ---- TensorFlow 1's tf.nn (exported by gj.nn) ----------------------------------------------


def bias_add(value, bias, data_format=None, name=None):
    """TF1's tf.nn.bias_add: `value` plus the 1-D `bias` along its channel axis: the last
    one, or axis 1 when data_format starts with "NC" ("NCHW")."""
    value, bias = operands(value, bias)
    _rank(bias, (1,), "bias_add's bias")
    if value.ndim < 2:
        raise ShapeError(
            f"bias_add needs a value of rank >= 2, got rank {value.ndim}", location=user_location()
        )
    channels_first = data_format is not None and str(data_format).upper().startswith("NC")
    axis = 1 if channels_first else value.ndim - 1
    if None not in (value.shape[axis], bias.shape[0]) and value.shape[axis] != bias.shape[0]:
        raise ShapeError(
            f"bias_add: bias of shape {bias.shape} for {value.shape[axis]} channels (axis "
            f"{axis} of shape {value.shape})",
            location=user_location(),
        )
    if channels_first:
        bias = shape_ops.reshape(bias, (-1,) + (1,) * (value.ndim - 2))
    return named(ops.add(value, bias), name)


def moments(x, axes, shift=None, name=None, keep_dims=None, keepdims=None):
    """TF1's tf.nn.moments: (mean, variance) of x over `axes`, the population variance;
    `shift` is accepted and unused, as in TF1."""
    del shift
    keepdims = bool(keepdims if keepdims is not None else keep_dims)
    axes = tuple(axes) if isinstance(axes, (list, tuple)) else axes
    mean = ops.mean(x, axis=axes, keepdims=keepdims)
    variance = ops.var(x, axis=axes, keepdims=keepdims)
    return named(mean, name), named(variance, name)


def l2_normalize(x, axis=None, epsilon=1e-12, name=None, dim=None):
    """TF1's tf.nn.l2_normalize: x / sqrt(max(sum(x ** 2, axis), epsilon)) (every axis when
    axis is None); `dim` is TF1's old name of axis."""
    axis = dim if axis is None else axis
    x = _as_float(x)
    square_sum = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return named(ops.mul(x, rsqrt(ops.maximum(square_sum, epsilon))), name)


def embedding_lookup(
    params, ids, partition_strategy="mod", name=None, validate_indices=True, max_norm=None
):
    """TF1's tf.nn.embedding_lookup: the rows of `params` at `ids` (gather on axis 0).
    `params` may be a list of shards along axis 0, split TF1's way: "mod" (id i in shard
    i % n, row i // n) or "div" (contiguous ranges); their row counts must be known."""
    del validate_indices  # (an id out of range is always a RuntimeCheckError)
    if max_norm is not None:
        raise GraphjitError("embedding_lookup: max_norm is not supported", location=user_location())
    if isinstance(params, (list, tuple)):
        params, ids = _joined_shards([as_tensor(p) for p in params], ids, partition_strategy)
    return named(gather(params, ids, axis=0), name)


def _joined_shards(shards: list, ids, strategy: str):
    """The shards concatenated, and `ids` as rows of the concatenation."""
    if not shards or strategy not in ("mod", "div"):
        raise GraphjitError(
            f"embedding_lookup: need at least one shard and partition_strategy 'mod' or "
            f"'div', got {len(shards)} shards and {strategy!r}",
            location=user_location(),
        )
    if len(shards) == 1:
        return shards[0], ids
    sizes = [_known_dim(s, 0, "embedding_lookup's shards") for s in shards]
    table = shape_ops.concat(shards, axis=0)
    if strategy == "div":  # (shard p holds a contiguous range: the concatenation is in order)
        return table, ids
    ids = as_tensor(ids)
    n = len(shards)
    starts = constant_like(np.cumsum([0] + sizes[:-1]), ids.dtype, [ids])
    shard, row = math_ops.remainder(ids, n), math_ops.floor_divide(ids, n)
    return table, ops.add(gather(starts, shard), row)


# ---- PyTorch -------------------------------------------------------------------------------


def clamp(input, min=None, max=None):  # noqa: A002 (PyTorch's argument names)
    """torch.clamp: input limited to [min, max] (either may be None, not both); the gradient
    passes where min <= input <= max, bounds included, as in PyTorch. The method x.clamp."""
    if min is None and max is None:
        raise GraphjitError("clamp: give min, max or both", location=user_location())
    return methods.clamp(as_tensor(input), min, max)


def mm(input, mat2):
    """torch.mm: the product of two matrices (2-D only; `matmul` broadcasts)."""
    a, b = operands(input, mat2)
    _rank(a, (2,), "mm")
    _rank(b, (2,), "mm")
    return ops.matmul(a, b)


def mv(input, vec):
    """torch.mv: a matrix times a vector."""
    a, v = operands(input, vec)
    _rank(a, (2,), "mv's matrix")
    _rank(v, (1,), "mv's vector")
    return ops.matmul(a, v)


def outer(input, vec2):
    """torch.outer: the outer product of two vectors, input[i] * vec2[j]."""
    a, b = operands(input, vec2)
    _rank(a, (1,), "outer")
    _rank(b, (1,), "outer")
    return ops.mul(shape_ops.expand_dims(a, 1), shape_ops.expand_dims(b, 0))


def _torch_dims(dim):
    """PyTorch's dim=() (and None) for every axis."""
    return None if dim is None or (isinstance(dim, (tuple, list)) and not dim) else dim


def amax(input, dim=(), keepdim=False):
    """torch.amax: the largest values along `dim` (every axis by default), without indices;
    the gradient is shared evenly among tied maxima, as PyTorch's."""
    return ops.max(input, axis=_torch_dims(dim), keepdims=keepdim)


def amin(input, dim=(), keepdim=False):
    """torch.amin: the smallest values along `dim` (every axis by default), without indices;
    the gradient is shared evenly among tied minima, as PyTorch's."""
    return ops.min(input, axis=_torch_dims(dim), keepdims=keepdim)


def fmod(input, other):
    """torch.fmod (C's fmod, np.fmod): the remainder of input / other truncated toward 0,
    with the dividend's sign (`remainder` takes the divisor's). Exact for floats: the floor
    modulo of the magnitudes, signed; integer modulo by zero is a RuntimeCheckError."""
    x, y = operands(input, other)
    if x.dtype.is_bool:
        raise DTypeError("fmod needs numeric operands, got bool", location=user_location())
    negative = ops.less(x, 0)
    if x.dtype.is_floating:
        # |x| mod |y| is exact (NumPy's and C's agree for operands >= 0); the selects take
        # the magnitudes with gradient 1 at 0, and give the sign back
        magnitude = math_ops.remainder(
            ops.where(negative, ops.neg(x), x), ops.where(ops.less(y, 0), ops.neg(y), y)
        )
        return ops.where(negative, ops.neg(magnitude), magnitude)
    floor_mod = math_ops.remainder(x, y)  # the divisor's sign: move it to the dividend's
    wrong_sign = ops.logical_and(
        ops.not_equal(floor_mod, 0), ops.not_equal(ops.less(floor_mod, 0), negative)
    )
    return ops.where(wrong_sign, ops.sub(floor_mod, y), floor_mod)


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """torch.isclose: |input - other| <= atol + rtol * |other| elementwise, or equal (so
    infinities of one sign are close); NaNs are close to each other only with equal_nan."""
    a, b = operands(input, other)
    close = ops.equal(a, b)
    if equal_nan and a.dtype.is_floating:
        close = ops.logical_or(close, ops.logical_and(ops.isnan(a), ops.isnan(b)))
    if rtol == 0 and atol == 0:
        return close
    if not a.dtype.is_floating:  # (the tolerance in floating point, as PyTorch's)
        a, b = ops.cast(a, "float64"), ops.cast(b, "float64")
    error = ops.abs(ops.sub(a, b))
    allowed = ops.add(ops.abs(ops.mul(b, rtol)), atol)
    return ops.logical_or(
        close, ops.logical_and(ops.isfinite(error), ops.less_equal(error, allowed))
    )


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """torch.allclose: whether every element is `isclose`: a Python bool for eager tensors
    (and arrays), a boolean scalar tensor for graph values."""
    out = math_ops.all(isclose(input, other, rtol, atol, equal_nan))
    return out if isinstance(out, Value) else bool(out.item())


def _finfo(dtype):
    """The dtype's float limits (bfloat16's from ml_dtypes, which NumPy does not know)."""
    try:
        return np.finfo(dtype.np)
    except ValueError:
        import ml_dtypes  # (present whenever a bfloat16 tensor exists)

        return ml_dtypes.finfo(dtype.np)


def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    """torch.nan_to_num: NaN replaced by `nan`, inf by `posinf` and -inf by `neginf` (by
    default the dtype's largest and smallest finite values); integers unchanged. The
    gradient passes where input is finite."""
    x = as_tensor(input)
    if not x.dtype.is_floating:
        return x
    info = _finfo(x.dtype)
    posinf = float(info.max) if posinf is None else posinf
    neginf = float(info.min) if neginf is None else neginf
    out = ops.where(ops.isnan(x), nan, x)
    out = ops.where(ops.equal(x, np.inf), posinf, out)
    return ops.where(ops.equal(x, -np.inf), neginf, out)


def roll(input, shifts, dims=None):
    """torch.roll: elements shifted `shifts` places along `dims` (ints or tuples of one
    length), wrapping around; with dims None, along the flattened tensor, shape kept."""
    x = as_tensor(input)
    if dims is None:
        if isinstance(shifts, (tuple, list)) and len(shifts) != 1:
            raise ShapeError(
                f"roll: {len(shifts)} shifts need as many dims", location=user_location()
            )
        shape = tuple(_known_dim(x, a, "roll") for a in builtins.range(x.ndim))
        flat = roll(shape_ops.reshape(x, (-1,)), shifts, 0)
        return shape_ops.reshape(flat, shape)
    shifts = tuple(shifts) if isinstance(shifts, (tuple, list)) else (shifts,)
    dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
    if len(shifts) != len(dims):
        raise ShapeError(
            f"roll: shifts {shifts} and dims {dims} differ in length", location=user_location()
        )
    for shift, dim in zip(shifts, dims, strict=True):
        (axis,) = normalize_axes(dim, x.ndim)
        n = _known_dim(x, axis, "roll")
        shift = operator.index(shift) % n if n else 0
        if shift:
            before = (slice(None),) * axis
            tail = shape_ops.getitem(x, before + (slice(n - shift, None),))
            head = shape_ops.getitem(x, before + (slice(0, n - shift),))
            x = shape_ops.concat([tail, head], axis=axis)
    return x


def diag(input, diagonal=0):
    """torch.diag: a 1-D input becomes the square matrix with it on the `diagonal`-th
    diagonal (0 the main one, > 0 above it); a 2-D input gives that diagonal as 1-D."""
    x = as_tensor(input)
    _rank(x, (1, 2), "diag")
    k = operator.index(diagonal)
    if x.ndim == 1:
        n = _known_dim(x, 0, "diag")
        row = pad(x, (builtins.max(k, 0), builtins.max(-k, 0)))  # row[j]: the value in column j
        mask = np.eye(n + abs(k), k=k, dtype=bool)
        return ops.where(mask, shape_ops.expand_dims(row, 0), np.zeros((), x.dtype.np))
    rows, cols = (_known_dim(x, a, "diag") for a in (0, 1))
    start_row, start_col = builtins.max(-k, 0), builtins.max(k, 0)
    length = builtins.max(0, builtins.min(rows - start_row, cols - start_col))
    positions = (start_row + np.arange(length)) * cols + start_col + np.arange(length)
    return gather(shape_ops.reshape(x, (-1,)), positions.astype(np.int64))


# ---- PyTorch's torch.nn.functional (exported by gj.nn) -------------------------------------


def one_hot(tensor, num_classes=-1):
    """torch.nn.functional.one_hot: an int64 one-hot row of `num_classes` per class index
    (-1: the largest index + 1, which needs an eager tensor). A negative index or one >=
    num_classes is a RuntimeCheckError: eagerly at once, in a graph when it runs (TF1's
    `gj.one_hot(indices, depth)` gives a row of zeros instead)."""
    x = as_tensor(tensor)
    if not x.dtype.is_integer:
        raise DTypeError(
            f"one_hot needs integer class indices, got {x.dtype.name}", location=user_location()
        )
    num_classes = operator.index(num_classes)
    if isinstance(x, Value):
        if num_classes < 0:
            raise ShapeError(
                "one_hot in a graph needs num_classes (with -1 the result's size would depend "
                "on the values)",
                location=user_location(),
            )
        # the indices pass through a gather of 0..num_classes-1, which checks their range
        # when the graph runs (a negative one is sent out of range first)
        classes = constant_like(np.arange(num_classes), x.dtype, [x])
        x = gather(classes, ops.where(ops.less(x, 0), num_classes, x))
        return ops.one_hot(x, num_classes, dtype=int64)
    values = x.numpy()
    if num_classes < 0:
        if not values.size:
            raise ShapeError(
                "one_hot: cannot infer num_classes from an empty tensor", location=user_location()
            )
        num_classes = int(values.max()) + 1
    if values.size and (values.min() < 0 or values.max() >= num_classes):
        raise RuntimeCheckError(
            f"one_hot: class values must be in [0, {num_classes}), got "
            f"{values.min()}..{values.max()}",
            location=user_location(),
        )
    return ops.one_hot(x, num_classes, dtype=int64)

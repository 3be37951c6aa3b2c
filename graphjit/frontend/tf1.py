"""TensorFlow 1's names and argument names (reduce_sum(axis=, keepdims=), clip_by_value, ...),
so that a TF1 program ports by changing its import.

Each function is a composition of the op functions both modes share, so it works on graph
values and eager tensors and is differentiated through the primitives it uses. Where TF1
and NumPy disagree the function follows TF1 (reductions keep integer dtypes, as in TF1)."""

from __future__ import annotations

import functools
import operator

import numpy as np

from graphjit.errors import ControlFlowError, DTypeError, GraphjitError, ShapeError
from graphjit.frontend import math_ops, ops, shape_ops
from graphjit.frontend.control_flow import cond
from graphjit.frontend.convert import constant_like
from graphjit.frontend.graph import (
    TensorShape,
    get_default_graph,
    initializer_op,
    named,
)
from graphjit.frontend.ops import as_tensor, normalize_axes
from graphjit.ir.core import user_location
from graphjit.ir.ops import bind
from graphjit.ir.types import as_dtype, int32, int64
from graphjit.runtime.session import get_default_session

__all__ = [
    "TensorShape", "case", "clip_by_global_norm", "clip_by_value", "get_default_session",
    "global_norm", "global_variables", "global_variables_initializer", "identity", "rank",
    "reduce_all", "reduce_any", "reduce_logsumexp", "reduce_max", "reduce_mean", "reduce_min",
    "reduce_prod", "reduce_sum", "shape", "size", "split", "tile", "trainable_variables",
    "unstack", "variables_initializer",
]  # fmt: skip


# ---- name= on the op functions -------------------------------------------------------------

# The op functions TF1 programs call with `name=` (the name a result is fetched by:
# `sess.run("logits:0")`), which graphjit's own spellings do not take: graphjit/__init__.py
# wraps gj's functions of these names with `takes_name`.
TAKES_NAME = (
    "add sub mul div neg exp log sqrt rsqrt sin cos square abs sign tanh sigmoid relu maximum "
    "minimum pow where cast equal not_equal less less_equal greater greater_equal logical_and "
    "logical_or logical_not isnan isinf isfinite is_nan is_inf is_finite floor_divide floordiv "
    "mod floormod remainder bitwise_and bitwise_or bitwise_xor matmul argmax argmin softmax "
    "log_softmax one_hot stop_gradient check_numerics norm sum mean max min reshape transpose "
    "concat stack expand_dims squeeze broadcast_to gather boolean_mask pad cumsum einsum sort "
    "argsort topk"
).split()


def takes_name(fn):
    """`fn` also taking TF1's `name=`, under which its result is fetched (see `named`)."""

    @functools.wraps(fn)
    def op(*args, name=None, **kwargs):
        out = fn(*args, **kwargs)
        return out if name is None else named(out, name)

    return op


# ---- reductions ----------------------------------------------------------------------------


def _axis_and_keepdims(fn, axis, keepdims, reduction_indices, keep_dims) -> tuple:
    """TF1's deprecated spellings `reduction_indices` and `keep_dims` stand for `axis` and
    `keepdims`; giving both spellings of one argument is an error, as in TF1."""
    if reduction_indices is not None:
        if axis is not None:
            raise GraphjitError(
                f"{fn}: give axis or reduction_indices, not both", location=user_location()
            )
        axis = reduction_indices
    if keep_dims is not None:
        if keepdims is not None:
            raise GraphjitError(
                f"{fn}: give keepdims or keep_dims, not both", location=user_location()
            )
        keepdims = keep_dims
    return _static_axis(fn, axis), bool(keepdims)


def _static_axis(fn, axis):
    """Axes must be known when the graph is built: Python ints or constants holding them."""
    if axis is None or isinstance(axis, (int, np.integer, list, tuple, np.ndarray)):
        return axis
    raise GraphjitError(
        f"{fn}: axis must be Python ints (a tensor of axes is not supported), got {axis!r}",
        location=user_location(),
    )


def _tf1_reduction(tf_name: str, reduce):
    """A TF1 reduction with TF1's signature around `reduce(x, axis, keepdims)`."""

    def reduction(
        input_tensor, axis=None, keepdims=None, name=None, reduction_indices=None, keep_dims=None
    ):
        axis, keepdims = _axis_and_keepdims(tf_name, axis, keepdims, reduction_indices, keep_dims)
        return named(reduce(as_tensor(input_tensor), axis, keepdims), name)

    reduction.__name__ = reduction.__qualname__ = tf_name
    reduction.__doc__ = f"TF1's tf.{tf_name}: {reduce.__doc__}"
    return reduction


def _sum(x, axis, keepdims):
    """sum over `axis` (all axes when None); integers keep their dtype, as in TF1 (gj.sum
    widens int32 to int64, as NumPy does)."""
    out = ops.sum(x, axis=axis, keepdims=keepdims)
    return out if x.dtype.is_bool else ops.cast(out, x.dtype)


def _mean(x, axis, keepdims):
    """mean over `axis`; integers keep their dtype, the mean truncated toward zero as TF1's
    integer division gives (gj.mean returns float64, as NumPy does)."""
    out = ops.mean(x, axis=axis, keepdims=keepdims)
    return ops.cast(out, x.dtype) if x.dtype.is_integer else out


def _max(x, axis, keepdims):
    """maximum over `axis`."""
    return ops.max(x, axis=axis, keepdims=keepdims)


def _min(x, axis, keepdims):
    """minimum over `axis`."""
    return ops.min(x, axis=axis, keepdims=keepdims)


def _logsumexp(x, axis, keepdims):
    """log(sum(exp(x))) over `axis`, computed stably."""
    return ops.logsumexp(x, axis=axis, keepdims=keepdims)


def _any(x, axis, keepdims):
    """logical or over `axis` (False over an empty axis; numbers: nonzero is True)."""
    return math_ops.any(x, axis=axis, keepdims=keepdims)


def _all(x, axis, keepdims):
    """logical and over `axis` (True over an empty axis; numbers: nonzero is True)."""
    return math_ops.all(x, axis=axis, keepdims=keepdims)


def _prod(x, axis, keepdims):
    """product over `axis` (1 over an empty one); integers keep their dtype, as in TF1."""
    out = math_ops.prod(x, axis=axis, keepdims=keepdims)
    return out if x.dtype.is_bool else ops.cast(out, x.dtype)


reduce_sum = _tf1_reduction("reduce_sum", _sum)
reduce_mean = _tf1_reduction("reduce_mean", _mean)
reduce_max = _tf1_reduction("reduce_max", _max)
reduce_min = _tf1_reduction("reduce_min", _min)
reduce_logsumexp = _tf1_reduction("reduce_logsumexp", _logsumexp)
reduce_any = _tf1_reduction("reduce_any", _any)
reduce_all = _tf1_reduction("reduce_all", _all)
reduce_prod = _tf1_reduction("reduce_prod", _prod)


def _take(x, axis: int, start, stop):
    """x[..., start:stop, ...] along `axis` (Python slice bounds: None, negatives)."""
    spec = [(None, None, None)] * x.ndim
    spec[axis] = (start, stop, 1)
    return bind("slice", x, spec=tuple(spec))


# ---- shapes --------------------------------------------------------------------------------


def _dim(x, axis: int):
    """Dimension `axis` of x as an int64 scalar: a constant when known, else counted at run
    time from a slice of x one element wide along every other axis (so only that axis's
    elements are touched)."""
    if x.shape[axis] is not None:
        return constant_like(np.int64(x.shape[axis]), int64, [x])
    spec = tuple((None, None, None) if a == axis else (0, 1, 1) for a in range(x.ndim))
    line = ops.cast(bind("slice", x, spec=spec), int64)
    return bind("count", line, axes=(axis,))


def _int_dtype(out_type):
    dtype = as_dtype(out_type)
    if dtype not in (int32, int64):
        raise DTypeError(
            f"out_type must be int32 or int64, got {dtype.name}", location=user_location()
        )
    return dtype


def shape(input, name=None, out_type=int32):
    """The shape of `input` as a 1-D int tensor (TF1's tf.shape): known dimensions are
    constants, unknown ones are read when the Session has specialised the fed shapes."""
    x, dtype = as_tensor(input), _int_dtype(out_type)
    if None not in x.shape:
        return named(constant_like(np.array(x.shape, dtype.np), dtype, [x]), name)
    dims = [ops.cast(_dim(x, a), dtype) for a in range(x.ndim)]
    return named(shape_ops.stack(dims), name)


def size(input, name=None, out_type=int32):
    """The number of elements of `input` as an int scalar (TF1's tf.size)."""
    x, dtype = as_tensor(input), _int_dtype(out_type)
    if x.type.rank is None:  # of unknown rank: the length of its flattening
        x = shape_ops.reshape(x, (-1,))
    total = constant_like(np.int64(1), int64, [x])
    for a in range(x.ndim):
        total = ops.mul(total, _dim(x, a))
    return named(ops.cast(total, dtype), name)


def rank(input, name=None):
    """The rank of `input` as an int32 scalar (known when the graph is built)."""
    x = as_tensor(input)
    return named(constant_like(np.int32(x.ndim), int32, [x]), name)


def identity(input, name=None):
    """A new tensor equal to `input` (gradients pass through); `name` names it for fetching
    by name."""
    x = as_tensor(input)
    return named(bind("reshape_like", x, x), name)


def split(value, num_or_size_splits, axis=0, num=None, name=None):
    """Pieces of `value` along `axis`: `num_or_size_splits` equal pieces (the axis size must
    be known and divisible), or pieces of the listed sizes (one may be -1: the rest)."""
    x = as_tensor(value)
    (axis,) = normalize_axes(axis, x.ndim)
    n = x.shape[axis]
    if isinstance(num_or_size_splits, (int, np.integer)):
        sizes = _equal_sizes(int(num_or_size_splits), n)
    else:
        sizes = [operator.index(s) for s in num_or_size_splits]
    if num is not None and num != len(sizes):
        raise ShapeError(f"split: num={num} but {len(sizes)} pieces", location=user_location())
    return [named(_take(x, axis, start, stop), name) for start, stop in _bounds(sizes, n)]


def _equal_sizes(count: int, n) -> list:
    if n is None or count <= 0 or n % count:
        raise ShapeError(
            f"split: cannot split an axis of size {n} into {count} equal pieces (the size "
            "must be known and divisible)",
            location=user_location(),
        )
    return [n // count] * count


def _bounds(sizes: list, n) -> list:
    """(start, stop) per piece. Pieces after a -1 are placed from the end, so an axis of
    unknown size works as long as the other pieces' sizes are given."""
    if sizes.count(-1) > 1 or any(s < -1 for s in sizes):
        raise ShapeError(f"split: bad sizes {sizes} (at most one -1)", location=user_location())
    known = sum(s for s in sizes if s != -1)
    if n is not None and (known > n or (-1 not in sizes and known != n)):
        raise ShapeError(f"split: sizes {sizes} do not add up to {n}", location=user_location())
    rest = sizes.index(-1) if -1 in sizes else len(sizes)
    bounds, start = [], 0
    for s in sizes[:rest]:
        bounds.append((start, start + s))
        start += s
    if rest < len(sizes):
        after = sum(sizes[rest + 1 :])
        bounds.append((start, -after if after else None))
        for s in sizes[rest + 1 :]:
            bounds.append((-after, -after + s if -after + s else None))
            after -= s
    return bounds


def unstack(value, num=None, axis=0, name=None):
    """The slices of `value` along `axis`, each without that axis; its size must be known."""
    x = as_tensor(value)
    (axis,) = normalize_axes(axis, x.ndim)
    n = x.shape[axis] if num is None else num
    if n is None:
        raise ShapeError(
            f"unstack: the size of axis {axis} of shape {x.shape} must be known (or pass num)",
            location=user_location(),
        )
    return [named(bind("squeeze", _take(x, axis, i, i + 1), axes=(axis,)), name) for i in range(n)]


def tile(input, multiples, name=None):
    """`input` repeated `multiples[i]` times along axis i (Python ints, one per axis)."""
    x = as_tensor(input)
    shape_ops.static_dims(multiples)  # (a tensor of multiples: refused, saying why)
    try:
        multiples = [operator.index(m) for m in multiples]
    except TypeError:
        raise ShapeError(
            f"tile: multiples must be Python ints, one per axis, got {multiples!r}",
            location=user_location(),
        ) from None
    if len(multiples) != x.ndim or any(m < 0 for m in multiples):
        raise ShapeError(
            f"tile: {multiples} are not {x.ndim} non-negative multiples", location=user_location()
        )
    for axis, m in enumerate(multiples):
        x = _take(x, axis, 0, 0) if m == 0 else shape_ops.concat([x] * m, axis)
    return named(x, name)


# ---- clipping ------------------------------------------------------------------------------


def clip_by_value(t, clip_value_min, clip_value_max, name=None):
    """t limited to [clip_value_min, clip_value_max] elementwise."""
    return named(ops.minimum(ops.maximum(t, clip_value_min), clip_value_max), name)


def global_norm(t_list, name=None):
    """sqrt(sum of squares of every element of every tensor in `t_list`); None entries are
    skipped."""
    present = [as_tensor(t) for t in t_list if t is not None]
    if not present:
        raise GraphjitError("global_norm needs at least one tensor", location=user_location())
    squares = [ops.sum(ops.square(t)) for t in present]
    total = squares[0]
    for s in squares[1:]:
        total = ops.add(total, s)
    return named(ops.sqrt(total), name)


def clip_by_global_norm(t_list, clip_norm, use_norm=None, name=None):
    """(tensors scaled by clip_norm / max(global_norm, clip_norm), global_norm), TF1's
    formula: unchanged when their global norm is at most clip_norm. None entries stay None."""
    norm = global_norm(t_list) if use_norm is None else as_tensor(use_norm)
    norm, clip_norm = ops.operands(norm, clip_norm)  # a Python clip_norm in the norm's dtype
    # TF1 writes clip_norm * min(1/norm, 1/clip_norm); this equal form never divides by a
    # zero norm (all-zero tensors are left as they are, without a 1/0 on the way)
    scale = ops.div(clip_norm, ops.maximum(norm, clip_norm))
    clipped = [None if t is None else named(ops.mul(t, scale), name) for t in t_list]
    return clipped, norm


# ---- control flow --------------------------------------------------------------------------


def case(pred_fn_pairs, default=None, exclusive=False, strict=False, name="case"):
    """The result of the first fn whose pred holds, else of `default` (TF1's tf.case), built
    from nested `gj.cond`s: every fn must return the same structure, dtypes and shapes. With
    no default the last pair's fn is the default (its pred is not tested), as in TF1."""
    del strict, name  # structures are always checked strictly; case has no single op to name
    if exclusive:
        raise ControlFlowError(
            "case(exclusive=True) is not supported: it needs a run-time assertion that at most "
            "one predicate holds, and graphjit has no assertion op",
            location=user_location(),
        )
    pairs = list(pred_fn_pairs.items() if isinstance(pred_fn_pairs, dict) else pred_fn_pairs)
    if default is None:
        if not pairs:
            raise ControlFlowError(
                "case needs at least one (pred, fn) pair or a default", location=user_location()
            )
        default = pairs.pop()[1]
    return _case_chain(pairs, default)


def _case_chain(pairs, default):
    if not pairs:
        return default()
    (pred, fn), rest = pairs[0], pairs[1:]
    return cond(pred, fn, lambda: _case_chain(rest, default))


# ---- variables -----------------------------------------------------------------------------


def global_variables() -> list:
    """Every variable of the default graph, in creation order."""
    return list(get_default_graph().variables.values())


def trainable_variables() -> list:
    return [v for v in global_variables() if v.trainable]


def variables_initializer(var_list):
    """An op that sets each variable of `var_list` back to its initial value when run."""
    for v in var_list:
        if not hasattr(v, "initial_value"):
            raise GraphjitError(
                f"variables_initializer takes Variables, got {v!r}", location=user_location()
            )
    return initializer_op(list(var_list))


def global_variables_initializer():
    """An op that (re)initialises every variable the default graph has now (a Session
    starts them initialised already; running this resets them, as in TF1)."""
    return initializer_op(global_variables())

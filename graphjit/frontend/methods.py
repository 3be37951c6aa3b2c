"""THE table of tensor methods, one for both kinds of tensor: graph values (`gj.ir.Value`,
`gj.Variable`, what gj.function traces) and eager `gj.Tensor`s get every entry
(operators.install_operators), so eager code runs unchanged under gj.function.

Names and keywords are PyTorch's (`x.sum(dim=1, keepdim=True)`, `x.transpose(0, 1)`,
`x.max(dim=1)` → `(values, indices)`); TF1's and NumPy's `axis=`/`keepdims=` work too. An
eager tensor overrides an entry only where eager semantics need more than the shared code
(eager/tensor_methods.py: `view` refuses to copy, `contiguous` makes row-major storage; and
tensor.py's `item`, `detach`, `size`, ...). tests/function/test_method_table.py runs every
entry eagerly, under gj.function and in PyTorch, and compares values and gradients.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from graphjit.errors import GraphjitError, ShapeError
from graphjit.frontend import indexing, math_ops, ops, shape_ops, sorting
from graphjit.frontend.convert import is_tensor, unwrap
from graphjit.frontend.shape_ops import shape_args
from graphjit.ir.core import user_location
from graphjit.ir.ops import bind
from graphjit.ir.types import bfloat16, bool_, float16, float32, float64, int32, int64

# ---- shapes ------------------------------------------------------------------------------


def reshape(x, *shape, **kwargs):
    """`x.reshape(2, 3)`, `x.reshape((2, 3))` or `x.reshape(shape=(2, 3))`."""
    return shape_ops.reshape(x, kwargs.pop("shape") if "shape" in kwargs else shape_args(shape))


def transpose(x, *axes, **kwargs):
    """Two ints swap those dimensions (PyTorch's `x.transpose(0, 1)`, or `dim0=, dim1=`);
    otherwise `axes` is a permutation (or nothing: reverse them), as in `gj.transpose`."""
    if "axes" in kwargs:
        return shape_ops.transpose(x, kwargs.pop("axes"))
    axes = (*axes, *(kwargs.pop(k) for k in ("dim0", "dim1") if k in kwargs))
    if len(axes) == 2 and all(isinstance(a, (int, np.integer)) for a in axes):
        perm = list(range(x.ndim))
        first, second = (int(a) % x.ndim if x.ndim else int(a) for a in axes)
        perm[first], perm[second] = perm[second], perm[first]
        return shape_ops.transpose(x, perm)
    return shape_ops.transpose(x, shape_args(axes) if axes else None)


def permute(x, *dims):
    return shape_ops.transpose(x, shape_args(dims))


def unsqueeze(x, dim: int):
    return shape_ops.expand_dims(x, dim)


def squeeze(x, dim=None, *, axis=None):
    """PyTorch's Tensor.squeeze: the size-1 axes among `dim` (every one when None) removed;
    an axis of another size is left as it is (gj.squeeze, TF1's and NumPy's, refuses it)."""
    dim = axis if dim is None else dim
    if dim is None:
        return shape_ops.squeeze(x)
    axes = ops.normalize_axes(dim, x.ndim)
    return shape_ops.squeeze(x, tuple(a for a in axes if x.shape[a] == 1))


def flatten(x, start_dim: int = 0, end_dim: int = -1):
    """Dimensions start_dim..end_dim merged into one (all of them by default)."""
    if x.ndim == 0:
        return shape_ops.reshape(x, (1,))
    start, end = start_dim % x.ndim, end_dim % x.ndim
    if start > end:
        raise ShapeError(
            f"flatten: start_dim {start_dim} comes after end_dim {end_dim}",
            location=user_location(),
        )
    if start == end:
        return x
    shape = tuple(x.shape)
    middle = None if None in shape[start : end + 1] else math.prod(shape[start : end + 1])
    if middle is None and None in shape[:start] + shape[end + 1 :]:
        raise ShapeError(
            "flatten needs the dimensions outside the merged ones known", location=user_location()
        )
    return shape_ops.reshape(
        x, shape[:start] + (-1 if middle is None else middle,) + shape[end + 1 :]
    )


def expand(x, *sizes):
    """PyTorch's expand: broadcast to `sizes` (-1 keeps a dimension; new ones go in front)."""
    sizes = shape_args(sizes)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise ShapeError(
            f"expand: {len(sizes)} sizes for a rank-{x.ndim} tensor", location=user_location()
        )
    shape = tuple(x.shape[i - lead] if d == -1 and i >= lead else d for i, d in enumerate(sizes))
    return shape_ops.broadcast_to(x, shape)


def expand_as(x, other):
    return shape_ops.broadcast_to(x, tuple(other.shape))


def view_as(x, other):
    return x.view(tuple(other.shape))  # (the class's own view: an eager one refuses to copy)


def reshape_as(x, other):
    return x.reshape(tuple(other.shape))


def _known_shape(x, what: str) -> tuple:
    if None in tuple(x.shape):
        raise ShapeError(
            f"{what} needs the tensor's shape known, got {tuple(x.shape)}",
            location=user_location(),
        )
    return tuple(x.shape)


def _known_dim(x, dim: int, what: str) -> int:
    """The size of dimension `dim`, which the pieces' bounds are computed from."""
    size = tuple(x.shape)[dim]
    if size is None:
        raise ShapeError(
            f"{what} needs the size of dimension {dim} known, got shape {tuple(x.shape)}",
            location=user_location(),
        )
    return size


def repeat(x, *sizes):
    """PyTorch's repeat (NumPy's tile): x tiled sizes[i] times along dimension i; sizes
    beyond x's rank add leading dimensions. A broadcast between the dimensions, then one
    reshape, so the gradient is the broadcast's (a sum over the copies)."""
    sizes = tuple(shape_args(sizes))
    if len(sizes) < x.ndim:
        raise ShapeError(
            f"repeat: {len(sizes)} sizes for a rank-{x.ndim} tensor (one per dimension at least)",
            location=user_location(),
        )
    shape = (1,) * (len(sizes) - x.ndim) + _known_shape(x, "repeat")
    spread = shape_ops.reshape(x, [d for size in shape for d in (1, size)])
    tiled = shape_ops.broadcast_to(spread, [d for pair in zip(sizes, shape) for d in pair])
    return shape_ops.reshape(tiled, [n * size for n, size in zip(sizes, shape)])


def split(x, split_size_or_sections, dim: int = 0) -> tuple:
    """PyTorch's split: pieces of `split_size_or_sections` elements along dim (the last
    may be smaller), or of the listed sizes. (TF1's tf.split, whose int means a number of
    pieces, is another function.)"""
    (dim,) = ops.normalize_axes(dim, x.ndim)
    size = _known_dim(x, dim, "split")
    if isinstance(split_size_or_sections, (int, np.integer)):
        step = int(split_size_or_sections)
        if step <= 0:
            raise ShapeError(f"split: size must be positive, got {step}", location=user_location())
        sizes = [min(step, size - start) for start in range(0, size, step)] or [0]
    else:
        sizes = [int(n) for n in split_size_or_sections]
        if sum(sizes) != size:
            raise ShapeError(
                f"split: sizes {sizes} do not add up to dimension {dim}'s {size}",
                location=user_location(),
            )
    starts = itertools.accumulate([0, *sizes])
    lead = (slice(None),) * dim
    return tuple(
        shape_ops.getitem(x, (*lead, slice(start, start + n))) for start, n in zip(starts, sizes)
    )


def chunk(x, chunks: int, dim: int = 0) -> tuple:
    """PyTorch's chunk: pieces of ceil(size / chunks) elements along dim, the last smaller
    (so there may be fewer than `chunks` pieces, as in PyTorch)."""
    if chunks <= 0:
        raise ShapeError(f"chunk: chunks must be positive, got {chunks}", location=user_location())
    (axis,) = ops.normalize_axes(dim, x.ndim)
    size = _known_dim(x, axis, "chunk")
    return split(x, max(1, -(-size // chunks)), axis)


def matrix_transpose(x):
    """PyTorch's `x.mT`: the last two dimensions swapped."""
    if x.ndim < 2:
        raise ShapeError(
            f"mT needs a tensor of rank >= 2, got rank {x.ndim}", location=user_location()
        )
    return transpose(x, -2, -1)


def t(x):
    """PyTorch's `x.t()`: a matrix transposed, vectors and scalars unchanged."""
    if x.ndim > 2:
        raise ShapeError(
            f"t() expects a tensor of rank <= 2, got rank {x.ndim}", location=user_location()
        )
    return shape_ops.transpose(x) if x.ndim == 2 else x


# ---- sizes and values --------------------------------------------------------------------


def size(x, dim: int | None = None):
    """The shape, or one dimension of it (None where a graph value's dimension is unknown)."""
    return tuple(x.shape) if dim is None else tuple(x.shape)[dim]


def rank(x) -> int:
    """PyTorch's `x.dim()`."""
    return x.ndim


def numel(x) -> int:
    return math.prod(_known_shape(x, "numel()"))


def _reads_the_value(method: str):
    """A method that needs an eager tensor's value, refused on a graph tensor, saying why."""

    def refuse(x, *args, **kwargs):
        raise GraphjitError(
            f"{method}() reads a tensor's value, and graph tensor '{unwrap(x).name}' has none "
            "until the graph runs: return it from the function (gj.function) or fetch it "
            "with Session.run, and use gj.cond/gj.while_loop for control flow that depends "
            "on it",
            location=user_location(),
        )

    refuse.__name__ = method
    return refuse


item = _reads_the_value("item")


def backward(x, *args, **kwargs):
    raise GraphjitError(
        f"backward() on graph tensor '{unwrap(x).name}': a graph (a gj.function being traced, "
        "a TF1 graph) has no tape; take gradients with gj.gradients(loss, params) and apply "
        "them (p.assign_sub(lr * g), or a gj.train optimizer's minimize), or call the "
        "compiled function and .backward() its result outside it",
        location=user_location(),
    )


def is_contiguous(x) -> bool:
    """A graph value has no layout: the compiler chooses it (eager tensors override this)."""
    return True


def contiguous(x):
    return x  # (eager tensors override this: their storage has a layout)


# ---- dtypes ------------------------------------------------------------------------------


def _cast_to(dtype):
    def method(x):
        return ops.cast(x, dtype)

    method.__name__ = dtype.name
    method.__doc__ = f"x as {dtype.name} (x itself if it is {dtype.name} already)."
    return method


def to(x, dtype):
    """`x.to(gj.float64)`, or `x.to(other)`: other's dtype (graphjit has one device)."""
    if is_tensor(unwrap(dtype)):
        dtype = unwrap(dtype).dtype
    return ops.cast(x, dtype)


def clone(x):
    """A copy that stays on the tape: a cast to its own dtype, whose gradient is the
    identity (so an eager clone's grad_fn reads CastBackward)."""
    x = ops.as_tensor(x)
    return bind("cast", x, dtype=x.dtype.name)


# ---- elementwise and reductions with PyTorch's arguments ---------------------------------


def clamp(x, min=None, max=None):  # (PyTorch's argument names)
    """Values limited to [min, max]; the gradient passes where min <= x <= max (bounds
    included, as in PyTorch)."""
    out = x
    if min is not None:
        out = ops.where(ops.less(out, min), min, out)
    if max is not None:
        out = ops.where(ops.greater(out, max), max, out)
    return out


def masked_fill(x, mask, value):
    """x with `value` where `mask` holds; the result keeps x's dtype, as in PyTorch."""
    x = ops.as_tensor(x)
    return ops.cast(ops.where(mask, value, x), x.dtype)


def _extremum(reduction, elementwise):
    """PyTorch's Tensor.max/min: `x.max()` the largest element, `x.max(dim)` the named tuple
    `(values, indices)`, `x.max(other)` the elementwise maximum; `axis=` (TF1, NumPy) gives
    the values alone, as `gj.max(x, axis=1)` does."""

    def method(x, dim=None, keepdim=None, **kwargs):
        if is_tensor(unwrap(dim)) or isinstance(dim, np.ndarray):
            return elementwise(x, dim)
        if dim is not None:
            kwargs["dim"] = dim
        if keepdim is not None:
            kwargs["keepdim"] = keepdim
        return reduction(x, **kwargs)

    method.__name__ = reduction.__name__
    return method


def _sample_statistic(reduction):
    """PyTorch's Tensor.std/var(dim, unbiased=True, keepdim=False, *, correction=): the
    sample statistic by default, where gj.std/gj.var follow NumPy and TF1 (population)."""

    def method(x, dim=None, unbiased=True, keepdim=None, **kwargs):
        kwargs.setdefault("correction", 1 if unbiased else 0)
        if dim is not None:
            kwargs["dim"] = dim
        if keepdim is not None:
            kwargs["keepdim"] = keepdim
        return reduction(x, **kwargs)

    method.__name__ = reduction.__name__
    return method


# ---- the table ---------------------------------------------------------------------------

_SAME_NAME = [
    # elementwise
    *("exp", "log", "sqrt", "sin", "cos", "square", "abs", "sign", "tanh", "sigmoid", "relu"),
    *("neg", "add", "sub", "mul", "div", "pow", "maximum", "minimum"),
    *("logical_and", "logical_or", "logical_not", "cast", "isnan", "isinf", "isfinite"),
    # reductions (each takes dim=/keepdim= and axis=/keepdims=: ops.axis_aliases)
    *("sum", "mean", "argmax", "norm", "softmax", "log_softmax", "logsumexp"),
    "matmul",
]

METHODS = {name: getattr(ops, name) for name in _SAME_NAME} | {
    # comparisons by PyTorch's method names; the operators `==`/`!=` stay identity on graph
    # values, which the compiler keeps in dicts (eager tensors make them elementwise)
    "eq": ops.equal,
    "ne": ops.not_equal,
    "lt": ops.less,
    "le": ops.less_equal,
    "gt": ops.greater,
    "ge": ops.greater_equal,
    "clamp": clamp,
    "clip": clamp,
    "masked_fill": masked_fill,
    "max": _extremum(ops.max, ops.maximum),
    "min": _extremum(ops.min, ops.minimum),
    "std": _sample_statistic(ops.std),
    "var": _sample_statistic(ops.var),
    "any": math_ops.any,
    "all": math_ops.all,
    "prod": math_ops.prod,
    "argmin": math_ops.argmin,
    # sorting: PyTorch's (values, indices) named tuples (frontend/sorting.py)
    "sort": sorting.sort,
    "argsort": sorting.argsort,
    "topk": sorting.topk,
    "kthvalue": sorting.kthvalue,
    # indexing by arrays of positions (frontend/indexing.py), PyTorch's argument order
    "gather": indexing.gather_along,
    "index_select": indexing.index_select,
    "take_along_dim": lambda x, indices, dim=None: indexing.take_along_axis(x, indices, dim),
    "scatter_add": indexing.scatter_add_along,
    "index_add": indexing.index_add,
    # integers (NumPy's semantics: math_ops.py)
    "bitwise_and": math_ops.bitwise_and,
    "bitwise_or": math_ops.bitwise_or,
    "bitwise_xor": math_ops.bitwise_xor,
    "bitwise_not": math_ops.bitwise_not,
    "floor_divide": math_ops.floor_divide,
    "remainder": math_ops.remainder,
    # shapes (eager tensors get views of their storage: eager/views.py)
    "reshape": reshape,
    "view": reshape,  # (eager tensors check that no copy is needed: eager/tensor_methods.py)
    "view_as": view_as,
    "reshape_as": reshape_as,
    "transpose": transpose,
    "permute": permute,
    "unsqueeze": unsqueeze,
    "expand_dims": shape_ops.expand_dims,
    "squeeze": squeeze,
    "flatten": flatten,
    "expand": expand,
    "expand_as": expand_as,
    "broadcast_to": shape_ops.broadcast_to,
    "repeat": repeat,
    "split": split,
    "chunk": chunk,
    "mT": property(matrix_transpose),
    "T": property(shape_ops.transpose),
    "t": t,
    "contiguous": contiguous,
    "is_contiguous": is_contiguous,
    # sizes and values
    "size": size,
    "dim": rank,
    "numel": numel,
    "item": item,
    "numpy": _reads_the_value("numpy"),
    "tolist": _reads_the_value("tolist"),
    "backward": backward,
    # dtypes (graphjit's: no complex)
    "float": _cast_to(float32),
    "double": _cast_to(float64),
    "half": _cast_to(float16),
    "bfloat16": _cast_to(bfloat16),  # (without ml_dtypes: a DTypeError naming it, when called)
    "int": _cast_to(int32),
    "long": _cast_to(int64),
    "bool": _cast_to(bool_),
    "to": to,
    "clone": clone,
    "detach": ops.stop_gradient,
}

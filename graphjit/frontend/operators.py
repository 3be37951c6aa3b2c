"""Python operators and tensor methods, installed on every tensor class from one table."""

from __future__ import annotations

import math

import numpy as np

from graphjit.errors import GraphjitError, ShapeError
from graphjit.frontend import ops, shape_ops
from graphjit.ir.core import user_location


def _swap(fn):
    return lambda self, other: fn(other, self)


OPERATORS = {
    "__add__": ops.add,
    "__radd__": _swap(ops.add),
    "__sub__": ops.sub,
    "__rsub__": _swap(ops.sub),
    "__mul__": ops.mul,
    "__rmul__": _swap(ops.mul),
    "__truediv__": ops.div,
    "__rtruediv__": _swap(ops.div),
    "__pow__": ops.pow,
    "__rpow__": _swap(ops.pow),
    "__matmul__": ops.matmul,
    "__rmatmul__": _swap(ops.matmul),
    "__neg__": ops.neg,
    "__abs__": ops.abs,
    "__lt__": ops.less,
    "__le__": ops.less_equal,
    "__gt__": ops.greater,
    "__ge__": ops.greater_equal,
    "__and__": ops.logical_and,
    "__rand__": _swap(ops.logical_and),
    "__or__": ops.logical_or,
    "__ror__": _swap(ops.logical_or),
    "__invert__": ops.logical_not,
    "__getitem__": shape_ops.getitem,
}

METHODS = {
    name: getattr(ops, name)
    for name in [
        "exp",
        "log",
        "sqrt",
        "sin",
        "cos",
        "square",
        "abs",
        "sign",
        "tanh",
        "sigmoid",
        "relu",
        "neg",
        "sum",
        "mean",
        "max",
        "min",
        "argmax",
        "softmax",
        "log_softmax",
        "logsumexp",
        "matmul",
        "cast",
    ]
} | {name: getattr(shape_ops, name) for name in ["expand_dims", "squeeze", "broadcast_to"]}


# ---- PyTorch's shape methods, for both modes (eager code traced by gj.function) ----------
# On eager tensors these are views of the tensor's storage (eager/views.py).


def shape_args(shape: tuple) -> tuple:
    """`x.reshape(2, 3)` and `x.reshape((2, 3))` alike."""
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        return tuple(shape[0])
    return shape


def reshape(x, *shape, **kwargs):
    """`x.reshape(2, 3)`, `x.reshape((2, 3))` or `x.reshape(shape=(2, 3))`."""
    return shape_ops.reshape(x, kwargs.pop("shape") if "shape" in kwargs else shape_args(shape))


def transpose(x, *axes, **kwargs):
    """Two ints swap those dimensions (PyTorch's `x.transpose(0, 1)`); otherwise `axes` is a
    permutation (or nothing: reverse them), as in `gj.transpose`."""
    if "axes" in kwargs:
        return shape_ops.transpose(x, kwargs.pop("axes"))
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


def matrix_transpose(x):
    """PyTorch's `x.mT`: the last two dimensions swapped."""
    if x.ndim < 2:
        raise ShapeError(
            f"mT needs a tensor of rank >= 2, got rank {x.ndim}", location=user_location()
        )
    return transpose(x, -2, -1)


def _same_object(x):
    return x


METHODS |= {
    "reshape": reshape,
    "view": reshape,  # (eager tensors check that no copy is needed: eager/tensor_methods.py)
    "transpose": transpose,
    "permute": permute,
    "unsqueeze": unsqueeze,
    "flatten": flatten,
    "expand": expand,
    "contiguous": _same_object,  # (a graph value has no layout; eager tensors override it)
    "mT": property(matrix_transpose),
}


def _matrix_transpose(x):
    """PyTorch's `x.t()` (vectors and scalars unchanged), so that modules written for eager
    tensors (`gj.nn.Linear`) also build graphs for gj.function."""
    if x.ndim > 2:
        raise ShapeError(f"t() expects a tensor of rank <= 2, got rank {x.ndim}")
    return shape_ops.transpose(x) if x.ndim == 2 else x


METHODS |= {"t": _matrix_transpose, "T": property(shape_ops.transpose)}


def _no_bool(self):
    raise GraphjitError(
        f"graph tensor '{self.name}' has no Python truth value until the graph runs: use "
        "gj.cond(pred, ...) or gj.while_loop(...) for control flow that depends on a tensor",
        location=user_location(),
    )


def _no_iter(self):
    raise GraphjitError(
        f"graph tensor '{self.name}' cannot be iterated in Python; index it (x[i]) instead",
        location=user_location(),
    )


def _no_len(self):
    raise GraphjitError(
        f"len() of graph tensor '{self.name}' is not known while building; use .shape",
        location=user_location(),
    )


def install_operators(cls, methods: bool = True) -> None:
    for name, fn in OPERATORS.items():
        setattr(cls, name, fn)
    if methods:
        for name, fn in METHODS.items():
            if name not in cls.__dict__:
                setattr(cls, name, fn)
    cls.__array_ufunc__ = None  # so that `np_array * tensor` calls tensor.__rmul__


def install_graph_guards(cls) -> None:
    """Graph tensors refuse Python truth tests and iteration, with a message saying why."""
    cls.__bool__ = _no_bool
    cls.__iter__ = _no_iter
    cls.__len__ = _no_len

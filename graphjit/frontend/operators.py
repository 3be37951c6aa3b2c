"""Python operators and tensor methods, installed on every tensor class from one table."""

from __future__ import annotations

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
} | {
    name: getattr(shape_ops, name)
    for name in ["reshape", "transpose", "expand_dims", "squeeze", "broadcast_to"]
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

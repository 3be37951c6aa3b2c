"""Python operators and tensor methods, installed on every tensor class (graph values,
Variables, eager tensors) from one table each: OPERATORS here, METHODS in methods.py."""

from __future__ import annotations

from graphjit.errors import GraphjitError
from graphjit.frontend import math_ops, ops, shape_ops
from graphjit.frontend.methods import METHODS
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
    # logical on booleans, bitwise on integers (NumPy's rule); // and % floor, as NumPy's
    "__and__": math_ops.and_,
    "__rand__": _swap(math_ops.and_),
    "__or__": math_ops.or_,
    "__ror__": _swap(math_ops.or_),
    "__xor__": math_ops.xor,
    "__rxor__": _swap(math_ops.xor),
    "__invert__": math_ops.invert_,
    "__floordiv__": math_ops.floordiv_,
    "__rfloordiv__": _swap(math_ops.floordiv_),
    "__mod__": math_ops.mod_,
    "__rmod__": _swap(math_ops.mod_),
    "__getitem__": shape_ops.getitem,
}


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


def _no_setitem(self, key, value):
    raise GraphjitError(
        f"graph tensor '{self.name}' cannot be changed in place (x[...] = v): build the new "
        "tensor instead, e.g. gj.where(mask, v, x), or gj.index_add / scatter_add",
        location=user_location(),
    )


def install_operators(cls, methods: bool = True) -> None:
    """The operators, and the methods the class does not define itself (an eager tensor's
    own `item`, `detach`, `view`, ... override the shared entries)."""
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
    cls.__setitem__ = _no_setitem

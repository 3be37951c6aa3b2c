"""Operators and methods of `gj.Tensor`. Every method comes from the table shared with
graph values (frontend/methods.py: `reshape`, `transpose(0, 1)`, `sum(dim=)`, `max(dim=)`,
`float()`, `clamp`, ...), so eager code also traces under gj.function. Here are only the
eager overrides of shared entries, where a tensor with storage needs more (`view` refuses to
copy, `contiguous`), the eager-only `==`/`!=` (elementwise; graph values keep identity,
since the compiler keys dicts by them), the in-place methods of tensor_inplace.py, and a
fast path for arithmetic operators. Shape methods give views (views.py)."""

from __future__ import annotations

import numpy as np

from graphjit.errors import ShapeError
from graphjit.frontend import methods, ops, shape_ops
from graphjit.frontend.eager import grad_mode
from graphjit.frontend.eager.dispatch import run_float_op, run_op, scalar_constant
from graphjit.frontend.eager.tensor import Tensor
from graphjit.frontend.eager.tensor_inplace import INPLACE_METHODS
from graphjit.frontend.eager.views import basic_index_view
from graphjit.frontend.operators import install_operators
from graphjit.frontend.shape_ops import basic_index, shape_args
from graphjit.ir.core import user_location
from graphjit.ir.ops import get_op
from graphjit.ir.types import as_dims


def view(self, *shape):
    """PyTorch's view: a reshape that shares this tensor's storage; raises where that needs
    a copy (a non-contiguous layout), where `reshape` would copy."""
    shape = as_dims(shape_args(shape))
    try:
        np.reshape(self._data, shape, copy=False)
    except ValueError:
        try:
            np.reshape(self._data, shape)
        except ValueError:
            pass  # a wrong shape: reshape's own error explains it
        else:
            raise ShapeError(
                "view size is not compatible with input tensor's size and stride (at least one "
                f"dimension spans across two contiguous subspaces): cannot view {self.shape} "
                f"as {shape} without a copy; use .reshape(...) instead",
                location=user_location(),
            ) from None
    return shape_ops.reshape(self, shape)


def contiguous(self):
    """self if its storage is in row-major order, else a copy that is (on the tape)."""
    if self._data.flags.c_contiguous:
        return self
    out = methods.clone(self)  # (keeps the layout, as PyTorch's clone does; then made row-major)
    out._data = np.ascontiguousarray(out._data)
    return out


def is_contiguous(self) -> bool:
    return bool(self._data.flags.c_contiguous)


# Entries of the shared table that eager tensors override (tensor.py's class adds its own:
# `item`, `detach`, `size`, `dim`, `numel`).
EAGER_OVERRIDES = {"view": view, "contiguous": contiguous, "is_contiguous": is_contiguous}

# What only eager tensors have: `==`/`!=` elementwise as in PyTorch (graph values keep
# identity), and the in-place methods (a graph value is immutable; Variables assign).
EAGER_ONLY = {"__eq__": ops.equal, "__ne__": ops.not_equal, **INPLACE_METHODS}


# ---- the fast path of arithmetic operators -----------------------------------------------
# Small-tensor loops are dominated by per-op overhead. For the common cases, a float tensor
# with a tensor of the same dtype or with a Python number, the promotion rule has nothing to
# do, so the operator goes straight to the eager handler; every other case takes the shared
# operator table's function, which promotes and checks. The results are the same either way.


def _fast_binary(op_name: str, general, swapped: bool = False):
    opdef = get_op(op_name)
    kernel = opdef.float_kernel  # (the fast paths leave narrow floats to `general`)

    def operator(self, other):
        kind = type(other)
        dtype = self._data.dtype
        if kind is Tensor:
            if other._data.dtype is not dtype or dtype.kind != "f" or dtype.itemsize < 4:
                return general(self, other)
        elif (kind is float or kind is int) and dtype.kind == "f" and dtype.itemsize >= 4:
            other = scalar_constant(other, dtype)
        else:
            return general(self, other)
        return run_float_op(opdef, kernel, [other, self] if swapped else [self, other])

    operator.__name__ = general.__name__
    return operator


def _fast_matmul(general):
    """`a @ b` of two float tensors of one dtype, both matrices or batches of them: the
    op at once (the shared operator promotes, checks ranks and lifts vectors first)."""
    opdef = get_op("matmul")

    def operator(self, other):
        if type(other) is Tensor:
            x, y = self._data, other._data
            if x.dtype is y.dtype and x.dtype.kind == "f" and x.ndim >= 2 and y.ndim >= 2:
                return run_op(opdef, [self, other], {"transpose_a": False, "transpose_b": False})[0]
        return general(self, other)

    operator.__name__ = general.__name__
    return operator


def _fast_getitem(general):
    """`x[i]`, `x[a:b]`, `x[i, j:k]` of a base tensor that no gradient is recorded for (a
    batch of data): its view at once (views.basic_index_view); every other index, and a
    tensor on the tape, takes the shared operator."""

    def getitem(self, key):
        if type(self) is Tensor and self._base is None:
            if not (self._requires_grad and grad_mode._MODE.enabled):
                basic = basic_index(key, self._data.shape)
                if basic is not None:
                    return basic_index_view(self, key if type(key) is tuple else (key,), *basic)
        return general(self, key)

    getitem.__name__ = general.__name__
    return getitem


def _fast_unary(op_name: str, general):
    """The same shortcut for a unary method (`-x`, `x.exp()`) of a float tensor."""
    opdef = get_op(op_name)
    kernel = opdef.float_kernel  # (the fast paths leave narrow floats to `general`)

    def method(self):
        dtype = self._data.dtype
        if type(self) is not Tensor or dtype.kind != "f" or dtype.itemsize < 4:
            return general(self)
        return run_float_op(opdef, kernel, [self])

    method.__name__ = general.__name__
    method.__doc__ = general.__doc__
    return method


# method -> op, for float tensors: the shared table's methods call the op functions of
# frontend/ops.py, which for a float operand bind the op (the float_only cast aside).
FAST_UNARY = {
    "__neg__": "neg",
    "__abs__": "abs",
    "abs": "abs",
    "exp": "exp",
    "log": "log",
    "sqrt": "sqrt",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "sin": "sin",
    "cos": "cos",
}

FAST_OPERATORS = {
    "__add__": ("add", False),
    "__radd__": ("add", True),
    "__sub__": ("sub", False),
    "__rsub__": ("sub", True),
    "__mul__": ("mul", False),
    "__rmul__": ("mul", True),
    "__truediv__": ("div", False),
    "__rtruediv__": ("div", True),
    "__pow__": ("pow", False),
}


def install_tensor_methods(cls: type) -> None:
    for name, fn in {**EAGER_OVERRIDES, **EAGER_ONLY}.items():
        setattr(cls, name, fn)
    install_operators(cls)  # the shared tables fill in the rest (exp, sum, __add__, ...)
    for name, (op_name, swapped) in FAST_OPERATORS.items():
        setattr(cls, name, _fast_binary(op_name, getattr(cls, name), swapped))
    cls.__matmul__ = _fast_matmul(cls.__matmul__)
    cls.__getitem__ = _fast_getitem(cls.__getitem__)
    for name, op_name in FAST_UNARY.items():
        setattr(cls, name, _fast_unary(op_name, getattr(cls, name)))

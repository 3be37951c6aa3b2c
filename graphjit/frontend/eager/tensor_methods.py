"""Operators and methods of `gj.Tensor`: the table shared with graph tensors
(frontend/operators.py: `reshape`, `transpose(0, 1)`, `permute`, `unsqueeze`, `flatten`,
`expand`, `mT`, ...), plus PyTorch's spellings: `dim=`/`keepdim=` for `axis=`/`keepdims=`,
`view` (which refuses to copy), `contiguous`, `float()`, `clamp`, `==` elementwise, and the
in-place ops of tensor_inplace.py. Shape methods give views (views.py)."""

from __future__ import annotations

import functools

import numpy as np

from graphjit.errors import ShapeError
from graphjit.frontend import ops, shape_ops
from graphjit.frontend.eager.dispatch import run_op
from graphjit.frontend.eager.tensor import Tensor, wrap
from graphjit.frontend.eager.tensor_inplace import INPLACE_METHODS
from graphjit.frontend.operators import install_operators, shape_args
from graphjit.ir.core import user_location
from graphjit.ir.ops import bind, get_op
from graphjit.ir.types import as_dims

_AXIS_METHODS = {
    "sum": ops.sum,
    "mean": ops.mean,
    "max": ops.max,
    "min": ops.min,
    "argmax": ops.argmax,
    "softmax": ops.softmax,
    "log_softmax": ops.log_softmax,
    "logsumexp": ops.logsumexp,
    "squeeze": shape_ops.squeeze,
    "expand_dims": shape_ops.expand_dims,
}


def with_torch_aliases(fn):
    """Accept PyTorch's `dim=`/`keepdim=` wherever the op takes `axis=`/`keepdims=`."""

    @functools.wraps(fn)
    def method(self, *args, **kwargs):
        if "dim" in kwargs:
            kwargs["axis"] = kwargs.pop("dim")
        if "keepdim" in kwargs:
            kwargs["keepdims"] = kwargs.pop("keepdim")
        return fn(self, *args, **kwargs)

    return method


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
    out = clone(self)  # (keeps the layout, as PyTorch's clone does; then made row-major)
    out._data = np.ascontiguousarray(out._data)
    return out


def is_contiguous(self) -> bool:
    return bool(self._data.flags.c_contiguous)


def view_as(self, other):
    return view(self, other.shape)


def reshape_as(self, other):
    return shape_ops.reshape(self, other.shape)


def expand_as(self, other):
    return shape_ops.broadcast_to(self, other.shape)


def matrix_transpose(self):
    if self.ndim > 2:
        raise ShapeError(f"t() expects a tensor of rank <= 2, got rank {self.ndim}")
    return shape_ops.transpose(self) if self.ndim == 2 else self


def clamp(self, min=None, max=None):  # (PyTorch's argument names)
    """Values limited to [min, max]; the gradient passes where min <= x <= max (bounds
    included, as in PyTorch)."""
    out = self
    if min is not None:
        out = ops.where(ops.less(out, min), min, out)
    if max is not None:
        out = ops.where(ops.greater(out, max), max, out)
    return out


def _cast_to(dtype_name: str):
    def method(self):
        return ops.cast(self, dtype_name)

    method.__name__ = dtype_name
    return method


def to(self, dtype):
    return ops.cast(self, dtype)


def clone(self):
    """A copy that stays on the tape: a cast to its own dtype, whose gradient is the identity
    (so grad_fn reads CastBackward)."""
    return bind("cast", self, dtype=self.dtype.name)


def any_(self) -> Tensor:
    return wrap(np.asarray(self._data.any()))


def all_(self) -> Tensor:
    return wrap(np.asarray(self._data.all()))


METHODS = {
    **{name: with_torch_aliases(fn) for name, fn in _AXIS_METHODS.items()},
    "view": view,
    "view_as": view_as,
    "reshape_as": reshape_as,
    "expand_as": expand_as,
    "contiguous": contiguous,
    "is_contiguous": is_contiguous,
    "t": matrix_transpose,
    "T": property(shape_ops.transpose),
    "clamp": clamp,
    "clip": clamp,
    "add": ops.add,
    "sub": ops.sub,
    "mul": ops.mul,
    "div": ops.div,
    "pow": ops.pow,
    "maximum": ops.maximum,
    "minimum": ops.minimum,
    "float": _cast_to("float32"),
    "double": _cast_to("float64"),
    "long": _cast_to("int64"),
    "to": to,
    "clone": clone,
    "any": any_,
    "all": all_,
    "__eq__": ops.equal,
    "__ne__": ops.not_equal,
}


# ---- the fast path of arithmetic operators -----------------------------------------------
# Small-tensor loops are dominated by per-op overhead. For the common cases, a float tensor
# with a tensor of the same dtype or with a Python number, the promotion rule has nothing to
# do, so the operator goes straight to the eager handler; every other case takes the shared
# operator table's function, which promotes and checks. The results are the same either way.


# Python numbers used with float tensors, as constant tensors, by (value, dtype). They are
# never handed to the user, so sharing them between ops is safe; nan keys never match, so
# the cache is cleared when it grows.
_CONSTANTS: dict = {}


def scalar_constant(value, dtype: np.dtype) -> Tensor:
    key = (value, dtype)
    constant = _CONSTANTS.get(key)
    if constant is None:
        if len(_CONSTANTS) > 512:
            _CONSTANTS.clear()
        constant = _CONSTANTS[key] = wrap(np.array(value, dtype=dtype))
    return constant


def _fast_binary(op_name: str, general, swapped: bool = False):
    opdef = get_op(op_name)
    no_attrs: dict = {}

    def operator(self, other):
        kind = type(other)
        if kind is Tensor:
            if other._data.dtype is not self._data.dtype or self._data.dtype.kind != "f":
                return general(self, other)
        elif (kind is float or kind is int) and self._data.dtype.kind == "f":
            other = scalar_constant(other, self._data.dtype)
        else:
            return general(self, other)
        operands = [other, self] if swapped else [self, other]
        return run_op(opdef, operands, no_attrs)[0]

    operator.__name__ = general.__name__
    return operator


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
    for name, fn in {**METHODS, **INPLACE_METHODS}.items():
        setattr(cls, name, fn)
    install_operators(cls)  # the shared table fills in the rest (exp, relu, __add__, ...)
    for name, (op_name, swapped) in FAST_OPERATORS.items():
        setattr(cls, name, _fast_binary(op_name, getattr(cls, name), swapped))

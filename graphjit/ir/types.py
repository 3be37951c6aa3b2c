"""IR types: dtypes, tensor types with possibly unknown dimensions, tensor-list types."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from graphjit.errors import DTypeError
from graphjit.ir.core import user_location


@dataclass(frozen=True)
class DType:
    """A graphjit element type; `np` is the NumPy dtype it maps to."""

    name: str
    short: str  # the MLIR-like spelling used by the printer: f32, i64, i1
    np: np.dtype

    @property
    def is_floating(self) -> bool:
        return self.np.kind == "f"

    @property
    def is_integer(self) -> bool:
        return self.np.kind in "iu"

    @property
    def is_bool(self) -> bool:
        return self.np.kind == "b"

    def __repr__(self) -> str:
        return f"gj.{self.name}"


float32 = DType("float32", "f32", np.dtype(np.float32))
float64 = DType("float64", "f64", np.dtype(np.float64))
int32 = DType("int32", "i32", np.dtype(np.int32))
int64 = DType("int64", "i64", np.dtype(np.int64))
bool_ = DType("bool", "i1", np.dtype(np.bool_))

ALL_DTYPES = (float32, float64, int32, int64, bool_)
_BY_NAME = {d.name: d for d in ALL_DTYPES} | {"bool_": bool_}
_BY_SHORT = {d.short: d for d in ALL_DTYPES}
_BY_NP = {d.np: d for d in ALL_DTYPES}


def as_dtype(x) -> DType:
    """Accept a DType, a NumPy dtype or scalar type, or a name such as "float32"."""
    if isinstance(x, DType):
        return x
    if isinstance(x, str) and x in _BY_NAME:
        return _BY_NAME[x]
    try:
        npd = np.dtype(x)
    except (TypeError, ValueError, SyntaxError) as e:  # np.dtype(",x") is a SyntaxError
        raise DTypeError(f"not a dtype: {x!r}", location=user_location()) from e
    if npd in _BY_NP:
        return _BY_NP[npd]
    supported = [d.name for d in ALL_DTYPES]
    raise DTypeError(
        f"unsupported dtype {npd}; graphjit supports {supported}", location=user_location()
    )


def dtype_from_short(short: str) -> DType:
    return _BY_SHORT[short]


Shape = tuple  # of int | None; None is a dimension unknown until the Session specialises it


@dataclass(frozen=True)
class TensorType:
    shape: Shape
    dtype: DType

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(None if d is None else int(d) for d in self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return all(d is not None for d in self.shape)

    @property
    def size(self) -> int | None:
        return math.prod(self.shape) if self.is_static else None  # exact: no int64 overflow

    def with_shape(self, shape) -> TensorType:
        return TensorType(tuple(shape), self.dtype)

    def with_dtype(self, dtype) -> TensorType:
        return TensorType(self.shape, as_dtype(dtype))

    def __str__(self) -> str:
        dims = "".join(("?" if d is None else str(d)) + "x" for d in self.shape)
        return f"tensor<{dims}{self.dtype.short}>"


@dataclass(frozen=True)
class ListType:
    """A growable list of tensors of one type (value semantics); used by loop gradients."""

    elem: TensorType

    def __str__(self) -> str:
        return f"list<{self.elem}>"


def shape_str(shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"

"""IR types: dtypes, tensor types with possibly unknown dimensions, tensor-list types."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np

from graphjit.errors import DTypeError, ShapeError
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


def integer_out_of_range(array: np.ndarray, to: np.dtype):
    """The first value of `array` that integer dtype `to` cannot hold (a cast would wrap
    it: int64 2**40 becomes int32 0), or None. Looks at min and max only when the source
    type's range does not fit; Python ints beyond every NumPy type arrive as objects."""
    if np.dtype(to).kind not in "iu" or array.size == 0:
        return None
    if array.dtype.kind in "iu":
        if np.can_cast(array.dtype, to, casting="safe"):
            return None
        lo, hi = int(array.min()), int(array.max())
    elif array.dtype.kind == "O":
        ints = [x for x in array.flat if isinstance(x, (int, np.integer))]
        if not ints:
            return None
        lo, hi = int(min(ints)), int(max(ints))
    else:
        return None
    info = np.iinfo(to)
    return lo if lo < info.min else hi if hi > info.max else None


def array_of(data, dtype: DType, copy: bool = True) -> np.ndarray:
    """`data` as an array of `dtype` (a copy unless `copy` is False and `data` is already
    one), refusing integers that do not fit it instead of wrapping them."""
    try:
        raw = data if isinstance(data, np.ndarray) else np.array(data)
        bad = integer_out_of_range(raw, dtype.np)
        if raw.dtype.kind == "f" and dtype.np.kind in "iu" and not np.isfinite(raw).all():
            bad = raw[~np.isfinite(raw)].flat[0]  # (a cast would make it the minimum)
        if bad is None:
            return raw.astype(dtype.np, copy=copy)
    except (TypeError, ValueError, OverflowError) as e:
        raise DTypeError(f"cannot make {dtype.name} values of {_short(data)}: {e}") from None
    info = np.iinfo(dtype.np)
    raise DTypeError(
        f"{bad} does not fit {dtype.name}: its values must lie in [{info.min}, {info.max}]"
    )


def constant_array(value, dtype: DType, copy: bool = True) -> np.ndarray:
    """A constant operand's array (bind's and the handlers' lift): a Python number takes
    NumPy's fast path, which itself refuses one that does not fit (2**40 for int32); a NumPy
    value, which NumPy would wrap, is checked as array_of checks it."""
    if type(value) in (int, float, bool):
        try:
            return (np.array if copy else np.asarray)(value, dtype=dtype.np)
        except (OverflowError, ValueError):
            pass  # (array_of says why, naming the value)
    try:
        return array_of(value, dtype, copy=copy)
    except DTypeError as e:
        raise DTypeError(e.raw_message, location=user_location()) from None


def _short(data) -> str:
    text = repr(data)
    return text if len(text) <= 80 else text[:77] + "..."


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


def as_dims(shape, unknown: bool = False) -> tuple:
    """A shape argument as a tuple of ints (None too if `unknown`): each dimension must be
    an integer (`operator.index`), not a float that int() would truncate or overflow on."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else shape
    try:
        return tuple(None if unknown and d is None else operator.index(d) for d in shape)
    except TypeError:
        raise ShapeError(
            f"shape dimensions must be integers, got {_short(shape)}", location=user_location()
        ) from None


def shape_str(shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"

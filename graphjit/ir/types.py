"""IR types: dtypes, tensor types with possibly unknown dimensions, tensor-list types."""

from __future__ import annotations

import functools
import importlib.util
import math
import operator
import sys
from dataclasses import dataclass

import numpy as np

from graphjit.errors import DTypeError, ShapeError
from graphjit.ir.core import user_location
from graphjit.ir.symbolic import SymInt, hint, is_symbolic


@dataclass(frozen=True)
class DType:
    """A graphjit element type; `np` is the NumPy dtype it maps to."""

    name: str
    short: str  # the MLIR-like spelling used by the printer: f32, i64, i1
    np: np.dtype

    @property
    def kind(self) -> str:
        """NumPy's kind letter, with bfloat16 (ml_dtypes: kind "V") counted as "f"."""
        return np_kind(self.np)

    @property
    def is_floating(self) -> bool:
        return self.kind == "f"

    @property
    def is_narrow_float(self) -> bool:
        """float16 or bfloat16: stored narrow, computed in float32 (see `in_float32`)."""
        return self.kind == "f" and self.np.itemsize == 2

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
float16 = DType("float16", "f16", np.dtype(np.float16))
int8 = DType("int8", "i8", np.dtype(np.int8))
uint8 = DType("uint8", "ui8", np.dtype(np.uint8))
int32 = DType("int32", "i32", np.dtype(np.int32))
int64 = DType("int64", "i64", np.dtype(np.int64))
bool_ = DType("bool", "i1", np.dtype(np.bool_))

BFLOAT16_PACKAGE = "ml_dtypes"  # NumPy has no bfloat16; JAX's ml_dtypes gives it one


@dataclass(frozen=True)
class UnavailableDType:
    """A dtype whose NumPy type comes from a package that is not installed: naming it is
    fine, using it (as_dtype, so every op and tensor factory) says what to install."""

    name: str
    package: str

    def error(self) -> DTypeError:
        return DTypeError(
            f"gj.{self.name} needs the '{self.package}' package: pip install {self.package} "
            f"(or graphjit[dtypes])",
            location=user_location(),
        )

    def __repr__(self) -> str:
        return f"gj.{self.name} (unavailable: needs {self.package})"


class _Bfloat16(DType):
    """gj.bfloat16, whose NumPy type (ml_dtypes') is imported when first needed: `.np`
    asked for, or an array of it met (`as_dtype`, `np_kind`). ml_dtypes 0.7 takes 0.55 s
    to import (0.06 s for 0.5), half of `import graphjit`, for a dtype most programs never
    use. One instance: equal to itself only, hashed by name (neither imports anything),
    and pickled as that instance."""

    def __init__(self):
        object.__setattr__(self, "name", "bfloat16")
        object.__setattr__(self, "short", "bf16")

    def __getattr__(self, attribute: str):  # (only for attributes not yet set: `np`)
        if attribute != "np":
            raise AttributeError(attribute)
        try:
            import ml_dtypes
        except ImportError:
            raise UnavailableDType(self.name, BFLOAT16_PACKAGE).error() from None
        value = np.dtype(ml_dtypes.bfloat16)
        object.__setattr__(self, "np", value)
        _NARROW_NP.add(value)
        BY_NP[value] = self
        return value

    def __eq__(self, other) -> bool:
        return other is self

    def __hash__(self) -> int:
        return hash(self.name)

    def __reduce__(self):
        return "bfloat16"  # (this module's global of that name)


def _ml_dtypes_array(npdtype: np.dtype) -> bool:
    """Is it bfloat16's dtype, ml_dtypes imported by whoever made the array? (Resolves
    gj.bfloat16's, which registers it in the tables below.)"""
    if npdtype.kind != "V" or isinstance(bfloat16, UnavailableDType):
        return False
    return "ml_dtypes" in sys.modules and npdtype == bfloat16.np


if importlib.util.find_spec(BFLOAT16_PACKAGE) is not None:
    bfloat16 = _Bfloat16()
else:  # optional: graphjit works without it, gj.bfloat16 says what is missing
    bfloat16 = UnavailableDType("bfloat16", BFLOAT16_PACKAGE)

_DTYPES = (float32, float64, float16, int8, uint8, int32, int64, bool_)
ALL_DTYPES = _DTYPES + ((bfloat16,) if isinstance(bfloat16, DType) else ())
NARROW_FLOATS = (float16,) + ALL_DTYPES[len(_DTYPES) :]  # 16-bit floats: float32 compute
# bfloat16's NumPy dtype joins these when ml_dtypes is imported (_Bfloat16)
_NARROW_NP = {float16.np}
NARROW_NP = _NARROW_NP  # (their NumPy dtypes, for eager's per-op check)
_BY_NAME = {d.name: d for d in ALL_DTYPES} | {"bool_": bool_}
_BY_SHORT = {d.short: d for d in ALL_DTYPES}
BY_NP = {d.np: d for d in _DTYPES}  # NumPy dtype -> graphjit's
if "ml_dtypes" in sys.modules and isinstance(bfloat16, DType):
    bfloat16.np  # noqa: B018 (already imported by whoever came first: register it now)


def np_kind(npdtype: np.dtype) -> str:
    """NumPy's kind letter of a NumPy dtype, "f" for bfloat16 too (NumPy says "V")."""
    kind = npdtype.kind
    if kind == "V" and (npdtype in _NARROW_NP or _ml_dtypes_array(npdtype)):
        return "f"
    return kind


def is_narrow_float_array(array) -> bool:
    return getattr(array, "dtype", None) in _NARROW_NP


def is_float_array(array) -> bool:
    """A NumPy array (or scalar) of a floating-point dtype, bfloat16 included."""
    return array.dtype.kind == "f" or array.dtype in _NARROW_NP


def computes_in_float32(kernel):
    """A reference kernel that, given float16/bfloat16 operands, computes in float32 and
    rounds each floating-point result once to the narrow dtype: what NumPy's float16 and
    ml_dtypes' bfloat16 loops do for one elementwise op, and what PyTorch does for a
    reduction or a matmul (float32 accumulation, one rounding at the end; NumPy's own
    float16 sum rounds between blocks instead). Other operands pass unchanged."""

    def run(*arrays, **attrs):
        for a in arrays:  # (a loop, not next() over a generator: every eager op runs this)
            narrow = getattr(a, "dtype", None)
            if narrow in _NARROW_NP:
                break
        else:
            return kernel(*arrays, **attrs)
        wide = [a.astype(np.float32) if is_narrow_float_array(a) else a for a in arrays]
        out = kernel(*wide, **attrs)
        if isinstance(out, tuple):
            return tuple(_round_float(o, narrow) for o in out)
        return _round_float(out, narrow)

    run.__name__ = getattr(kernel, "__name__", "kernel")
    run.float_kernel = kernel  # (for callers that know no operand is a narrow float)
    run.__wrapped__ = kernel
    return run


def _round_float(out, narrow: np.dtype):
    out = np.asarray(out)
    return out.astype(narrow) if out.dtype.kind == "f" else out


def as_dtype(x) -> DType:
    """Accept a DType, a NumPy dtype or scalar type, or a name such as "float32"."""
    if isinstance(x, DType):
        return x
    if isinstance(x, UnavailableDType) or (isinstance(x, str) and x == bfloat16.name):
        if isinstance(bfloat16, UnavailableDType):
            raise bfloat16.error()
    if isinstance(x, str) and x in _BY_NAME:
        return _BY_NAME[x]
    try:
        npd = np.dtype(x)
    except (TypeError, ValueError, SyntaxError) as e:  # np.dtype(",x") is a SyntaxError
        raise DTypeError(f"not a dtype: {x!r}", location=user_location()) from e
    if npd in BY_NP or _ml_dtypes_array(npd):
        return BY_NP[npd]
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


def ieee_results(fn, *args, **kwargs):
    """fn(*args, **kwargs), with IEEE results whatever NumPy's floating-point error
    handling: a NumPy warning (x / 0, exp(1000), overflow in a cast) made an error by the
    user's warning filters (`-W error`, pytest's `filterwarnings = error`) or np.seterr is
    not one here -- compiled code, the interpreter and PyTorch give inf and NaN. fn runs
    again under np.errstate(all="ignore") only then: the context costs ~0.9 us, more than
    half of an eager op. (NumPy warns after the operation, so fn must be one that running
    twice does not repeat: no update in place.)"""
    try:
        return fn(*args, **kwargs)
    except (RuntimeWarning, FloatingPointError):
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)


def array_of(data, dtype: DType, copy: bool = True) -> np.ndarray:
    """`data` as an array of `dtype` (a copy unless `copy` is False and `data` is already
    one), refusing integers that do not fit it instead of wrapping them."""
    try:
        raw = data if isinstance(data, np.ndarray) else np.array(data)
        bad = integer_out_of_range(raw, dtype.np)
        if is_float_array(raw) and dtype.np.kind in "iu" and not np.isfinite(raw).all():
            bad = raw[~np.isfinite(raw)].flat[0]  # (a cast would make it the minimum)
        if bad is None:
            return ieee_results(raw.astype, dtype.np, copy=copy)  # (1e40 as float32: inf)
    except (TypeError, ValueError, OverflowError) as e:
        raise DTypeError(f"cannot make {dtype.name} values of {_short(data)}: {e}") from None
    info = np.iinfo(dtype.np)
    raise DTypeError(
        f"{bad} does not fit {dtype.name}: its values must lie in [{info.min}, {info.max}]"
    )


def exact_array_of(data, dtype: DType) -> np.ndarray:
    """`array_of(data, dtype)`, refusing also floats that an integer (or boolean) dtype
    cannot hold exactly (2.5 for int32) and non-boolean values for bool, where a cast
    would truncate: for values that must keep their meaning (an assign to a variable)."""
    array = array_of(data, dtype)
    raw = np.asarray(data)
    if raw.dtype.kind in "fc" and dtype.np.kind in "iub":
        inexact = raw != array
        if np.any(inexact):
            bad = raw[inexact].flat[0]
            raise DTypeError(f"{bad} is not exactly a {dtype.name} (cast it to say how to round)")
    if raw.dtype.kind in "iu" and dtype.np.kind == "b" and np.any((raw != 0) & (raw != 1)):
        raise DTypeError(f"{raw[(raw != 0) & (raw != 1)].flat[0]} is not a bool (0 or 1)")
    return array


def number_array(value, dtype) -> np.ndarray | None:
    """A Python float, int or bool as a 0-d array of NumPy `dtype`, as NumPy converts a
    0-d array of it (`np.asarray(value).astype(dtype)`: an int through int64), by the
    shortest way -- for the numbers fed on every call (Session feeds, gj.function's traced
    numbers); None where the caller's general path must decide (an int outside an integer
    dtype's range or int64's, a float for a non-float dtype), which it may refuse."""
    kind = type(value)
    if kind is bool:
        return np.array(value, dtype)
    if kind is float:
        return np.array(value, dtype) if np.dtype(dtype).kind in "fc" else None
    if kind is int:
        low, high, exact = _int_range(dtype)
        if low <= value <= high:
            return np.array(value, dtype) if exact else np.array(value, np.int64).astype(dtype)
    return None


@functools.cache
def _int_range(dtype) -> tuple[int, int, bool]:
    """The ints `number_array` converts to `dtype`: an integer dtype's range, directly;
    int64's for a float or complex one (NumPy makes such an int an int64 array first);
    none for others."""
    kind = np.dtype(dtype).kind
    if kind in "iu":
        info = np.iinfo(dtype)
        return int(info.min), int(info.max), True
    if kind in "fc":
        return -(2**63), 2**63 - 1, False
    return 1, 0, False


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
    """`shape` None is an unknown rank (TF1's `placeholder(dtype)`, MLIR's `tensor<*xf32>`):
    the Session learns it from the feed, like an unknown dimension."""

    shape: Shape | None
    dtype: DType

    def __post_init__(self):
        if self.shape is not None:
            dims = tuple(d if d is None or isinstance(d, SymInt) else int(d) for d in self.shape)
            object.__setattr__(self, "shape", dims)

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def is_ranked(self) -> bool:
        return self.shape is not None

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(d is not None for d in self.shape)

    @property
    def size(self) -> int | None:
        return math.prod(self.shape) if self.is_static else None  # exact: no int64 overflow

    def with_shape(self, shape) -> TensorType:
        return TensorType(tuple(shape), self.dtype)

    def __call__(self, *args, **kwargs):
        """PyTorch's `x.type(dtype)` reaches here: say what to write instead."""
        raise DTypeError(
            f"x.type is graphjit's type of the tensor ({self}), not PyTorch's cast method: "
            "write x.to(dtype) (or x.float(), x.double(), x.int(), x.long(), x.bool())",
            location=user_location(),
        )

    def with_dtype(self, dtype) -> TensorType:
        return TensorType(self.shape, as_dtype(dtype))

    def __str__(self) -> str:
        if self.shape is None:
            return f"tensor<*x{self.dtype.short}>"
        dims = "".join(("?" if d is None or is_symbolic(d) else str(d)) + "x" for d in self.shape)
        return f"tensor<{dims}{self.dtype.short}>"


@dataclass(frozen=True)
class ListType:
    """A growable list of tensors of one type (value semantics); used by loop gradients."""

    elem: TensorType

    def __str__(self) -> str:
        return f"!gj.list<{self.elem}>"  # (as the printer writes it: an MLIR dialect type)


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
    """A shape for an error message: a size of the run as the size fed (its hint, with no
    guard: a message formatted in case it is needed must not pin the compile)."""
    return "(" + ", ".join("?" if d is None else str(hint(d)) for d in shape) + ")"

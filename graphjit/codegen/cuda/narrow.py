"""float16 and bfloat16 in generated kernels: stored in 16 bits, computed in float32.

A kernel parameter of a narrow dtype is an array of its 16-bit storage: Numba's float16
for float16, uint16 for bfloat16 (Numba has no bfloat16 type: the host passes and receives
`.view(np.uint16)` of ml_dtypes' arrays). A load widens an element to float32 exactly;
each op computes in float32 and its result is rounded once to the narrow type, kept in a
float32 register (`rounded`); reductions, matmuls and convolutions accumulate in float32;
a store rounds to nearest, ties to even. That is the interpreter's rule (ir/types.py
`computes_in_float32`), so results agree with it bit for bit where it computes the same
float32 values.

float16 conversions are Numba's casts (cvt.f32.f16 and cvt.rn.f16.f32/f64 on the GPU,
NumPy's in the simulator). bfloat16 ones are integer arithmetic on float32's bits, read and
written with libdevice's float_as_int/int_as_float (a register move on the GPU; NumPy views
in the simulator, simulator.py), as ml_dtypes rounds: add 0x7FFF plus the kept lowest bit
and drop the low half (overflow carries into infinity, subnormals round alike); a NaN
keeps its sign and top payload and is made quiet. All integers are int64 (masked to 32
bits), so the simulator's NumPy scalars and the GPU compute the same bits.

Every template takes `{0}` several times: give it a name, a literal or an array element,
not a computation."""

from __future__ import annotations

from dataclasses import dataclass

from graphjit.ir.types import DType

# the float32 bits of float32 {0}, as an int64 in [0, 2**32)
_BITS = "(int64(libdevice.float_as_int({0})) & 0xFFFFFFFF)"
_IS_NAN = "(int64(libdevice.float_as_int({0})) & 0x7FFFFFFF) > 0x7F800000"
# bfloat16 bits nearest float32 {0}: NaN -> quiet NaN, else round half to even
_TO_BFLOAT16 = (
    f"uint16((({_BITS} >> 16) | 0x40) if {_IS_NAN} "
    f"else (({_BITS} + 0x7FFF + (({_BITS} >> 16) & 1)) >> 16))"
)
# bfloat16 bits {0} -> float32: the top half (sign-extended first, so the int32 is in range)
_FROM_BFLOAT16 = "libdevice.int_as_float(int32(((int64({0}) ^ 0x8000) - 0x8000) << 16))"
# float64 {0} -> float32 rounded to odd: truncated towards zero, lowest bit set when inexact.
# Rounding that to bfloat16 is the correctly rounded float64 -> bfloat16 (NumPy/ml_dtypes'),
# where float64 -> float32 -> bfloat16, two roundings to nearest, could land on a false tie.
_F32 = "float32({0})"
_SIGNED = f"int64(libdevice.float_as_int({_F32}))"
_TOWARDS_ZERO = f"({_SIGNED} - (1 if abs(float64({_F32})) > abs({{0}}) else 0))"
_ROUND_TO_ODD = (
    f"(libdevice.int_as_float(int32({_TOWARDS_ZERO} | 1)) "
    f"if float64({_F32}) != {{0}} and {{0}} == {{0}} else {_F32})"
)


@dataclass(frozen=True)
class NarrowFormat:
    """How kernels hold one narrow dtype. Templates: `widen` a stored element {0} to
    float32; `narrow` float32 {0} to the nearest stored element; `from_float64` float64 {0}
    to a float32 whose rounding to the narrow type is {0}'s correct rounding."""

    widen: str
    narrow: str
    from_float64: str

    def rounded(self, x: str) -> str:
        """float32 {0} rounded to the narrow type, as a float32."""
        return self.widen.format(self.narrow.format(x))


# dtype name -> its format (the storage types are source.py's NUMBA_TYPES)
FORMATS = {
    "float16": NarrowFormat("float32({0})", "float16({0})", "float16({0})"),
    "bfloat16": NarrowFormat(_FROM_BFLOAT16, _TO_BFLOAT16, _ROUND_TO_ODD),
}


def narrow_format(dtype: DType) -> NarrowFormat | None:
    return FORMATS.get(dtype.name)


def load(element: str, dtype: DType) -> str:
    """A stored element of `dtype` as its register value (a narrow float widened)."""
    fmt = narrow_format(dtype)
    return element if fmt is None else fmt.widen.format(element)


def store(value: str, dtype: DType) -> str:
    """Register value `value` (a name, literal or element) as a stored element of `dtype`."""
    fmt = narrow_format(dtype)
    return value if fmt is None else fmt.narrow.format(value)


def rounded(value: str, dtype: DType) -> str:
    """Register value `value` (a name) rounded to `dtype`'s precision (unchanged but for a
    narrow float)."""
    fmt = narrow_format(dtype)
    return value if fmt is None else fmt.rounded(value)

"""graphjit's own transcendental functions in `arith`, for the IREE backend where IREE's
are wrong or missing (measured with IREE 3.x on llvm-cpu against NumPy):

- sin and cos in every float type: IREE's float32 polynomial reduces its argument by
  pi/2 in too few bits (sin(88) off by 7e-5 relative, sin(1e6) by 7%, sin(1e10) =
  -6e21, sin(1e20) = -inf), and it links no float64 sin or cos at all;
- float64 tanh and erf: not linked either;
- float64 expm1 and log1p: computed as exp(x) - 1 and log(1 + x), so that
  log1p(1e-30) = 0 and expm1(1e-8) is off by 6e-9 relative;
- pow: 0**0 = NaN, 1**inf = NaN, (-0)**3 = +0, and float32 results up to 8M ulp off
  (68% of random ones not correctly rounded);
- float floor_divide and floor_mod, exported as floor(x / y) and x - floor(x / y) y:
  off where x / y rounds to an integer or underflows, or y is infinite (mlir/scalar.py
  writes NumPy's exact forms where OWN_MATH asks; float64 fmod without libm).

IREE's other functions (float32 exp, log, tanh, erf, ...) are within a few ulp and stay
IREE's. `OWN_MATH` lists the (function, dtype) pairs this module writes; the IREE runner
has the exporter use it (`Writer(own_math=OWN_MATH)`), while `gj.mlir.export` keeps
the `math` dialect's ops, which other MLIR compilers implement themselves.

These are the llvm backend's own bodies (codegen/llvm/mathlib.py), run here through
`TextBuilder`, which writes MLIR for the part of llvmlite's IRBuilder they use: one
algorithm, the same results on both backends. Where llvm's sin and cos call libm (|x|
beyond 2^24 in float, 2^30 in double), IREE has no libm: those arguments take Payne and
Hanek's reduction by pi/2 here (as libm does), from a table of 2/pi's bits, in
double-double. A table lookup in every element is several times slower, so the op's
emitter (emitters.emit_sin_cos) runs that version only when the tensor holds such an
argument."""

from __future__ import annotations

import dataclasses
import functools
import math
from fractions import Fraction

import numpy as np

from graphjit.codegen.llvm import mathlib
from graphjit.ir.types import float16, float32, float64
from graphjit.mlir.writer import element_type

OWN_MATH = frozenset(
    [
        (name, dtype)
        for name in ("sin", "cos", "pow", "floor_divide", "floor_mod")
        for dtype in ("float16", "float32", "float64")
    ]
    + [(name, "float64") for name in ("tanh", "erf", "expm1", "log1p")]
)


def power(w, x: str, y: str, dtype) -> str:
    """x**y of float `dtype`, with C99's special cases (IREE's math.powf gives 0**0 = NaN,
    1**inf = NaN and +0 for (-0)**3). float32 (and float16, computed in it) is the llvm
    backend's pow32, within 1 ulp; float64 keeps IREE's powf for |x|**y, which the llvm
    backend takes from libm, and adds the special cases (mathlib.pow_cases)."""
    if dtype == float16:
        wide = [w.op(f"arith.extf {v} : f16 to f32") for v in (x, y)]
        return w.op(f"arith.truncf {power(w, *wide, float32)} : f32 to f16")
    e = _emitter(w, dtype)
    e.b.types.update({x: e.f.ty, y: e.f.ty})
    if dtype == float32:
        return mathlib.pow32(e, x, y)
    magnitude = e.b._op(f"math.powf {e.fabs(x)}, {y} : f64", "f64")
    return mathlib.pow_cases(e, x, y, magnitude, 2.0**53)


def emit(w, name: str, x: str, dtype) -> str:
    """`name(x)` for a scalar `x` of float `dtype`, written in `arith` (see OWN_MATH);
    valid for every argument."""
    if name in ("sin", "cos"):
        return sin_cos(w, x, dtype, name == "cos", near_only=False)
    e = _emitter(w, dtype)
    e.b.types[x] = e.f.ty
    return mathlib.BODIES[name](e, x)


# ---- MLIR text through mathlib's builder interface ----------------------------------------

_CMP = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}


class TextBuilder:
    """The llvmlite IRBuilder methods that mathlib's bodies call, writing `arith` ops
    through the export's Writer. Values are SSA names; `types` gives each one's MLIR
    type (floats keep their operands' type, integer ops theirs, comparisons i1)."""

    def __init__(self, w):
        self.w = w
        self.types: dict[str, str] = {}

    def _op(self, text: str, ty: str) -> str:
        name = self.w.op(text)
        self.types[name] = ty
        return name

    def _binary(self, op: str, a: str, b: str) -> str:
        ty = self.types[a]
        return self._op(f"arith.{op} {a}, {b} : {ty}", ty)

    def fpext(self, a, ty: str):
        return self._op(f"arith.extf {a} : {self.types[a]} to {ty}", ty)

    def fptrunc(self, a, ty: str):
        return self._op(f"arith.truncf {a} : {self.types[a]} to {ty}", ty)

    def fneg(self, a):
        return self._op(f"arith.negf {a} : {self.types[a]}", self.types[a])

    def not_(self, a):
        return self._op(f"arith.xori {a}, {self._op('arith.constant true', 'i1')} : i1", "i1")

    def fptosi(self, a, ty: str):
        return self._op(f"arith.fptosi {a} : {self.types[a]} to {ty}", ty)

    def sitofp(self, a, ty: str):
        return self._op(f"arith.sitofp {a} : {self.types[a]} to {ty}", ty)

    def bitcast(self, a, ty: str):
        return self._op(f"arith.bitcast {a} : {self.types[a]} to {ty}", ty)

    def icmp_signed(self, op, a, b):
        return self._op(f"arith.cmpi s{_CMP[op]}, {a}, {b} : {self.types[a]}", "i1")

    def icmp_unsigned(self, op, a, b):
        pred = _CMP[op] if op in ("==", "!=") else "u" + _CMP[op]
        return self._op(f"arith.cmpi {pred}, {a}, {b} : {self.types[a]}", "i1")

    def fcmp_ordered(self, op, a, b):
        return self._op(f"arith.cmpf o{_CMP[op]}, {a}, {b} : {self.types[a]}", "i1")

    def fcmp_unordered(self, op, a, b):
        pred = "uno" if op == "uno" else "u" + _CMP[op]
        return self._op(f"arith.cmpf {pred}, {a}, {b} : {self.types[a]}", "i1")

    def select(self, cond, a, b):
        ty = self.types[a]
        return self._op(f"arith.select {cond}, {a}, {b} : {ty}", ty)


# IRBuilder's two-operand methods -> the arith op with the same operands and type
_BINARY = {
    "fadd": "addf",
    "fsub": "subf",
    "fmul": "mulf",
    "fdiv": "divf",
    "add": "addi",
    "sub": "subi",
    "and_": "andi",
    "or_": "ori",
    "shl": "shli",
    "lshr": "shrui",
    "ashr": "shrsi",
}
for _method, _op in _BINARY.items():
    setattr(TextBuilder, _method, lambda self, a, b, op=_op: self._binary(op, a, b))


class TextEmitter(mathlib.Emitter):
    """mathlib's emitter helpers on a TextBuilder: constants as `arith.constant`, fused
    multiply-adds as `math.fma` (one rounding, as llvm.fma)."""

    def c(self, value: float) -> str:
        name = self.b.w.scalar(value, _DTYPES[self.f.ty])
        self.b.types[name] = self.f.ty
        return name

    def ci(self, value: int) -> str:
        bits = self.f.bits
        value = (value + 2 ** (bits - 1)) % 2**bits - 2 ** (bits - 1)  # (as signed)
        name = self.b.w.op(f"arith.constant {value} : {self.f.ity}", "c")
        self.b.types[name] = self.f.ity
        return name

    def fma(self, a, b, c, intrinsic: str = "llvm.fma"):
        return self._math("fma", f"{a}, {b}, {c}")

    def roundeven(self, x):
        return self._math("roundeven", x)

    def widened(self, fmt=None) -> TextEmitter:
        return TextEmitter(self.b, _FORMATS["f64"] if fmt is None else _text_types(fmt))

    def _math(self, op: str, operands: str) -> str:
        return self.b._op(f"math.{op} {operands} : {self.f.ty}", self.f.ty)


def _text_types(fmt):
    """A mathlib format with MLIR's type names in place of llvmlite's types."""
    if fmt.mant == mathlib.FLOAT.mant:
        return dataclasses.replace(fmt, ty="f32", ity="i32")
    return dataclasses.replace(fmt, ty="f64", ity="i64")


_FORMATS = {"f32": _text_types(mathlib.FLOAT), "f64": _text_types(mathlib.DOUBLE)}
_DTYPES = {"f32": float32, "f64": float64}


def _emitter(w, dtype) -> TextEmitter:
    return TextEmitter(TextBuilder(w), _FORMATS[element_type(dtype)])


# ---- sin and cos ---------------------------------------------------------------------------

# Up to this |x| the reduction in mathlib holds (in float, sincos32_reduced; in double,
# sincos64_reduced); beyond it only the table's does. float16 never goes beyond.
NEAR_MAX = {
    "float16": math.inf,
    "float32": mathlib.SINCOS32_REDUCED_MAX,
    "float64": mathlib.SINCOS64_REDUCED_MAX,
}


def is_near(w, x: str, dtype) -> str:
    """i1: whether mathlib's reduction holds for `x` (NaN included, infinities not; every
    float16)."""
    if dtype == float16:
        return w.op("arith.constant true")
    e = _emitter(w, dtype)
    e.b.types[x] = e.f.ty
    return e.b.fcmp_unordered("<=", e.fabs(x), e.c(NEAR_MAX[dtype.name]))


def sin_cos(w, x: str, dtype, cosine: bool, near_only: bool) -> str:
    """sin x or cos x of float `dtype`, within 1 ulp, as the llvm backend computes them
    (the same bits where mathlib's reduction holds): for every argument, or with
    `near_only` for those `is_near` holds for (garbage elsewhere), vectorisable. Beyond,
    float64 values take Payne and Hanek's reduction (_reduce_far), float32 ones too
    (widened, then rounded once); float16 is computed in float32."""
    if dtype == float16:
        wide = w.op(f"arith.extf {x} : f16 to f32")
        return w.op(f"arith.truncf {sin_cos(w, wide, float32, cosine, True)} : f32 to f16")
    e = _emitter(w, dtype)
    e.b.types[x] = e.f.ty
    reduced = mathlib.sincos32_reduced if dtype == float32 else mathlib.sincos64_reduced
    value = reduced(e, x, int(cosine))
    if near_only:
        return value
    wide = e.widened()
    xd = x if dtype == float64 else e.b.fpext(x, "f64")
    far = _sin_cos_far(wide, xd, cosine)
    far = far if dtype == float64 else e.b.fptrunc(far, "f32")
    return e.b.select(is_near(w, x, dtype), value, far)


def _sin_cos_far(e, x, cosine: bool):
    """sin x or cos x for a finite float64 |x| >= 1/2 through the table (NaN for
    infinities): (hi, lo) and the quadrant of |x|, negated for a negative x, into
    mathlib's kernels."""
    b = e.b
    k, hi, lo = _reduce_far(e, e.fabs(x))
    negative = e.cmp("<", x, e.c(0.0))
    k = b.select(negative, b.fneg(k), k)
    hi, lo = b.select(negative, b.fneg(hi), hi), b.select(negative, b.fneg(lo), lo)
    magic = e.shifter()  # k in [-2, 2]: its integer is the low bits of k + magic
    quadrant = b.sub(e.bits(b.fadd(k, e.c(magic))), e.ci(e.const_bits(magic)))
    quadrant = b.add(quadrant, e.ci(int(cosine)))
    value = mathlib.sincos64_kernels(e, quadrant, hi, lo, None if cosine else x)
    finite = e.cmp("<", e.fabs(x), e.c(math.inf))
    return b.select(finite, value, b.fsub(x, x))


def _pi_bits(bits: int) -> int:
    """floor(pi * 2^bits), by Machin's formula pi = 16 atan(1/5) - 4 atan(1/239) in integer
    arithmetic with 32 guard bits (each truncated term is off by less than one unit)."""
    scale = 1 << (bits + 32)

    def atan_inverse(n: int) -> int:
        total, power, k, sign = 0, scale // n, 1, 1
        while power:
            total += sign * (power // k)
            power //= n * n
            k, sign = k + 2, -sign
        return total

    return (16 * atan_inverse(5) - 4 * atan_inverse(239)) >> 32


# Payne and Hanek's table: row i holds (2^s * 2/pi) mod 4 for s = i + _TABLE_FIRST as four
# doubles, each the nearest to what the ones before leave: ~2^-210 of it. A double
# |x| >= 1/2 is M * 2^s with an integer M < 2^53 and s >= -53.
_TABLE_FIRST, _TABLE_ROWS = -53, 1025  # s = -53 ... 971 (the largest double's)
_PRECISION = 1400  # bits of 2/pi below the binary point: beyond 971 + 4 * 53 + 53


@functools.cache
def _reduction_table() -> np.ndarray:
    precision = _PRECISION + 64
    two_over_pi = (1 << (2 * precision + 1)) // _pi_bits(precision)  # 2/pi * 2^precision
    rows = np.empty((_TABLE_ROWS, 4))
    for i in range(_TABLE_ROWS):
        s = i + _TABLE_FIRST
        scaled = (two_over_pi << (s - _TABLE_FIRST)) % (4 << (precision - _TABLE_FIRST))
        rest = Fraction(scaled, 1 << (precision - _TABLE_FIRST))
        for j in range(4):
            rows[i, j] = float(rest)
            rest -= Fraction(rows[i, j])
    return rows


_PI_2_HI, _PI_2_LO = mathlib.HALF_PI[:2]  # pi/2 to ~2^-107 (the third part is not needed)


def _reduce_far(e, ax):
    """ax = (4j + k) pi/2 + (hi + lo) for an integer j, k in [-2, 2] (a double) and
    |hi + lo| <~ pi/4, with ~2^-150 absolute error in units of pi/2 (enough for the
    doubles nearest a multiple of pi/2: their r is ~2^-61). ax 2/pi mod 4 is
    M (T0 + T1 + T2 + T3) from the table row of ax = M 2^s: exact products, the integer
    part taken out while the terms are still exact, the small terms summed in
    double-double before the cancelling sum."""
    b = e.b
    (t0, t1, t2, t3), m = _table_row(e, ax)
    p0, e0 = mathlib.two_product(e, m, t0)
    p1, e1 = mathlib.two_product(e, m, t1)
    p2, e2 = mathlib.two_product(e, m, t2)
    p3 = b.fmul(m, t3)
    a, a_err = mathlib.two_sum(e, _centred_mod4(e, p0), e0)
    c, c_err = mathlib.two_sum(e, _centred_mod4(e, a), p1)
    c = _centred_mod4(e, c)
    k = e.roundeven(c)
    small, small_lo = p2, e.c(0.0)
    for term in (e1, a_err, c_err, e2, p3):
        small, err = mathlib.two_sum(e, small, term)
        small_lo = b.fadd(small_lo, err)
    hi, lo = mathlib.two_sum(e, b.fsub(c, k), small)  # (c - k exact: within 1/2)
    hi, lo = mathlib.two_sum(e, hi, b.fadd(lo, small_lo))
    r = b.fmul(hi, e.c(_PI_2_HI))  # (hi + lo) pi/2 in double-double
    r_lo = e.fma(hi, e.c(_PI_2_HI), b.fneg(r))
    r_lo = b.fadd(r_lo, e.fma(hi, e.c(_PI_2_LO), b.fmul(lo, e.c(_PI_2_HI))))
    return k, *mathlib.two_sum(e, r, r_lo)


def _centred_mod4(e, v):
    """v - 4 round(v/4), in [-2, 2]: exact (Sterbenz) for every double v."""
    quarter = e.roundeven(e.b.fmul(v, e.c(0.25)))
    return e.fma(quarter, e.c(-4.0), v)


def _table_row(e, ax):
    """The four parts of (2^s * 2/pi) mod 4 for ax = M * 2^s, and M as a double. Lanes
    below 1/2 (not reduced) and beyond the largest double read the first or last row."""
    b, w = e.b, e.b.w
    exponent = b.lshr(e.bits(ax), e.ci(52))
    row = b.sub(exponent, e.ci(1022))  # 1/2 <= ax < 1: s = -53, row 0
    row = b.select(b.icmp_signed("<", row, e.ci(0)), e.ci(0), row)
    row = b.select(b.icmp_signed(">", row, e.ci(_TABLE_ROWS - 1)), e.ci(_TABLE_ROWS - 1), row)
    index = w.op(f"arith.index_cast {row} : i64 to index")
    table_type = f"tensor<{_TABLE_ROWS}x4xf64>"
    table = w.op(f"arith.constant dense<{_hex(_reduction_table())}> : {table_type}")
    parts = []
    for j in range(4):
        part = w.op(f"tensor.extract {table}[{index}, {w.index(j)}] : {table_type}")
        b.types[part] = "f64"
        parts.append(part)
    # M = ax / 2^s = ax * 2^(1075 - exponent): a power of two in range, so exact
    m = b.fmul(ax, e.pow2(b.sub(e.ci(1075), exponent)))
    return parts, m


def _hex(table: np.ndarray) -> str:
    """A dense hex literal of float64 values (exact)."""
    return '"0x' + np.ascontiguousarray(table, dtype="<f8").tobytes().hex().upper() + '"'

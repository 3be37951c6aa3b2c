"""Vectorisable transcendental functions for the LLVM backend, in float and double.

`emit_math(builder, name, x)` computes `name(x)` for a scalar float/double `x`. Each
function is straight-line IR -- floating-point arithmetic, `fcmp`/`select`, bitcasts and
integer operations on the bit pattern, `llvm.fmuladd` -- with no libm call, loop or
branch, so once it is inlined into a kernel's loop body LLVM's loop vectoriser turns the
whole loop into SIMD code. It is emitted once per (function, type) and module as an
`internal alwaysinline` function, which the O3 pipeline inlines before vectorising; a
kernel with many calls calls it out of line instead, through vector variants of the same
body (OUT_OF_LINE_CALLS, below), which compiles several times faster. One exception:
sin and cos branch to libm for the rare lanes their reduction cannot handle (|x| beyond
2^24 in float, 2^30 in double), so they are always called through their vector variants
(BRANCHING). The IREE backend runs the same bodies, written as MLIR (mlir/own_math.py),
where IREE's own functions are wrong or missing.

Accuracy (measured against NumPy in tests/codegen/test_mathlib.py): a few ulp at most,
with IEEE special values (NaN in, NaN out; signed zeros; infinities; overflow to inf,
underflow to 0 through correctly rounded subnormals; subnormal inputs to log). No
fast-math flags are used, so LLVM may not reassociate away the rounding tricks below.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from dataclasses import dataclass

from llvmlite import ir

MATH_FUNCTIONS = ("exp", "expm1", "log", "log1p", "tanh", "sigmoid", "erf", "sin", "cos")
# Bodies with a branch (to libm for some lanes): a loop vectorises only around a call of
# their vector variants, never around the inlined body, so they are always out of line.
BRANCHING = frozenset({"sin", "cos"})

_LOG2E = 1.0 / math.log(2.0)


@dataclass(frozen=True)
class _Format:
    """Per-type constants. Polynomial coefficients are listed highest degree first."""

    ty: ir.Type
    ity: ir.IntType
    suffix: str
    mant: int  # explicit mantissa bits
    bias: int  # exponent bias
    # exp clamp: below exp_lo the result rounds to 0, above exp_hi to inf; clamping keeps
    # k = round(x / ln 2) small enough for the 2^k scaling to stay exact.
    exp_lo: float
    exp_hi: float
    # ln 2 = ln2_hi + ln2_lo (Cody & Waite). ln2_hi has trailing zero bits, so k * ln2_hi
    # is exact for every k reachable here, and x - k * ln2_hi is exact (Sterbenz).
    ln2_hi: float
    ln2_lo: float
    # expm1(r) ~ r + r^2 * Q(r) on |r| <= ln2/2. In double Q is Taylor's, 1/2! + r/3! +
    # ..., whose truncation error r^14/14! at degree 13 is 4e-18 relative (0.02 ulp); in
    # float a fitted polynomial of degree 6 in all (_EXP_MINIMAX_F32).
    exp_poly: tuple
    # log: fdlibm's minimax coefficients (e_log.c Lg1..Lg7, e_logf.c Lg1..Lg4) for
    # log(1+f) - f + f^2/2 = s * (f^2/2 + R(s^2)), s = f/(2+f): R = z * odd(w) + w * even(w)
    # with z = s^2, w = z^2. Their error is below 2^-58.45 (double) and 2^-34.24 (float).
    log_odd: tuple
    log_even: tuple
    tanh_one: float  # |x| beyond which tanh(x) rounds to +-1
    lanes: int = 1  # > 1: the same format, `lanes` values at a time (vector variants)

    @property
    def bits(self) -> int:
        return self.mant + (8 if self.mant == 23 else 11) + 1

    def vector(self, lanes: int) -> _Format:
        """This format, `lanes` values in a vector."""
        return dataclasses.replace(
            self,
            ty=ir.VectorType(self.ty, lanes),
            ity=ir.VectorType(self.ity, lanes),
            suffix=f"{self.suffix}.v{lanes}",
            lanes=lanes,
        )


def _taylor(degree: int) -> tuple:
    """Q(r) = sum_{n=2..degree} r^(n-2) / n!, highest degree first."""
    return tuple(1.0 / math.factorial(n) for n in range(degree, 1, -1))


# Q(r) for float: fitted to (e^r - 1 - r) / r^2 on |r| <= ln2/2 (x1.001), minimising the
# largest error of r^2 Q(r), then rounded to float: 3.2e-9 relative to e^r at most (0.05
# ulp), against 5e-9 for the Taylor polynomial of one degree more.
_EXP_MINIMAX_F32 = tuple(
    float.fromhex(c) for c in ("0x1.6db4fp-10", "0x1.123be6p-7", "0x1.55545cp-5", "0x1.55548ep-3")
) + (0.5,)

FLOAT = _Format(
    ir.FloatType(),
    ir.IntType(32),
    "f32",
    23,
    127,
    -104.0,  # exp(-104) < 2^-150: rounds to 0
    89.0,  # exp(89) > 2^128: overflows
    0.693145751953125,  # 0x3f317200: 15 significant bits, exact times |k| < 2^9
    math.log(2.0) - 0.693145751953125,
    _EXP_MINIMAX_F32,
    (float.fromhex("0x91e9eep-25"), float.fromhex("0xaaaaaap-24")),  # Lg3, Lg1
    (float.fromhex("0xf89e26p-26"), float.fromhex("0xccce13p-25")),  # Lg4, Lg2
    10.0,  # 1 - tanh(10) = 4e-9 < 2^-25
)

DOUBLE = _Format(
    ir.DoubleType(),
    ir.IntType(64),
    "f64",
    52,
    1023,
    -746.0,  # exp(-746) < 2^-1075: rounds to 0
    710.0,  # exp(710) > 2^1024: overflows
    float.fromhex("0x1.62e42feep-1"),  # fdlibm ln2_hi (0x3fe62e42fee00000)
    float.fromhex("0x1.a39ef35793c76p-33"),  # fdlibm ln2_lo (0x3dea39ef35793c76)
    _taylor(13),
    (
        1.479819860511658591e-01,  # Lg7
        1.818357216161805012e-01,  # Lg5
        2.857142874366239149e-01,  # Lg3
        6.666666666666735130e-01,  # Lg1
    ),
    (
        1.531383769920937332e-01,  # Lg6
        2.222219843214978396e-01,  # Lg4
        3.999999999940941908e-01,  # Lg2
    ),
    22.0,  # 1 - tanh(22) = 1.6e-19 < 2^-54
)


class Emitter:
    """Thin helpers over an IRBuilder for one floating-point format."""

    def __init__(self, b: ir.IRBuilder, fmt: _Format):
        self.b, self.f = b, fmt

    def c(self, value: float) -> ir.Constant:
        return ir.Constant(self.f.ty, [value] * self.f.lanes if self.f.lanes > 1 else value)

    def ci(self, value: int) -> ir.Constant:
        return ir.Constant(self.f.ity, [value] * self.f.lanes if self.f.lanes > 1 else value)

    def bits(self, x):
        return self.b.bitcast(x, self.f.ity)

    def from_bits(self, i):
        return self.b.bitcast(i, self.f.ty)

    def const_bits(self, value: float) -> int:
        """The bit pattern of `value` rounded to this format."""
        if self.f.mant == 23:
            return struct.unpack("<I", struct.pack("<f", value))[0]
        return struct.unpack("<Q", struct.pack("<d", value))[0]

    def fma(self, a, b, c, intrinsic: str = "llvm.fmuladd"):
        """a*b + c, fused where the target has FMA (llvm.fmuladd), else two roundings;
        intrinsic="llvm.fma" always rounds once (a library call without FMA)."""
        ty, module = self.f.ty, self.b.module
        if self.f.lanes == 1:
            fn = module.declare_intrinsic(intrinsic, [ty], fnty=ir.FunctionType(ty, [ty, ty, ty]))
        else:  # (llvmlite names no vector intrinsic)
            name = f"{intrinsic}.v{self.f.lanes}f{self.f.bits}"
            fn = module.globals.get(name) or ir.Function(
                module, ir.FunctionType(ty, [ty, ty, ty]), name
            )
        return self.b.call(fn, [a, b, c])

    def horner(self, x, coeffs):
        acc = self.c(coeffs[0])
        for coeff in coeffs[1:]:
            acc = self.fma(acc, x, self.c(coeff))
        return acc

    def cmp(self, op: str, a, b):
        """Ordered comparison: false when either side is NaN."""
        return self.b.fcmp_ordered(op, a, b)

    def pick(self, cond, a, b):
        return self.b.select(cond, a, b)

    def fabs(self, x):
        return self.from_bits(self.b.and_(self.bits(x), self.ci((1 << (self.f.bits - 1)) - 1)))

    def with_sign_of(self, mag, x):
        """copysign(mag, x) for a non-negative `mag`: OR in x's sign bit."""
        sign = self.b.and_(self.bits(x), self.ci(1 << (self.f.bits - 1)))
        return self.from_bits(self.b.or_(self.bits(mag), sign))

    def pow2(self, k):
        """2.0^k for a normal exponent k, built in the exponent field."""
        biased = self.b.add(k, self.ci(self.f.bias))
        return self.from_bits(self.b.shl(biased, self.ci(self.f.mant)))

    def shifter(self) -> float:
        """1.5 * 2^mant: adding it rounds a small float to an integer (round to nearest
        even) and leaves that integer in the low mantissa bits; subtracting it back gives
        the integer as a float. Valid for |value| < 2^(mant-1)."""
        return 1.5 * 2.0**self.f.mant

    def widened(self, fmt: _Format | None = None) -> Emitter:
        """An emitter for double values (DOUBLE, or `fmt`, a variant of it), as many lanes
        as this one's."""
        fmt = fmt or DOUBLE
        return Emitter(self.b, fmt.vector(self.f.lanes) if self.f.lanes > 1 else fmt)

    def int_to_float(self, k):
        """sitofp for small |k| via the shifter (vectorises even without i64 -> f64)."""
        magic = self.shifter()
        t = self.from_bits(self.b.add(k, self.ci(self.const_bits(magic))))
        return self.b.fsub(t, self.c(magic))


# --- exp family --------------------------------------------------------------------


def _exp_split(e: Emitter, x, clamp: bool = True, upper: bool = True):
    """x = k ln2 + (hi - k ln2_lo): returns (k as an integer, k as a float, hi).

    x is clamped first unless the caller bounds it (NaN passes the ordered compares
    unchanged and then propagates through the arithmetic). k = round(x / ln2) comes from
    the shifter trick; hi = x - k ln2_hi is exact (Cody & Waite), so one fused multiply-add
    computes it."""
    b, f = e.b, e.f
    if clamp and upper:
        x = e.pick(e.cmp(">", x, e.c(f.exp_hi)), e.c(f.exp_hi), x)
    if clamp:
        x = e.pick(e.cmp("<", x, e.c(f.exp_lo)), e.c(f.exp_lo), x)
    magic = e.shifter()
    t = e.fma(x, e.c(_LOG2E), e.c(magic))
    kf = b.fsub(t, e.c(magic))
    k = b.sub(e.bits(t), e.ci(e.const_bits(magic)))
    return k, kf, e.fma(kf, e.c(-f.ln2_hi), x)


def _exp_reduce(e: Emitter, x, clamp: bool = True, compensated: bool = True):
    """x = k ln2 + r + c with |r| <= ln2/2 (+ rounding) and c the rounding error of r.
    Returns (k as an integer, r, tail) with expm1(r + c) ~ r + tail: r = hi - lo, and
    c = (hi - r) - lo exact (Fast2Sum), so tail = r^2 Q(r) + c (1 + r) keeps r's rounding
    error out of results near 0 (expm1). Not `compensated` (tanh, whose argument is never
    below 0): r = hi - k ln2_lo in one fused multiply-add and tail = r^2 Q(r), since c is
    0 at k = 0, where results approach 0, and worth under half an ulp beyond."""
    b, f = e.b, e.f
    k, kf, hi = _exp_split(e, x, clamp)
    if not compensated:
        r = e.fma(kf, e.c(-f.ln2_lo), hi)
        return k, r, b.fmul(b.fmul(r, r), e.horner(r, f.exp_poly))
    lo = b.fmul(kf, e.c(f.ln2_lo))
    r = b.fsub(hi, lo)
    c = b.fsub(b.fsub(hi, r), lo)
    tail = e.fma(b.fmul(r, r), e.horner(r, f.exp_poly), e.fma(c, r, c))
    return k, r, tail


def _split_pow2(e: Emitter, k):
    """(2^k1, 2^k2) with k1 + k2 = k, k1 = floor(k/2): both factors stay normal over the
    whole clamped range, where 2^k alone would overflow (k = 1024) or be subnormal."""
    k1 = e.b.ashr(k, e.ci(1))
    return e.pow2(k1), e.pow2(e.b.sub(k, k1))


def _exp(e: Emitter, x, nonpositive: bool = False):
    """exp(x) = 2^k (1 + r + r^2 Q(r)). r = hi - k ln2_lo is rounded once, by a fused
    multiply-add, and left uncompensated: its error, half an ulp of |r| <= ln2/2, moves
    the result (near 1 before scaling, unlike expm1's) by less than 0.2 ulp. (p * 2^k1) is
    exact; the final multiply rounds once, so results overflow to inf and underflow into
    correctly rounded subnormals. An argument known to be at most 0 (`nonpositive`: the
    sigmoid's) needs no upper clamp, and its 2^k <= 1 scales as 2^(k + 64) and 2^-64, both
    normal down to exp_lo: the same exact product and single rounding in half the
    instructions of the split."""
    b, f = e.b, e.f
    k, kf, hi = _exp_split(e, x, upper=not nonpositive)
    r = e.fma(kf, e.c(-f.ln2_lo), hi)
    p = b.fadd(e.c(1.0), e.fma(b.fmul(r, r), e.horner(r, f.exp_poly), r))
    if nonpositive:
        return b.fmul(b.fmul(p, e.pow2(b.add(k, e.ci(_SMALL_SCALE)))), e.c(2.0**-_SMALL_SCALE))
    s1, s2 = _split_pow2(e, k)
    return b.fmul(b.fmul(p, s1), s2)


_SMALL_SCALE = 64  # (at exp_lo, k is -150 in float, -1076 in double: k + 64 stays normal)


def _expm1_nonzero(e: Emitter, x):
    """expm1(x) = (2^k r + (2^k - 1)) + 2^k tail: 2^k r and 2^k - 1 (k <= mant + 1) are
    exact, so the leading sum rounds once and the k = +-1 cancellation costs nothing;
    k = 0 gives r + tail, accurate for tiny |x|. For larger k the -1 is below half an
    ulp and exp(x) - 1 is used, whose split scaling survives k = bias + 1."""
    k, r, tail = _exp_reduce(e, x)
    s1, s2 = _split_pow2(e, k)
    two_k = e.b.fmul(s1, s2)
    big = e.b.fmul(e.b.fmul(e.b.fadd(e.c(1.0), e.b.fadd(r, tail)), s1), s2)
    big = e.b.fsub(big, e.c(1.0))
    return e.pick(e.b.icmp_signed(">", k, e.ci(e.f.mant + 1)), big, _expm1_sum(e, two_k, r, tail))


def _expm1_sum(e: Emitter, two_k, r, tail):
    """2^k r + (2^k - 1) + 2^k tail, rounding the leading sum once (see _expm1_nonzero).
    Beyond k = mant + 1 the -1 rounds away, within half an ulp: still accurate while 2^k
    is finite, which bounded arguments guarantee (tanh)."""
    b = e.b
    return e.fma(two_k, tail, e.fma(two_k, r, b.fsub(two_k, e.c(1.0))))


def _expm1(e: Emitter, x):
    # -0 + +0 = +0 in the polynomial, so return x itself for both zeros.
    return e.pick(e.cmp("==", x, e.c(0.0)), x, _expm1_nonzero(e, x))


# --- log family --------------------------------------------------------------------


def _log_core(e: Emitter, u, correction=None):
    """log(u) for finite u > 0 (fdlibm's algorithm); other inputs give garbage that
    _log_specials overrides. `correction` (~ du/u) is added at the ln2_lo level, for
    log1p's rounding compensation.

    u = 2^k m with m in [sqrt(2)/2, sqrt(2)), found with integer ops on the bits: adding
    (1.0 - sqrt(2)/2) in bits carries into the exponent exactly when the mantissa is
    >= sqrt(2)/2's. Subnormal u is first scaled by 2^(mant+2)."""
    b, f = e.b, e.f
    scale = f.mant + 2
    tiny = e.cmp("<", u, e.c(2.0 ** (1 - f.bias)))
    u = e.pick(tiny, b.fmul(u, e.c(2.0**scale)), u)
    sqrt_half = e.const_bits(math.sqrt(0.5))
    ix = b.add(e.bits(u), e.ci(e.const_bits(1.0) - sqrt_half))
    k = b.sub(b.lshr(ix, e.ci(f.mant)), e.ci(f.bias))
    k = b.sub(k, e.pick(tiny, e.ci(scale), e.ci(0)))
    m = e.from_bits(b.add(b.and_(ix, e.ci((1 << f.mant) - 1)), e.ci(sqrt_half)))
    return _log_reduced(e, b.fsub(m, e.c(1.0)), e.int_to_float(k), correction)


def _log_reduced(e: Emitter, fm, dk, correction):
    """log(2^k (1 + fm)) = k ln2 + log1p(fm), log1p(fm) = fm - hfsq + s (hfsq + R), with
    hfsq = fm^2/2, s = fm/(2 + fm), evaluated in fdlibm's order for accuracy."""
    b, f = e.b, e.f
    s = b.fdiv(fm, b.fadd(e.c(2.0), fm))
    z = b.fmul(s, s)
    w = b.fmul(z, z)
    r = b.fadd(b.fmul(z, e.horner(w, f.log_odd)), b.fmul(w, e.horner(w, f.log_even)))
    hfsq = b.fmul(b.fmul(e.c(0.5), fm), fm)
    lo = b.fmul(dk, e.c(f.ln2_lo))
    if correction is not None:
        lo = b.fadd(lo, correction)
    acc = b.fadd(b.fmul(s, b.fadd(hfsq, r)), lo)
    acc = b.fadd(b.fsub(acc, hfsq), fm)
    return b.fadd(acc, b.fmul(dk, e.c(f.ln2_hi)))


def _log_specials(e: Emitter, u, result):
    """log(+inf) = +inf, log(+-0) = -inf, log(negative or NaN) = NaN."""
    inf = e.c(math.inf)
    result = e.pick(e.cmp("==", u, inf), inf, result)
    result = e.pick(e.cmp("==", u, e.c(0.0)), e.c(-math.inf), result)
    return e.pick(e.b.fcmp_unordered("<", u, e.c(0.0)), e.c(math.nan), result)


def _log(e: Emitter, x):
    return _log_specials(e, x, _log_core(e, x))


def _log1p(e: Emitter, x):
    """log1p(x) = log(u) + du/u with u = fl(1 + x), du = (1 + x) - u exactly: for u < 2,
    u - 1 is exact (Sterbenz); for u >= 2, x >= 1 and u - x is exact."""
    b = e.b
    one = e.c(1.0)
    u = b.fadd(one, x)
    du = e.pick(
        e.cmp("<", u, e.c(2.0)),
        b.fsub(x, b.fsub(u, one)),
        b.fsub(one, b.fsub(u, x)),
    )
    result = _log_specials(e, u, _log_core(e, u, b.fdiv(du, u)))
    return e.pick(e.cmp("==", x, e.c(0.0)), x, result)  # log1p(-0) = -0


# --- tanh, sigmoid -----------------------------------------------------------------


def _tanh(e: Emitter, x):
    """tanh|x| = expm1(2|x|) / (expm1(2|x|) + 2): both sums positive, so no cancellation
    for small |x| (the result tends to |x|, subnormals included). Saturates to 1 beyond
    tanh_one; odd symmetry by copying x's sign (tanh(-0) = -0). |x| is capped at tanh_one
    first, so 2^k stays normal and expm1 needs neither exp's clamps, nor its large-k form,
    nor its split scaling (the result past the cap is 1 anyway)."""
    b = e.b
    ax = e.fabs(x)
    one = e.f.tanh_one
    capped = e.pick(e.cmp(">", ax, e.c(one)), e.c(one), ax)  # NaN stays NaN
    k, r, tail = _exp_reduce(e, b.fmul(capped, e.c(2.0)), clamp=False, compensated=False)
    em = _expm1_sum(e, e.pow2(k), r, tail)  # (k <= 2 tanh_one / ln2: 2^k is normal)
    t = b.fdiv(em, b.fadd(em, e.c(2.0)))
    t = e.pick(e.cmp(">", ax, e.c(one)), e.c(1.0), t)
    return e.with_sign_of(t, x)


def _sigmoid(e: Emitter, x):
    """1/(1 + exp(-x)) for x >= 0, exp(x)/(1 + exp(x)) for x < 0: one exp of -|x| (never
    overflows) and one division. sigmoid(-1000) = 0, sigmoid(1000) = 1, NaN -> NaN."""
    b = e.b
    one = e.c(1.0)
    t = _exp(e, b.fneg(e.fabs(x)), nonpositive=True)
    num = e.pick(e.cmp("<", x, e.c(0.0)), t, one)
    return b.fdiv(num, b.fadd(one, t))


# --- erf ---------------------------------------------------------------------------

# fdlibm's s_erf.c coefficients (highest degree first), error below 1 ulp in double.
# [0, 0.84375): erf(x) = x + x * P(x^2) / Q(x^2)
_ERF_SMALL_P = (
    -2.37630166566501626084e-05,
    -5.77027029648944159157e-03,
    -2.84817495755985104766e-02,
    -3.25042107247001499370e-01,
    1.28379167095512558561e-01,
)
_ERF_SMALL_Q = (
    -3.96022827877536812320e-06,
    1.32494738004321644526e-04,
    5.08130628187576562776e-03,
    6.50222499887672944485e-02,
    3.97917223959155352819e-01,
    1.0,
)
# [0.84375, 1.25): erf(x) = erx + P(x - 1) / Q(x - 1), erx = (float)0.84506291151
_ERX = 8.45062911510467529297e-01
_ERF_MID_P = (
    -2.16637559486879084300e-03,
    3.54783043256182359371e-02,
    -1.10894694282396677476e-01,
    3.18346619901161753674e-01,
    -3.72207876035701323847e-01,
    4.14856118683748331666e-01,
    -2.36211856075265944077e-03,
)
_ERF_MID_Q = (
    1.19844998467991074170e-02,
    1.36370839120290507362e-02,
    1.26171219808761642112e-01,
    7.18286544141962662868e-02,
    5.40397917702171048937e-01,
    1.06420880400844228286e-01,
    1.0,
)
# [1.25, 1/0.35) and [1/0.35, 6): erfc(x) = exp(-x^2 - 0.5625 + R(1/x^2) / S(1/x^2)) / x.
# The second interval's polynomials are one degree shorter: padded with a leading 0 so
# that one Horner loop picks each coefficient per lane with a select (no branch).
_ERFC_NEAR_R = (
    -9.81432934416914548592e00,
    -8.12874355063065934246e01,
    -1.84605092906711035994e02,
    -1.62396669462573470355e02,
    -6.23753324503260060396e01,
    -1.05586262253232909814e01,
    -6.93858572707181764372e-01,
    -9.86494403484714822705e-03,
)
_ERFC_NEAR_S = (
    -6.04244152148580987438e-02,
    6.57024977031928170135e00,
    1.08635005541779435134e02,
    4.29008140027567833386e02,
    6.45387271733267880336e02,
    4.34565877475229228821e02,
    1.37657754143519042600e02,
    1.96512716674392571292e01,
    1.0,
)
_ERFC_FAR_R = (
    0.0,
    -4.83519191608651397019e02,
    -1.02509513161107724954e03,
    -6.37566443368389627722e02,
    -1.60636384855821916062e02,
    -1.77579549177547519889e01,
    -7.99283237680523006574e-01,
    -9.86494292470009928597e-03,
)
_ERFC_FAR_S = (
    0.0,
    -2.24409524465858183362e01,
    4.74528541206955367215e02,
    2.55305040643316442583e03,
    3.19985821950859553908e03,
    1.53672958608443695994e03,
    3.25792512996573918826e02,
    3.03380607434824582924e01,
    1.0,
)


def _horner_select(e: Emitter, x, cond, when_true, when_false):
    """A polynomial whose coefficients are chosen per lane: `when_true` where cond holds."""
    acc = e.pick(cond, e.c(when_true[0]), e.c(when_false[0]))
    for a, b in zip(when_true[1:], when_false[1:], strict=True):
        acc = e.fma(acc, x, e.pick(cond, e.c(a), e.c(b)))
    return acc


def _erf_tail(e: Emitter, ax):
    """erf(|x|) = 1 - erfc(|x|) for |x| in [1.25, 6). exp(-x^2) is split as fdlibm does,
    exp(-z^2 - 0.5625) * exp((z - x)(z + x) + R/S) with z = x rounded to 21 significant
    bits, so that z^2 is exact and x^2's rounding error does not reach the result."""
    b = e.b
    s = b.fdiv(e.c(1.0), b.fmul(ax, ax))
    near = e.cmp("<", ax, e.c(1 / 0.35))
    ratio = b.fdiv(
        _horner_select(e, s, near, _ERFC_NEAR_R, _ERFC_FAR_R),
        _horner_select(e, s, near, _ERFC_NEAR_S, _ERFC_FAR_S),
    )
    z = e.from_bits(e.b.and_(e.bits(ax), e.ci(-(1 << 32))))
    head = _exp(e, b.fsub(b.fneg(b.fmul(z, z)), e.c(0.5625)))
    tail = _exp(e, b.fadd(b.fmul(b.fsub(z, ax), b.fadd(z, ax)), ratio))
    return b.fsub(e.c(1.0), b.fdiv(b.fmul(head, tail), ax))


def _erf64(e: Emitter, x):
    """fdlibm's erf, every interval computed and the right one selected per lane."""
    b = e.b
    ax = e.fabs(x)
    z = b.fmul(x, x)
    small = b.fadd(x, b.fmul(x, b.fdiv(e.horner(z, _ERF_SMALL_P), e.horner(z, _ERF_SMALL_Q))))
    s = b.fsub(ax, e.c(1.0))
    mid = b.fadd(e.c(_ERX), b.fdiv(e.horner(s, _ERF_MID_P), e.horner(s, _ERF_MID_Q)))
    big = e.pick(e.cmp("<", ax, e.c(6.0)), _erf_tail(e, ax), e.c(1.0))
    magnitude = e.pick(e.cmp("<", ax, e.c(1.25)), mid, big)
    result = e.pick(e.cmp("<", ax, e.c(0.84375)), small, e.with_sign_of(magnitude, x))
    return e.pick(b.fcmp_unordered("uno", x, x), x, result)  # NaN in, NaN out


# float erf, two polynomials fitted (minimising the largest relative error, then rounded
# to float) to: erf(x)/x - 1 in t = x^2 on |x| <= 1 (1.4e-9), and E(x) = erfc(x) e^(x^2)
# in x - 2.5 on [1, 3.925] (2.4e-8). Beyond 3.925 erf rounds to 1.
_ERF32_SMALL = tuple(
    float.fromhex(c)
    for c in (
        "0x1.469fdp-14", "-0x1.a2fc46p-11", "0x1.53e4e4p-8", "-0x1.b7f52p-6",
        "0x1.ce2cc2p-4", "-0x1.81273cp-2", "0x1.06eba8p-3",
    )
)  # fmt: skip
_ERF32_TAIL = tuple(
    float.fromhex(c)
    for c in (
        "-0x1.de2d7ep-22", "0x1.b8bc66p-20", "-0x1.eb90bp-19", "0x1.e68bb8p-17",
        "-0x1.f45e6p-15", "0x1.be1c76p-13", "-0x1.805966p-11", "0x1.433e6ep-9",
        "-0x1.06331ep-7", "0x1.98963cp-6", "-0x1.3086d6p-4", "0x1.afbb3ep-3",
    )
)  # fmt: skip
_ERF32_SPLIT, _ERF32_CENTRE, _ERF32_ONE = 1.0, 2.5, 3.925


def _erf32(e: Emitter, x):
    """erf in float arithmetic, within 1 ulp, no division. |x| <= 1: |x| + |x| R(x^2),
    the leading |x| exact so that only the smaller R term rounds. Above: 1 - erfc(|x|),
    erfc = e^(-x^2) E(|x|), with x^2 = hi + lo split exactly by a fused multiply-add and
    e^(-lo) taken as 1 - lo (lo is half an ulp of hi at most, which would be several ulp
    of erfc). Odd symmetry by x's sign; NaN propagates through the arithmetic."""
    b = e.b
    ax = e.fabs(x)
    t = b.fmul(ax, ax)
    small = e.fma(ax, e.horner(t, _ERF32_SMALL), ax)
    lo = e.fma(ax, ax, b.fneg(t))
    scaled = b.fmul(_exp(e, b.fneg(t)), e.horner(b.fsub(ax, e.c(_ERF32_CENTRE)), _ERF32_TAIL))
    erfc = e.fma(b.fneg(scaled), lo, scaled)
    magnitude = e.pick(e.cmp("<=", ax, e.c(_ERF32_SPLIT)), small, b.fsub(e.c(1.0), erfc))
    magnitude = e.pick(e.cmp(">", ax, e.c(_ERF32_ONE)), e.c(1.0), magnitude)
    return e.with_sign_of(magnitude, x)


# --- pow ---------------------------------------------------------------------------


# double, with shorter polynomials where a float result allows: y log|x| needs ~2^-37
# relative (its error scales the result by e^error, |y log|x|| <= 104 where it is finite):
# float's log coefficients (error 2^-34 in a term a few bits below log's leading one)
# and exp's Taylor polynomial to degree 9 (2^-37 on |r| <= ln2/2). 99.99% of results
# stay correctly rounded, against 99.997% with double's; 7% faster.
_DOUBLE_FOR_POW32 = dataclasses.replace(
    DOUBLE, exp_poly=_taylor(9), log_odd=FLOAT.log_odd, log_even=FLOAT.log_even
)


def pow32(e: Emitter, x, y):
    """x**y for float, within 1 ulp: |x|**y = exp(y log|x|) in double, whose error (~150
    * 2^-53 relative at most, where the result is finite) rounds away into float's; then
    C99's special cases (pow_cases)."""
    b = e.b
    wide = e.widened(_DOUBLE_FOR_POW32)
    xd, yd = b.fpext(x, wide.f.ty), b.fpext(y, wide.f.ty)
    magnitude = _exp(wide, b.fmul(yd, _log(wide, wide.fabs(xd))))
    # (zeros and infinities of x or y need no case: log|x| or the product is +-inf, exp
    # gives 0 or inf; only 0 * inf = NaN does, which x**0 and 1**y below settle)
    return b.fptrunc(pow_cases(wide, xd, yd, magnitude, 2.0**24, extremes=False), e.f.ty)


def pow_cases(e: Emitter, x, y, magnitude, all_even: float, extremes: bool = True):
    """x**y from `magnitude` = |x|**y, with C99's special cases as libm's pow (and NumPy)
    gives them: x**0 = 1 and 1**y = 1 even for NaN; with `extremes`, zeros and
    infinities of x and y to 0 or inf; a negative base (-0 and -inf included) to an odd
    integer power negative; a finite negative base to a non-integer power NaN.
    `all_even`: from there on, every value of y's type is an even integer (2^24 for
    float, 2^53 for double)."""
    b = e.b
    zero, one, inf = e.c(0.0), e.c(1.0), e.c(math.inf)
    ax, ay = e.fabs(x), e.fabs(y)
    result = magnitude
    if extremes:
        y_positive = e.cmp(">", y, zero)
        result = e.pick(e.cmp("==", ax, inf), e.pick(y_positive, inf, zero), result)
        result = e.pick(e.cmp("==", ax, zero), e.pick(y_positive, zero, inf), result)
        grows = b.icmp_unsigned("==", e.cmp(">", ax, one), y_positive)
        result = e.pick(e.cmp("==", ay, inf), e.pick(grows, inf, zero), result)
    result = e.pick(e.cmp("==", ax, one), one, result)  # ((-1)**+-inf too)
    result = e.pick(b.fcmp_unordered("uno", x, y), e.c(math.nan), result)
    result = e.pick(e.cmp("==", x, one), one, result)
    result = e.pick(e.cmp("==", y, zero), one, result)
    # y's parity: y's integer part where |y| < all_even
    below = e.cmp("<", ay, e.c(all_even))
    whole = b.fptosi(e.pick(below, y, zero), e.f.ity)
    integer = b.or_(e.cmp("==", b.sitofp(whole, e.f.ty), y), e.cmp(">=", ay, e.c(all_even)))
    odd = b.icmp_unsigned("!=", b.and_(whole, e.ci(1)), e.ci(0))
    odd = b.and_(b.and_(below, odd), integer)
    negative = b.and_(b.icmp_signed("<", e.bits(x), e.ci(0)), e.cmp("==", x, x))
    result = e.pick(b.and_(negative, odd), b.fneg(result), result)
    finite_negative = b.and_(e.cmp("<", x, zero), e.cmp("!=", x, e.c(-math.inf)))
    fraction = b.and_(e.cmp("<", ay, inf), b.not_(integer))
    return e.pick(b.and_(finite_negative, fraction), e.c(math.nan), result)


# --- sin, cos ------------------------------------------------------------------------

_TWO_OVER_PI = 2.0 / math.pi
# pi/2 = HALF_PI[0] + HALF_PI[1] + HALF_PI[2] to ~2^-160 (the nearest doubles, each to
# what the ones before leave): x - k HALF_PI[0] is exact for every |k| < 2^50.
HALF_PI = tuple(
    float.fromhex(c)
    for c in ("0x1.921fb54442d18p+0", "0x1.1a62633145c07p-54", "-0x1.f1976b7ed8fbcp-110")
)
# Taylor polynomials in r^2 (highest degree first): sin r = r + r^3 S(r^2) to degree 9,
# cos r = 1 + r^2 C(r^2) to degree 10; on |r| <= pi/4 their truncation error (2e-9 and
# 1e-10 relative) is a few hundredths of a float ulp.
_SIN_TAYLOR = tuple((-1) ** n / math.factorial(2 * n + 1) for n in range(4, 0, -1))
_COS_TAYLOR = tuple((-1) ** n / math.factorial(2 * n) for n in range(5, 0, -1))
# Beyond this |x| the reduction by pi/2 in two parts loses accuracy: libm's sinf and cosf
# take those lanes (floats this large are integers, rarely angles).
SINCOS32_REDUCED_MAX = 2.0**24


def _sincos32(e: Emitter, x, quarter_turns: int):
    """sin x (quarter_turns 0) or cos x = sin(x + pi/2) (1) for float, within 1 ulp:
    sincos32_reduced, its lanes with |x| > SINCOS32_REDUCED_MAX (and NaN) libm's."""
    value = sincos32_reduced(e, x, quarter_turns)
    far = e.b.fcmp_unordered(">", e.fabs(x), e.c(SINCOS32_REDUCED_MAX))
    return _libm_lanes(e, "cos" if quarter_turns else "sin", x, far, value)


def sincos32_reduced(e: Emitter, x, quarter_turns: int):
    """sin x or cos x for float |x| <= SINCOS32_REDUCED_MAX, within 1 ulp (NaN for NaN
    and infinities; other lanes garbage). In double: x = k pi/2 + r with k = round(x 2/pi)
    and r = (x - k hi) - k lo, each step one fused multiply-add (llvm.fma: exact
    products); then sin r or cos r by quadrant (k + quarter_turns) mod 4, rounded once to
    float. (The IREE backend runs it too: mlir/own_math.py.)"""
    b = e.b
    wide = e.widened()
    xd = b.fpext(x, wide.f.ty)
    magic = wide.shifter()
    t = wide.fma(xd, wide.c(_TWO_OVER_PI), wide.c(magic), "llvm.fma")
    kf = b.fsub(t, wide.c(magic))
    r = wide.fma(kf, wide.c(-HALF_PI[0]), xd, "llvm.fma")
    r = wide.fma(kf, wide.c(-HALF_PI[1]), r, "llvm.fma")
    r2 = b.fmul(r, r)
    sin_r = wide.fma(b.fmul(r, r2), wide.horner(r2, _SIN_TAYLOR), r)
    cos_r = wide.fma(r2, wide.horner(r2, _COS_TAYLOR), wide.c(1.0))
    quadrant = b.add(b.sub(wide.bits(t), wide.ci(wide.const_bits(magic))), wide.ci(quarter_turns))
    odd = b.icmp_unsigned("!=", b.and_(quadrant, wide.ci(1)), wide.ci(0))
    negative = b.icmp_unsigned("!=", b.and_(quadrant, wide.ci(2)), wide.ci(0))
    value = wide.pick(odd, cos_r, sin_r)
    value = b.fptrunc(wide.pick(negative, b.fneg(value), value), e.f.ty)
    if not quarter_turns:  # sin(-0) = -0, which r + r^3 S(r^2) rounds to +0
        value = e.pick(e.cmp("==", x, e.c(0.0)), x, value)
    return value


# fdlibm's polynomials (k_sin.c S1..S6, k_cos.c C1..C6), highest degree first: on
# |x| <= pi/4, sin x = x + x^3 (S1 + x^2 S(x^2)) and cos x = 1 - x^2/2 + x^4 C(x^2), with
# errors below 2^-58 relative.
_S1 = -1.66666666666666324348e-01
_SIN_S = (
    1.58969099521155010221e-10,
    -2.50507602534068634195e-08,
    2.75573137070700676789e-06,
    -1.98412698298579493134e-04,
    8.33333333332248946124e-03,
)
_COS_C = (
    -1.13596475577881948265e-11,
    2.08757232129817482790e-09,
    -2.75573143513906633035e-07,
    2.48015872894767294178e-05,
    -1.38888888888741095749e-03,
    4.16666666666666019037e-02,
)
# Up to this |x| the reduction in three parts keeps r to ~2^-130 absolute, enough for the
# doubles nearest a multiple of pi/2; libm (or a table: mlir/own_math.py) takes the rest.
SINCOS64_REDUCED_MAX = 2.0**30


def sincos64_reduced(e: Emitter, x, quarter_turns: int):
    """sin x (quarter_turns 0) or cos x (1) for double |x| <= SINCOS64_REDUCED_MAX, within
    1 ulp (NaN for NaN and infinities; other lanes garbage). x = k pi/2 + (hi + lo) in
    double-double (Cody and Waite's three parts, the first product exact by fma, the
    second split exactly), then fdlibm's kernels on (hi, lo) by quadrant."""
    b = e.b
    magic = e.shifter()
    t = e.fma(x, e.c(_TWO_OVER_PI), e.c(magic), "llvm.fma")
    k = b.fsub(t, e.c(magic))
    quadrant = b.add(b.sub(e.bits(t), e.ci(e.const_bits(magic))), e.ci(quarter_turns))
    hi, lo = reduced_sum(e, e.fma(b.fneg(k), e.c(HALF_PI[0]), x, "llvm.fma"), k)
    return sincos64_kernels(e, quadrant, hi, lo, x if not quarter_turns else None)


def reduced_sum(e: Emitter, r1, k):
    """r1 - k (HALF_PI[1] + HALF_PI[2]) as hi + lo: k HALF_PI[1] split exactly (fma)
    and subtracted exactly (two_sum); only lo's small terms round."""
    b = e.b
    p, p_err = two_product(e, k, e.c(HALF_PI[1]))
    hi, err = two_sum(e, r1, b.fneg(p))
    lo = b.fsub(b.fsub(err, p_err), b.fmul(k, e.c(HALF_PI[2])))
    return two_sum(e, hi, lo)


def two_product(e: Emitter, a, c):
    """(p, err) with p + err = a * c exactly (an exact fma)."""
    p = e.b.fmul(a, c)
    return p, e.fma(a, c, e.b.fneg(p), "llvm.fma")


def two_sum(e: Emitter, a, c):
    """(s, err) with s + err = a + c exactly (Knuth's TwoSum)."""
    b = e.b
    s = b.fadd(a, c)
    cc = b.fsub(s, a)
    return s, b.fadd(b.fsub(a, b.fsub(s, cc)), b.fsub(c, cc))


def sincos64_kernels(e: Emitter, quadrant, hi, lo, sign_of=None):
    """sin(hi + lo) or cos(hi + lo) (odd `quadrant`), negated in quadrants 2 and 3
    (an integer, mod 4); `sign_of`: sin's x, whose zeros are returned as they are."""
    b = e.b
    odd = b.icmp_unsigned("!=", b.and_(quadrant, e.ci(1)), e.ci(0))
    negative = b.icmp_unsigned("!=", b.and_(quadrant, e.ci(2)), e.ci(0))
    value = e.pick(odd, _kernel_cos(e, hi, lo), _kernel_sin(e, hi, lo))
    value = e.pick(negative, b.fneg(value), value)
    if sign_of is not None:  # sin(-0) = -0
        value = e.pick(e.cmp("==", sign_of, e.c(0.0)), sign_of, value)
    return value


def _kernel_sin(e: Emitter, x, y):
    """sin(x + y) on |x + y| <= ~pi/4, y below x's last bit (k_sin.c)."""
    b = e.b
    z = b.fmul(x, x)
    v = b.fmul(z, x)
    r = e.horner(z, _SIN_S)
    inner = b.fsub(b.fmul(z, b.fsub(b.fmul(e.c(0.5), y), b.fmul(v, r))), y)
    return b.fsub(x, b.fsub(inner, b.fmul(v, e.c(_S1))))


def _kernel_cos(e: Emitter, x, y):
    """cos(x + y) on |x + y| <= ~pi/4 (k_cos.c): 1 - x^2/2 in two steps beyond |x| = 0.3,
    where the rounding of x^2/2 would reach the result: qx = |x|/4 with its low 32 bits
    cleared (0.28125 beyond 0.78125), so that 1 - qx is exact."""
    b = e.b
    z = b.fmul(x, x)
    rest = b.fsub(b.fmul(z, b.fmul(z, e.horner(z, _COS_C))), b.fmul(x, y))
    ax = e.fabs(x)
    quarter = e.from_bits(b.and_(b.sub(e.bits(ax), e.ci(2 << 52)), e.ci(-(1 << 32))))
    qx = e.pick(e.cmp(">", ax, e.c(0.78125)), e.c(0.28125), quarter)
    qx = e.pick(e.cmp("<", ax, e.c(0.3)), e.c(0.0), qx)
    hz = b.fsub(b.fmul(e.c(0.5), z), qx)
    return b.fsub(b.fsub(e.c(1.0), qx), b.fsub(hz, rest))


def _libm_lanes(e: Emitter, name: str, x, lanes, value):
    """`value`, its lanes where `lanes` is set replaced by LLVM's libm call `name` of x's:
    the calls run in a block of their own, entered only when some lane needs one."""
    b, count = e.b, e.f.lanes
    scalar = e.f.ty.element if count > 1 else e.f.ty
    libm = b.module.declare_intrinsic(f"llvm.{name}", [scalar])
    if count > 1:
        anyone = b.icmp_unsigned(
            "!=", b.bitcast(lanes, ir.IntType(count)), ir.Constant(ir.IntType(count), 0)
        )
    else:
        anyone = lanes
    start = b.block
    calls = b.append_basic_block(f"{name}.libm")
    done = b.append_basic_block(f"{name}.done")
    b.cbranch(anyone, calls, done)
    b.position_at_end(calls)
    if count == 1:
        patched = b.select(lanes, b.call(libm, [x]), value)
    else:
        patched = value
        for i in range(count):
            at = ir.Constant(ir.IntType(32), i)
            lane = b.call(libm, [b.extract_element(x, at)])
            lane = b.select(b.extract_element(lanes, at), lane, b.extract_element(value, at))
            patched = b.insert_element(patched, lane, at)
    b.branch(done)
    b.position_at_end(done)
    merged = b.phi(value.type)
    merged.add_incoming(value, start)
    merged.add_incoming(patched, calls)
    return merged


def _sincos(e: Emitter, x, quarter_turns: int):
    if e.f.mant == FLOAT.mant:
        return _sincos32(e, x, quarter_turns)
    value = sincos64_reduced(e, x, quarter_turns)
    far = e.b.fcmp_unordered(">", e.fabs(x), e.c(SINCOS64_REDUCED_MAX))  # (NaN too)
    return _libm_lanes(e, "cos" if quarter_turns else "sin", x, far, value)


def _sin(e: Emitter, x):
    return _sincos(e, x, 0)


def _cos(e: Emitter, x):
    return _sincos(e, x, 1)


def _erf(e: Emitter, x):
    """Double: fdlibm's algorithm. Float: _erf32."""
    return _erf64(e, x) if e.f.mant == DOUBLE.mant else _erf32(e, x)


BODIES = {
    "cos": _cos,
    "sin": _sin,
    "erf": _erf,
    "exp": _exp,
    "expm1": _expm1,
    "log": _log,
    "log1p": _log1p,
    "tanh": _tanh,
    "sigmoid": _sigmoid,
}
_FUNCTIONS = {**BODIES, "pow": pow32}  # (pow: two arguments, emit_pow32)


def _format(ty: ir.Type) -> _Format:
    if isinstance(ty, ir.FloatType):
        return FLOAT
    if isinstance(ty, ir.DoubleType):
        return DOUBLE
    raise TypeError(f"mathlib: expected float or double, got {ty}")


def _function(module: ir.Module, name: str, fmt: _Format, arity: int = 1) -> ir.Function:
    """The internal alwaysinline function computing `name` for `fmt` (values or vectors of
    them), created once per module (looked up by its name)."""
    fname = f"graphjit.math.{name}.{fmt.suffix}"
    fn = module.globals.get(fname)
    if fn is not None:
        return fn
    fn = ir.Function(module, ir.FunctionType(fmt.ty, [fmt.ty] * arity), fname)
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(_FUNCTIONS[name](Emitter(b, fmt), *fn.args))
    return fn


# -- out of line ---------------------------------------------------------------------------
# Inlined, every call is a copy of the function's body (tanh: ~40 instructions) that LLVM
# optimises and vectorises again: a kernel of 33 tanh took 112 ms to compile against 12 ms
# with the calls out of line (issue 18's compile_scaling chain). A kernel with
# OUT_OF_LINE_CALLS calls or more (mark_out_of_line) calls instead a scalar function that
# names vector variants of itself (LLVM's vector function ABI): the loop vectoriser
# replaces each call by a call of the variant of its vector width, whose body is the same
# operations on vectors, emitted once per module. A call per vector costs little next to
# the body, and every lane computes exactly what the inlined body would: same bits.
OUT_OF_LINE_CALLS = 8
VECTOR_LANES = {"f32": (4, 8, 16), "f64": (2, 4, 8)}  # up to 512-bit vectors
_OUT_OF_LINE = "graphjit_math_out_of_line"  # (a Python attribute of a kernel's ir.Function)


def mark_out_of_line(fn: ir.Function) -> None:
    """Have emit_math call out-of-line functions in `fn` (see OUT_OF_LINE_CALLS)."""
    setattr(fn, _OUT_OF_LINE, True)


def is_out_of_line(fn: ir.Function) -> bool:
    """Whether emit_math calls out-of-line functions in `fn` (mark_out_of_line)."""
    return getattr(fn, _OUT_OF_LINE, False)


def _vectorisable_call(module: ir.Module, name: str, fmt: _Format) -> ir.Function:
    """The scalar function the loop vectoriser replaces by its vector variants: noinline,
    readnone, its variants named by the vector function ABI attribute; created once per
    module. The variants are external so that no pass deletes them before the vectoriser
    has used them (as graphjit_entry, each engine resolves its own)."""
    fname = f"graphjit.math.{name}.{fmt.suffix}.call"
    fn = module.globals.get(fname)
    if fn is not None:
        return fn
    fn = ir.Function(module, ir.FunctionType(fmt.ty, [fmt.ty]), fname)
    fn.linkage = "internal"
    for attribute in ("noinline", "nounwind", "readnone"):
        fn.attributes.add(attribute)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(b.call(_function(module, name, fmt), [fn.args[0]]))
    mappings = []
    for lanes in VECTOR_LANES[fmt.suffix]:
        variant = _function(module, name, fmt.vector(lanes))
        variant.linkage = ""  # external
        variant.attributes.discard("alwaysinline")
        variant.attributes.add("noinline")
        mappings.append(f"_ZGV_LLVM_N{lanes}v_{fname}({variant.name})")
    # llvmlite checks attribute names against LLVM's enum attributes: a string attribute
    # goes into the set directly (it prints as written)
    set.add(fn.attributes, f'"vector-function-abi-variant"="{",".join(mappings)}"')
    return fn


def emit_pow32(builder: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    """x**y for float scalars, inlined (pow32): the loop around it vectorises."""
    return builder.call(_function(builder.module, "pow", FLOAT, 2), [x, y])


def emit_math(builder: ir.IRBuilder, name: str, x: ir.Value) -> ir.Value:
    """Emit `name(x)` at the builder's position; x is a float or double scalar."""
    if name not in BODIES:
        raise ValueError(f"mathlib: unknown function {name!r} (have {MATH_FUNCTIONS})")
    fmt = _format(x.type)
    if name in BRANCHING or getattr(builder.function, _OUT_OF_LINE, False):
        return builder.call(_vectorisable_call(builder.module, name, fmt), [x])
    return builder.call(_function(builder.module, name, fmt), [x])

"""THE table from op name to scalar emitter: how one element of each elementwise op is
computed in LLVM IR. Fused kernels evaluate their region with it, element by element.

An emitter is `emit(b, args, op) -> ir.Value`: `args` are register values of the operands
(bool is i1), `op` the IR op (for its types and attributes)."""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from graphjit.codegen.llvm import mathlib
from graphjit.codegen.llvm import types as T
from graphjit.codegen.llvm.types import F32, I1, register_type
from graphjit.errors import BackendError
from graphjit.ir.ops import all_ops
from graphjit.ir.ops.elementwise import float_range_of
from graphjit.ir.types import DType, as_dtype

SCALAR_EMITTERS: dict = {}


def emitter(*names):
    def register(fn):
        for name in names:
            SCALAR_EMITTERS[name] = fn
        return fn

    return register


def _dtype(op, i=0):
    return op.operands[i].type.dtype


def _is_float(op, i=0) -> bool:
    return _dtype(op, i).is_floating


def _is_unsigned(op, i=0) -> bool:
    """uint8: its i8 registers compare, divide, widen and shift without the sign bit."""
    return _dtype(op, i).np.kind == "u"


def _intrinsic(b, name, x):
    return b.call(b.module.declare_intrinsic(name, [x.type]), [x])


def _const(t, value):
    return ir.Constant(t, value)


@emitter("add")
def _add(b, a, op):
    return b.fadd(*a) if _is_float(op) else b.add(*a)


@emitter("sub")
def _sub(b, a, op):
    return b.fsub(*a) if _is_float(op) else b.sub(*a)


@emitter("mul")
def _mul(b, a, op):
    return b.fmul(*a) if _is_float(op) else b.mul(*a)


@emitter("div")
def _div(b, a, op):
    return b.fdiv(*a)


@emitter("neg")
def _neg(b, a, op):
    return b.fneg(a[0]) if _is_float(op) else b.sub(_const(a[0].type, 0), a[0])


@emitter("stop_gradient", "broadcast_like", "broadcast_to")
def _identity(b, a, op):
    """Broadcasts are index arithmetic, done by the kernel's loads: here, the identity."""
    return a[0]


@emitter(*mathlib.MATH_FUNCTIONS)
def _transcendental(b, a, op):
    """Vectorisable bodies from mathlib (sin and cos call libm for huge arguments only)."""
    return mathlib.emit_math(b, op.name, a[0])


@emitter("sqrt")
def _llvm_intrinsic(b, a, op):
    """LLVM's own sqrt (one instruction, vectorised)."""
    return _intrinsic(b, f"llvm.{op.name}", a[0])


# LLVM's rounding intrinsics: one instruction each with SSE4.1 (roundss/roundsd), and they
# vectorise; roundeven rounds halves to even as NumPy's round does (llvm.round would not).
_ROUNDING = {"floor": "llvm.floor", "ceil": "llvm.ceil", "round": "llvm.roundeven"}


@emitter(*_ROUNDING)
def _rounding(b, a, op):
    t = a[0].type
    fn = b.module.declare_intrinsic(_ROUNDING[op.name], [t], ir.FunctionType(t, [t]))
    return b.call(fn, [a[0]])


@emitter("abs")
def _abs(b, a, op):
    if _is_float(op):
        return _intrinsic(b, "llvm.fabs", a[0])
    if _is_unsigned(op):
        return a[0]
    negative = b.icmp_signed("<", a[0], _const(a[0].type, 0))
    return b.select(negative, b.sub(_const(a[0].type, 0), a[0]), a[0])


@emitter("sign")
def _sign(b, a, op):
    x, t = a[0], a[0].type
    if _is_float(op):
        pos = b.uitofp(b.fcmp_ordered(">", x, _const(t, 0.0)), t)
        neg = b.uitofp(b.fcmp_ordered("<", x, _const(t, 0.0)), t)
        return b.select(b.fcmp_unordered("uno", x, x), x, b.fsub(pos, neg))
    if _is_unsigned(op):
        return b.zext(b.icmp_unsigned("!=", x, _const(t, 0)), t)
    pos = b.zext(b.icmp_signed(">", x, _const(t, 0)), t)
    neg = b.zext(b.icmp_signed("<", x, _const(t, 0)), t)
    return b.sub(pos, neg)


def extremum(b, x, y, dtype, pred):
    """NumPy's maximum (pred '>') or minimum ('<'): NaN if either operand is NaN."""
    if not dtype.is_floating:
        compare = b.icmp_unsigned if dtype.np.kind == "u" else b.icmp_signed
        return b.select(compare(pred, x, y), x, y)
    chosen = b.select(b.fcmp_ordered(pred, x, y), x, y)
    return b.select(b.fcmp_unordered("uno", x, y), b.fadd(x, y), chosen)


@emitter("maximum")
def _maximum(b, a, op):
    return extremum(b, *a, _dtype(op), ">")


@emitter("minimum")
def _minimum(b, a, op):
    return extremum(b, *a, _dtype(op), "<")


@emitter("pow")
def _pow(b, a, op):
    if _is_float(op):
        return _float_pow(b, *a)
    return b.call(_int_pow(b.module, a[0].type, _is_unsigned(op)), a)


def _float_pow(b, x, y):
    """x**3 and x**4 as products, as PyTorch and JAX compute them (within 2 ulp, the same
    infinities, NaN and signed zeros); LLVM itself turns pow(x, 2), pow(x, 0.5) and
    pow(x, -1) into x*x, sqrt and 1/x. Any other float power is mathlib's (within 1 ulp),
    which vectorises; double's stay libm's. libm's pow is a call an element, which keeps
    the loop from vectorising (x**3: 2.3 ms for 1M floats against 0.06 ms)."""
    exponent = y.constant if isinstance(y, ir.Constant) else None
    if exponent == 3.0:
        return b.fmul(b.fmul(x, x), x)
    if exponent == 4.0:
        square = b.fmul(x, x)
        return b.fmul(square, square)
    if x.type == ir.FloatType() and exponent not in LLVM_SIMPLIFIED_POWERS:
        return mathlib.emit_pow32(b, x, y)
    return b.call(b.module.declare_intrinsic("llvm.pow", [x.type]), [x, y])


LLVM_SIMPLIFIED_POWERS = (2.0, 0.5, -1.0)


def _int_pow(module, t, unsigned=False):
    """x**n for integers by squaring (n < 0 gives 0 except for x = ±1, as NumPy errors);
    an unsigned n (uint8 200) is halved without its top bit read as a sign."""
    name = f"graphjit.ipow.{'u' if unsigned else ''}{t}"
    if name in module.globals:
        return module.globals[name]
    fn = ir.Function(module, ir.FunctionType(t, [t, t]), name)
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    x, n = fn.args
    loop, body, done = (fn.append_basic_block(s) for s in ("loop", "body", "done"))
    entry = b.block
    b.branch(loop)
    b.position_at_end(loop)
    result, base, exp = b.phi(t), b.phi(t), b.phi(t)
    result.add_incoming(_const(t, 1), entry)
    base.add_incoming(x, entry)
    exp.add_incoming(n, entry)
    positive = (
        b.icmp_unsigned("!=", exp, _const(t, 0))
        if unsigned
        else b.icmp_signed(">", exp, _const(t, 0))
    )
    b.cbranch(positive, body, done)
    b.position_at_end(body)
    odd = b.trunc(exp, I1)
    result.add_incoming(b.select(odd, b.mul(result, base), result), body)
    base.add_incoming(b.mul(base, base), body)
    exp.add_incoming((b.lshr if unsigned else b.ashr)(exp, _const(t, 1)), body)
    b.branch(loop)
    b.position_at_end(done)
    b.ret(result)
    return fn


_FCMP = {
    "equal": "==",
    "not_equal": "!=",
    "less": "<",
    "less_equal": "<=",
    "greater": ">",
    "greater_equal": ">=",
}


@emitter(*_FCMP)
def _compare(b, a, op):
    pred = _FCMP[op.name]
    if _is_float(op):
        # NaN compares unequal to everything, as in NumPy: ordered, except `!=` unordered.
        return b.fcmp_unordered(pred, *a) if pred == "!=" else b.fcmp_ordered(pred, *a)
    if _dtype(op).is_bool or _is_unsigned(op):
        return b.icmp_unsigned(pred, *a)
    return b.icmp_signed(pred, *a)


@emitter("logical_and")
def _and(b, a, op):
    return b.and_(*a)


@emitter("logical_or")
def _or(b, a, op):
    return b.or_(*a)


@emitter("logical_not")
def _not(b, a, op):
    return b.xor(a[0], _const(I1, 1))


@emitter("bitwise_and")
def _bitwise_and(b, a, op):
    return b.and_(*a)


@emitter("bitwise_or")
def _bitwise_or(b, a, op):
    return b.or_(*a)


@emitter("bitwise_xor")
def _bitwise_xor(b, a, op):
    return b.xor(*a)


@emitter("bitwise_not")
def _bitwise_not(b, a, op):
    return b.not_(a[0])  # xor with all ones: ~x for integers, not for i1


def safe_divisor(b, x, y):
    """y, except 1 where sdiv/srem would trap (x86's idiv raises SIGFPE): y = 0, which the
    value check reports (faults.py), and MIN / -1, whose quotient x / 1 = MIN is the
    wrapped one NumPy gives and whose remainder x % 1 = 0 is exact."""
    t = y.type
    min_value = ir.Constant(t, -(1 << (t.width - 1)))
    overflow = b.and_(b.icmp_signed("==", x, min_value), b.icmp_signed("==", y, ir.Constant(t, -1)))
    trap = b.or_(b.icmp_signed("==", y, ir.Constant(t, 0)), overflow)
    return b.select(trap, ir.Constant(t, 1), y)


def _floor_adjust(b, r, d):
    """True where C's truncated remainder r (of a division by d) is not Python's floored
    one: r is nonzero and its sign differs from d's."""
    zero = ir.Constant(r.type, 0)
    return b.and_(b.icmp_signed("!=", r, zero), b.icmp_signed("<", b.xor(r, d), zero))


def _unsigned_divisor(b, y):
    """y, except 1 where it is 0 (udiv would trap; the value check reports it)."""
    zero, one = ir.Constant(y.type, 0), ir.Constant(y.type, 1)
    return b.select(b.icmp_unsigned("==", y, zero), one, y)


@emitter("floor_divide")
def _floor_divide(b, a, op):
    if _is_float(op):
        return _float_floor_divide(b, *a)
    if _is_unsigned(op):  # (no sign: C's quotient is the floored one)
        return b.udiv(a[0], _unsigned_divisor(b, a[1]))
    x, d = a[0], safe_divisor(b, *a)
    q = b.sdiv(x, d)
    adjust = _floor_adjust(b, b.srem(x, d), d)
    return b.sub(q, b.zext(adjust, q.type))


@emitter("floor_mod")
def _floor_mod(b, a, op):
    if _is_float(op):
        return _float_floor_mod(b, *a)
    if _is_unsigned(op):
        return b.urem(a[0], _unsigned_divisor(b, a[1]))
    x, d = a[0], safe_divisor(b, *a)
    r = b.srem(x, d)
    return b.select(_floor_adjust(b, r, d), b.add(r, d), r)


def _float_divmod_parts(b, x, y):
    """fmod(x, y) and whether NumPy's npy_divmod moves it by y (a nonzero remainder, NaN
    included, whose sign differs from y's)."""
    t = x.type
    zero = ir.Constant(t, 0.0)
    mod = b.frem(x, y)
    moves = b.and_(
        b.fcmp_unordered("!=", mod, zero),
        b.xor(b.fcmp_ordered("<", y, zero), b.fcmp_ordered("<", mod, zero)),
    )
    return mod, moves


def _copysign(b, magnitude, sign):
    t = magnitude.type
    fn = b.module.declare_intrinsic("llvm.copysign", [t], ir.FunctionType(t, [t, t]))
    return b.call(fn, [magnitude, sign])


def _float_floor_divide(b, x, y):
    """NumPy's npy_floor_divide, step for step: x / y for y = 0; else the quotient of
    x - fmod(x, y), one less where the remainder moves, floored and snapped to the
    nearest integer; a zero quotient takes the sign of x / y."""
    t = x.type
    zero, one = ir.Constant(t, 0.0), ir.Constant(t, 1.0)
    mod, moves = _float_divmod_parts(b, x, y)
    div = b.fdiv(b.fsub(x, mod), y)
    div = b.select(moves, b.fsub(div, one), div)
    floor = _intrinsic(b, "llvm.floor", div)
    snapped = b.select(
        b.fcmp_ordered(">", b.fsub(div, floor), ir.Constant(t, 0.5)), b.fadd(floor, one), floor
    )
    quotient = b.fdiv(x, y)
    signed_zero = _copysign(b, zero, quotient)
    result = b.select(b.fcmp_unordered("!=", div, zero), snapped, signed_zero)
    return b.select(b.fcmp_ordered("==", y, zero), quotient, result)


def _float_floor_mod(b, x, y):
    """NumPy's npy_remainder: fmod(x, y) moved by y where its sign differs from y's; a zero
    remainder takes y's sign; fmod (NaN) for y = 0."""
    t = x.type
    zero = ir.Constant(t, 0.0)
    mod, moves = _float_divmod_parts(b, x, y)
    signed_zero = _copysign(b, zero, y)
    moved = b.select(moves, b.fadd(mod, y), mod)
    result = b.select(b.fcmp_unordered("!=", mod, zero), moved, signed_zero)
    return b.select(b.fcmp_ordered("==", y, zero), mod, result)


@emitter("select")
def _select(b, a, op):
    return b.select(*a)


@emitter("cast")
def _cast(b, a, op):
    return convert(b, a[0], _dtype(op), as_dtype(op.attrs["dtype"]))


def convert(b, x, src: DType, dst: DType):
    """Register `x` of dtype `src` as a `dst` register, as NumPy's astype converts."""
    if src == dst:
        return x
    if dst.is_bool:
        if src.is_floating:
            return b.fcmp_unordered("!=", x, _const(x.type, 0.0))
        return b.icmp_unsigned("!=", x, _const(x.type, 0))
    if src.is_floating:
        return _float_to_float(b, x, dst) if dst.is_floating else _float_to_int(b, x, dst)
    if dst.is_floating:
        return _int_to_float(b, x, dst, unsigned=src.is_bool or src.np.kind == "u")
    return _int_to_int(b, x, register_type(dst), signed=src.np.kind == "i")


def _float_to_float(b, x, dst):
    """Between float registers. A float16/bfloat16 result is left in float32 for the
    kernel to round (it rounds every narrow result); from float64 it is first rounded to
    odd, so that this second rounding is the correctly rounded one."""
    if dst.is_narrow_float:
        return T.float32_round_to_odd(b, x) if x.type == T.F64 else x
    t = register_type(dst)
    if x.type == t:
        return x
    return b.fptrunc(x, t) if t == F32 else b.fpext(x, t)


def _float_to_int(b, x, dst):
    """NaN and out-of-range values give the minimum (fptosi would give poison); in range,
    through i64, which holds every value of the narrower types, uint8 included."""
    t = register_type(dst)
    low, high = float_range_of(dst.np)
    inside = b.and_(
        b.fcmp_ordered(">=", x, ir.Constant(x.type, low)),
        b.fcmp_ordered("<", x, ir.Constant(x.type, high)),
    )
    wide = b.fptosi(x, T.I64)
    value = wide if t.width == 64 else b.trunc(wide, t)
    return b.select(inside, value, T.constant(dst, np.iinfo(dst.np).min))


def _int_to_float(b, x, dst, unsigned):
    to_float = b.uitofp if unsigned else b.sitofp
    if dst.is_narrow_float:  # exact in float64 below 2**53; then one rounding to odd
        return T.float32_round_to_odd(b, to_float(x, T.F64))
    return to_float(x, register_type(dst))


def _int_to_int(b, x, t, signed):
    if t.width < x.type.width:
        return b.trunc(x, t)
    if t.width == x.type.width:
        return x  # int8 <-> uint8: the same bits, as NumPy's astype
    return b.sext(x, t) if signed else b.zext(x, t)


# Reductions: how each folds one element into the accumulator, and its starting value.
_SUMS = ("reduce_sum", "sum_to")
_PRODUCTS = ("reduce_prod",)
_EXTREMA = {"reduce_max": ">", "reduce_min": "<"}


def _unknown_reduction(name):
    return BackendError(f"llvm backend has no reduction rule for '{name}'")


def combine(b, name, acc, x, dtype):
    if name in _SUMS:
        return b.fadd(acc, x, flags=("reassoc",)) if dtype.is_floating else b.add(acc, x)
    if name in _PRODUCTS:
        return b.fmul(acc, x, flags=("reassoc",)) if dtype.is_floating else b.mul(acc, x)
    if name in _EXTREMA:
        if dtype.is_floating:
            return _nan_propagating_extremum(b, acc, x, _EXTREMA[name])
        return extremum(b, acc, x, dtype, _EXTREMA[name])
    raise _unknown_reduction(name)


def _nan_propagating_extremum(b, acc, x, pred):
    """A float max/min fold into a buffer slot: llvm.maximum/minimum, NaN-propagating like
    NumPy, -0.0 below +0.0 (as the keys below). A fold carried in a register along a row
    uses the keys instead."""
    name = "llvm.maximum" if pred == ">" else "llvm.minimum"
    signature = ir.FunctionType(acc.type, [acc.type, acc.type])
    return b.call(b.module.declare_intrinsic(name, [acc.type], signature), [acc, x])


# Float max/min along a row, folded in a register as integer keys. LLVM leaves the select
# pair of `extremum` scalar (a 4096 x 1024 float32 row max: 5.4 ms), and llvm.maximum,
# which it vectorises, is five dependent instructions a vector on x86 (0.9 ms; 0.45 with
# four accumulators); an integer max of keys is one (0.3 ms, about the speed of a sum).
def is_keyed(name, dtype) -> bool:
    """Whether a row fold of reduction `name` in `dtype` runs on order keys."""
    return name in _EXTREMA and dtype.is_floating


def order_key(b, name, x):
    """A signed integer that orders as the float x does (its bits, with the magnitude bits
    of negative numbers flipped: -0.0 comes just below +0.0); NaN gets the key that wins
    the reduction (the largest for a max), so NaN propagates."""
    t = ir.IntType(64 if isinstance(x.type, ir.DoubleType) else 32)
    key = _flip_negatives(b, b.bitcast(x, t))
    return b.select(b.fcmp_unordered("uno", x, x), _nan_key(name, t), key)


def fold_keys(b, name, acc, key):
    pred = _EXTREMA[name]
    return b.select(b.icmp_signed(pred, acc, key), acc, key)


def from_order_key(b, name, key, float_type):
    """The float whose key `key` is (NaN for the NaN key)."""
    x = b.bitcast(_flip_negatives(b, key), float_type)
    is_nan = b.icmp_signed("==", key, _nan_key(name, key.type))
    return b.select(is_nan, ir.Constant(float_type, float("nan")), x)


def _flip_negatives(b, bits):
    """bits ^ (magnitude mask where the sign bit is set): its own inverse."""
    t = bits.type
    negative = b.ashr(bits, ir.Constant(t, t.width - 1))
    return b.xor(bits, b.and_(negative, ir.Constant(t, (1 << (t.width - 1)) - 1)))


def _nan_key(name, t):
    """Only NaNs have these keys: the largest (a max) or the smallest (a min) integer."""
    top = 1 << (t.width - 1)
    return ir.Constant(t, top - 1 if _EXTREMA[name] == ">" else -top)


def identity(name, dtype):
    """The reduction's starting value, as its OpDef declares it."""
    opdef = all_ops().get(name)
    if opdef is None or opdef.identity is None:
        raise _unknown_reduction(name)
    return T.constant(dtype, opdef.identity(dtype.np))

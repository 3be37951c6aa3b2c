"""graphjit dtypes as LLVM types: registers (bool is i1) and storage (bool is one byte).

float16 and bfloat16 are stored as their 16 bits (i16) and live in registers as float32:
a load widens them exactly, a store rounds to nearest, ties to even, keeping NaN a NaN.
The conversions are integer bit arithmetic rather than LLVM's `half`/`bfloat` types,
whose conversions lower to compiler-rt calls (__extendhfsf2, __truncsfbf2) on x86 CPUs
without F16C/AVX512-BF16, which the JIT cannot resolve; written out, they vectorise and
round the same on every host."""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from graphjit.ir.types import DType

I1, I8, I16 = ir.IntType(1), ir.IntType(8), ir.IntType(16)
I32, I64 = ir.IntType(32), ir.IntType(64)
F32, F64 = ir.FloatType(), ir.DoubleType()
I8P = I8.as_pointer()

_REGISTER = {
    "float32": F32,
    "float64": F64,
    "float16": F32,
    "bfloat16": F32,
    "int8": I8,
    "uint8": I8,
    "int32": I32,
    "int64": I64,
    "bool": I1,
}


def register_type(dtype: DType) -> ir.Type:
    return _REGISTER[dtype.name]


def storage_type(dtype: DType) -> ir.Type:
    if dtype.is_bool:
        return I8
    return I16 if dtype.is_narrow_float else _REGISTER[dtype.name]


def typed_pointer(b: ir.IRBuilder, raw: ir.Value, dtype: DType) -> ir.Value:
    return b.bitcast(raw, storage_type(dtype).as_pointer())


def load(b: ir.IRBuilder, ptr: ir.Value, dtype: DType) -> ir.Value:
    """Load one element through a typed pointer as a register value."""
    value = b.load(ptr)
    if dtype.is_bool:
        return b.icmp_unsigned("!=", value, ir.Constant(I8, 0))
    return widen(b, value, dtype) if dtype.is_narrow_float else value


def store(b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, dtype: DType) -> None:
    if dtype.is_bool:
        value = b.zext(value, I8)
    elif dtype.is_narrow_float:
        value = narrow(b, value, dtype)
    b.store(value, ptr)


def constant(dtype: DType, value) -> ir.Constant:
    t = register_type(dtype)
    if dtype.is_floating:  # a narrow float's value is first rounded to it
        return ir.Constant(t, float(np.asarray(value).astype(dtype.np).astype(np.float64)))
    if dtype.is_bool:
        return ir.Constant(t, int(bool(value)))
    return ir.Constant(t, _signed(int(value), t.width))  # (uint8 200 is i8 -56)


def _signed(value: int, width: int) -> int:
    value &= (1 << width) - 1
    return value - (1 << width) if value >> (width - 1) else value


# ---- float16 / bfloat16 <-> float32 --------------------------------------------------------


def _i32(value: int) -> ir.Constant:
    return ir.Constant(I32, _signed(value, 32))


def widen(b: ir.IRBuilder, bits: ir.Value, dtype: DType) -> ir.Value:
    """16 stored bits -> their exact float32 value."""
    word = b.zext(bits, I32)
    if dtype.name == "bfloat16":  # bfloat16 is float32's top half
        return b.bitcast(b.shl(word, _i32(16)), F32)
    return _half_to_float(b, word)


def narrow(b: ir.IRBuilder, x: ir.Value, dtype: DType) -> ir.Value:
    """A float32 register -> the 16 bits of the nearest float16/bfloat16 (ties to even)."""
    if dtype.name == "bfloat16":
        return _float_to_bfloat(b, x)
    return _float_to_half(b, x)


def quantize(b: ir.IRBuilder, x: ir.Value, dtype: DType) -> ir.Value:
    """x rounded to `dtype` and back: the value a narrow result has once stored."""
    return widen(b, narrow(b, x, dtype), dtype)


def _half_to_float(b: ir.IRBuilder, h: ir.Value) -> ir.Value:
    """F. Giesen's half_to_float: rebias the exponent; infinity/NaN get the top exponent
    (payload kept), subnormals are renormalised by a float subtraction."""
    shifted_exp = 0x7C00 << 13
    o = b.shl(b.and_(h, _i32(0x7FFF)), _i32(13))
    exp = b.and_(o, _i32(shifted_exp))
    o = b.add(o, _i32((127 - 15) << 23))
    special = b.add(o, _i32((128 - 16) << 23))
    magic = b.bitcast(_i32(113 << 23), F32)  # 2**-14, the smallest normal half
    subnormal = b.bitcast(b.fsub(b.bitcast(b.add(o, _i32(1 << 23)), F32), magic), I32)
    o = b.select(b.icmp_unsigned("==", exp, _i32(0)), subnormal, o)
    o = b.select(b.icmp_unsigned("==", exp, _i32(shifted_exp)), special, o)
    sign = b.shl(b.and_(h, _i32(0x8000)), _i32(16))
    return b.bitcast(b.or_(o, sign), F32)


def _float_to_half(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """F. Giesen's float_to_half_fast3_rtne: round to nearest even on the bits for normal
    results, through a float addition (which rounds so) for subnormal ones; overflow goes
    to infinity, NaN stays NaN (quiet, top payload bits kept, as NumPy's cast)."""
    u = b.bitcast(x, I32)
    sign = b.and_(u, _i32(0x80000000))
    a = b.xor(u, sign)
    nan = b.or_(_i32(0x7E00), b.and_(b.lshr(a, _i32(13)), _i32(0x3FF)))
    overflow = b.select(b.icmp_unsigned(">", a, _i32(0x7F800000)), nan, _i32(0x7C00))
    denorm_magic = ((127 - 15) + (23 - 10) + 1) << 23
    tiny = b.fadd(b.bitcast(a, F32), b.bitcast(_i32(denorm_magic), F32))
    subnormal = b.sub(b.bitcast(tiny, I32), _i32(denorm_magic))
    odd = b.and_(b.lshr(a, _i32(13)), _i32(1))
    normal = b.lshr(b.add(b.add(a, _i32(((15 - 127) << 23) + 0xFFF)), odd), _i32(13))
    o = b.select(b.icmp_unsigned("<", a, _i32(113 << 23)), subnormal, normal)
    o = b.select(b.icmp_unsigned(">=", a, _i32((127 + 16) << 23)), overflow, o)
    return b.trunc(b.or_(o, b.lshr(sign, _i32(16))), I16)


def _float_to_bfloat(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """The top 16 bits, rounded to nearest even by adding 0x7FFF plus the kept lowest bit;
    a NaN keeps its sign and top payload and is made quiet (ml_dtypes' rule)."""
    u = b.bitcast(x, I32)
    odd = b.and_(b.lshr(u, _i32(16)), _i32(1))
    rounded = b.lshr(b.add(b.add(u, _i32(0x7FFF)), odd), _i32(16))
    quiet_nan = b.or_(b.lshr(u, _i32(16)), _i32(0x40))
    is_nan = b.icmp_unsigned(">", b.and_(u, _i32(0x7FFFFFFF)), _i32(0x7F800000))
    return b.trunc(b.select(is_nan, quiet_nan, rounded), I16)


def float32_round_to_odd(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """A float64 as the float32 it truncates to, its lowest bit set when inexact ("round to
    odd"): rounding that to float16/bfloat16 then gives the correctly rounded float64 ->
    narrow conversion (NumPy's and ml_dtypes'), where float64 -> float32 -> narrow, two
    nearest roundings, could land on a false tie."""
    t = b.fptrunc(x, F32)
    bits = b.bitcast(t, I32)
    wide = b.fpext(t, F64)
    fabs = b.module.declare_intrinsic("llvm.fabs", [F64])
    rounded_up = b.fcmp_ordered(">", b.call(fabs, [wide]), b.call(fabs, [x]))
    truncated = b.select(rounded_up, b.sub(bits, _i32(1)), bits)  # (overflow: FLT_MAX)
    inexact = b.fcmp_ordered("!=", wide, x)  # (false for NaN: kept as it is)
    return b.bitcast(b.select(inexact, b.or_(truncated, _i32(1)), bits), F32)


def external_function(module: ir.Module, name: str, ret: ir.Type, args: list) -> ir.Function:
    """The module's declaration of a function bound by name when the code is linked (libc,
    BLAS, graphjit's worker pool, an LLVM intrinsic): declared once, whoever asks first."""
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    return ir.Function(module, ir.FunctionType(ret, args), name)


def external_global(module: ir.Module, name: str, typ: ir.Type) -> ir.GlobalVariable:
    """The module's declaration of a process-wide variable bound by name (llvm.add_symbol):
    the interrupt counter, the thread count."""
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    declared = ir.GlobalVariable(module, typ, name)
    declared.linkage = "external"
    return declared

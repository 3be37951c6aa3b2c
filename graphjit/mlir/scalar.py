"""THE table of scalar emitters: one per elementwise op, writing the body of a
`linalg.generic` in `arith` and `math`. Each is `emit(w, args, dtype, out_dtype) -> SSA`,
`dtype` being the operands' element dtype. Semantics follow the interpreter (NumPy):
NaN propagates through maximum/minimum, round is half-to-even, a float -> integer cast
of NaN or an out-of-range value gives the integer's minimum."""

from __future__ import annotations

import math

import numpy as np

from graphjit.ir.types import bool_, float16, float32, float64
from graphjit.mlir import own_math
from graphjit.mlir.structured import if_else, while_loop
from graphjit.mlir.writer import ExportError, element_type


def _float_or_int(float_op: str, int_op: str):
    def emit(w, args, dtype, out_dtype):
        op = float_op if dtype.is_floating else int_op
        if op is None:
            raise ExportError(f"'{float_op}' has no export for {dtype.name}")
        return w.op(f"{op} {', '.join(args)} : {element_type(dtype)}")

    return emit


def _float_only(op: str):
    return _float_or_int(op, None)


def _transcendental(name: str):
    """`math.<name>`, or graphjit's own body where the writer asks for it (own_math.py)."""
    plain = _float_only(f"math.{name}")

    def emit(w, args, dtype, out_dtype):
        if (name, dtype.name) in w.own_math:
            return own_math.emit(w, name, args[0], dtype)
        return plain(w, args, dtype, out_dtype)

    return emit


def _compare(float_pred: str, int_pred: str):
    def emit(w, args, dtype, out_dtype):
        ty = element_type(dtype)
        if dtype.is_floating:
            return w.op(f"arith.cmpf {float_pred}, {args[0]}, {args[1]} : {ty}")
        return w.op(f"arith.cmpi {int_pred}, {args[0]}, {args[1]} : {ty}")

    return emit


def _neg(w, args, dtype, out_dtype):
    ty = element_type(dtype)
    if dtype.is_floating:
        return w.op(f"arith.negf {args[0]} : {ty}")
    return w.op(f"arith.subi {w.scalar(0, dtype)}, {args[0]} : {ty}")


def _abs(w, args, dtype, out_dtype):
    op = "math.absf" if dtype.is_floating else "math.absi"
    return w.op(f"{op} {args[0]} : {element_type(dtype)}")


def _sign(w, args, dtype, out_dtype):
    """(x > 0) - (x < 0), and NaN for NaN (NumPy's sign)."""
    ty = element_type(dtype)
    zero, one, minus = (w.scalar(v, dtype) for v in (0, 1, -1))
    positive = _compare("ogt", "sgt")(w, [args[0], zero], dtype, None)
    negative = _compare("olt", "slt")(w, [args[0], zero], dtype, None)
    signed = w.op(f"arith.select {positive}, {one}, {zero} : {ty}")
    signed = w.op(f"arith.select {negative}, {minus}, {signed} : {ty}")
    if not dtype.is_floating:
        return signed
    is_nan = w.op(f"arith.cmpf uno, {args[0]}, {args[0]} : {ty}")
    return w.op(f"arith.select {is_nan}, {args[0]}, {signed} : {ty}")


def _sigmoid(w, args, dtype, out_dtype):
    ty = element_type(dtype)
    negated = w.op(f"arith.negf {args[0]} : {ty}")
    denominator = w.op(
        f"arith.addf {w.scalar(1, dtype)}, {w.op(f'math.exp {negated} : {ty}')} : {ty}"
    )
    return w.op(f"arith.divf {w.scalar(1, dtype)}, {denominator} : {ty}")


def _floor_divide(w, args, dtype, out_dtype):
    """Integers: floor(x / y), MIN // -1 wrapping to MIN, as NumPy's (a zero divisor fails
    the check emitters.check_values writes before the op). Floats: floor(x / y), or where
    the writer asks (the iree backend: own_math.OWN_MATH) NumPy's exact form."""
    ty = element_type(dtype)
    x, y = args
    if not dtype.is_floating:
        minus_one = w.op(f"arith.cmpi eq, {y}, {w.scalar(-1, dtype)} : {ty}")
        quotient = w.op(f"arith.floordivsi {x}, {_safe_divisor(w, y, dtype)} : {ty}")
        negated = w.op(f"arith.subi {w.scalar(0, dtype)}, {x} : {ty}")
        return w.op(f"arith.select {minus_one}, {negated}, {quotient} : {ty}")
    if ("floor_divide", dtype.name) in w.own_math:
        return _in_float32(w, _npy_floor_divide, x, y, dtype)
    return w.op(f"math.floor {w.op(f'arith.divf {x}, {y} : {ty}')} : {ty}")


def _in_float32(w, form, x, y, dtype):
    """form(w, x, y, dtype), float16 computed in float32 and rounded once (as NumPy's half
    floor_divide and remainder, and the llvm backend)."""
    if dtype != float16:
        return form(w, x, y, dtype)
    wide = [w.op(f"arith.extf {v} : f16 to f32") for v in (x, y)]
    return w.op(f"arith.truncf {form(w, *wide, float32)} : f32 to f16")


def _npy_floor_divide(w, x, y, dtype):
    """NumPy's npy_floor_divide, step for step (as the llvm backend): x / y for y = 0; else
    the quotient of x - fmod(x, y), one less where the remainder moves, floored and
    snapped to the nearest integer; a zero quotient takes the sign of x / y. (floor(x / y)
    is off where x / y rounds up to an integer or underflows: floor_divide(1e-30, -1e10)
    = -1, and for an infinite y.)"""
    ty = element_type(dtype)
    one = w.scalar(1.0, dtype)
    mod, moves = _float_divmod_parts(w, x, y, ty)
    div = w.op(f"arith.divf {w.op(f'arith.subf {x}, {mod} : {ty}')}, {y} : {ty}")
    div = w.op(f"arith.select {moves}, {w.op(f'arith.subf {div}, {one} : {ty}')}, {div} : {ty}")
    floor = w.op(f"math.floor {div} : {ty}")
    past_half = w.op(
        f"arith.cmpf ogt, {w.op(f'arith.subf {div}, {floor} : {ty}')}, "
        f"{w.scalar(0.5, dtype)} : {ty}"
    )
    snapped = w.op(
        f"arith.select {past_half}, {w.op(f'arith.addf {floor}, {one} : {ty}')}, {floor} : {ty}"
    )
    quotient = w.op(f"arith.divf {x}, {y} : {ty}")
    return _zero_cases(w, dtype, y, snapped, div, quotient, quotient)


def _zero_cases(w, dtype, y, value, tested, sign_source, by_zero) -> str:
    """npy_divmod's ends: `value` where `tested` is not zero, else a zero with the sign of
    `sign_source`; `by_zero` where y is zero."""
    ty, zero = element_type(dtype), w.scalar(0.0, dtype)
    signed_zero = w.op(f"math.copysign {zero}, {sign_source} : {ty}")
    nonzero = w.op(f"arith.cmpf une, {tested}, {zero} : {ty}")
    result = w.op(f"arith.select {nonzero}, {value}, {signed_zero} : {ty}")
    divisor_zero = w.op(f"arith.cmpf oeq, {y}, {zero} : {ty}")
    return w.op(f"arith.select {divisor_zero}, {by_zero}, {result} : {ty}")


def _fmod64(w, x, y) -> str:
    """fmod(x, y) in float64, exactly (IREE lowers arith.remf f64 to libm's fmod, which it
    cannot link). |x| - q |y| with q = trunc(|x| / |y|) by one fused multiply-add, exact
    (the quotient can only round up to the next integer, below 2^52, and then one |y|
    added back restores it); beyond 2^52, long division: the largest |y| 2^k below |x|,
    subtracted where it fits, halved until it is |y| again, every step exact. The sign is
    x's; NaN for y = 0, an infinite x or NaN, x for an infinite y."""
    ax, ay = (w.op(f"math.absf {v} : f64") for v in (x, y))
    zero = w.scalar(0.0, float64)
    quotient = w.op(f"arith.divf {ax}, {ay} : f64")
    large = w.op(f"arith.cmpf oge, {quotient}, {w.scalar(2.0**52, float64)} : f64")
    finite = w.op(f"arith.cmpf olt, {ax}, {w.scalar(math.inf, float64)} : f64")

    def division(w):
        def grow(w, t):
            half = w.op(f"arith.mulf {ax}, {w.scalar(0.5, float64)} : f64")
            return w.op(f"arith.cmpf ole, {t[0]}, {half} : f64")

        def doubled(w, t):
            return [w.op(f"arith.addf {t[0]}, {t[0]} : f64")]

        top = while_loop(w, [ay], ["f64"], grow, doubled)[0]

        def more(w, state):
            return w.op(f"arith.cmpf oge, {state[1]}, {ay} : f64")

        def subtract(w, state):
            r, t = state
            fits = w.op(f"arith.cmpf oge, {r}, {t} : f64")
            r = w.op(f"arith.select {fits}, {w.op(f'arith.subf {r}, {t} : f64')}, {r} : f64")
            return [r, w.op(f"arith.mulf {t}, {w.scalar(0.5, float64)} : f64")]

        return [while_loop(w, [ax, top], ["f64", "f64"], more, subtract)[0]]

    def one_step(w):
        q = w.op(f"math.trunc {quotient} : f64")
        r = w.op(f"math.fma {w.op(f'arith.negf {q} : f64')}, {ay}, {ax} : f64")
        below = w.op(f"arith.cmpf olt, {r}, {zero} : f64")
        return [w.op(f"arith.select {below}, {w.op(f'arith.addf {r}, {ay} : f64')}, {r} : f64")]

    positive = w.op(f"arith.cmpf ogt, {ay}, {zero} : f64")  # (doubling 0 never ends)
    loop = w.op(f"arith.andi {w.op(f'arith.andi {large}, {finite} : i1')}, {positive} : i1")
    magnitude = if_else(w, loop, ["f64"], division, one_step)[0]
    magnitude = w.op(
        f"arith.select {w.op(f'arith.cmpf oeq, {ay}, {w.scalar(math.inf, float64)} : f64')}, {ax}, {magnitude} : f64"
    )
    nan = w.op(f"arith.cmpf oeq, {ay}, {zero} : f64")
    nan = w.op(
        f"arith.ori {nan}, {w.op(f'arith.xori {finite}, {w.scalar(True, bool_)} : i1')} : i1"
    )
    magnitude = w.op(f"arith.select {nan}, {w.scalar(math.nan, float64)}, {magnitude} : f64")
    return w.op(f"math.copysign {magnitude}, {x} : f64")


def _float_divmod_parts(w, x, y, ty):
    """fmod(x, y) and whether NumPy's npy_divmod moves it by y (a nonzero remainder, NaN
    included, whose sign differs from y's)."""
    zero = w.op(f"arith.constant 0.0 : {ty}")
    mod = w.op(f"arith.remf {x}, {y} : {ty}") if ty != "f64" else _fmod64(w, x, y)
    nonzero = w.op(f"arith.cmpf une, {mod}, {zero} : {ty}")
    signs = [w.op(f"arith.cmpf olt, {v}, {zero} : {ty}") for v in (y, mod)]
    differ = w.op(f"arith.xori {signs[0]}, {signs[1]} : i1")
    return mod, w.op(f"arith.andi {nonzero}, {differ} : i1")


def _safe_divisor(w, y, dtype) -> str:
    """y, with 0 and -1 replaced by 1: the hardware traps on a zero divisor and on
    MIN / -1, which the callers give their own results (or a failed check)."""
    ty = element_type(dtype)
    zero = w.op(f"arith.cmpi eq, {y}, {w.scalar(0, dtype)} : {ty}")
    minus_one = w.op(f"arith.cmpi eq, {y}, {w.scalar(-1, dtype)} : {ty}")
    unsafe = w.op(f"arith.ori {zero}, {minus_one} : i1")
    return w.op(f"arith.select {unsafe}, {w.scalar(1, dtype)}, {y} : {ty}")


def _floor_mod(w, args, dtype, out_dtype):
    """NumPy's mod, its sign following the divisor's. Integers: the truncated remainder
    moved into the divisor's sign (x % -1 is 0). Floats: x - floor(x / y) y, or where the
    writer asks (the iree backend) NumPy's exact form."""
    ty = element_type(dtype)
    x, y = args
    if not dtype.is_floating:
        remainder = w.op(f"arith.remsi {x}, {_safe_divisor(w, y, dtype)} : {ty}")
        zero = w.scalar(0, dtype)
        nonzero = w.op(f"arith.cmpi ne, {remainder}, {zero} : {ty}")
        signs = [w.op(f"arith.cmpi slt, {v}, {zero} : {ty}") for v in (remainder, y)]
        differ = w.op(f"arith.xori {signs[0]}, {signs[1]} : i1")
        adjust = w.op(f"arith.andi {nonzero}, {differ} : i1")
        moved = w.op(f"arith.addi {remainder}, {y} : {ty}")
        return w.op(f"arith.select {adjust}, {moved}, {remainder} : {ty}")
    if ("floor_mod", dtype.name) in w.own_math:
        return _in_float32(w, _npy_remainder, x, y, dtype)
    quotient = _floor_divide(w, args, dtype, out_dtype)
    return w.op(f"arith.subf {x}, {w.op(f'arith.mulf {quotient}, {y} : {ty}')} : {ty}")


def _npy_remainder(w, x, y, dtype):
    """NumPy's npy_remainder (as the llvm backend): fmod(x, y) moved by y where its sign
    differs from y's, a zero remainder signed as y, fmod (NaN) for y = 0. (x - floor(x /
    y) y loses x's low bits and gives NaN for an infinite y.)"""
    ty = element_type(dtype)
    mod, moves = _float_divmod_parts(w, x, y, ty)
    moved = w.op(f"arith.select {moves}, {w.op(f'arith.addf {mod}, {y} : {ty}')}, {mod} : {ty}")
    return _zero_cases(w, dtype, y, moved, mod, y, mod)


def _pow(w, args, dtype, out_dtype):
    if not dtype.is_floating:
        return _integer_power(w, args[0], args[1], dtype)
    if ("pow", dtype.name) in w.own_math:
        return own_math.power(w, args[0], args[1], dtype)
    return w.op(f"math.powf {args[0]}, {args[1]} : {element_type(dtype)}")


def _integer_power(w, base, exponent, dtype) -> str:
    """base ** exponent by squaring, wrapping as NumPy's (IREE lowers no `math.ipowi`);
    one step per bit of a non-negative exponent (a negative one fails the check
    emitters.check_values writes before the op)."""
    ty = element_type(dtype)
    result, one = w.scalar(1, dtype), w.scalar(1, dtype)
    for bit in range(8 * dtype.np.itemsize - 1):
        shifted = w.op(f"arith.shrui {exponent}, {w.scalar(bit, dtype)} : {ty}")
        odd = w.op(f"arith.trunci {w.op(f'arith.andi {shifted}, {one} : {ty}')} : {ty} to i1")
        product = w.op(f"arith.muli {result}, {base} : {ty}")
        result = w.op(f"arith.select {odd}, {product}, {result} : {ty}")
        base = w.op(f"arith.muli {base}, {base} : {ty}")
    return result


def _logical(op: str):
    def emit(w, args, dtype, out_dtype):
        return w.op(f"{op} {', '.join(args)} : i1")

    return emit


def _not(w, args, dtype, out_dtype):
    all_ones = w.scalar(True if dtype.is_bool else -1, dtype)
    return w.op(f"arith.xori {args[0]}, {all_ones} : {element_type(dtype)}")


def _select(w, args, dtype, out_dtype):
    return w.op(f"arith.select {args[0]}, {args[1]}, {args[2]} : {element_type(out_dtype)}")


def _identity(w, args, dtype, out_dtype):
    return args[0]


def _cast(w, args, dtype, out_dtype):
    source, target = element_type(dtype), element_type(out_dtype)
    if source == target:
        return args[0]
    if out_dtype.is_bool:  # nonzero -> true (NaN too, as NumPy)
        pred = "une" if dtype.is_floating else "ne"
        kind = "cmpf" if dtype.is_floating else "cmpi"
        return w.op(f"arith.{kind} {pred}, {args[0]}, {w.scalar(0, dtype)} : {source}")
    if dtype.is_floating and out_dtype.is_floating:
        op = "arith.extf" if dtype.np.itemsize < out_dtype.np.itemsize else "arith.truncf"
    elif dtype.is_floating:
        return _float_to_int(w, args[0], dtype, out_dtype)
    elif out_dtype.is_floating:
        op = "arith.uitofp" if dtype.is_bool else "arith.sitofp"
    else:
        widen = dtype.np.itemsize < out_dtype.np.itemsize or dtype.is_bool
        op = ("arith.extui" if dtype.is_bool else "arith.extsi") if widen else "arith.trunci"
    return w.op(f"{op} {args[0]} : {source} to {target}")


def _float_to_int(w, x, dtype, out_dtype):
    """fptosi where it is defined; NaN and out-of-range values give the integer's minimum
    (graphjit's defined cast, what x86 gives)."""
    info = np.iinfo(out_dtype.np)
    ty, target = element_type(dtype), element_type(out_dtype)
    low, high = w.scalar(float(info.min), dtype), w.scalar(float(info.max) + 1.0, dtype)
    above = w.op(f"arith.cmpf oge, {x}, {low} : {ty}")
    below = w.op(f"arith.cmpf olt, {x}, {high} : {ty}")
    inside = w.op(f"arith.andi {above}, {below} : i1")
    safe = w.op(f"arith.select {inside}, {x}, {w.scalar(0, dtype)} : {ty}")
    converted = w.op(f"arith.fptosi {safe} : {ty} to {target}")
    return w.op(f"arith.select {inside}, {converted}, {w.scalar(info.min, out_dtype)} : {target}")


SCALAR = {
    "add": _float_or_int("arith.addf", "arith.addi"),
    "sub": _float_or_int("arith.subf", "arith.subi"),
    "mul": _float_or_int("arith.mulf", "arith.muli"),
    "div": _float_only("arith.divf"),
    "maximum": _float_or_int("arith.maximumf", "arith.maxsi"),
    "minimum": _float_or_int("arith.minimumf", "arith.minsi"),
    "pow": _pow,
    "floor_divide": _floor_divide,
    "floor_mod": _floor_mod,
    "neg": _neg,
    "abs": _abs,
    "sign": _sign,
    "exp": _float_only("math.exp"),
    "log": _float_only("math.log"),
    "sqrt": _float_only("math.sqrt"),
    "sin": _transcendental("sin"),
    "cos": _transcendental("cos"),
    "tanh": _transcendental("tanh"),
    "erf": _transcendental("erf"),
    "log1p": _transcendental("log1p"),
    "expm1": _transcendental("expm1"),
    "floor": _float_only("math.floor"),
    "ceil": _float_only("math.ceil"),
    "round": _float_only("math.roundeven"),
    "sigmoid": _sigmoid,
    "equal": _compare("oeq", "eq"),
    "not_equal": _compare("une", "ne"),
    "less": _compare("olt", "slt"),
    "less_equal": _compare("ole", "sle"),
    "greater": _compare("ogt", "sgt"),
    "greater_equal": _compare("oge", "sge"),
    "logical_and": _logical("arith.andi"),
    "logical_or": _logical("arith.ori"),
    "logical_not": _not,
    "bitwise_and": _float_or_int(None, "arith.andi"),
    "bitwise_or": _float_or_int(None, "arith.ori"),
    "bitwise_xor": _float_or_int(None, "arith.xori"),
    "bitwise_not": _not,
    "select": _select,
    "cast": _cast,
    "stop_gradient": _identity,
}

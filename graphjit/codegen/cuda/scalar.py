"""THE table from op name to CUDA scalar expression: how one element of each elementwise op
is computed inside a generated kernel. `{0}`, `{1}`, ... are the operands: names of loaded,
typed scalars or literals, so a template may repeat them. Templates are plain expressions,
not calls to device functions: numba-cuda compiles a called device function for the current GPU, so a kernel
calling one could not be compiled to PTX on a machine without a GPU.

Fused kernels wrap every op's result in its dtype's constructor (`float32(...)`), so float32
code stays float32 and integer arithmetic (which Numba widens to int64) wraps like NumPy's.
NaN behaves as in NumPy: maximum/minimum propagate it, sign keeps it, comparisons with it
are false except `!=`. Integer pow with a negative exponent, and integer // or % by zero,
are RuntimeCheckErrors (CUDA_CHECKS).

float16/bfloat16 operands are float32 values (narrow.py): a template computes in float32
and the kernel rounds each narrow result once (`needs_rounding`), as the interpreter does."""

from __future__ import annotations

from graphjit.codegen.cuda.narrow import narrow_format
from graphjit.codegen.cuda.source import literal, numba_type
from graphjit.errors import BackendError
from graphjit.ir.core import Operation
from graphjit.ir.ops import get_op
from graphjit.ir.ops.elementwise import float_range_of
from graphjit.ir.types import DType, as_dtype

# NaN if either operand is NaN (their sum), else the larger (smaller) one, as NumPy's
# maximum (minimum); integers never take the NaN branch.
MAXIMUM = "({0} + {1} if {0} != {0} or {1} != {1} else ({0} if {0} > {1} else {1}))"
MINIMUM = "({0} + {1} if {0} != {0} or {1} != {1} else ({0} if {0} < {1} else {1}))"

# NumPy's float floor division and modulo (npy_floor_divide, npy_remainder), step for step:
# fmod(x, y) "moves" by y where it is nonzero (NaN included) and its sign differs from y's;
# the quotient (x - fmod) / y, one less where the remainder moved, is floored and snapped
# to the nearest integer; zeros take the sign of x / y (quotient) or of y (remainder);
# y = 0 gives x / y and fmod(x, 0).
FMOD = "math.fmod({0}, {1})"
MOVES = f"({FMOD} != 0 and (({{1}} < 0) != ({FMOD} < 0)))"
QUOTIENT = f"(({{0}} - {FMOD}) / {{1}} - (1.0 if {MOVES} else 0.0))"
SNAPPED = f"(math.floor({QUOTIENT}) + (1.0 if {QUOTIENT} - math.floor({QUOTIENT}) > 0.5 else 0.0))"
FLOAT_FLOOR_DIVIDE = (
    f"(({{0}} / {{1}}) if {{1}} == 0 else ({SNAPPED} if {QUOTIENT} != 0 "
    "else math.copysign(0.0, {0} / {1})))"
)
FLOAT_FLOOR_MOD = (
    f"({FMOD} if {{1}} == 0 else (({FMOD} + {{1}}) if {MOVES} else "
    f"({FMOD} if {FMOD} != 0 else math.copysign(0.0, {{1}}))))"
)

# floor, ceil and round of a float: |x| >= 2^52 (and inf) is an integer already and NaN
# stays NaN; below, the integer takes x's sign, which gives NumPy's -0.0 for ceil(-0.5) and
# round(-0.4) (Numba's math.floor returns an integer, which has no -0.0, NaN or inf).
# round adds and subtracts 2^52 in float64 (which holds every float32 exactly; a float32
# sum would round at 2^-1 rather than 2^0), rounding |x| to an integer, halves to even.
TWO_52 = "4503599627370496.0"
INTEGRAL_FLOAT = f"(math.copysign({{r}}, {{{{0}}}}) if abs({{{{0}}}}) < {TWO_52} else {{{{0}}}})"
FLOOR = INTEGRAL_FLOAT.format(r="math.floor({0})")
CEIL = INTEGRAL_FLOAT.format(r="math.ceil({0})")
ROUND = INTEGRAL_FLOAT.format(r=f"(float64(abs({{0}})) + {TWO_52}) - {TWO_52}")

CUDA_SCALAR: dict[str, str] = {
    "neg": "(-{0})",
    "exp": "math.exp({0})",
    "log": "math.log({0})",
    "sqrt": "math.sqrt({0})",
    "sin": "math.sin({0})",
    "cos": "math.cos({0})",
    "tanh": "math.tanh({0})",
    "erf": "math.erf({0})",
    "log1p": "math.log1p({0})",
    "expm1": "math.expm1({0})",
    "floor": FLOOR,
    "ceil": CEIL,
    "round": ROUND,
    "sigmoid": "(1.0 / (1.0 + math.exp(-{0})))",
    "abs": "abs({0})",
    # NumPy's sign: 0 for ±0, NaN for NaN (x - x)
    "sign": "(1 if {0} > 0 else (-1 if {0} < 0 else {0} - {0}))",
    "logical_not": "(not {0})",
    "stop_gradient": "{0}",
    # index maps: the kernel's loads already index the operand as broadcast
    "broadcast_like": "{0}",
    "broadcast_to": "{0}",
    "cast": "{0}",  # the result's constructor converts (to bool: CASTS_TO_BOOL)
    "add": "({0} + {1})",
    "sub": "({0} - {1})",
    "mul": "({0} * {1})",
    "div": "({0} / {1})",
    "pow": "({0} ** {1})",
    "maximum": MAXIMUM,
    "minimum": MINIMUM,
    "equal": "({0} == {1})",
    "not_equal": "({0} != {1})",
    "less": "({0} < {1})",
    "less_equal": "({0} <= {1})",
    "greater": "({0} > {1})",
    "greater_equal": "({0} >= {1})",
    "logical_and": "({0} and {1})",
    "logical_or": "({0} or {1})",
    "select": "({1} if {0} else {2})",
    "bitwise_and": "({0} & {1})",
    "bitwise_or": "({0} | {1})",
    "bitwise_xor": "({0} ^ {1})",
    "bitwise_not": "(~{0})",
    "floor_divide": FLOAT_FLOOR_DIVIDE,
    "floor_mod": FLOAT_FLOOR_MOD,
}

# Value checks: op name -> a condition on its operands that is true for a bad element
# (RuntimeCheckError, as in the reference kernel), for the integer dtypes it applies to;
# the op's integer template computes 0 there instead (`**` would raise in the simulator).
CUDA_CHECKS = {"pow": "{1} < 0", "floor_divide": "{1} == 0", "floor_mod": "{1} == 0"}
INTEGER_TEMPLATES = {
    "pow": "({0} ** {1} if {1} >= 0 else 0)",
    # Python's // and % floor as NumPy's do; MIN // -1 wraps to MIN (-MIN, converted),
    # and neither divides by -1 or 0, which could trap on the GPU (or raise in the simulator)
    "floor_divide": "((-{0}) if {1} == -1 else ({0} // {1} if {1} != 0 else 0))",
    "floor_mod": "({0} % {1} if {1} != 0 and {1} != -1 else 0)",
}
# Bitwise ops on booleans are the logical ones (Python's ~True is -2, not False).
BOOLEAN_TEMPLATES = {
    "bitwise_and": "({0} and {1})",
    "bitwise_or": "({0} or {1})",
    "bitwise_xor": "({0} != {1})",
    "bitwise_not": "(not {0})",
}


# A cast's source kind -> template, for casts to bool (other casts are the constructor's).
CASTS_TO_BOOL = {"f": "({0} != 0.0)", "i": "({0} != 0)", "b": "{0}"}

# Reductions: how a partial result absorbs one more element.
COMBINE = {
    "reduce_sum": "({0} + {1})",
    "sum_to": "({0} + {1})",
    "reduce_prod": "({0} * {1})",
    "reduce_max": MAXIMUM,
    "reduce_min": MINIMUM,
}


def kind(dtype: DType) -> str:
    return "f" if dtype.is_floating else "b" if dtype.is_bool else "i"


# Ops whose float16/bfloat16 result is one of their operands' values (already rounded) or
# NaN: no rounding after them.
EXACT_ON_NARROW = frozenset(
    {"select", "stop_gradient", "broadcast_like", "broadcast_to", "neg", "abs", "sign"}
    | {"maximum", "minimum"}
)


def needs_rounding(op: Operation) -> bool:
    """Whether elementwise `op`'s float32 result must be rounded to its narrow dtype."""
    return op.result.type.dtype.is_narrow_float and op.name not in EXACT_ON_NARROW


def scalar_expression(op: Operation, args: list[str]) -> str:
    """The expression computing one element of elementwise `op` from operand expressions
    `args`, converted to the result's register type (float32 for a narrow float, which
    `needs_rounding` then)."""
    entry = CUDA_SCALAR.get(op.name)
    if entry is None:
        raise BackendError(f"the cuda backend has no scalar rule for '{op.name}'", op=op)
    result = op.result.type.dtype
    if kind(result) == "i" and op.name in INTEGER_TEMPLATES:
        entry = INTEGER_TEMPLATES[op.name]
    elif kind(result) == "b" and op.name in BOOLEAN_TEMPLATES:
        entry = BOOLEAN_TEMPLATES[op.name]
    elif op.name == "cast" and as_dtype(op.attrs["dtype"]).is_bool:
        entry = CASTS_TO_BOOL[kind(op.operands[0].type.dtype)]
    elif op.name == "cast" and op.operands[0].type.dtype.is_floating and kind(result) == "i":
        low, high = float_range_of(result.np)  # NaN, out of range: the minimum, as elsewhere
        entry = f"({{0}} if {{0}} >= {low!r} and {{0}} < {high!r} else {low!r})"
    elif op.name == "cast" and result.is_narrow_float:
        entry = _cast_to_narrow(op.operands[0].type.dtype, result)
    return convert(entry.format(*args), result)


def _cast_to_narrow(source: DType, result: DType) -> str:
    """A cast to float16/bfloat16 as a float32 that rounds to the correct result: float32
    and narrow sources are exact in float32; others go through float64 (exact for
    integers below 2**53) and `from_float64`, so that they are rounded once."""
    if source.name == "float32" or source.is_narrow_float:
        return "{0}"
    return narrow_format(result).from_float64.format("float64({0})")


def convert(expr: str, dtype: DType) -> str:
    """`expr` as a value of `dtype` (bool expressions are bool already)."""
    return expr if dtype.is_bool else f"{numba_type(dtype)}({expr})"


def combine(name: str, acc: str, x: str, dtype: DType) -> str:
    return convert(COMBINE[name].format(acc, x), dtype)


def identity(name: str, dtype: DType) -> str:
    """The reduction's starting value, as its OpDef declares it."""
    return literal(get_op(name).identity(dtype.np), dtype)

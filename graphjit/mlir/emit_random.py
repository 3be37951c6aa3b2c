"""Random ops (graphjit/ir/ops/random.py) in upstream MLIR: Philox 4x32-10 in `arith`
integers inside a `linalg.generic`, the same words for the same (seed, step, key) as the
interpreter, llvm and cuda.

Element i (row-major) runs Philox on counter (i, step) with key seed ^ key: the 32 x 32
-> 64-bit products are `arith.muli` on i64, the rng pair is read through two constant
indexing maps. Uniforms and dropout's keep decision are made from the same mantissa bits
as every backend, so they match bit for bit. Normals are Box-Muller in float64 as the
other backends compute them, with the llvm backend's own log and cosine (IREE links no
float64 `math.cos`; own_math.py writes mathlib's): float32 normals bit for bit llvm's,
float64 ones within an ulp (LLVM may leave a multiply-add unfused), and within about an
ulp of the interpreter's libm ones. The rng pair is read as two scalars before the
generic: read through constant indexing maps, IREE fused two same-shaped draws and the
second drew other numbers. A truncated normal's rounds are an `scf.while` inside the
generic's body."""

from __future__ import annotations

import math

from graphjit.ir.ops.random import (
    FLOAT_BITS,
    MULTIPLIERS,
    ROUNDS,
    TRUNCATED_ROUNDS,
    TRUNCATION,
    TWO_PI,
    WEYL,
    dropout_scale,
    dropout_threshold,
)
from graphjit.ir.types import bool_, float64, int32, int64
from graphjit.mlir import own_math
from graphjit.mlir.structured import generic, identity_map, operands, while_loop
from graphjit.mlir.writer import ExportError, element_type

# ---- Philox 4x32-10 ------------------------------------------------------------------------


def signed32(value: int) -> int:
    """A 32-bit word as the signed i32 constant holding its bits."""
    return value - (1 << 32) if value >= 1 << 31 else value


def words_of(w, value: str) -> list:
    """The low and high 32-bit words of an i64."""
    high = w.op(f"arith.shrui {value}, {w.scalar(32, int64)} : i64")
    return [w.op(f"arith.trunci {v} : i64 to i32") for v in (value, high)]


def high_low(w, word: str, multiplier: int) -> tuple[str, str]:
    """The high and low words of word * multiplier (exact in 64 bits)."""
    wide = w.op(f"arith.extui {word} : i32 to i64")
    product = w.op(f"arith.muli {wide}, {w.scalar(multiplier, int64)} : i64")
    return tuple(words_of(w, product)[::-1])


def philox(w, counter: list, key: list) -> list:
    """Philox4x32-10 on four i32 counter words and two i32 key words (unrolled)."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    xor = lambda a, b: w.op(f"arith.xori {a}, {b} : i32")  # noqa: E731
    for r in range(ROUNDS):
        if r:
            k0 = w.op(f"arith.addi {k0}, {w.scalar(signed32(WEYL[0]), int32)} : i32")
            k1 = w.op(f"arith.addi {k1}, {w.scalar(signed32(WEYL[1]), int32)} : i32")
        hi0, lo0 = high_low(w, c0, MULTIPLIERS[0])
        hi1, lo1 = high_low(w, c2, MULTIPLIERS[1])
        c0, c1, c2, c3 = xor(xor(hi1, c1), k0), lo1, xor(xor(hi0, c3), k1), lo0
    return [c0, c1, c2, c3]


def block(w, seed: str, step: str, key: int, index: str) -> list:
    """The four words of Philox block `index` (i64) for rng (seed, step) and an op key."""
    mixed = w.op(f"arith.xori {seed}, {w.scalar(key, int64)} : i64")
    return philox(w, words_of(w, index) + words_of(w, step), words_of(w, mixed))


def mantissa(w, words: list, dtype) -> str:
    """The i64 whose value times 2**-bits is the uniform (23 bits of word 0, or 52 of
    words 1 and 0)."""
    if dtype == float64:
        high = w.op(f"arith.extui {words[1]} : i32 to i64")
        high = w.op(f"arith.shli {high}, {w.scalar(20, int64)} : i64")
        low = w.op(f"arith.shrui {words[0]}, {w.scalar(12, int32)} : i32")
        return w.op(f"arith.ori {high}, {w.op(f'arith.extui {low} : i32 to i64')} : i64")
    bits = w.op(f"arith.shrui {words[0]}, {w.scalar(9, int32)} : i32")
    return w.op(f"arith.extui {bits} : i32 to i64")


def uniform(w, words: list, dtype) -> str:
    ty = element_type(dtype)
    bits = FLOAT_BITS[dtype.name]
    value = w.op(f"arith.sitofp {mantissa(w, words, dtype)} : i64 to {ty}")
    return w.op(f"arith.mulf {value}, {w.scalar(2.0**-bits, dtype)} : {ty}")


# ---- Box-Muller ----------------------------------------------------------------------------


def normal64(w, words: list) -> str:
    """Box-Muller in float64: sqrt(-2 log(1 - u1)) * cos(2 pi u2)."""
    u1, u2 = uniform(w, words[:2], float64), uniform(w, words[2:], float64)
    rest = w.op(f"arith.subf {w.scalar(1.0, float64)}, {u1} : f64")
    log = own_math.emit(w, "log", rest, float64)
    radius = w.op(f"math.sqrt {w.op(f'arith.mulf {w.scalar(-2.0, float64)}, {log} : f64')} : f64")
    angle = w.op(f"arith.mulf {w.scalar(TWO_PI, float64)}, {u2} : f64")
    return w.op(f"arith.mulf {radius}, {own_math.sin_cos(w, angle, float64, True, True)} : f64")


def truncated64(w, seed, step, key, index: str, n: int) -> str:
    """The first normal of rounds r = 0, 1, ... (block r * n + index) within the bounds;
    when none is, the last round's clipped. An scf.while inside the generic's body: the
    rounds run until one is inside, as on the other backends."""
    bound = w.scalar(TRUNCATION, float64)
    start = [w.scalar(0, int64), w.scalar(0.0, float64), w.scalar(False, bool_)]

    def more(w, values):
        rounds_left = w.op(
            f"arith.cmpi slt, {values[0]}, {w.scalar(TRUNCATED_ROUNDS, int64)} : i64"
        )
        missing = w.op(f"arith.xori {values[2]}, {w.scalar(True, bool_)} : i1")
        return w.op(f"arith.andi {rounds_left}, {missing} : i1")

    def round_(w, values):
        offset = w.op(f"arith.muli {values[0]}, {w.scalar(n, int64)} : i64")
        at = w.op(f"arith.addi {index}, {offset} : i64")
        z = normal64(w, block(w, seed, step, key, at))
        inside = w.op(f"arith.cmpf ole, {w.op(f'math.absf {z} : f64')}, {bound} : f64")
        return [w.op(f"arith.addi {values[0]}, {w.scalar(1, int64)} : i64"), z, inside]

    z = while_loop(w, start, ["i64", "f64", "i1"], more, round_)[1]
    clipped = w.op(f"arith.minimumf {z}, {bound} : f64")
    return w.op(f"arith.maximumf {clipped}, {w.scalar(-TRUNCATION, float64)} : f64")


def to_dtype(w, z: str, dtype) -> str:
    return z if dtype == float64 else w.op(f"arith.truncf {z} : f64 to f32")


# ---- one generic per op ----------------------------------------------------------------------


def element_index(w, shape) -> str:
    """The row-major position of the current element, as i64."""
    index = w.index(0)
    for axis, size in enumerate(shape):
        scaled = w.op(f"arith.muli {index}, {w.index(size)} : index")
        index = w.op(f"arith.addi {scaled}, {w.op(f'linalg.index {axis} : index')} : index")
    return w.op(f"arith.index_cast {index} : index to i64")


RNG_OPERAND = {"dropout": 1}  # (the others read only the rng, operand 0)


def per_element(w, op, inputs: list, element) -> list:
    """A generic over the result: `element(w, seed, step, index, input scalars)`; the rng
    (operand `rng`) is read as two scalars before it."""
    out = op.result.type
    if not out.is_static:
        raise ExportError(f"{op.name} exports only with known shapes: pass feed_dict")
    rng = op.operands[RNG_OPERAND.get(op.name, 0)]
    rank = len(out.shape)
    seed, step = (
        w.op(f"tensor.extract {w.name(rng)}[{w.index(i)}] : tensor<2xi64>") for i in (0, 1)
    )
    maps = [identity_map(rank)] * (len(inputs) + 1)
    init = w.empty(out, list(out.shape))

    def body(w, s):
        index = element_index(w, out.shape)
        return [element(w, seed, step, index, s[: len(inputs)])]

    return generic(w, inputs, [(init, out)], maps, ["parallel"] * rank, body)


def emit_random_uniform(w, op):
    dtype, key = op.result.type.dtype, op.attrs["key"]
    return per_element(
        w, op, [], lambda w, seed, step, i, _: uniform(w, block(w, seed, step, key, i), dtype)
    )


def emit_random_normal(w, op):
    dtype, key = op.result.type.dtype, op.attrs["key"]

    def element(w, seed, step, i, _):
        return to_dtype(w, normal64(w, block(w, seed, step, key, i)), dtype)

    return per_element(w, op, [], element)


def emit_random_truncated_normal(w, op):
    dtype, key, n = op.result.type.dtype, op.attrs["key"], math.prod(op.result.type.shape)

    def element(w, seed, step, i, _):
        return to_dtype(w, truncated64(w, seed, step, key, i, n), dtype)

    return per_element(w, op, [], element)


def emit_dropout(w, op):
    """x * 1 / (1 - p) where the element's mantissa bits reach the threshold, else 0."""
    (x, tx), _ = operands(w, op)
    dtype, p, key = tx.dtype, op.attrs["p"], op.attrs["key"]
    ty = element_type(dtype)

    def element(w, seed, step, i, loaded):
        bits = mantissa(w, block(w, seed, step, key, i), dtype)
        threshold = w.scalar(dropout_threshold(p, dtype), int64)
        keep = w.op(f"arith.cmpi sge, {bits}, {threshold} : i64")
        scaled = w.op(f"arith.mulf {loaded[0]}, {w.scalar(dropout_scale(p), dtype)} : {ty}")
        return w.op(f"arith.select {keep}, {scaled}, {w.scalar(0.0, dtype)} : {ty}")

    return per_element(w, op, [(x, tx)], element)


EMITTERS: dict = {
    "random_uniform": emit_random_uniform,
    "random_normal": emit_random_normal,
    "random_truncated_normal": emit_random_truncated_normal,
    "dropout": emit_dropout,
}

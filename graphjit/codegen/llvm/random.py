"""The llvm lowerings of ir/ops/random.py: op name -> lowering(low, op).

Each random op becomes one kernel function `void(i64* rng, [T* x,] T* out, i64 lo, i64 hi)`
looping over its elements; element i runs Philox 4x32-10 on counter (i, step) with 32 x 32
-> 64-bit multiplies, then the distribution, exactly as the reference kernels in
ir/ops/random.py do (the same words, the same float64 Box-Muller). Large ops are split over
threads like fused kernels, and long loops poll for Ctrl-C."""

from __future__ import annotations

from llvmlite import ir

from graphjit.codegen.layout import size_of
from graphjit.codegen.llvm import interrupt
from graphjit.codegen.llvm import types as T
from graphjit.codegen.llvm.loops import loop_nest, polls
from graphjit.codegen.llvm.mathlib import emit_math
from graphjit.codegen.llvm.parallel import call_split
from graphjit.ir.core import Operation
from graphjit.ir.ops.random import (
    MULTIPLIERS,
    ROUNDS,
    TRUNCATED_ROUNDS,
    TRUNCATION,
    TWO_PI,
    WEYL,
    dropout_scale,
    dropout_threshold,
)
from graphjit.ir.types import float64

# Estimated work per element, in adds (parallel.py's unit): ten rounds of two multiplies
# and a few logic ops; Box-Muller adds a log, a sqrt and a cos (mathlib's: vectorised).
PHILOX_COST = 60
NORMAL_COST = PHILOX_COST + 40


def _i32(v: int) -> ir.Constant:
    return ir.Constant(T.I32, v)


def _i64(v: int) -> ir.Constant:
    return ir.Constant(T.I64, v)


def _mulhilo(b: ir.IRBuilder, a: ir.Value, m: int) -> tuple:
    product = b.mul(b.zext(a, T.I64), _i64(m))
    return b.trunc(b.lshr(product, _i64(32)), T.I32), b.trunc(product, T.I32)


def philox(b: ir.IRBuilder, counter: list, key: list) -> list:
    """Philox4x32-10 on four i32 counter words and two i32 key words (emitted unrolled)."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for r in range(ROUNDS):
        if r:
            k0, k1 = b.add(k0, _i32(WEYL[0])), b.add(k1, _i32(WEYL[1]))
        hi0, lo0 = _mulhilo(b, c0, MULTIPLIERS[0])
        hi1, lo1 = _mulhilo(b, c2, MULTIPLIERS[1])
        c0, c1, c2, c3 = b.xor(b.xor(hi1, c1), k0), lo1, b.xor(b.xor(hi0, c3), k1), lo0
    return [c0, c1, c2, c3]


class _Stream:
    """The key and step words of one op's rng, read once per kernel call."""

    def __init__(self, b: ir.IRBuilder, rng_ptr: ir.Value, key_attr: int):
        seed = b.load(rng_ptr)
        step = b.load(b.gep(rng_ptr, [_i64(1)]))
        key = b.xor(seed, _i64(key_attr))
        self.key = [b.trunc(key, T.I32), b.trunc(b.lshr(key, _i64(32)), T.I32)]
        self.step = [b.trunc(step, T.I32), b.trunc(b.lshr(step, _i64(32)), T.I32)]

    def words(self, b: ir.IRBuilder, index: ir.Value) -> list:
        counter = [b.trunc(index, T.I32), b.trunc(b.lshr(index, _i64(32)), T.I32), *self.step]
        return philox(b, counter, self.key)


def mantissa(b: ir.IRBuilder, words: list, dtype) -> ir.Value:
    """The i64 whose value times 2**-bits is the float uniform (23 bits or 52)."""
    if dtype.name == "float64":
        high = b.shl(b.zext(words[1], T.I64), _i64(20))
        return b.or_(high, b.zext(b.lshr(words[0], _i32(12)), T.I64))
    return b.zext(b.lshr(words[0], _i32(9)), T.I64)


def uniform(b: ir.IRBuilder, words: list, dtype) -> ir.Value:
    ty = T.register_type(dtype)
    bits = 52 if dtype.name == "float64" else 23
    return b.fmul(b.uitofp(mantissa(b, words, dtype), ty), ir.Constant(ty, 2.0**-bits))


def normal64(b: ir.IRBuilder, words: list) -> ir.Value:
    """Box-Muller in float64: sqrt(-2 log(1 - u1)) * cos(2 pi u2), log and cos mathlib's
    (libm's cos, a call an element, kept the loop scalar: 1M normals 11.1 -> 4.6 ms)."""
    u1, u2 = uniform(b, words[:2], float64), uniform(b, words[2:], float64)
    log = emit_math(b, "log", b.fsub(ir.Constant(T.F64, 1.0), u1))
    radius = _intrinsic(b, "llvm.sqrt", b.fmul(ir.Constant(T.F64, -2.0), log))
    angle = b.fmul(ir.Constant(T.F64, TWO_PI), u2)
    return b.fmul(radius, emit_math(b, "cos", angle))


def _intrinsic(b: ir.IRBuilder, name: str, x: ir.Value) -> ir.Value:
    return b.call(b.module.declare_intrinsic(name, [x.type]), [x])


def _to_dtype(b: ir.IRBuilder, z: ir.Value, dtype) -> ir.Value:
    return b.fptrunc(z, T.F32) if dtype.name == "float32" else z


def truncated64(b: ir.IRBuilder, stream: _Stream, index: ir.Value, n: int) -> ir.Value:
    """The first normal of rounds r = 0, 1, ... (block r * n + index) within the bounds;
    after the last round, that round's normal clipped."""
    before = b.block
    header = b.append_basic_block("trunc.round")
    retry = b.append_basic_block("trunc.retry")
    done = b.append_basic_block("trunc.done")
    b.branch(header)
    b.position_at_end(header)
    r = b.phi(T.I64, name="round")
    r.add_incoming(_i64(0), before)
    z = normal64(b, stream.words(b, b.add(b.mul(r, _i64(n)), index)))
    inside = b.fcmp_ordered("<=", _intrinsic(b, "llvm.fabs", z), ir.Constant(T.F64, TRUNCATION))
    last = b.icmp_signed("==", r, _i64(TRUNCATED_ROUNDS - 1))
    b.cbranch(b.or_(inside, last), done, retry)
    b.position_at_end(retry)
    r.add_incoming(b.add(r, _i64(1)), retry)
    b.branch(header)
    b.position_at_end(done)
    bound = ir.Constant(T.F64, TRUNCATION)
    clipped = b.select(b.fcmp_ordered(">", z, bound), bound, z)
    negative = ir.Constant(T.F64, -TRUNCATION)
    return b.select(b.fcmp_ordered("<", clipped, negative), negative, clipped)


# ---- one kernel per op -------------------------------------------------------------------


def _element_kernel(low, op: Operation, inputs: list, element, cost: int) -> None:
    """Emit and call `kernel(*inputs, out, lo, hi)` with out[i] = element(b, stream, i,
    loaded inputs)`; inputs[0] is the rng."""
    out, n = op.result, size_of(op.result.type.shape)
    if not n:
        return
    values = [*inputs, out]
    arg_types = [T.storage_type(v.type.dtype).as_pointer() for v in values]
    name = f"random{low.kernels}"
    low.kernels += 1
    fn = ir.Function(low.module, ir.FunctionType(ir.VoidType(), arg_types + [T.I64, T.I64]), name)
    fn.linkage = "internal"
    for arg in fn.args[: len(values)]:
        arg.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    stream = _Stream(b, fn.args[0], op.attrs["key"])
    poll = interrupt.returning_poll(b, low.module) if polls([n]) else None
    lo, hi = fn.args[-2:]
    with loop_nest(b, [n], [[1]], outer=(lo, hi), poll=poll) as (i,):
        loaded = [b.load(b.gep(p, [i])) for p in fn.args[1 : len(inputs)]]
        b.store(element(b, stream, i, loaded), b.gep(fn.args[len(inputs)], [i]))
    b.ret_void()
    call_split(low, fn, [low.typed(v) for v in values], n, n * cost)
    if poll is not None:  # the kernel may have returned early for a Ctrl-C
        low.poll_interrupt()


def op_random_uniform(low, op: Operation) -> None:
    dtype = op.result.type.dtype
    element = lambda b, s, i, _: uniform(b, s.words(b, i), dtype)  # noqa: E731
    _element_kernel(low, op, [op.operands[0]], element, PHILOX_COST)


def op_random_normal(low, op: Operation) -> None:
    dtype = op.result.type.dtype
    element = lambda b, s, i, _: _to_dtype(b, normal64(b, s.words(b, i)), dtype)  # noqa: E731
    _element_kernel(low, op, [op.operands[0]], element, NORMAL_COST)


def op_random_truncated_normal(low, op: Operation) -> None:
    dtype, n = op.result.type.dtype, size_of(op.result.type.shape)
    element = lambda b, s, i, _: _to_dtype(b, truncated64(b, s, i, n), dtype)  # noqa: E731
    _element_kernel(low, op, [op.operands[0]], element, NORMAL_COST)


def op_dropout(low, op: Operation) -> None:
    x, rng = op.operands
    dtype, p = x.type.dtype, op.attrs["p"]
    ty = T.register_type(dtype)
    threshold = _i64(dropout_threshold(p, dtype))
    scale = ir.Constant(ty, dropout_scale(p))

    def element(b, stream, i, loaded):
        keep = b.icmp_signed(">=", mantissa(b, stream.words(b, i), dtype), threshold)
        return b.select(keep, b.fmul(loaded[0], scale), ir.Constant(ty, 0.0))

    _element_kernel(low, op, [rng, x], element, PHILOX_COST)


LOWERINGS: dict = {
    "random_uniform": op_random_uniform,
    "random_normal": op_random_normal,
    "random_truncated_normal": op_random_truncated_normal,
    "dropout": op_dropout,
}

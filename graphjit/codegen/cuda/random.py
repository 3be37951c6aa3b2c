"""The cuda lowerings of ir/ops/random.py: op name -> lowering(low, op).

One grid-stride kernel per random op; element i runs Philox 4x32-10 on counter (i, step)
and then the distribution, as the reference kernels do. The 32 x 32 -> 64-bit products
are formed from 32 x 16-bit halves so that every intermediate stays below 2**49: exact in
int64 on the GPU and in the simulator (which runs the source as Python with NumPy
scalars), with no unsigned types needed."""

from __future__ import annotations

from graphjit.codegen.cuda.source import (
    KernelSource,
    Launch,
    Writer,
    header,
    kernel_source,
    literal,
)
from graphjit.codegen.layout import size_of
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
from graphjit.ir.types import DType, float64, int64

MASK = "0xFFFFFFFF"


def _mulhilo(w: Writer, a: str, m: int, hi: str, lo: str) -> None:
    """hi, lo = the high and low words of a * m (a, m below 2**32), exactly in int64."""
    w.line(f"p = {a} * {m & 0xFFFF}")
    w.line(f"q = {a} * {m >> 16}")
    w.line("t = p + ((q & 0xFFFF) << 16)")
    w.line(f"{hi} = (t >> 32) + (q >> 16)")
    w.line(f"{lo} = t & {MASK}")


def _philox(w: Writer, index: str) -> None:
    """Emit words w0..w3 of the block numbered `index` (key k0, k1 and step s0, s1 set)."""
    w.line(f"c0 = int64({index}) & {MASK}")
    w.line(f"c1 = (int64({index}) >> 32) & {MASK}")
    w.line("c2 = s0")
    w.line("c3 = s1")
    w.line("r0 = k0")
    w.line("r1 = k1")
    with w.block(f"for _ in range({ROUNDS})"):
        _mulhilo(w, "c0", MULTIPLIERS[0], "hi0", "lo0")
        _mulhilo(w, "c2", MULTIPLIERS[1], "hi1", "lo1")
        w.line("c0, c1, c2, c3 = hi1 ^ c1 ^ r0, lo1, hi0 ^ c3 ^ r1, lo0")
        w.line(f"r0 = (r0 + {WEYL[0]}) & {MASK}")  # (the bump after the last round is unused)
        w.line(f"r1 = (r1 + {WEYL[1]}) & {MASK}")
    w.line("w0, w1, w2, w3 = c0, c1, c2, c3")


def _stream(w: Writer, key: int) -> None:
    """The op's key and step words, from rng = (seed, step) and its key attribute."""
    w.line(f"key = rng[0] ^ {literal(key, int64)}")
    w.line(f"k0 = key & {MASK}")
    w.line(f"k1 = (key >> 32) & {MASK}")
    w.line(f"s0 = rng[1] & {MASK}")
    w.line(f"s1 = (rng[1] >> 32) & {MASK}")


def _mantissa(dtype: DType, low: str = "w0", high: str = "w1") -> str:
    if dtype.name == "float64":
        return f"(({high} << 20) | ({low} >> 12))"
    return f"({low} >> 9)"


def _uniform(dtype: DType, low: str = "w0", high: str = "w1") -> str:
    bits = 52 if dtype.name == "float64" else 23
    kind = "float64" if dtype.name == "float64" else "float32"
    return f"{kind}({_mantissa(dtype, low, high)}) * {kind}({2.0**-bits!r})"


def _normal(w: Writer) -> None:
    """z = Box-Muller in float64 from words w0-w1 (u1) and w2-w3 (u2)."""
    w.line(f"u1 = {_uniform(float64, 'w0', 'w1')}")
    w.line(f"u2 = {_uniform(float64, 'w2', 'w3')}")
    w.line(f"z = math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos({TWO_PI!r} * u2)")


def _kernel(params, label: str, key: int, n: int, body) -> KernelSource:
    w = Writer()
    with w.block(header(params)):
        _stream(w, key)
        with w.block(f"for i in range(cuda.grid(1), {n}, cuda.gridsize(1))"):
            body(w)
    return kernel_source(w, params, label)


def _cast(dtype: DType, expr: str) -> str:
    return f"float32({expr})" if dtype.name == "float32" else expr


def uniform_kernel(dtype: DType, n: int, key: int) -> KernelSource:
    def body(w):
        _philox(w, "i")
        w.line(f"out[i] = {_uniform(dtype)}")

    return _kernel([("rng", int64), ("out", dtype)], f"random uniform {n}", key, n, body)


def normal_kernel(dtype: DType, n: int, key: int) -> KernelSource:
    def body(w):
        _philox(w, "i")
        _normal(w)
        w.line(f"out[i] = {_cast(dtype, 'z')}")

    return _kernel([("rng", int64), ("out", dtype)], f"random normal {n}", key, n, body)


def truncated_normal_kernel(dtype: DType, n: int, key: int) -> KernelSource:
    """The first of TRUNCATED_ROUNDS normals (block r * n + i) within the bounds, else the
    last one clipped."""

    def body(w):
        w.line("z = 0.0")
        with w.block(f"for r in range({TRUNCATED_ROUNDS})"):
            _philox(w, f"(r * {n} + i)")
            _normal(w)
            with w.block(f"if abs(z) <= {TRUNCATION!r}"):
                w.line("break")
        w.line(f"z = min(max(z, {-TRUNCATION!r}), {TRUNCATION!r})")
        w.line(f"out[i] = {_cast(dtype, 'z')}")

    label = f"random truncated normal {n}"
    return _kernel([("rng", int64), ("out", dtype)], label, key, n, body)


def dropout_kernel(dtype: DType, n: int, key: int, p: float) -> KernelSource:
    threshold, scale = dropout_threshold(p, dtype), literal(dropout_scale(p), dtype)

    def body(w):
        _philox(w, "i")
        with w.block(f"if {_mantissa(dtype)} >= {threshold}"):
            w.line(f"out[i] = x[i] * {scale}")
        with w.block("else"):
            w.line(f"out[i] = {literal(0.0, dtype)}")

    params = [("rng", int64), ("x", dtype), ("out", dtype)]
    return _kernel(params, f"dropout {n} (p={p})", key, n, body)


# ---- lowerings ---------------------------------------------------------------------------


def _launch(low, op: Operation, kernel: KernelSource, args: tuple) -> list:
    n = size_of(op.result.type.shape)
    return low.launch([Launch(kernel, low.cfg.grid(n), low.cfg.block, args)]) if n else []


def _generator(make):
    def lowering(low, op: Operation) -> list:
        out = op.result
        kernel = make(out.type.dtype, size_of(out.type.shape), op.attrs["key"])
        return _launch(low, op, kernel, (op.operands[0], out))

    return lowering


def op_dropout(low, op: Operation) -> list:
    x, rng = op.operands
    kernel = dropout_kernel(x.type.dtype, size_of(x.type.shape), op.attrs["key"], op.attrs["p"])
    return _launch(low, op, kernel, (rng, x, op.result))


LOWERINGS: dict = {
    "random_uniform": _generator(uniform_kernel),
    "random_normal": _generator(normal_kernel),
    "random_truncated_normal": _generator(truncated_normal_kernel),
    "dropout": op_dropout,
}

"""The vectorisable math library: accuracy in ulp against NumPy over dense sweeps, random bit
patterns and special values; vectorisation of a loop calling it, after O3 for the host.

Each (function, dtype) gets a kernel `void k(T* in, T* out, i64 n)` applying the emitter;
all kernels share one module, optimised and JIT-compiled once. References are NumPy's
results in a wider type (float64 for float32; long double for float64 where it is wider)
rounded to the tested type. Run with `-s` to see the measured maxima
(throughput against NumPy is `graphjit bench`'s `elementwise` workload)."""

from __future__ import annotations

import ctypes
import re

import llvmlite.binding as llvm
import numpy as np
import pytest
import scipy.special
from llvm_helpers import assert_matches, record_llvm_ir, run_on
from llvmlite import ir

from graphjit.codegen.llvm.mathlib import MATH_FUNCTIONS, emit_math

DTYPES = (np.float32, np.float64)
MAX_ULP = {np.float32: 4, np.float64: 4}
N_SWEEP = 1_000_000
I64 = ir.IntType(64)
_LLVM_TYPE = {np.float32: ir.FloatType(), np.float64: ir.DoubleType()}
_INT = {np.float32: np.int32, np.float64: np.int64}
_KERNEL = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
_WIDE = {np.float32: np.float64, np.float64: np.longdouble}
MEASURED: dict = {}


def _kernel_name(name, dtype):
    return f"k_{name}_{np.dtype(dtype).name}"


def _build_kernel(module, name, dtype):
    """for (i = 0; i < n; i++) out[i] = name(in[i])"""
    _element_loop(
        module, _kernel_name(name, dtype), _LLVM_TYPE[dtype], 1, lambda b, x: emit_math(b, name, x)
    )


def _element_loop(module, symbol: str, ty, arity: int, compute) -> None:
    """for (i = 0; i < n; i++) out[i] = compute(b, in0[i], ...), arity inputs, noalias."""
    pointers = [ty.as_pointer()] * (arity + 1)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [*pointers, I64]), symbol)
    *sources, dst, n = fn.args
    for pointer in (*sources, dst):
        pointer.add_attribute("noalias")
    entry, loop, done = (fn.append_basic_block(s) for s in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, ir.Constant(I64, 0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(I64)
    i.add_incoming(ir.Constant(I64, 0), entry)
    b.store(compute(b, *[b.load(b.gep(src, [i])) for src in sources]), b.gep(dst, [i]))
    nxt = b.add(i, ir.Constant(I64, 1))
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    b.position_at_end(done)
    b.ret_void()


class _Compiled:
    def __init__(self):
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        module = ir.Module("mathlib_test")
        for name in MATH_FUNCTIONS:
            for dtype in DTYPES:
                _build_kernel(module, name, dtype)
        tm = llvm.Target.from_default_triple().create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3
        )
        mod = llvm.parse_assembly(str(module))
        mod.verify()
        mod.triple, mod.data_layout = tm.triple, str(tm.target_data)
        pto = llvm.create_pipeline_tuning_options(speed_level=3)
        pto.loop_vectorization = True
        pto.slp_vectorization = True
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
        self.optimised_ir = str(mod)
        self.engine = llvm.create_mcjit_compiler(mod, tm)
        self.engine.finalize_object()

    def function_ir(self, symbol):
        """The optimised IR of one kernel: from its `define` to the closing brace."""
        start = self.optimised_ir.index(f"@{symbol}(")
        return self.optimised_ir[start : self.optimised_ir.index("\n}\n", start)]

    def run(self, name, x):
        out = np.empty_like(x)
        fn = _KERNEL(self.engine.get_function_address(_kernel_name(name, x.dtype.type)))
        fn(x.ctypes.data, out.ctypes.data, x.size)
        return out


@pytest.fixture(scope="module")
def jit():
    return _Compiled()


def _sigmoid(x):
    t = np.exp(-np.abs(x))
    return np.where(x < 0, t, 1) / (1 + t)


_NUMPY = {
    "exp": np.exp,
    "expm1": np.expm1,
    "log": np.log,
    "log1p": np.log1p,
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    # SciPy has no long double erf: the float64 reference is itself within 1 ulp
    "erf": lambda x: scipy.special.erf(x.astype(np.float64)),
    "sin": np.sin,
    "cos": np.cos,
}


def reference(name, x):
    with np.errstate(all="ignore"):
        return _NUMPY[name](x.astype(_WIDE[x.dtype.type])).astype(x.dtype)


def _log_uniform(rng, dtype, lo_exp, hi_exp, n):
    """Positive values with log2 uniform in [lo_exp, hi_exp] (subnormals included)."""
    return np.exp2(rng.uniform(lo_exp, hi_exp, n)).astype(dtype)


def sweep(name, dtype, rng):
    """1e6 points over the function's useful range, dense where it is delicate."""
    f32 = dtype == np.float32
    n = N_SWEEP // 4
    magnitudes = _log_uniform(rng, dtype, -149 if f32 else -1074, 128 if f32 else 1024, n)
    parts = {
        "exp": [np.linspace(*((-110, 90) if f32 else (-750, 710)), 3 * n)],
        "expm1": [np.linspace(*((-30, 90) if f32 else (-60, 710)), 2 * n), np.linspace(-2, 2, n)],
        "log": [np.linspace(0, 4, 2 * n), np.linspace(0.5, 1.5, n)],
        "log1p": [np.linspace(-1, 3, 2 * n), np.linspace(-0.5, 0.5, n)],
        "tanh": [np.linspace(*((-12, 12) if f32 else (-25, 25)), 2 * n), np.linspace(-1, 1, n)],
        "sigmoid": [np.linspace(*((-120, 40) if f32 else (-800, 100)), 3 * n)],
        # every interval of the piecewise approximation, and where it saturates to +-1
        "erf": [
            np.linspace(-7, 7, 2 * n),
            np.linspace(0.8, 1.3, n // 2),
            np.linspace(-3, 3, n // 2),
        ],
        # angles, large ones, and neighbours of multiples of pi/2 on both sides of the
        # reduction's limit (2^24 in float, 2^30 in double; beyond, libm's lanes)
        "sin": _sincos_sweep(dtype, rng, n),
        "cos": _sincos_sweep(dtype, rng, n),
    }[name]
    if name in ("expm1", "log1p", "tanh", "erf"):
        magnitudes = _log_uniform(rng, dtype, -149 if f32 else -1074, 4, n)
    signed = magnitudes * rng.choice(np.array([-1, 1], dtype), n)
    return np.concatenate([p.astype(dtype) for p in parts] + [signed])


def _sincos_sweep(dtype, rng, n):
    limit = 2.0**25 if dtype == np.float32 else 2.0**31
    multiples = np.round(rng.uniform(-limit, limit, n // 2)) * (np.pi / 2)
    near = multiples.astype(dtype)
    near = np.concatenate([near, np.nextafter(near, dtype(np.inf))])
    return [np.linspace(-10, 10, n), np.linspace(-1e5, 1e5, n), near]


def random_bits(dtype, rng, n=1 << 18):
    info = np.iinfo(_INT[dtype])
    return rng.integers(info.min, info.max, n, dtype=_INT[dtype]).view(dtype)


def specials(dtype):
    fi = np.finfo(dtype)
    tiny, big = fi.smallest_subnormal, fi.max
    base = [0.0, np.inf, np.nan, 1.0, 0.5, 2.0, tiny, 2 * tiny, fi.tiny, fi.tiny - tiny, big]
    base += [fi.eps, fi.epsneg, 1 + fi.eps, 1 - fi.epsneg, 88.72, 88.73, 103.9, 104.0, 87.3]
    base += [709.78, 709.79, 745.1, 745.2, 708.4, 1000.0, 20.0, 22.0, 9.0, 0.625, 0.55]
    base += [np.log(2) / 2, np.log(2), 1.5 * np.log(2), 1e-3, 1e-5, 1e-8, 1e-20]
    with np.errstate(over="ignore"):
        x = np.array(base, np.float64).astype(dtype)
        near = np.concatenate([np.nextafter(x, dtype(np.inf)), np.nextafter(x, dtype(-np.inf))])
    x = np.concatenate([x, near])
    return np.concatenate([x, -x, -1 + x[np.isfinite(x) & (x < 1)]]).astype(dtype)


def ulp_distance(got, ref):
    """Distance in representable values, from the bit patterns (+0 and -0 coincide)."""
    ity = _INT[got.dtype.type]
    lowest = np.iinfo(ity).min

    def ordered(v):
        i = v.view(ity).astype(np.int64)
        return np.where(i < 0, lowest - i, i)

    return np.abs(ordered(got) - ordered(ref))


def check(jit, name, x):
    """Max ulp error of `name` on x; NaN exactly where the reference is NaN."""
    got, ref = jit.run(name, x), reference(name, x)
    nan = np.isnan(ref)
    bad = np.flatnonzero(np.isnan(got) != nan)
    assert bad.size == 0, f"{name}: NaN mismatch at x={x[bad[:5]]}: {got[bad[:5]]}"
    got, ref, x = got[~nan], ref[~nan], x[~nan]
    sign = np.flatnonzero(np.signbit(got) != np.signbit(ref))
    assert sign.size == 0, f"{name}: sign differs at x={x[sign[:5]]}: {got[sign[:5]]}"
    dist = ulp_distance(got, ref)
    worst = int(np.argmax(dist))
    return int(dist[worst]), x[worst]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", MATH_FUNCTIONS)
def test_accuracy(jit, name, dtype):
    rng = np.random.default_rng(12345)
    worst = {
        "sweep": check(jit, name, sweep(name, dtype, rng)),
        "bits": check(jit, name, random_bits(dtype, rng)),
        "specials": check(jit, name, specials(dtype)),
    }
    ulp, where = max(worst.values(), key=lambda w: w[0])
    MEASURED[name, np.dtype(dtype).name] = ulp
    print(f"\n{name}[{np.dtype(dtype).name}]: max {ulp} ulp (at x={where!r}) {worst}")
    assert ulp <= MAX_ULP[dtype]


_EXACT = [
    ("exp", [0.0, -0.0, np.inf, -np.inf, 1000.0, -1000.0], [1.0, 1.0, np.inf, 0.0, np.inf, 0.0]),
    ("expm1", [0.0, -0.0, np.inf, -np.inf, -1000.0], [0.0, -0.0, np.inf, -1.0, -1.0]),
    (
        "log",
        [0.0, -0.0, 1.0, np.inf, -1.0, -np.inf],
        [-np.inf, -np.inf, 0.0, np.inf, np.nan, np.nan],
    ),
    (
        "log1p",
        [0.0, -0.0, -1.0, np.inf, -2.0, -np.inf],
        [0.0, -0.0, -np.inf, np.inf, np.nan, np.nan],
    ),
    ("tanh", [0.0, -0.0, np.inf, -np.inf, 1000.0, -1000.0], [0.0, -0.0, 1.0, -1.0, 1.0, -1.0]),
    ("sigmoid", [0.0, -0.0, np.inf, -np.inf, 1000.0, -1000.0], [0.5, 0.5, 1.0, 0.0, 1.0, 0.0]),
    ("erf", [0.0, -0.0, np.inf, -np.inf, 6.0, -30.0], [0.0, -0.0, 1.0, -1.0, 1.0, -1.0]),
    ("sin", [0.0, -0.0, np.inf, -np.inf], [0.0, -0.0, np.nan, np.nan]),
    ("cos", [0.0, -0.0, np.inf, -np.inf], [1.0, 1.0, np.nan, np.nan]),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name,xs,expected", _EXACT, ids=[e[0] for e in _EXACT])
def test_special_values_exact(jit, name, xs, expected, dtype):
    got = jit.run(name, np.array(xs + [np.nan, -np.nan], dtype))
    want = np.array(expected + [np.nan, np.nan], dtype)
    np.testing.assert_array_equal(got, want)
    assert (np.signbit(got) == np.signbit(want))[~np.isnan(want)].all()


def test_subnormal_results_and_inputs(jit):
    tiny = np.finfo(np.float64).smallest_subnormal
    x = np.array([-745.1, -744.0, -740.0, -709.0], np.float64)
    assert ulp_distance(jit.run("exp", x), reference("exp", x)).max() <= 1
    sub = np.array([tiny, 3 * tiny, 2.0**-1030, 2.0**-1023], np.float64)
    np.testing.assert_allclose(jit.run("log", sub), np.log(sub), rtol=1e-15)
    np.testing.assert_array_equal(jit.run("tanh", sub), sub)
    np.testing.assert_array_equal(jit.run("expm1", -sub), -sub)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", MATH_FUNCTIONS)
def test_loop_vectorises_without_calls(jit, name, dtype):
    """The loop is vectorised; it calls nothing but LLVM intrinsics, or for the functions
    with a branch to libm (mathlib.BRANCHING) their own vector variants."""
    from graphjit.codegen.llvm import mathlib

    text = jit.function_ir(_kernel_name(name, dtype))
    scalar = "float" if dtype == np.float32 else "double"
    assert re.search(rf"<(\d+) x {scalar}>", text), f"{name}: loop was not vectorised"
    calls = re.findall(r"call [^@]*@([\w.\"]+)", text)
    if name in mathlib.BRANCHING:
        suffix = "f32" if dtype == np.float32 else "f64"
        variant = re.compile(rf"graphjit\.math\.{name}\.{suffix}\.(v\d+|call)$")
        assert any(re.match(r".*\.v\d+$", c) for c in calls), calls
        assert all(c.startswith("llvm.") or variant.match(c) for c in calls), calls
    else:
        assert all(c.startswith("llvm.") for c in calls), calls


def test_emitter_is_cached_per_module_and_validates():
    module = ir.Module("m")
    fn = ir.Function(module, ir.FunctionType(ir.FloatType(), [ir.FloatType()]), "f")
    b = ir.IRBuilder(fn.append_basic_block())
    y = emit_math(b, "exp", emit_math(b, "exp", fn.args[0]))
    b.ret(y)
    assert sum(1 for g in module.globals if g.startswith("graphjit.math.exp")) == 1
    with pytest.raises(ValueError):
        emit_math(b, "atan", fn.args[0])
    with pytest.raises(TypeError):
        emit_math(b, "exp", ir.Constant(ir.IntType(32), 1))
    llvm.parse_assembly(str(module)).verify()


CHAINS = {  # (each step of a chain that stays in the function's domain)
    "exp": lambda gj, x: gj.exp(-x * x),
    "expm1": lambda gj, x: gj.expm1(-x * x),
    "log": lambda gj, x: gj.log(1 + x * x),
    "log1p": lambda gj, x: gj.log1p(x * x),
    "tanh": lambda gj, x: gj.tanh(x * 0.9 + 0.1),
    "sigmoid": lambda gj, x: gj.sigmoid(x * 2),
    "erf": lambda gj, x: gj.erf(x * 1.5),
}
INLINABLE = [name for name in MATH_FUNCTIONS if name in CHAINS]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", INLINABLE)
def test_kernels_with_many_calls_call_vector_variants_with_the_same_bits(monkeypatch, name, dtype):
    """A kernel with OUT_OF_LINE_CALLS calls or more calls the functions out of line (their
    vector variants once vectorised): the same bits as the inlined bodies, on 1000 values
    (a vector loop and a scalar remainder)."""
    import graphjit as gj
    from graphjit.codegen.llvm import mathlib

    texts = record_llvm_ir(monkeypatch)
    rng = np.random.default_rng(7)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(dtype, [1000], name="x")
        y = x
        for _ in range(mathlib.OUT_OF_LINE_CALLS):
            y = CHAINS[name](gj, y)
    feeds = {x: rng.normal(size=1000).astype(dtype)}
    out_of_line = run_on("llvm", g, y, feeds)
    assert "vector-function-abi-variant" in texts[-1]
    monkeypatch.setattr(mathlib, "OUT_OF_LINE_CALLS", 10**9)
    inline = run_on("llvm", g, y, feeds)
    assert "vector-function-abi-variant" not in texts[-1]
    np.testing.assert_array_equal(out_of_line, inline)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    assert_matches(out_of_line, run_on("interpreter", g, y, feeds), name, **tol)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["sin", "cos"])
def test_sin_and_cos_in_kernels_mix_reduced_and_libm_lanes(name, dtype):
    """In a graphjit kernel (vectorised, split over threads), lanes beyond the reduction's
    limit (and infinities, NaN) go to libm next to ordinary ones in the same vectors: every
    value within 1 ulp of NumPy's, NaN where NumPy's is."""
    import graphjit as gj

    rng = np.random.default_rng(3)
    xs = rng.uniform(-50, 50, 100_003).astype(dtype)
    xs[::7] = rng.uniform(2.0**24, 2.0**40, xs[::7].size).astype(dtype)
    xs[::11] *= -1
    xs[:6] = [np.inf, -np.inf, np.nan, 0.0, -0.0, np.finfo(dtype).max]
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(dtype, [None], name="x")
        y = getattr(gj, name)(x)
    got = run_on("llvm", g, y, {x: xs})
    with np.errstate(invalid="ignore"):
        want = getattr(np, name)(xs.astype(_WIDE[dtype])).astype(dtype)
    assert (np.isnan(got) == np.isnan(want)).all()
    finite = ~np.isnan(want)
    assert ulp_distance(got[finite], want[finite]).max() <= 1


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_cubes_and_fourth_powers_are_products(monkeypatch, dtype):
    """x**3 and x**4 multiply (scalar._float_pow), as PyTorch and JAX do, instead of
    calling libm's pow per element: within 2 ulp of NumPy's power, with its infinities,
    NaN and signed zeros, on overflow and underflow too."""
    import graphjit as gj

    texts = record_llvm_ir(monkeypatch)
    fi = np.finfo(dtype)
    # (no subnormal results: the Session flushes those to zero, as it does everywhere)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e13, -1e13, 1e-9, -1e-9, fi.max, fi.tiny]
    scaled = np.random.default_rng(0).normal(size=999) * 10
    xs = np.concatenate([np.array(special, dtype), scaled.astype(dtype)])
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(dtype, [None], name="x")
        powers = [x**3, x**4]
    got = run_on("llvm", g, powers, {x: xs})
    assert "llvm.pow" not in texts[-1]
    for n, value in zip((3, 4), got, strict=True):
        with np.errstate(all="ignore"):
            want = np.power(xs, dtype(n))
        assert (np.isnan(value) == np.isnan(want)).all()
        finite = ~np.isnan(want)
        assert (np.signbit(value[finite]) == np.signbit(want[finite])).all()
        assert ulp_distance(value[finite], want[finite]).max() <= 2


def _optimised_power_loop() -> str:
    """for (i = 0; i < n; i++) out[i] = pow32(x[i], y[i]), optimised as graphjit does."""
    from graphjit.codegen.llvm import jit as llvm_jit
    from graphjit.codegen.llvm import target
    from graphjit.codegen.llvm.mathlib import emit_pow32

    module = ir.Module("pow_test")
    _element_loop(module, "k_pow", ir.FloatType(), 2, emit_pow32)
    optimised = target.parse(str(module))
    target.prepare(optimised, llvm_jit.target_machine())
    llvm_jit.optimise(optimised)
    return str(optimised)


def test_float_powers_vectorise_within_one_ulp_with_c99_special_cases():
    """Every other float x**y is mathlib.pow32 (exp(y log|x|) in double), not a libm call
    an element: the loop vectorises, every result is within 1 ulp of the correctly rounded
    power, and C99's special cases come out as libm's powf gives them (NumPy's float32
    power): x**0 = 1 and 1**y = 1 for NaN too, (-1)**+-inf = 1, zeros and infinities of
    either sign to odd, even and non-integer powers, a negative base to a non-integer
    power NaN. double stays libm's."""
    import itertools

    import graphjit as gj

    special = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, 1.7, -1.7, 3.5, -3.5]
    special += [np.inf, -np.inf, np.nan, 1e-30, -1e-30, 1e30, -1e30, 0.999, 1.001, 127.0]
    special += [2.0**24, -(2.0**24), 2.0**24 + 2, 2.0**25 + 1e3, -149.0, 150.0, -150.0]
    pairs = np.array(list(itertools.product(special, special)), np.float32).T
    rng = np.random.default_rng(0)
    bases = np.abs(rng.normal(size=20_000)) * rng.choice([1e-3, 1, 10], 20_000)
    exponents = rng.normal(size=20_000) * 4
    xs = np.concatenate([pairs[0], bases, -bases[:2000]]).astype(np.float32)
    ys = np.concatenate([pairs[1], exponents, np.round(exponents[:2000])]).astype(np.float32)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(np.float32, [None], name="x")
        y = gj.placeholder(np.float32, [None], name="y")
        power = x**y
    with gj.Session(g, flush_denormals=False) as sess:  # (subnormal results kept)
        got = sess.run(power, {x: xs, y: ys})
    loop = _optimised_power_loop()
    assert re.search(r"<\d+ x double>", loop)  # vectorised
    calls = re.findall(r"call [^@]*@([\w.\"]+)", loop)
    assert all(c.startswith("llvm.") and "pow" not in c for c in calls), calls
    with np.errstate(all="ignore"):
        libm = np.power(xs, ys)
        exact = np.power(xs.astype(np.float64), ys.astype(np.float64)).astype(np.float32)
    assert (np.isnan(got) == np.isnan(libm)).all()
    finite = ~np.isnan(libm)
    np.testing.assert_array_equal(np.signbit(got[finite]), np.signbit(libm[finite]))
    assert ulp_distance(got[finite], exact[finite]).max() <= 1
    assert ulp_distance(got[finite], libm[finite]).max() <= 1

"""graphjit's own sin, cos (every float type) and float64 tanh, erf, expm1, log1p on the
iree backend (graphjit/mlir/own_math.py), against NumPy's libm at the arguments where
IREE's own were wrong or missing: huge angles, the doubles nearest a multiple of pi/2,
tiny arguments of expm1 and log1p, signed zeros, infinities, NaN. Subnormal arguments
are left out: IREE flushes them to zero (as the llvm backend does by default)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from iree_helpers import require_iree

import graphjit as gj
from graphjit.mlir.export import export_with_checks
from graphjit.mlir.own_math import OWN_MATH
from graphjit.runtime.program import build_program

require_iree()

GJ_DTYPES = {"float16": gj.float16, "float32": gj.float32, "float64": gj.float64}
INT_VIEW = {"float16": np.int16, "float32": np.int32, "float64": np.int64}


def ulps_apart(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The distance in units in the last place, on an integer line through -0 = +0 (so a
    sign error counts); 0 where both are NaN."""
    bits = 8 * a.dtype.itemsize

    def line(v):
        i = v.view(INT_VIEW[v.dtype.name]).astype(np.int64)
        return np.where(i < 0, -(2 ** (bits - 1)) - i, i)

    distance = np.abs(line(a) - line(b))
    return np.where(np.isnan(a) & np.isnan(b), 0, distance)


def libm(name: str, xs: np.ndarray) -> np.ndarray:
    """math.sin or math.cos of each value (in float64), rounded to xs's dtype."""
    function = getattr(math, name)
    values = [function(v) if math.isfinite(v) else math.nan for v in xs.astype(float).tolist()]
    return np.asarray(values).astype(xs.dtype)


def run_iree(name: str, xs: np.ndarray) -> np.ndarray:
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(GJ_DTYPES[xs.dtype.name], shape=[None])
        y = getattr(gj, name)(x)
    with gj.Session(g, backend="iree") as sess:
        return sess.run(y, {x: xs})


def nearest_multiples_of_half_pi(count: int) -> np.ndarray:
    """k * pi/2 rounded to double for k up to 2^40 (log-spaced): the doubles whose
    reduced argument is tiniest, where a reduction short of bits loses them all."""
    ks = np.unique(np.geomspace(1, 2.0**40, count).round())
    return ks * (np.pi / 2)


def angles(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    finite_max = float(np.finfo(dtype).max)
    magnitudes = np.exp(rng.uniform(-8, math.log(finite_max), 4000))
    values = [
        magnitudes * rng.choice([-1, 1], magnitudes.size),
        rng.normal(size=1000) * 4,
        nearest_multiples_of_half_pi(300),
        [0.0, -0.0, math.inf, -math.inf, math.nan, finite_max, -finite_max],
        [math.pi / 4, np.nextafter(math.pi / 4, 1), 2.0**-27, 1e-30],
    ]
    if dtype != "float16":
        values.append([2.0**24, 2.0**24 + 2, 2.0**30, 1e10, 1e20, 3e38])
    if dtype == "float64":
        values.append([1e22, 1e300, 2.0**1023])
    with np.errstate(over="ignore"):
        xs = np.concatenate([np.asarray(v, dtype=float) for v in values]).astype(dtype)
    return xs[~np.isinf(xs) | np.isin(xs, [math.inf, -math.inf])]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("name", ["sin", "cos"])
def test_sin_and_cos_are_within_one_ulp_for_every_argument(name, dtype):
    """IREE's own float32 sin gave sin(1e6) 7% off and sin(1e20) = -inf, and no float64
    sin compiled. Reference: libm's float64 sin (Python's math.sin: correctly rounded
    here, where NumPy's vectorised one is 8 ulp off at the hardest case), rounded to the
    dtype."""
    xs = angles(dtype)
    expected = libm(name, xs)
    got = run_iree(name, xs)
    distance = ulps_apart(got, expected)
    worst = int(distance.argmax())
    assert distance.max() <= 1, f"{name}({xs[worst]!r}) = {got[worst]!r}, want {expected[worst]!r}"


SPECIALS = [0.0, -0.0, math.inf, -math.inf, math.nan]


@pytest.mark.parametrize(
    "name, reference, arguments",
    [
        ("expm1", np.expm1, [1e-300, 1e-30, -1e-8, 1e-8, 0.3, -0.7, 2.0, 30.0, -40.0, 709.0]),
        ("log1p", np.log1p, [1e-300, 1e-30, -1e-8, 1e-8, 0.3, -0.7, 2.0, 1e10, 1e300, -1.0]),
        ("tanh", np.tanh, [1e-300, 1e-8, -0.24, 0.55, -1.0, 3.0, 19.0, -22.5, 1e300]),
        ("erf", np.vectorize(math.erf), [1e-300, 1e-8, 0.5, -0.84, 1.0, -1.3, 2.5, 5.9, 7.0]),
    ],
)
def test_float64_functions_iree_lacks_match_libm(name, reference, arguments):
    """IREE computed expm1 and log1p as exp(x) - 1 and log(1 + x) (log1p(1e-30) = 0) and
    linked no float64 tanh or erf: these are the llvm backend's bodies."""
    rng = np.random.default_rng(1)
    xs = np.concatenate(
        [arguments, SPECIALS, rng.normal(size=2000) * rng.choice([1e-6, 1, 10], 2000)]
    )
    xs = xs[xs >= -1] if name == "log1p" else xs
    with np.errstate(divide="ignore"):  # (log1p(-1) = -inf)
        expected = reference(xs)
    got = run_iree(name, xs)
    distance = ulps_apart(got, expected)
    worst = int(distance.argmax())
    assert distance.max() <= 3, f"{name}({xs[worst]!r}) = {got[worst]!r}, want {expected[worst]!r}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_huge_angle_takes_the_table_path_with_the_same_bits_elsewhere(dtype):
    """A tensor whose every |x| is small enough runs the cheap reduction; one huge element
    sends the whole tensor through the table's. The others' values must not change."""
    xs = (np.random.default_rng(2).normal(size=4096) * 100).astype(dtype)
    cheap = run_iree("sin", xs)
    mixed = run_iree("sin", np.append(xs, np.dtype(dtype).type(1e30)))
    np.testing.assert_array_equal(mixed[:-1], cheap)
    assert ulps_apart(mixed[-1:], libm("sin", np.array([1e30], dtype)))[0] <= 1


# The double nearest a multiple of pi/2 relative to its size (Muller, "Elementary
# Functions", table 11.1): x mod pi/2 ~ 2^-61. Its cosine correctly rounded, from mpmath at
# 4000 bits; this machine's libm (and NumPy) answer 8 ulp away from it.
HARDEST = 6381956970095103 * 2.0**797
HARDEST_COS = float.fromhex("-0x1.14ae72e6ba22fp-61")


def test_the_hardest_argument_reduction_is_exact():
    got = run_iree("cos", np.array([HARDEST, -HARDEST]))
    np.testing.assert_array_equal(got, [HARDEST_COS, HARDEST_COS])
    assert run_iree("sin", np.array([HARDEST]))[0] == 1.0


def test_float32_sin_and_cos_have_the_llvm_backends_bits():
    """One algorithm for both native backends (codegen/llvm/mathlib.sincos32_reduced)."""
    xs = (np.random.default_rng(3).normal(size=1 << 14) * 1000).astype(np.float32)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, shape=[None])
        ys = [gj.sin(x), gj.cos(x)]
    ours = [gj.Session(g, backend=b).run(ys, {x: xs}) for b in ("iree", "llvm")]
    for on_iree, on_llvm in zip(*ours, strict=True):
        np.testing.assert_array_equal(on_iree, on_llvm)


def test_public_export_keeps_the_math_dialect_and_the_iree_text_verifies():
    """gj.mlir.export writes `math.sin` for every MLIR compiler to implement; the iree
    backend's text writes it out in arith, and MLIR verifies both."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, shape=[None])
        ys = [gj.sin(x), gj.cos(x), gj.tanh(x), gj.erf(x), gj.expm1(x), gj.log1p(x)]
    public = gj.mlir.export(ys, graph=g)
    for op in ("math.sin", "math.cos", "math.tanh", "math.erf", "math.expm1", "math.log1p"):
        assert op in public
    program = build_program(g, ys, [], {})
    own, _ = export_with_checks(program, own_math=OWN_MATH)
    for op in ("math.sin", "math.cos", "math.tanh", "math.erf", "math.expm1", "math.log1p"):
        assert op not in own
    gj.mlir.verify(public)
    gj.mlir.verify(own)


POWER_SPECIALS = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, 1.7, -1.7, 3.5, -3.5]
POWER_SPECIALS += [math.inf, -math.inf, math.nan, 1e-30, -1e-30, 1e30, -1e30, 0.999, 127.0]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_powers_have_c99s_special_cases_and_float32_is_the_llvm_backends(dtype):
    """IREE's own math.powf gave 0**0 = NaN, 1**inf = NaN and (-0)**3 = +0, and float32
    results up to millions of ulp off. Every pair of special values now comes out as
    NumPy's (libm's) power (results that would be subnormal aside: IREE flushes them);
    float32 is bit for bit the llvm backend's pow32, float64 keeps IREE's powf for
    |x|**y (within ~1e-13)."""
    pairs = np.array(list(itertools.product(POWER_SPECIALS, POWER_SPECIALS))).T
    rng = np.random.default_rng(4)
    bases = np.abs(rng.normal(size=3000)) * rng.choice([1e-2, 1, 10], 3000)
    exponents = rng.normal(size=3000) * 3
    with np.errstate(over="ignore"):  # (1e30 is inf in float16)
        xs = np.concatenate([pairs[0], bases, -bases[:500]]).astype(dtype)
        ys = np.concatenate([pairs[1], exponents, np.round(exponents[:500])]).astype(dtype)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(GJ_DTYPES[dtype], shape=[None])
        y = gj.placeholder(GJ_DTYPES[dtype], shape=[None])
        power = x**y
    got = gj.Session(g, backend="iree").run(power, {x: xs, y: ys})
    with np.errstate(all="ignore"):
        want = np.power(xs, ys)
    normal = ~(np.abs(want) < np.finfo(dtype).tiny)  # (NaN kept)
    got, want, special = got[normal], want[normal], np.arange(xs.size)[normal] < pairs.shape[1]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    numbers = ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(got[numbers]), np.signbit(want[numbers]))
    np.testing.assert_array_equal(
        got[special & ~np.isfinite(want)], want[special & ~np.isfinite(want)]
    )
    finite = np.isfinite(want)
    if dtype == "float64":
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12)
    else:  # within 1 ulp of the correctly rounded power
        with np.errstate(all="ignore"):
            exact = np.power(xs.astype(float), ys.astype(float)).astype(dtype)[normal]
        assert ulps_apart(got[finite], exact[finite]).max() <= 1
    if dtype == "float32":
        on_llvm = gj.Session(g, flush_denormals=True).run(power, {x: xs, y: ys})
        np.testing.assert_array_equal(got, on_llvm[normal])


DIVMOD_SPECIALS = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 7.0, -7.5, 1e-30, -1e-30]
DIVMOD_SPECIALS += [1e10, -1e10, 3e38, -3e38, math.inf, -math.inf, math.nan]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_float_floor_divide_and_mod_are_numpys(dtype):
    """floor(x / y) and x - floor(x / y) y (the plain export) were off where x / y rounds
    to an integer or underflows (floor_divide(1e-30, -1e10) = -0, not -1) or y is
    infinite (mod(0, inf) = NaN): the iree backend writes NumPy's npy_divmod, with an
    exact float64 fmod of its own (IREE links no fmod), long division included."""
    pairs = np.array(list(itertools.product(DIVMOD_SPECIALS, DIVMOD_SPECIALS))).T
    rng = np.random.default_rng(5)
    a = rng.normal(size=2000) * np.exp(rng.uniform(0, 20, 2000))
    b = rng.normal(size=2000) * np.exp(rng.uniform(-5, 5, 2000))
    xs, ys = np.concatenate([pairs[0], a]), np.concatenate([pairs[1], b])
    if dtype == "float64":  # quotients beyond 2^52: fmod by long division
        xs = np.append(xs, [1e300, -1e308, 1.7e308, 2.0**60 + 2**8])
        ys = np.append(ys, [3.0, 1e-300, -7.25e-290, 3.0])
    with np.errstate(over="ignore"):
        xs, ys = xs.astype(dtype), ys.astype(dtype)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(GJ_DTYPES[dtype], shape=[None])
        y = gj.placeholder(GJ_DTYPES[dtype], shape=[None])
        results = [gj.floor_divide(x, y), gj.mod(x, y)]
    got = gj.Session(g, backend="iree").run(results, {x: xs, y: ys})
    with np.errstate(all="ignore"):
        wanted = [np.floor_divide(xs, ys), np.mod(xs, ys)]
    for name, value, want in zip(("floor_divide", "mod"), got, wanted, strict=True):
        same = (value == want) & (np.signbit(value) == np.signbit(want))
        same |= np.isnan(value) & np.isnan(want)
        wrong = np.flatnonzero(~same)[:4]
        assert same.all(), f"{name}: {[(xs[i], ys[i], value[i], want[i]) for i in wrong]}"

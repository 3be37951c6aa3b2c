"""Every op-table record on the llvm backend against the interpreter, with one compiled graph
per (record, dtype) that applies the record to several input shapes at once:

- the record's own shapes, and the largest of them again fed as non-contiguous NumPy views
  (transposed and strided), which the Session must accept as they are;
- for elementwise records, sizes 1, 7, 16 and 1000 (vector loops and their remainders) and
  a broadcasting 2-D case;
- special values (NaN, ±inf, ±0.0, huge, tiny) through the float elementwise records and
  the reductions: NaN propagates through max/min/maximum/minimum as in NumPy, argmax
  returns the first NaN, and zeros keep their sign.

The vectorised transcendentals (exp, log, tanh, sigmoid) are checked for accuracy in
tests/codegen/test_mathlib.py; here they only take part in the op-table comparison."""

from __future__ import annotations

import numpy as np
import programs
import pytest
from llvm_helpers import assert_matches, compare_backends, run_on
from programs import (
    OPS,
    RECORD_CASES,
    TRANSCENDENTAL,
    arity,
    floats,
    is_elementwise,
    special_inputs,
)

import graphjit as gj
import graphjit.codegen.llvm as llvm_backend
from graphjit.codegen.llvm import parallel
from op_table import OP_TABLE, inputs_for


def check(program: programs.Program, **tol) -> None:
    programs.check(program, compare_backends, **tol)


# ---- input shapes ------------------------------------------------------------------------

VECTOR_SIZES = (1, 7, 16, 1000)


def elementwise_shapes(n: int) -> list[tuple]:
    """Same-size 1-D inputs of every size in VECTOR_SIZES, then a 2-D broadcast."""
    shapes = [((size,),) * n for size in VECTOR_SIZES]
    broadcast = ((9, 13),) if n == 1 else ((9, 1), (1, 13), (13,))[:n]
    return shapes + [broadcast]


def input_sets(case, dtype) -> list[list[np.ndarray]]:
    """The record's own shapes, the largest again as transposed and strided views, and for
    elementwise records every shape of `elementwise_shapes`."""
    return programs.input_sets(
        case,
        dtype,
        seed=100,
        vary_layout=True,
        elementwise_shapes=elementwise_shapes,
        elementwise_seed=200,
    )


# ---- the op table --------------------------------------------------------------------------


@pytest.mark.parametrize("case, dtype", RECORD_CASES)
def test_record_matches_interpreter(case, dtype):
    sets = input_sets(case, dtype)
    assert len(sets) > len(case.shapes)
    check(programs.record(case, sets))


# ---- special values --------------------------------------------------------------------------

SPECIAL = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-30, -1e30]


def _special_elementwise():
    # float -> int casts of NaN and inf are undefined (NumPy warns; LLVM gives poison)
    return [
        c
        for c in OP_TABLE
        if is_elementwise(c)
        and not OPS[id(c)] & TRANSCENDENTAL
        and c.name != "cast_i32"
        and floats(c)
    ]


SPECIAL_ELEMENTWISE = _special_elementwise()
SPECIAL_REDUCTIONS = programs.REDUCTION_RECORDS


@pytest.mark.parametrize("case", SPECIAL_ELEMENTWISE, ids=lambda c: c.name)
def test_special_values_through_elementwise_records(case):
    """Every combination of special values, in float64 and float32, in one graph."""
    sets = [special_inputs(case, dtype, SPECIAL) for dtype in floats(case)]
    check(programs.record(case, sets), signed_zeros=True)


DESIGNED = np.array(
    [
        [np.nan, 1, 2, 3, 4],  # NaN first
        [1, np.nan, 5, np.nan, 0],  # two NaNs: argmax gives the first
        [1, 2, 3, 4, np.nan],  # NaN last
        [np.inf, -np.inf, 0, -0.0, 1],
        [-np.inf] * 5,
        [-0.0] * 5,  # negative zeros (NumPy's sum of them is +0.0)
        [2, 7, 7, 1, 7],  # ties: argmax gives the first maximum
    ]
)


def special_array(shape, dtype, seed) -> np.ndarray:
    """Random draws from SPECIAL without +0.0 (whether max(-0.0, 0.0) is -0.0 or 0.0 depends
    on the order of the reduction, in NumPy as in LLVM)."""
    values = np.array([v for v in SPECIAL if not (v == 0 and not np.signbit(v))])
    weights = np.where(np.isnan(values), 0.5, 1.0)
    rng = np.random.default_rng(seed)
    return rng.choice(values, shape, p=weights / weights.sum()).astype(dtype)


@pytest.mark.parametrize("case", SPECIAL_REDUCTIONS, ids=lambda c: c.name)
def test_special_values_through_reductions(case):
    """NaN propagates (max/min/sum), argmax returns the first NaN, infinities and -0.0."""
    sets = []
    for dtype in floats(case):
        for j, shapes in enumerate(case.shapes):
            x = special_array(shapes[0], dtype, seed=j)
            rest = inputs_for(case, shapes, dtype)[1:]  # sum_to's shape operand
            sets.append([x, *rest])
        if arity(case) == 1 and any(len(s[0]) == 2 for s in case.shapes):
            sets.append([DESIGNED.astype(dtype)])
    check(programs.record(case, sets), signed_zeros=True)


def test_the_record_filters_pick_what_they_should():
    """A filter that matched nothing would silently test nothing."""
    elementwise = {c.name for c in OP_TABLE if is_elementwise(c)}
    assert {"neg", "add", "div", "pow", "where", "relu", "cast_i32", "logical_not"} <= elementwise
    assert not elementwise & {
        "broadcast_to",
        "softmax",
        "sum_to",
        "matmul",
        "argmax(axis=1, keepdims=False)",
    }
    special = {c.name for c in SPECIAL_ELEMENTWISE}
    assert special >= {"maximum", "minimum", "div", "sign", "less", "cast_f32"}
    assert not special & (TRANSCENDENTAL | {"cast_i32"})
    assert {"argmax(axis=1, keepdims=False)", "max(axis=None, keepdims=False)"} <= {
        c.name for c in SPECIAL_REDUCTIONS
    }


def test_large_kernels_split_over_threads(monkeypatch):
    """Kernels above the parallel threshold run in chunks on several threads: odd extents,
    an outer extent of 3 (uneven chunks), broadcasting, booleans, integers, and a reduction
    over the same large input (which stays on one thread). The threshold is lowered so
    that every kernel here is split, cheap ones included."""
    monkeypatch.setattr(parallel, "PARALLEL_MIN_WORK", 1 << 12)
    rng = np.random.default_rng(5)
    n = 300_007
    arrays = {
        "flat": rng.uniform(-2, 2, n),
        "rows": rng.uniform(-2, 2, (3, 45_001)),
        "row": rng.uniform(-2, 2, 45_001),
        "cols": rng.uniform(-2, 2, (45_001, 3)),
        "col": rng.uniform(-2, 2, (45_001, 1)),
        "ints": rng.integers(-1000, 1000, n).astype(np.int32),
    }
    g = gj.Graph()
    with g.as_default():
        x = {k: gj.placeholder(a.dtype, a.shape, name=k) for k, a in arrays.items()}
        fetches = [
            gj.sqrt(gj.abs(x["flat"])) * 2 + x["flat"],
            x["rows"] * x["row"] - 1,
            gj.maximum(x["cols"], x["col"]),
            gj.where(x["flat"] > 0, x["flat"], -x["flat"] * 0.5),
            x["ints"] * 3 + 7,
            x["flat"] > 0.5,
            gj.sum(x["flat"] * x["flat"]),
            gj.sum(x["rows"], axis=1),
        ]
    feeds = {x[k]: a for k, a in arrays.items()}
    expected = run_on("interpreter", g, fetches, feeds)
    runners = []
    compile_llvm = llvm_backend.compile_llvm
    monkeypatch.setattr(
        llvm_backend, "compile_llvm", lambda *a: runners.append(compile_llvm(*a)) or runners[-1]
    )
    got = run_on("llvm", g, fetches, feeds)
    assert "graphjit_parallel_run" in runners[-1].llvm_ir
    for k, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert_matches(a, b, f"fetch {k}")


def test_integer_pow_and_abs_wrap_like_numpy():
    """x ** n by squaring, overflowing as NumPy's integers do; abs and neg of the most
    negative integer wrap to itself."""
    x = np.array([[-3, -2, -1, 0, 1], [2, 3, 7, 100, 65536], [-3, 2, 5, 10, 2**31 - 1]])
    n = np.array([[0, 1, 2, 3, 5], [31, 32, 33, 0, 2], [21, 40, 27, 19, 3]])
    extremes = np.array([-(2**31), 2**31 - 1, 0, -1])
    g = gj.Graph()
    fetches, feeds = [], {}
    with g.as_default():
        for dtype in ("int32", "int64"):
            xs = gj.placeholder(dtype, x.shape, name=f"x_{dtype}")
            ns = gj.placeholder(dtype, n.shape, name=f"n_{dtype}")
            e = gj.placeholder(dtype, extremes.shape, name=f"e_{dtype}")
            feeds.update({xs: x.astype(dtype), ns: n.astype(dtype), e: extremes.astype(dtype)})
            fetches += [gj.pow(xs, ns), gj.abs(e), -e, gj.sign(e)]
    with np.errstate(over="ignore"):
        expected = run_on("interpreter", g, fetches, feeds)
    got = run_on("llvm", g, fetches, feeds)
    for k, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert_matches(a, b, f"fetch {k}")


def test_zero_size_tensors():
    """Empty dimensions: elementwise, reductions to empty and to zeros, transpose, concat
    with an empty part, slicing to nothing, and matmul with an empty inner dimension."""
    g = gj.Graph()
    with g.as_default():
        e = gj.placeholder(gj.float64, [3, 0], name="e")
        b = gj.placeholder(gj.float64, [2, 0], name="b")
        c = gj.placeholder(gj.float64, [2, 3], name="c")
        fetches = [
            e * 2 + 1,
            gj.sum(e, axis=1),
            gj.sum(e, axis=0),
            gj.transpose(e),
            gj.concat([b, c], axis=1),
            c[:, 3:],
            gj.matmul(b, gj.constant(np.ones((0, 3)))),
        ]
    feeds = {e: np.zeros((3, 0)), b: np.zeros((2, 0)), c: np.arange(6.0).reshape(2, 3)}
    expected = run_on("interpreter", g, fetches, feeds)
    got = run_on("llvm", g, fetches, feeds)
    for k, (a, b_) in enumerate(zip(got, expected, strict=True)):
        assert_matches(a, b_, f"fetch {k}")
    np.testing.assert_array_equal(got[1], np.zeros(3))
    np.testing.assert_array_equal(got[6], np.zeros((2, 3)))


@pytest.mark.parametrize("name", ["max", "min", "argmax"])
def test_extrema_over_an_empty_axis_are_the_same_shape_error_on_both_backends(name):
    """The shape rule refuses it: when the graph is built if the length is known, else
    when the Session specialises the fed shape, on every backend (issue 14)."""
    with gj.Graph().as_default(), pytest.raises(gj.ShapeError, match="empty axis"):
        getattr(gj, name)(gj.placeholder(gj.float64, [3, 0]), axis=1)
    g = gj.Graph()
    with g.as_default():
        e = gj.placeholder(gj.float64, [3, None], name="e")
        y = getattr(gj, name)(e, axis=1)
    for backend in ("interpreter", "llvm"):
        with pytest.raises(gj.ShapeError, match="(reduce_m|argmax).* empty axis"):
            run_on(backend, g, y, {e: np.zeros((3, 0))})


def test_fused_kernels_with_several_outputs_and_reductions():
    """A kernel's elementwise values fetched beside its reduction, reductions over broadcast
    iteration spaces, keepdims, integer reductions, reductions of reductions."""
    rng = np.random.default_rng(6)
    arrays = {
        "x": rng.normal(size=(5, 7)),
        "w": rng.normal(size=7),
        "c": rng.normal(size=(5, 1)),
        "i": rng.integers(-5, 5, (5, 7)).astype(np.int32),
    }
    g = gj.Graph()
    with g.as_default():
        x, w, c, i = (gj.placeholder(a.dtype, a.shape, name=k) for k, a in arrays.items())
        y = x * 2 + w
        fetches = [
            y,
            gj.sum(y),
            gj.max(y, axis=1),
            gj.sum(y * c, axis=0, keepdims=True),
            gj.sum(gj.expand_dims(x, -1) * w, axis=(0, 2)),
            gj.min(gj.cast(i, gj.float64) - x, axis=0),
            gj.sum(i, axis=1),
            gj.max(i - 3, axis=0),
            gj.sum(gj.sum(x, axis=1) * 2),
            gj.where(x > w, i, -i),
        ]
    feeds = dict(zip([x, w, c, i], arrays.values()))
    expected = run_on("interpreter", g, fetches, feeds)
    got = run_on("llvm", g, fetches, feeds)
    for k, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert_matches(a, b, f"fetch {k}")


def test_buffers_reused_in_place_and_as_views():
    """A chain of kernels, transposes, reshapes, slices, concat and BLAS calls whose dead
    intermediates the memory plan reuses in place or aliases."""
    rng = np.random.default_rng(7)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [6, 4], name="x")
        m = gj.placeholder(gj.float64, [4, 4], name="m")
        a = gj.transpose(gj.sqrt(gj.abs(x)) * 2)
        b = gj.transpose(a + 1.0)
        c = gj.reshape(b * b, (4, 6))
        d = gj.matmul(gj.transpose(c), m)
        e = gj.concat([d, x], axis=1) - 0.5
        f = e[:, ::2] * gj.sum(e)
        h = gj.matmul(f, gj.transpose(f))
        fetches = [h, f, gj.sum(h * h, axis=0)]
    feeds = {x: rng.normal(size=(6, 4)), m: rng.normal(size=(4, 4))}
    expected = run_on("interpreter", g, fetches, feeds)
    got = run_on("llvm", g, fetches, feeds)
    for k, (a_, b_) in enumerate(zip(got, expected, strict=True)):
        assert_matches(a_, b_, f"fetch {k}")
    with gj.Session(g, backend="llvm") as sess:
        report = sess.inspect(fetches, feeds)
    assert report.in_place and report.aliases, "the plan no longer reuses buffers here"


DTYPES = ("float64", "float32", "int64", "int32", "bool")


def test_casts_between_every_pair_of_dtypes():
    """Truncation toward zero, rounding to float32, booleans from NaN-free values, and
    comparisons and argmax of booleans (i1 registers compare unsigned)."""
    values = np.array([-3.7, -2.5, -1.0, -0.5, -0.0, 0.0, 0.4, 0.5, 1.0, 2.5, 3.99, 1e6, -7e5])
    flags = np.array([[0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 0, 1]], bool)
    g = gj.Graph()
    fetches, feeds = [], {}
    with g.as_default():
        for src in DTYPES:
            x = gj.placeholder(src, values.shape, name=f"x_{src}")
            feeds[x] = values.astype(src) if src != "bool" else values != 0
            fetches += [gj.cast(x, dst) for dst in DTYPES]
        b = gj.placeholder(gj.bool_, flags.shape, name="b")
        feeds[b] = flags
        not_b = gj.logical_not(b)
        fetches += [gj.equal(b, not_b), gj.less(b, not_b), gj.greater_equal(b, not_b)]
        fetches += [gj.argmax(b, axis=1), gj.argmax(not_b, axis=0)]
    expected = run_on("interpreter", g, fetches, feeds)
    got = run_on("llvm", g, fetches, feeds)
    for k, (a, b_) in enumerate(zip(got, expected, strict=True)):
        assert_matches(a, b_, f"fetch {k}", signed_zeros=True)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_matmul(dtype):
    """Integers do not go to BLAS: a loop nest, batched and broadcast like the float path."""
    rng = np.random.default_rng(8)
    shapes = [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((2, 1, 3, 4), (3, 4, 2)), ((4,), (4, 3))]
    g = gj.Graph()
    fetches, feeds = [], {}
    with g.as_default():
        for j, (sa, sb) in enumerate(shapes):
            a = gj.placeholder(dtype, sa, name=f"a{j}")
            b = gj.placeholder(dtype, sb, name=f"b{j}")
            feeds[a] = rng.integers(-9, 9, sa).astype(dtype)
            feeds[b] = rng.integers(-9, 9, sb).astype(dtype)
            fetches.append(gj.matmul(a, b))
    expected = run_on("interpreter", g, fetches, feeds)
    got = run_on("llvm", g, fetches, feeds)
    for shape, a, b in zip(shapes, got, expected, strict=True):
        assert_matches(a, b, f"shapes {shape}")

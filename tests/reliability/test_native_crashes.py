"""Native code never crashes, and agrees with the interpreter on hostile values (issue 14).

Each test is a repro that aborted, segfaulted or computed a wrong answer on the llvm
backend, and stands for a class of bug:

- allocation sizes of 0 (realloc(p, 0) frees p) and sizes that overflow;
- buffers the size of a tensor on the native stack (8 MiB; threads have less);
- Python integers wrapped into native ones (max_iterations);
- value-dependent errors inside kernels (integer powers with negative exponents);
- one error class on every backend (empty max/argmax).
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest
from reliability_helpers import BACKENDS

import graphjit as gj
from graphjit.ir.ops.control import MAX_ITERATIONS_LIMIT


def run(backend, g, fetches, feeds):
    with gj.Session(g, backend=backend) as sess:
        return sess.run(fetches, feeds)


# ---- sizes of 0 ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_through_a_loop_over_an_empty_tensor(backend):
    """The loop tape pushes 0-byte elements: realloc(p, 0) freed the buffer, returned NULL,
    and the exit path freed it again ("free(): double free detected")."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None])
        _, y = gj.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, gj.tanh(y)), [0, x])
        (dx,) = gj.gradients(gj.sum(y), [x])
        (ddx,) = gj.gradients(gj.sum(dx * dx), [x])
    got = run(backend, g, [y, dx, ddx], {x: np.zeros(0, np.float32)})
    assert [a.shape for a in got] == [(0,), (0,), (0,)]
    # and the same session still works on non-empty values afterwards
    value = run(backend, g, dx, {x: np.array([0.5], np.float32)})
    np.testing.assert_allclose(value, [np.prod([1 - np.tanh(v) ** 2 for v in _tanh3(0.5)])], 1e-5)


def _tanh3(v):
    """The inputs of the three tanh calls of the loop above."""
    out = []
    for _ in range(3):
        out.append(v)
        v = np.tanh(v)
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_loops_over_empty_tensors_of_every_rank(backend):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [None, None])
        _, a, b = gj.while_loop(
            lambda i, a, b: i < 4, lambda i, a, b: (i + 1, b, a * 2.0 + b), [0, x, x + 1.0]
        )
        grads = gj.gradients(gj.sum(a) + gj.sum(b), [x])
    for shape in [(0, 3), (3, 0), (0, 0)]:
        got = run(backend, g, [a, b, grads[0]], {x: np.zeros(shape)})
        assert [v.shape for v in got] == [shape] * 3


# ---- nothing tensor-sized on the native stack -----------------------------------------------

SWAPS = {
    "swap": lambda i, x, y: (i + 1, y, x),
    "swap_and_add": lambda i, x, y: (i + 1, y, x + y),
}


@pytest.mark.parametrize("body", sorted(SWAPS))
def test_loops_swapping_64_mib_values(body):
    """A swap of carried values was staged in a stack buffer as big as the value: 8 MiB
    segfaulted. Run in a thread too (Python threads get a smaller stack)."""
    n = 16 << 20  # 64 MiB of float32 each
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [n])
        y = gj.placeholder(gj.float32, [n])
        _, a, b = gj.while_loop(lambda i, x, y: i < 3, SWAPS[body], [0, x, y])
        first = gj.stack([a[0], a[-1], b[0], b[-1]])
    xs, ys = np.full(n, 1.0, np.float32), np.full(n, 2.0, np.float32)
    u, v = 1.0, 2.0
    for _ in range(3):
        u, v = SWAPS[body](0, u, v)[1:]
    want = np.array([u, u, v, v], np.float32)
    results = {}

    def in_thread():
        results["thread"] = run("llvm", g, first, {x: xs, y: ys})

    worker = threading.Thread(target=in_thread)
    worker.start()
    worker.join()
    np.testing.assert_array_equal(run("llvm", g, first, {x: xs, y: ys}), want)
    np.testing.assert_array_equal(results["thread"], want)


# ---- Python integers are not wrapped into native ones ----------------------------------------


@pytest.mark.parametrize("limit", [2**63, 2**64 + 5, 2**63 - 1, np.uint64(2**64 - 1), 10**30])
@pytest.mark.parametrize("backend", BACKENDS)
def test_huge_max_iterations_are_not_wrapped(backend, limit):
    """2**63 ran 0 iterations and 2**64 + 5 ran 5 on llvm: the bound is clamped to the
    i64 range, which no loop reaches, so the loop runs until its condition stops it."""
    g = gj.Graph()
    with g.as_default():
        (i,) = gj.while_loop(
            lambda i: i < 40, lambda i: i + 1, [gj.constant(0)], max_iterations=limit
        )
    assert run(backend, g, i, {}) == 40


@pytest.mark.parametrize("limit", [float("inf"), float("nan"), 2.5, 3.0, -1, "3", [3]])
def test_max_iterations_must_be_a_count(limit):
    for mode in (gj.Graph().as_default(), contextlib.nullcontext()):  # static, eager
        with mode, pytest.raises(gj.ControlFlowError, match="max_iterations"):
            gj.while_loop(lambda i: i < 3, lambda i: i + 1, [gj.constant(0)], max_iterations=limit)
    assert MAX_ITERATIONS_LIMIT == 2**63 - 1


def test_max_iterations_in_eager_mode():
    (i,) = gj.while_loop(lambda i: i < 10, lambda i: i + 1, [gj.tensor(0)], max_iterations=2**64)
    assert int(i.numpy()) == 10
    (i,) = gj.while_loop(lambda i: i < 10, lambda i: i + 1, [gj.tensor(0)], max_iterations=4)
    assert int(i.numpy()) == 4


# ---- value-dependent errors inside kernels ----------------------------------------------------


@pytest.mark.parametrize("dtype", [gj.int32, gj.int64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_power_with_a_negative_exponent_is_an_error(backend, dtype):
    """llvm returned 1 (or 0); NumPy and the interpreter refuse it."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(dtype, [None])
        n = gj.placeholder(dtype, [None])
        y = gj.pow(x, n) + 1  # inside a fused kernel with other work
    base = np.arange(1, 5, dtype=dtype.np)
    ok = run(backend, g, y, {x: base, n: np.array([0, 1, 2, 3], dtype.np)})
    np.testing.assert_array_equal(ok, base ** np.array([0, 1, 2, 3]) + 1)
    with pytest.raises(gj.RuntimeCheckError, match="negative integer powers") as info:
        run(backend, g, y, {x: base, n: np.array([2, 1, -1, 3], dtype.np)})
    assert info.value.op is not None and info.value.op.name == "pow"
    # a big kernel split over threads, with the bad element in the last thread's share
    exponents = np.ones(1 << 20, dtype.np)
    exponents[-1] = -2
    with pytest.raises(gj.RuntimeCheckError, match="negative integer powers"):
        run(backend, g, y, {x: np.ones(1 << 20, dtype.np), n: exponents})


def test_integer_power_with_a_negative_exponent_in_eager_mode():
    with pytest.raises(gj.RuntimeCheckError, match="pow: integers to negative") as info:
        gj.tensor(np.array([2, 3])) ** gj.tensor(np.array([1, -1]))
    assert "test_native_crashes.py" in str(info.value)  # the user's line
    np.testing.assert_array_equal((gj.tensor(np.array([2, 3])) ** 2).numpy(), [4, 9])


@pytest.mark.parametrize("backend", BACKENDS)
def test_float_powers_with_negative_exponents_are_fine(backend):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [3])
        y = gj.pow(x, -2.0)
    np.testing.assert_allclose(
        run(backend, g, y, {x: np.array([1.0, 2.0, 4.0])}), [1, 0.25, 1 / 16]
    )


# ---- one error class on every backend ----------------------------------------------------------


@pytest.mark.parametrize("reduce", ["max", "min", "argmax"])
def test_empty_extrema_are_the_same_shape_error_in_every_mode(reduce):
    errors = set()
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 3])
        y = getattr(gj, reduce)(x, axis=0)
    for backend in BACKENDS:
        with pytest.raises(gj.GraphjitError) as info:
            run(backend, g, y, {x: np.zeros((0, 3), np.float32)})
        errors.add(type(info.value))
    with pytest.raises(gj.GraphjitError) as info:
        getattr(gj, reduce)(gj.tensor(np.zeros((0, 3), np.float32)), axis=0)
    errors.add(type(info.value))
    with pytest.raises(gj.GraphjitError) as info:
        gj.function(lambda t: getattr(gj, reduce)(t, axis=0))(np.zeros((0, 3), np.float32))
    errors.add(type(info.value))
    assert errors == {gj.ShapeError}
    # an empty result of a non-empty axis is fine, as in NumPy
    assert run("llvm", g, y, {x: np.zeros((2, 3), np.float32)}).shape == (3,)


# ---- no undefined behaviour in generated code ---------------------------------------------------


@pytest.mark.parametrize("to", [gj.int32, gj.int64])
@pytest.mark.parametrize("src", [np.float32, np.float64])
def test_float_to_integer_casts_of_nan_and_out_of_range_values_are_defined(src, to):
    """fptosi of NaN or an out-of-range float is poison in LLVM (any value, and code after
    it may be optimised on that assumption); C leaves it undefined, so NumPy's answer was
    the platform's. Defined now: the integer's minimum, in every mode."""
    values = np.array([np.nan, np.inf, -np.inf, 3e30, -3e30, 2.7, -2.7, 0.0, -0.0], src)
    low = np.iinfo(to.np).min
    want = np.array([low, low, low, low, low, 2, -2, 0, 0], to.np)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(src, [None])
        y = gj.cast(x, to)
        total = gj.sum(gj.cast(x * 1.0, to))  # inside a kernel, beside a reduction
    for backend in BACKENDS:
        got, s = run(backend, g, [y, total], {x: values})
        np.testing.assert_array_equal(got, want)
        assert s == want.sum()
    np.testing.assert_array_equal(gj.cast(gj.tensor(values), to).numpy(), want)


def test_every_backend_checks_the_ops_whose_values_are_checked():
    """One rule says which ops are checked on their values (VALUE_CHECKS): each code
    generator has a condition for every one of them, or a kernel would skip the check."""
    from graphjit.codegen.cuda.scalar import CUDA_CHECKS
    from graphjit.codegen.llvm.faults import SCALAR_CHECKS
    from graphjit.ir.ops.elementwise import VALUE_CHECKS

    assert set(SCALAR_CHECKS) == set(CUDA_CHECKS) == set(VALUE_CHECKS)


@pytest.mark.parametrize("limit", ["2361183241434822606848", "-1"])
def test_parsed_ir_with_an_iteration_limit_out_of_range_is_refused(limit):
    """The bound is the while op's own rule, so IR text gets the frontend's range too (the
    llvm lowering once clamped it on its own)."""
    g = gj.Graph()
    with g.as_default():
        (i,) = gj.while_loop(lambda i: i < 40, lambda i: i + 1, [gj.constant(0)], max_iterations=5)
    text = g.as_text()
    assert "max_iterations = 5" in text
    with pytest.raises(gj.GraphjitError, match="max_iterations"):
        gj.ir.verify(gj.ir.parse(text.replace("max_iterations = 5", f"max_iterations = {limit}")))

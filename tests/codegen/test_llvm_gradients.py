"""Gradient graphs on the llvm backend against the interpreter: every differentiable op-table
record (gj.gradients of sum(fn(x) * w), one graph per record and dtype over all its shapes),
gradients through cond, and through while loops, whose tapes are tensor lists."""

from __future__ import annotations

import numpy as np
import pytest
from llvm_helpers import compare_backends

import graphjit as gj
from op_table import OP_TABLE, inputs_for

# ---- the op table ----------------------------------------------------------------------------


def gradient_graph(case, dtype):
    """One graph: for each of the record's shapes, the gradients of sum(fn(x) * w) with respect
    to every float input, w a fixed random cotangent of the output's dtype."""
    g = gj.Graph()
    fetches, feeds = [], {}
    rng = np.random.default_rng(1)
    with g.as_default():
        for j, shapes in enumerate(case.shapes):
            arrays = inputs_for(case, shapes, dtype, seed=j)
            xs = [gj.placeholder(a.dtype, a.shape, name=f"s{j}_x{i}") for i, a in enumerate(arrays)]
            feeds.update(zip(xs, arrays))
            y = case.fn(*xs)
            w = rng.uniform(-1.5, 1.5, y.shape).astype(y.dtype.np)
            wrt = [x for x in xs if x.dtype.is_floating]
            fetches += [d for d in gj.gradients(gj.sum(y * w), wrt) if d is not None]
    return g, fetches, feeds


GRAD_CASES = [
    pytest.param(case, dtype, id=f"{case.name}-{dtype}")
    for case in OP_TABLE
    if case.grad
    for dtype in case.dtypes
    if dtype.startswith("float")
]


@pytest.mark.parametrize("case, dtype", GRAD_CASES)
def test_op_gradient_matches_interpreter(case, dtype):
    g, fetches, feeds = gradient_graph(case, dtype)
    assert fetches, f"{case.name}: no gradient to compare"
    compare_backends(g, fetches, feeds, what=case.name)


def test_every_differentiable_record_is_compared():
    names = {p.values[0].name for p in GRAD_CASES}
    assert {"exp", "pow", "where", "matmul", "softmax_cross_entropy", "unslice"} <= names
    assert "sign" not in names and len(GRAD_CASES) > 2 * 40


# ---- cond ----------------------------------------------------------------------------------


def compare_gradients(build, arrays, second_order=False):
    """y = build(*placeholders shaped like arrays) and its gradient with respect to every
    input (and, with second_order, the gradient of the sum of those), on both backends.
    Returns y and the gradients, None where an input has none."""
    arrays = [np.asarray(a) for a in arrays]
    g = gj.Graph()
    with g.as_default():
        xs = [gj.placeholder(a.dtype, a.shape, name=f"x{i}") for i, a in enumerate(arrays)]
        y = build(*xs)
        grads = gj.gradients(y, xs)
        if second_order:
            connected = [d for d in grads if d is not None]
            total = gj.sum(connected[0])
            for d in connected[1:]:
                total = total + gj.sum(d)
            grads += gj.gradients(total, xs)
    fetches = [y] + [d for d in grads if d is not None]
    got = iter(compare_backends(g, fetches, dict(zip(xs, arrays))))
    return [next(got)] + [None if d is None else next(got) for d in grads]


@pytest.mark.parametrize("pv", [1.0, -1.0])
def test_cond_gradient_to_values_captured_by_either_branch(pv):
    def build(p, a, b, c):
        r = gj.cond(p > 0, lambda: a * b + gj.exp(a), lambda: c * c * b)
        return gj.sum(r * np.array([1.0, -3.0]))

    a, b, c = np.array([0.5, -1.5]), np.array([2.0, 0.3]), np.array([1.2, -0.7])
    _, _, da, db, dc = compare_gradients(build, [np.array(pv), a, b, c])
    np.testing.assert_array_equal(dc if pv > 0 else da, 0)


@pytest.mark.parametrize("xv", [[0.3, 0.4], [-0.3, -0.4]])
def test_cond_with_several_results_and_an_unused_one(xv):
    def build(x, y):
        r1, r2, _ = gj.cond(
            gj.sum(x) > 0, lambda: (x * y, gj.tanh(y), x + 1), lambda: (y, x * x, y - x)
        )
        return gj.sum(r1) + 2 * gj.sum(r2)

    compare_gradients(build, [np.array(xv), np.array([1.1, -0.6])])


@pytest.mark.parametrize("pv", [1.0, -1.0])
def test_cond_branch_returning_a_captured_value(pv):
    def build(p, x, y):
        return gj.sum(gj.cond(p > 0, lambda: x, lambda: y) * np.array([1.0, 2.0]))

    _, _, dx, dy = compare_gradients(
        build, [np.array(pv), np.array([1.0, 2.0], np.float32), np.array([3.0, 4.0], np.float32)]
    )
    np.testing.assert_array_equal(dx if pv > 0 else dy, [1.0, 2.0])


@pytest.mark.parametrize("xv", [0.8, -0.6])
def test_second_derivative_through_cond(xv):
    def build(x, c):
        return gj.cond(x > 0, lambda: x * x * x * c + 2 * x, lambda: 3 * x**4 - x * x * c)

    _, dx, dc, d2x, d2c = compare_gradients(build, [np.array(xv), np.array(1.7)], True)
    c = 1.7
    if xv > 0:  # d/dx and d/dc of dy/dx + dy/dc = 3 c x^2 + 2 + x^3
        np.testing.assert_allclose([d2x, d2c], [6 * c * xv + 3 * xv**2, 3 * xv**2], rtol=1e-12)
    else:  # 12 x^3 - 2 c x - x^2
        np.testing.assert_allclose([d2x, d2c], [36 * xv**2 - 2 * c - 2 * xv, -2 * xv], rtol=1e-12)


# ---- while loops (tapes are tensor lists) ---------------------------------------------------------

W = np.array([1.5, 1.2, 1.1])
A0 = np.array([1.0, 2.0, 3.0])


def grow(w, a0, max_iterations=None):
    """while sum(a) < 50: a = a * w + 1 (a data-dependent trip count)."""
    (a,) = gj.while_loop(
        lambda a: gj.sum(a) < 50, lambda a: (a * w + 1,), [a0], max_iterations=max_iterations
    )
    return a


@pytest.mark.parametrize("scale", [0.5, 1.0, 20.0], ids=["long", "short", "zero-trips"])
def test_data_dependent_while(scale):
    compare_gradients(lambda w, a0: gj.sum(gj.square(grow(w, a0))), [W, A0 * scale])


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_while_stopped_by_max_iterations(limit):
    compare_gradients(lambda w, a0: gj.sum(gj.square(grow(w, a0, limit))), [W, A0])


def test_nested_while_inner_trip_count_is_outer_counter():
    def build(w, a0):
        def outer_body(i, a):
            _, b = gj.while_loop(lambda j, b: j < i, lambda j, b: (j + 1, b * w + 0.5), [0, a])
            return i + 1, gj.tanh(b)

        _, a = gj.while_loop(lambda i, a: i < 4, outer_body, [0, a0])
        return gj.sum(a * np.array([1.0, 2.0, -1.0]))

    compare_gradients(build, [np.array([0.9, 0.3, -0.7]), np.array([0.2, -0.4, 0.6])])


def test_cond_inside_loop_body():
    def build(w, a0):
        def body(i, a):
            return i + 1, gj.cond(gj.sum(a) > 2, lambda: a * w, lambda: a + w * w)

        _, a = gj.while_loop(lambda i, a: i < 6, body, [0, a0])
        return gj.sum(gj.square(a))

    compare_gradients(build, [np.array([0.8, 1.3]), np.array([0.4, 0.9])])


@pytest.mark.parametrize("pv", [1.0, -1.0])
def test_loop_inside_cond_branch(pv):
    def build(p, x, w):
        def looped():
            _, y = gj.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, gj.tanh(y * w)), [0, x])
            return y

        return gj.sum(gj.cond(p > 0, looped, lambda: x * 3) * np.array([2.0, -1.0]))

    compare_gradients(build, [np.array(pv), np.array([0.7, -0.2]), np.array([1.4, 0.6])])


def test_loop_with_mixed_dtype_loop_variables():
    def build(x, y):
        def body(i, acc, s, f32):
            return i + 1, acc + s * gj.cast(i, gj.float64), s * y + x, f32 * 1.5

        _, acc, s, f32 = gj.while_loop(
            lambda i, acc, s, f32: i < 4,
            body,
            [
                gj.constant(0, gj.int64),
                gj.constant(np.zeros(2)),
                x,
                gj.constant(np.ones(2, np.float32)),
            ],
        )
        return gj.sum(acc) + gj.sum(s * s) + gj.sum(gj.cast(f32, gj.float64))

    compare_gradients(build, [np.array([0.3, -0.5]), np.array([0.9, 1.1])])


def test_second_order_through_data_dependent_while():
    compare_gradients(lambda w, a0: gj.sum(gj.square(grow(w, a0))), [W, A0], second_order=True)


def test_second_derivative_of_power_computed_by_loop():
    """p = x ** n by n multiplications, n fed: d2p/dx2 = n (n - 1) x ** (n - 2)."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [3], name="x")
        n = gj.placeholder(gj.int32, [], name="n")
        one = gj.constant(np.ones(3))
        _, p = gj.while_loop(lambda i, p: i < n, lambda i, p: (i + 1, p * x), [0, one])
        (d1,) = gj.gradients(gj.sum(p), [x])
        (d2,) = gj.gradients(gj.sum(d1), [x])
    xv = np.array([0.7, -1.3, 2.0])
    for k in (0, 1, 4):
        _, _, d2v = compare_backends(g, [p, d1, d2], {x: xv, n: k}, what=f"n={k}")
        np.testing.assert_allclose(d2v, k * (k - 1) * xv ** max(k - 2, 0), rtol=1e-12)


def test_second_order_through_cond_in_loop():
    def build(x):
        def body(i, a):
            return i + 1, gj.cond(gj.sum(a) > 0, lambda: gj.tanh(a) * a, lambda: a * a + 1)

        _, a = gj.while_loop(lambda i, a: i < 3, body, [0, x])
        return gj.sum(a)

    for xv in ([0.3, -0.1], [-0.5, 0.2]):
        compare_gradients(build, [np.array(xv)], second_order=True)

"""`gj.gradients` applied to its own output: second derivatives through loops (tapes of
tapes) and conds, third derivatives, and Hessian-vector products."""

from __future__ import annotations

import numpy as np
import pytest
from fd import Compiled, assert_close, numeric_grad

import graphjit as gj
from op_table import OP_TABLE, inputs_for


def power_by_loop(x, n):
    """p = x ** n computed as n multiplications in a while loop."""
    one = gj.constant(np.ones(x.shape))
    _, p = gj.while_loop(lambda i, p: i < n, lambda i, p: (i + 1, p * x), [0, one])
    return p


@pytest.mark.parametrize("n", [3, 4, 5])
def test_second_derivative_of_power_computed_by_loop(n):
    xv = np.array([0.7, -1.3, 2.0])
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [3], name="x")
        count = gj.placeholder(gj.int32, [], name="n")
        p = power_by_loop(x, count)
        (d1,) = gj.gradients(gj.sum(p), [x])
        (d2,) = gj.gradients(gj.sum(d1), [x])
    with gj.Session(g, backend="interpreter") as sess:
        pv, d1v, d2v = sess.run([p, d1, d2], {x: xv, count: n})
    np.testing.assert_allclose(pv, xv**n, rtol=1e-12)
    np.testing.assert_allclose(d1v, n * xv ** (n - 1), rtol=1e-12)
    np.testing.assert_allclose(d2v, n * (n - 1) * xv ** (n - 2), rtol=1e-12)


@pytest.mark.parametrize("xv", [0.8, -0.6])
def test_second_derivative_through_cond(xv):
    """x > 0: x**3 + 2x; else: 3x**4 - x**2 (captured coefficients c)."""

    def build(x, c):
        return gj.cond(x > 0, lambda: x * x * x * c + 2 * x, lambda: 3 * x**4 - x * x * c)

    c = 1.7
    fn = Compiled(build, [np.array(xv), np.array(c)])
    x, cp = fn.xs
    with fn.graph.as_default():
        (d1,) = gj.gradients(fn.y, [x])
        d2x, d2c = gj.gradients(d1, [x, cp])  # d2c: the mixed derivative d2y/dx dc
    got = fn.run([d1, d2x, d2c], [np.array(xv), np.array(c)])
    if xv > 0:
        expected = [3 * c * xv**2 + 2, 6 * c * xv, 3 * xv**2]
    else:
        expected = [12 * xv**3 - 2 * c * xv, 36 * xv**2 - 2 * c, -2 * xv]
    for name, a, b in zip(["d1", "d2x", "d2c"], got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-12, err_msg=name)


def test_second_order_through_data_dependent_while():
    """d/dw of (dL/dw . v) and d/da0 of it against finite differences of the compiled
    first derivative."""
    wv, a0v = np.array([1.5, 1.2, 1.1]), np.array([1.0, 2.0, 3.0])
    v = np.array([0.3, -1.0, 0.7])

    def build(w, a0):
        (a,) = gj.while_loop(lambda a: gj.sum(a) < 50, lambda a: (a * w + 1,), [a0])
        return gj.sum(gj.square(a))

    fn = Compiled(build, [wv, a0v])
    w, a0 = fn.xs
    with fn.graph.as_default():
        (dw,) = gj.gradients(fn.y, [w])
        first = gj.sum(dw * v)
        hw, ha0 = gj.gradients(first, [w, a0])
    got_hw, got_ha0 = fn.run([hw, ha0], [wv, a0v])
    expected = numeric_grad(lambda *arrays: fn.run(first, arrays), [wv, a0v])
    assert_close(got_hw, expected[0], "d2L/dw2 v", rtol=1e-6)
    assert_close(got_ha0, expected[1], "d2L/dw da0 v", rtol=1e-6)


def hessian_vector_check(build, arrays, vs, dynamic=False):
    """d/dx of (dy/dx . v), summed over inputs, against finite differences of the compiled
    first derivative."""
    fn = Compiled(build, arrays, dynamic=dynamic)
    with fn.graph.as_default():
        first = sum(gj.sum(g * v) for g, v in zip(gj.gradients(fn.y, fn.xs), vs))
        second = gj.gradients(first, fn.xs)
    got = fn.run(second, arrays)
    expected = numeric_grad(lambda *a: fn.run(first, a), arrays)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert_close(g, e, f"x{i}", rtol=1e-6, atol=1e-7)


def test_second_order_through_cond_inside_loop():
    def build(w, a0):
        def body(i, a):
            return i + 1, gj.cond(gj.sum(a) > 2, lambda: a * w, lambda: a + w * w)

        _, a = gj.while_loop(lambda i, a: i < 6, body, [0, a0])
        return gj.sum(gj.square(a))

    vs = [np.array([0.3, -0.2]), np.array([1.0, 0.5])]
    hessian_vector_check(build, [np.array([0.8, 1.3]), np.array([0.4, 0.9])], vs)


def test_second_order_through_nested_loops():
    """The inner loop's trip count is the outer counter and it captures a value the outer
    body computes."""

    def build(w, a0):
        def outer_body(i, a):
            c = a * 0.5
            _, b = gj.while_loop(
                lambda j, b: j < i, lambda j, b: (j + 1, gj.tanh(b * w + c)), [0, a]
            )
            return i + 1, b

        _, a = gj.while_loop(lambda i, a: i < 3, outer_body, [0, a0])
        return gj.sum(a * a)

    vs = [np.array([0.3, -0.2]), np.array([1.0, 0.5])]
    hessian_vector_check(build, [np.array([0.9, 0.3]), np.array([0.2, -0.4])], vs)


def test_second_order_through_while_with_unknown_dimensions():
    def build(w, a0):
        (a,) = gj.while_loop(lambda a: gj.sum(a) < 50, lambda a: (a * w + 1,), [a0])
        return gj.sum(a * a)

    arrays = [np.array([1.5, 1.2, 1.1]), np.array([1.0, 2.0, 3.0])]
    vs = [np.array([0.3, -0.2, 1.0]), np.array([1.0, 0.5, 2.0])]
    hessian_vector_check(build, arrays, vs, dynamic=True)


def test_third_order_through_loop():
    xv = np.array([0.7, -1.3])
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [2], name="x")
        out, derivs = power_by_loop(x, 4), []
        for _ in range(3):
            (out,) = gj.gradients(gj.sum(out), [x])
            derivs.append(out)
    with gj.Session(g, backend="interpreter") as sess:
        got = sess.run(derivs, {x: xv})
    for a, b in zip(got, [4 * xv**3, 12 * xv**2, 24 * xv]):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_third_order_straight_line():
    xv = np.array([-1.2, 0.3, 0.9])
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [3], name="x")
        derivs = {}
        for name, y in [("poly", gj.exp(x) * x**3), ("tanh", gj.tanh(x))]:
            d, out = [], y
            for _ in range(3):
                (out,) = gj.gradients(gj.sum(out), [x])
                d.append(out)
            derivs[name] = d
    with gj.Session(g, backend="interpreter") as sess:
        got = sess.run(derivs, {x: xv})
    e, t = np.exp(xv), np.tanh(xv)
    expected = {
        "poly": [
            e * (xv**3 + 3 * xv**2),
            e * (xv**3 + 6 * xv**2 + 6 * xv),
            e * (xv**3 + 9 * xv**2 + 18 * xv + 6),
        ],
        "tanh": [1 - t**2, -2 * t * (1 - t**2), (6 * t**2 - 2) * (1 - t**2)],
    }
    for name in expected:
        for order, (a, b) in enumerate(zip(got[name], expected[name]), 1):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=f"{name} {order}")


def test_hessian_vector_product():
    """f(x) = sum(exp(M x)) + 0.5 x.A x: H = M^T diag(exp(M x)) M + A (A symmetric)."""
    rng = np.random.default_rng(5)
    m = rng.normal(size=(4, 3)) * 0.5
    s = rng.normal(size=(3, 3))
    a = s + s.T
    xv, vv = rng.normal(size=3), rng.normal(size=3)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [3], name="x")
        v = gj.placeholder(gj.float64, [3], name="v")
        f = gj.sum(gj.exp(gj.matmul(m, x))) + 0.5 * gj.sum(x * gj.matmul(a, x))
        (grad,) = gj.gradients(f, [x])
        hvp, dv = gj.gradients(gj.sum(grad * v), [x, v])
    with gj.Session(g, backend="interpreter") as sess:
        got_grad, got_hvp, got_dv = sess.run([grad, hvp, dv], {x: xv, v: vv})
    hessian = m.T @ np.diag(np.exp(m @ xv)) @ m + a
    np.testing.assert_allclose(got_grad, m.T @ np.exp(m @ xv) + a @ xv, rtol=1e-12)
    np.testing.assert_allclose(got_hvp, hessian @ vv, rtol=1e-12)
    np.testing.assert_allclose(got_dv, got_grad, rtol=1e-12)  # d/dv (grad . v) = grad


SECOND_ORDER_CASES = [
    pytest.param(case, shapes, id=f"{case.name}-{shapes}")
    for case in OP_TABLE
    if case.grad and "float64" in case.dtypes
    for shapes in case.shapes
]


@pytest.mark.parametrize("case, shapes", SECOND_ORDER_CASES)
def test_every_vjp_rule_is_differentiable(case, shapes):
    """Each op-table record's Hessian-vector product (gradients of its gradients) against
    finite differences of its compiled first derivative: the VJP rules themselves are made
    of differentiable ops with correct rules."""
    arrays = inputs_for(case, shapes, "float64")
    wrt = [i for i, a in enumerate(arrays) if a.dtype == np.float64]
    out = np.asarray(case.ref(*arrays))
    rng = np.random.default_rng(2)
    w = rng.uniform(-1.5, 1.5, out.shape).astype(out.dtype)
    vs = [rng.normal(size=arrays[i].shape) for i in wrt]
    fn = Compiled(lambda *xs: gj.sum(case.fn(*xs) * gj.constant(w)), arrays)
    xs = [fn.xs[i] for i in wrt]
    with fn.graph.as_default():
        first = sum(gj.sum(g * v) for g, v in zip(gj.gradients(fn.y, xs), vs) if g is not None)
        second = gj.gradients(first, xs)
    expected = numeric_grad(lambda *a: fn.run(first, a), arrays, wrt)
    for i, s, e in zip(wrt, second, expected):
        if s is None:  # linear in x_i (or x_i read for its shape alone)
            np.testing.assert_allclose(e, 0, atol=1e-7, err_msg=f"x{i} got None")
        else:
            assert_close(fn.run(s, arrays), e, f"x{i}", rtol=1e-5, atol=1e-7)

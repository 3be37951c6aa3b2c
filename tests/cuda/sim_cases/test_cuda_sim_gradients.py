"""Gradient graphs on the cuda backend against the interpreter: every differentiable op-table
record (the gradients of sum(fn(x) * w) for all its shapes in one graph), gradients
through cond, and through while loops with data-dependent trip counts, whose tapes are
tensor lists held by the host driver; second order through both."""

from __future__ import annotations

import numpy as np
import pytest
from cuda_helpers import compare_backends

import graphjit as gj
from op_table import OP_TABLE, inputs_for


def gradient_graph(case, dtype):
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


def compare_gradients(build, arrays, second_order=False):
    """y = build(*placeholders) and its gradients (and with second_order, the gradients of
    their sum) on both backends."""
    arrays = [np.asarray(a) for a in arrays]
    g = gj.Graph()
    with g.as_default():
        xs = [gj.placeholder(a.dtype, a.shape, name=f"x{i}") for i, a in enumerate(arrays)]
        y = build(*xs)
        grads = [d for d in gj.gradients(y, xs) if d is not None]
        if second_order:
            total = gj.sum(grads[0])
            for d in grads[1:]:
                total = total + gj.sum(d)
            grads += [d for d in gj.gradients(total, xs) if d is not None]
    return compare_backends(g, [y] + grads, dict(zip(xs, arrays)))


@pytest.mark.parametrize("pv", [1.0, -1.0])
def test_cond_gradient_to_values_captured_by_either_branch(pv):
    def build(p, a, b, c):
        r = gj.cond(p > 0, lambda: a * b + gj.exp(a), lambda: c * c * b)
        return gj.sum(r * np.array([1.0, -3.0]))

    a, b, c = np.array([0.5, -1.5]), np.array([2.0, 0.3]), np.array([1.2, -0.7])
    compare_gradients(build, [np.array(pv), a, b, c])


@pytest.mark.parametrize("xv", [0.8, -0.6])
def test_second_derivative_through_cond(xv):
    def build(x, c):
        return gj.cond(x > 0, lambda: x * x * x * c + 2 * x, lambda: 3 * x**4 - x * x * c)

    compare_gradients(build, [np.array(xv), np.array(1.7)], second_order=True)


W = np.array([1.5, 1.2, 1.1])
A0 = np.array([1.0, 2.0, 3.0])


def grow(w, a0, max_iterations=None):
    """while sum(a) < 50: a = a * w + 1 (a data-dependent trip count)."""
    (a,) = gj.while_loop(
        lambda a: gj.sum(a) < 50, lambda a: (a * w + 1,), [a0], max_iterations=max_iterations
    )
    return a


@pytest.mark.parametrize("scale", [0.5, 20.0], ids=["long", "zero-trips"])
def test_data_dependent_while(scale):
    compare_gradients(lambda w, a0: gj.sum(gj.square(grow(w, a0))), [W, A0 * scale])


def test_while_stopped_by_max_iterations():
    compare_gradients(lambda w, a0: gj.sum(gj.square(grow(w, a0, 2))), [W, A0])


def test_nested_while_inner_trip_count_is_outer_counter():
    def build(w, a0):
        def outer_body(i, a):
            _, b = gj.while_loop(lambda j, b: j < i, lambda j, b: (j + 1, b * w + 0.5), [0, a])
            return i + 1, gj.tanh(b)

        _, a = gj.while_loop(lambda i, a: i < 3, outer_body, [0, a0])
        return gj.sum(a * np.array([1.0, 2.0, -1.0]))

    compare_gradients(build, [np.array([0.9, 0.3, -0.7]), np.array([0.2, -0.4, 0.6])])


def test_cond_inside_loop_body():
    def build(w, a0):
        def body(i, a):
            return i + 1, gj.cond(gj.sum(a) > 2, lambda: a * w, lambda: a + w * w)

        _, a = gj.while_loop(lambda i, a: i < 4, body, [0, a0])
        return gj.sum(gj.square(a))

    compare_gradients(build, [np.array([0.8, 1.3]), np.array([0.4, 0.9])])


def test_second_order_through_data_dependent_while():
    compare_gradients(lambda w, a0: gj.sum(gj.square(grow(w, a0))), [W, A0], second_order=True)


def test_third_derivative_of_power_computed_by_loop():
    """p = x ** n by n multiplications: the third derivative differentiates the tapes of
    the second (lists of lists)."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [2], name="x")
        one = gj.constant(np.ones(2))
        _, p = gj.while_loop(lambda i, p: i < 4, lambda i, p: (i + 1, p * x), [0, one])
        (d1,) = gj.gradients(gj.sum(p), [x])
        (d2,) = gj.gradients(gj.sum(d1), [x])
        (d3,) = gj.gradients(gj.sum(d2), [x])
    xv = np.array([0.7, -1.3])
    got = compare_backends(g, [p, d1, d2, d3], {x: xv})
    np.testing.assert_allclose(got[3], 24 * xv, rtol=1e-12)

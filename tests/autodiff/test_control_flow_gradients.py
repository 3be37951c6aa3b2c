"""Gradients through `cond` and `while_loop` against finite differences of the forward graph:
data-dependent and nested loops, captured values and variables, zero and capped trip counts,
and the backward IR they produce."""

from __future__ import annotations

import numpy as np
import pytest
from fd import Compiled, assert_close, check_gradients, numeric_grad
from programs import A0, W, grow

import graphjit as gj


def grow_ref(w, a, max_iterations=None):
    n = 0
    while a.sum() < 50 and (max_iterations is None or n < max_iterations):
        a, n = a * w + 1, n + 1
    return a, n


def test_data_dependent_while():
    grads = check_gradients(lambda w, a0: gj.sum(gj.square(grow(w, a0))), [W, A0])
    assert grow_ref(W, A0)[1] > 3 and np.all(np.abs(grads[0]) > 1)


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_data_dependent_while_trip_count_depends_on_input(scale):
    a0 = A0 * scale
    check_gradients(lambda w, a0: gj.sum(grow(w, a0) * np.array([1.0, -2.0, 0.5])), [W, a0])


def test_zero_iteration_loop():
    """The loop does not run: the result is its initial value, the gradient the identity,
    and a captured value gets a zero gradient (not None)."""
    a0 = np.array([20.0, 20.0, 20.0])
    assert grow_ref(W, a0)[1] == 0
    dw, da0 = check_gradients(lambda w, a0: gj.sum(gj.exp(grow(w, a0) / 10)), [W, a0])
    np.testing.assert_array_equal(dw, 0)
    np.testing.assert_allclose(da0, np.exp(a0 / 10) / 10)


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_max_iterations_reached(limit):
    assert grow_ref(W, A0)[1] > limit  # the cap is what stops the loop
    fn = Compiled(lambda w, a0: gj.sum(gj.square(grow(w, a0, max_iterations=limit))), [W, A0])
    np.testing.assert_allclose(fn(W, A0), np.sum(grow_ref(W, A0, limit)[0] ** 2))
    check_gradients(lambda w, a0: gj.sum(gj.square(grow(w, a0, max_iterations=limit))), [W, A0])


def test_nested_while_inner_trip_count_is_outer_counter():
    def build(w, a0):
        def outer_body(i, a):
            _, b = gj.while_loop(lambda j, b: j < i, lambda j, b: (j + 1, b * w + 0.5), [0, a])
            return i + 1, gj.tanh(b)

        _, a = gj.while_loop(lambda i, a: i < 4, outer_body, [0, a0])
        return gj.sum(a * np.array([1.0, 2.0, -1.0]))

    def ref(w, a):
        for i in range(4):
            for _ in range(i):
                a = a * w + 0.5
            a = np.tanh(a)
        return np.sum(a * np.array([1.0, 2.0, -1.0]))

    w, a0 = np.array([0.9, 0.3, -0.7]), np.array([0.2, -0.4, 0.6])
    dw, da0 = check_gradients(build, [w, a0])
    expected = numeric_grad(ref, [w, a0])  # and the forward graph is the loop nest
    assert_close(dw, expected[0], "dw")
    assert_close(da0, expected[1], "da0")


@pytest.mark.parametrize("pv", [1.0, -1.0])
def test_cond_gradient_to_values_captured_by_either_branch(pv):
    """Each branch captures different values; those only the branch not taken uses get a
    zero gradient."""
    a, b, c = np.array([0.5, -1.5]), np.array([2.0, 0.3]), np.array([1.2, -0.7])

    def build(p, a, b, c):
        r = gj.cond(p > 0, lambda: a * b + gj.exp(a), lambda: c * c * b)
        return gj.sum(r * np.array([1.0, -3.0]))

    arrays = [np.array(pv), a, b, c]
    da, db, dc = check_gradients(build, arrays, wrt=[1, 2, 3])
    taken_only_by_other = dc if pv > 0 else da
    np.testing.assert_array_equal(taken_only_by_other, 0)
    assert np.all(db != 0)


def test_cond_with_several_results_and_an_unused_one():
    def build(x, y):
        r1, r2, r3 = gj.cond(
            gj.sum(x) > 0,
            lambda: (x * y, gj.tanh(y), x + 1),
            lambda: (y, x * x, y - x),
        )
        return gj.sum(r1) + 2 * gj.sum(r2)  # r3 has no cotangent

    for xv in [np.array([0.3, 0.4]), np.array([-0.3, -0.4])]:
        check_gradients(build, [xv, np.array([1.1, -0.6])])


@pytest.mark.parametrize("pv", [1.0, -1.0])
def test_cond_branch_returning_a_captured_value(pv):
    def build(p, x, y):
        return gj.sum(gj.cond(p > 0, lambda: x, lambda: y) * np.array([1.0, 2.0]))

    dx, dy = check_gradients(
        build, [np.array(pv), np.array([1.0, 2.0]), np.array([3.0, 4.0])], [1, 2]
    )
    np.testing.assert_array_equal(dx if pv > 0 else dy, [1.0, 2.0])


def test_loop_variables_sharing_an_initial_value():
    """x initialises two loop variables and is captured by the body: the cotangents of all
    three uses add up."""

    def build(x, w):
        _, a, b = gj.while_loop(
            lambda i, a, b: i < 3, lambda i, a, b: (i + 1, a, w * b + x), [0, x, x]
        )
        return gj.sum(a * b)

    check_gradients(build, [np.array([0.5, 1.5]), np.array([1.2, 0.7])])


def test_loop_body_returning_a_captured_value():
    def build(x, w):
        _, a = gj.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, w), [0, x])
        return gj.sum(a * a)

    dx, dw = check_gradients(build, [np.array([0.5, 1.5]), np.array([1.2, 0.7])])
    np.testing.assert_array_equal(dx, 0)


def test_while_with_unknown_dimensions():
    arrays = [W, A0]
    fn = Compiled(lambda w, a0: gj.sum(gj.square(grow(w, a0))), arrays, dynamic=True)
    got = fn.gradients([0, 1], arrays)
    for g, e in zip(got, numeric_grad(fn, arrays)):
        assert_close(g, e)


def test_cond_inside_loop_body():
    def build(w, a0):
        def body(i, a):
            a = gj.cond(gj.sum(a) > 2, lambda: a * w, lambda: a + w * w)
            return i + 1, a

        _, a = gj.while_loop(lambda i, a: i < 6, body, [0, a0])
        return gj.sum(gj.square(a))

    w, a0 = np.array([0.8, 1.3]), np.array([0.4, 0.9])
    check_gradients(build, [w, a0])


def test_loop_inside_cond_branch():
    def build(p, x, w):
        def looped():
            _, y = gj.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, gj.tanh(y * w)), [0, x])
            return y

        return gj.sum(gj.cond(p > 0, looped, lambda: x * 3) * np.array([2.0, -1.0]))

    x, w = np.array([0.7, -0.2]), np.array([1.4, 0.6])
    for pv in [1.0, -1.0]:
        dx, dw = check_gradients(build, [np.array(pv), x, w], wrt=[1, 2])
        if pv < 0:
            np.testing.assert_array_equal(dw, 0)
            np.testing.assert_array_equal(dx, [6.0, -3.0])


def test_loop_with_mixed_dtype_loop_variables():
    """An int counter, a float64 accumulator, a float64 state and a float32 passenger."""

    def build(x, y):
        def body(i, acc, s, f32):
            fi = gj.cast(i, gj.float64)
            return i + 1, acc + s * fi, s * y + x, f32 * 1.5

        i, acc, s, f32 = gj.while_loop(
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

    check_gradients(build, [np.array([0.3, -0.5]), np.array([0.9, 1.1])])


def test_loop_body_uses_captured_variable():
    wv = np.array([1.3, 0.7, -0.4])
    g = gj.Graph()
    with g.as_default():
        w = gj.Variable(wv, name="w")
        x = gj.placeholder(gj.float64, [3], name="x")
        w_new = gj.placeholder(gj.float64, [3], name="w_new")
        _, a = gj.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, gj.tanh(a * w) + w), [0, x])
        loss = gj.sum(a * np.array([1.0, 0.5, 2.0]))
        dw, dx = gj.gradients(loss, [w, x])
        set_w = w.assign(w_new)
    xv = np.array([0.5, -1.0, 0.25])
    with gj.Session(g, backend="interpreter") as sess:

        def f(wv):
            sess.run(set_w, {w_new: wv})
            return sess.run(loss, {x: xv})

        (expected,) = numeric_grad(f, [wv])
        sess.run(set_w, {w_new: wv})
        got_dw, got_dx = sess.run([dw, dx], {x: xv})
    assert_close(got_dw, expected, "dw")
    assert got_dx.shape == (3,)


def test_backward_ir_is_readable():
    g = gj.Graph()
    with g.as_default():
        w = gj.placeholder(gj.float64, [3], name="w")
        a0 = gj.placeholder(gj.float64, [3], name="a0")
        loss = gj.sum(gj.square(grow(w, a0)))
        forward_text = g.as_text()
        assert forward_text.count('"gj.while"(') == 1
        gj.gradients(loss, [w, a0])
    text = g.as_text()
    for op in ["list_new", "list_push", "list_get"]:
        assert op not in forward_text
        assert op in text, op
    assert text.count('"gj.while"(') == 2  # the forward loop (now taped) and the backward loop
    assert "taped = 1" in text

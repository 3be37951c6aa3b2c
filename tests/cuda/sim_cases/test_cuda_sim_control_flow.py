"""cond and while_loop on the cuda backend (Python control flow in the host driver, the
predicate read back from the device) against the interpreter and plain Python: the
canonical loop, nesting both ways, captures and variables, max_iterations, loop variables
of mixed dtypes, swapped and rotated loop variables."""

from __future__ import annotations

import numpy as np
import pytest
from cuda_helpers import assert_matches, compare_backends, run_on
from static.test_control_flow import CANONICAL_CASES, canonical_graph, python_canonical

import graphjit as gj


def test_canonical_loop_with_fed_bound_in_one_session():
    g, n, result, out = canonical_graph()
    with gj.Session(g, backend="cuda") as sess:
        for case in CANONICAL_CASES:
            steps, start = case.values
            feed = {n: steps, result: np.array(start, np.float32)}
            got = sess.run(out, feed)
            assert_matches(got, run_on("interpreter", g, out, feed), case.id)
            np.testing.assert_array_equal(got, python_canonical(steps, start))


def test_canonical_loop_fetching_its_input():
    """The loop's initial value is a fed array: running the loop must not write to it."""
    g, n, result, out = canonical_graph(n_const=3)
    with g.as_default():
        doubled = result * 2
    start = np.array([1.0, -4.0, 2.5], np.float32)
    got = compare_backends(g, [result, out, doubled], {result: start})
    np.testing.assert_array_equal(got[0], start)


@pytest.mark.parametrize("n", [0, 3])
def test_nested_loops_with_inner_bound_from_outer_counter(n):
    g = gj.Graph()
    with g.as_default():
        n_ph = gj.placeholder(gj.int32, [], name="n")
        v = gj.placeholder(gj.float64, [3], name="v")

        def outer_body(i, total, vec):
            def inner_body(j, t, w):
                return j + 1, t + gj.cast(i * j + 1, gj.float64), w * 0.5 + t

            _, total, vec = gj.while_loop(lambda j, t, w: j < i, inner_body, [0, total, vec])
            return i + 1, total, vec

        zero = gj.constant(0.0, gj.float64)
        out = gj.while_loop(lambda i, t, w: i < n_ph, outer_body, [0, zero, v])
    count, total, _ = compare_backends(g, list(out), {n_ph: n, v: np.arange(3.0)})
    assert count == n
    assert total == sum(i * j + 1 for i in range(n) for j in range(i))


def test_while_inside_cond_inside_while():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [3], name="x")

        def outer(i, even, a):
            def inner():
                return gj.while_loop(lambda j, b: j < i, lambda j, b: (j + 1, b + 1.0), [0, a])[1]

            return i + 1, gj.logical_not(even), gj.cond(even, inner, lambda: a * -1.0)

        out = gj.while_loop(lambda i, e, a: i < 4, outer, [0, gj.constant(True), x])
    got = compare_backends(g, list(out), {x: np.array([0.5, 1.0, -3.0], np.float32)})
    expected = np.array([0.5, 1.0, -3.0], np.float32)
    for i in range(4):
        expected = expected + i if i % 2 == 0 else -expected
    np.testing.assert_array_equal(got[2], expected)


def test_captures_read_outer_values_and_the_variables_current_value():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [3], name="x")
        v = gj.Variable(np.array([1.0, 2.0, 3.0], np.float32), name="v")
        y = gj.cond(gj.sum(x) > 0, lambda: x * v, lambda: x + gj.constant(10.0))
        _, z = gj.while_loop(lambda i, a: i < 2, lambda i, a: (i + 1, a + v), [0, x])
        scale_v = v.assign(v * 10)
    pos, neg = np.ones(3, np.float32), -np.ones(3, np.float32)
    with gj.Session(g, backend="cuda") as sess:
        np.testing.assert_array_equal(sess.run(y, {x: pos}), [1, 2, 3])
        np.testing.assert_array_equal(sess.run(y, {x: neg}), [9, 9, 9])
        np.testing.assert_array_equal(sess.run(z, {x: pos}), [3, 5, 7])
        sess.run(scale_v)
        np.testing.assert_array_equal(sess.run(y, {x: pos}), [10, 20, 30])
        np.testing.assert_array_equal(sess.run(z, {x: pos}), [21, 41, 61])


def test_loop_updates_a_variable_across_runs():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [4], name="x")
        v = gj.Variable(np.array([0.5, -1.0, 2.0, 0.0]), name="v")
        _, a = gj.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a * 0.5 + v), [0, x])
        update = v.assign(a - v)
    got = compare_backends(g, [a, update], {x: np.array([1.0, 2.0, 3.0, 4.0])}, runs=3)
    assert not np.array_equal(got[0][1], got[2][1])


def test_cond_branches_returning_inputs_unchanged():
    g = gj.Graph()
    with g.as_default():
        p = gj.placeholder(gj.bool_, [], name="p")
        x = gj.placeholder(gj.int32, [3], name="x")
        y = gj.placeholder(gj.int32, [3], name="y")
        a, b = gj.cond(p, lambda: (x, y), lambda: (y, x))
    data = {x: np.array([1, 2, 3], np.int32), y: np.array([4, 5, 6], np.int32)}
    for flag in (True, False):
        got = compare_backends(g, [a, b, x, y], {**data, p: flag})
        np.testing.assert_array_equal(got[0], [1, 2, 3] if flag else [4, 5, 6])


def test_max_iterations_stops_the_loop_with_the_state_so_far():
    g = gj.Graph()
    fetches = []
    with g.as_default():
        x = gj.placeholder(gj.float32, [2], name="x")
        for limit in (0, 1, 4, None):
            fetches.append(
                gj.while_loop(
                    lambda i, a: i < 6, lambda i, a: (i + 1, a * 2), [0, x], max_iterations=limit
                )
            )
    got = compare_backends(g, fetches, {x: np.array([1.0, -3.0], np.float32)})
    assert [int(count) for count, _ in got] == [0, 1, 4, 6]


def test_loop_variables_of_different_dtypes():
    g = gj.Graph()
    with g.as_default():
        loop_vars = (
            gj.constant(0, gj.int64),
            gj.constant([1.0, 2.0]),
            gj.constant(True),
            gj.constant(0.0, gj.float64),
            gj.constant([7, -3], gj.int32),
        )
        out = gj.while_loop(
            lambda i, f, b, d, k: i < 5,
            lambda i, f, b, d, k: (
                i + 1,
                f * 1.5,
                gj.logical_not(b),
                d + gj.cast(i, gj.float64),
                k * 2 - gj.cast(b, gj.int32),
            ),
            loop_vars,
        )
    i, f, b, d, k = compare_backends(g, list(out))
    assert (i.dtype, b.dtype, k.dtype) == (np.int64, np.bool_, np.int32)
    assert i == 5 and b == np.False_ and d == 10.0


@pytest.mark.parametrize("steps", [0, 1, 4])
def test_swapping_and_rotating_loop_variables(steps):
    """(a, b) -> (b, a) and (p, q, r) -> (q, r, p): a parallel copy, not one by one."""
    g = gj.Graph()
    with g.as_default():
        n = gj.placeholder(gj.int32, [], name="n")
        x = gj.placeholder(gj.float64, [3], name="x")
        y = gj.placeholder(gj.float64, [3], name="y")

        def body(i, a, b, p, q, r):
            return i + 1, b, a, q, r, p

        out = gj.while_loop(lambda i, *_: i < n, body, [0, x, y, x * 10, y * 10, x + y])
    xv, yv = np.array([1.0, 2.0, 3.0]), np.array([-4.0, -5.0, -6.0])
    got = compare_backends(g, list(out), {n: steps, x: xv, y: yv})
    np.testing.assert_array_equal(got[1], yv if steps % 2 else xv)

"""cond and while_loop on the llvm backend (branches and loops inside the one native entry)
against the interpreter and plain Python: the canonical loop, nesting, captures, variables,
max_iterations, mixed-dtype and swapped loop variables."""

from __future__ import annotations

import numpy as np
import pytest
from llvm_helpers import assert_matches, compare_backends, run_on
from static.test_control_flow import CANONICAL_CASES, canonical_graph, python_canonical

import graphjit as gj

# ---- the canonical example ---------------------------------------------------------------


def test_canonical_loop_with_fed_bound():
    """`for i in range(n): result = result * 2 if sum(result) > 0 else result + 1` for
    positive, negative and zero sums and zero iterations, in one llvm Session."""
    g, n, result, out = canonical_graph()
    with gj.Session(g, backend="llvm") as sess:
        for case in CANONICAL_CASES:
            steps, start = case.values
            feed = {n: steps, result: np.array(start, np.float32)}
            got = sess.run(out, feed)
            assert_matches(got, run_on("interpreter", g, out, feed), case.id)
            np.testing.assert_array_equal(got, python_canonical(steps, start))


@pytest.mark.parametrize("steps, start", CANONICAL_CASES)
def test_canonical_loop_with_constant_bound(steps, start):
    g, _, result, out = canonical_graph(n_const=steps)
    got = compare_backends(g, out, {result: np.array(start, np.float32)})
    np.testing.assert_array_equal(got, python_canonical(steps, start))


def test_canonical_loop_fetching_its_input_and_counter():
    """The loop's initial value is a fed array: running the loop must not write to it."""
    g, n, result, out = canonical_graph()
    with g.as_default():
        doubled = result * 2
    start = np.array([1.0, -4.0, 2.5], np.float32)
    got = compare_backends(g, [result, out, doubled], {n: 3, result: start})
    np.testing.assert_array_equal(got[0], start)
    np.testing.assert_array_equal(got[2], 2 * start)


# ---- nesting -----------------------------------------------------------------------------


def nested_loops_graph():
    g = gj.Graph()
    with g.as_default():
        n = gj.placeholder(gj.int32, [], name="n")
        scale = gj.placeholder(gj.float64, [], name="scale")
        v = gj.placeholder(gj.float64, [5], name="v")

        def outer_body(i, total, vec):
            def inner_body(j, t, w):
                return j + 1, t + gj.cast(i * j + 1, gj.float64) * scale, w * 0.5 + t

            _, total, vec = gj.while_loop(lambda j, t, w: j < i, inner_body, [0, total, vec])
            return i + 1, total, vec

        out = gj.while_loop(lambda i, t, w: i < n, outer_body, [0, gj.constant(0.0, gj.float64), v])
    return g, n, scale, v, list(out)


@pytest.mark.parametrize("n", [0, 1, 5])
def test_nested_loops_with_inner_bound_from_outer_counter(n):
    g, n_ph, scale, v, out = nested_loops_graph()
    count, total, _ = compare_backends(g, out, {n_ph: n, scale: 0.5, v: np.arange(5.0)})
    assert count == n
    assert total == pytest.approx(sum((i * j + 1) * 0.5 for i in range(n) for j in range(i)))


def test_cond_inside_while_inside_cond():
    g = gj.Graph()
    with g.as_default():
        n = gj.placeholder(gj.int32, [], name="n")
        x = gj.placeholder(gj.float64, [4], name="x")

        def looped():
            def body(i, a):
                return i + 1, gj.cond(gj.max(a) > 3, lambda: a - 2, lambda: a * 1.5 + 0.25)

            return gj.while_loop(lambda i, a: i < n, body, [0, x])[1]

        y = gj.cond(n > 0, looped, lambda: -x)
    data = np.array([1.0, -2.0, 0.5, 2.0])
    for steps in (0, 1, 7):
        compare_backends(g, y, {n: steps, x: data}, what=f"n={steps}")


def test_while_inside_cond_inside_while():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [3], name="x")

        def outer(i, even, a):
            def inner():
                return gj.while_loop(lambda j, b: j < i, lambda j, b: (j + 1, b + 1.0), [0, a])[1]

            return i + 1, gj.logical_not(even), gj.cond(even, inner, lambda: a * -1.0)

        out = gj.while_loop(lambda i, e, a: i < 5, outer, [0, gj.constant(True), x])
    got = compare_backends(g, list(out), {x: np.array([0.5, 1.0, -3.0], np.float32)})
    expected = np.array([0.5, 1.0, -3.0], np.float32)
    for i in range(5):
        expected = expected + i if i % 2 == 0 else -expected
    np.testing.assert_array_equal(got[2], expected)


# ---- captures and variables ----------------------------------------------------------------


def test_loop_updates_a_variable_across_runs():
    """A variable read by a loop and assigned from its result, three runs in a row."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [4], name="x")
        v = gj.Variable(np.array([0.5, -1.0, 2.0, 0.0]), name="v")
        _, a = gj.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a * 0.5 + v), [0, x])
        update = v.assign(a - v)
    data = np.array([1.0, 2.0, 3.0, 4.0])
    got = compare_backends(g, [a, update], {x: data}, runs=3)
    assert not np.array_equal(got[0][1], got[2][1])  # the variable did change


def test_loop_body_yielding_a_captured_value_and_shared_initial_values():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [2], name="x")
        w = gj.placeholder(gj.float64, [2], name="w")
        out = gj.while_loop(
            lambda i, a, b, c: i < 3, lambda i, a, b, c: (i + 1, w, w * b + x, a), [0, x, x, x]
        )
    got = compare_backends(g, list(out), {x: np.array([0.5, 1.5]), w: np.array([1.2, 0.7])})
    np.testing.assert_array_equal(got[1], [1.2, 0.7])


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


# ---- max_iterations --------------------------------------------------------------------------


def test_max_iterations_stops_the_loop_with_the_state_so_far():
    g = gj.Graph()
    fetches = []
    with g.as_default():
        x = gj.placeholder(gj.float32, [2], name="x")
        for limit in (0, 1, 4, 10, None):
            fetches.append(
                gj.while_loop(
                    lambda i, a: i < 6, lambda i, a: (i + 1, a * 2), [0, x], max_iterations=limit
                )
            )
    got = compare_backends(g, fetches, {x: np.array([1.0, -3.0], np.float32)})
    for (count, acc), expected in zip(got, [0, 1, 4, 6, 6], strict=True):
        assert count == expected
        np.testing.assert_array_equal(acc, np.array([1.0, -3.0]) * 2**expected)


def test_max_iterations_with_data_dependent_condition():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [3], name="x")
        limit = 3
        (a,) = gj.while_loop(
            lambda a: gj.sum(a) < 50, lambda a: (a * 1.5 + 1,), [x], max_iterations=limit
        )
    for start in ([1.0, 2.0, 3.0], [20.0, 20.0, 20.0], [10.0, 10.0, 9.0]):
        compare_backends(g, a, {x: np.array(start)}, what=str(start))


# ---- loop variables ------------------------------------------------------------------------


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
    assert (i.dtype, f.dtype, b.dtype, d.dtype, k.dtype) == (
        np.int64,
        np.float32,
        np.bool_,
        np.float64,
        np.int32,
    )
    assert i == 5 and b == np.False_ and d == 10.0


def test_swapping_loop_variables():
    """(a, b) -> (b, a): the carried buffers are exchanged, not overwritten one by one."""
    g = gj.Graph()
    with g.as_default():
        n = gj.placeholder(gj.int32, [], name="n")
        x = gj.placeholder(gj.float64, [3], name="x")
        y = gj.placeholder(gj.float64, [3], name="y")
        _, a, b = gj.while_loop(lambda i, a, b: i < n, lambda i, a, b: (i + 1, b, a), [0, x, y])
    xv, yv = np.array([1.0, 2.0, 3.0]), np.array([-4.0, -5.0, -6.0])
    for steps in (0, 1, 2, 5):
        got_a, got_b = compare_backends(g, [a, b], {n: steps, x: xv, y: yv}, what=f"n={steps}")
        np.testing.assert_array_equal(got_a, yv if steps % 2 else xv)
        np.testing.assert_array_equal(got_b, xv if steps % 2 else yv)


def test_rotating_and_fibonacci_loop_variables():
    """(a, b, c) -> (b, c, a) and (p, q) -> (q, p + q) in one loop."""
    g = gj.Graph()
    with g.as_default():
        a0 = gj.placeholder(gj.int64, [2], name="a0")

        def body(i, a, b, c, p, q):
            return i + 1, b, c, a, q, p + q

        out = gj.while_loop(
            lambda i, *_: i < 7, body, [0, a0, a0 * 10, a0 * 100, gj.constant(0), gj.constant(1)]
        )
    got = compare_backends(g, list(out), {a0: np.array([1, 2])})
    np.testing.assert_array_equal(got[1], [10, 20])  # 7 rotations = 1 rotation
    assert (got[4], got[5]) == (13, 21)


def test_blas_call_inside_a_loop_inside_a_cond():
    """Power iteration: v = A v / |A v| in a while loop, in the branch a cond takes."""
    rng = np.random.default_rng(3)
    g = gj.Graph()
    with g.as_default():
        a = gj.placeholder(gj.float64, [6, 6], name="a")
        v0 = gj.placeholder(gj.float64, [6, 1], name="v0")
        n = gj.placeholder(gj.int32, [], name="n")

        def iterate():
            def body(i, v):
                w = gj.matmul(a, v)
                return i + 1, w / gj.sqrt(gj.sum(w * w))

            return gj.while_loop(lambda i, v: i < n, body, [0, v0])[1]

        v = gj.cond(n > 0, iterate, lambda: v0 * 1.0)
    sym = rng.normal(size=(6, 6))
    feeds = {a: sym + sym.T, v0: rng.normal(size=(6, 1))}
    for steps in (0, 1, 30):
        compare_backends(g, v, {**feeds, n: steps}, what=f"n={steps}")

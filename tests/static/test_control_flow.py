"""gj.cond and gj.while_loop: graphs run in the interpreter against plain Python, and the
same functions on non-graph inputs, where they are plain Python control flow."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

import graphjit as gj


def run(graph, fetches, feed_dict=None):
    with gj.Session(graph, backend="interpreter") as sess:
        return sess.run(fetches, feed_dict)


# ---- the canonical example ---------------------------------------------------------------


def python_canonical(n: int, start) -> np.ndarray:
    result = np.array(start, np.float32)
    for _ in range(n):
        result = result * 2 if np.sum(result) > 0 else result + 1
    return result


def canonical_graph(n_const=None):
    """`for i in range(n): result = result * 2 if sum(result) > 0 else result + 1`."""
    g = gj.Graph()
    with g.as_default():
        n = gj.placeholder(gj.int32, [], name="n") if n_const is None else gj.constant(n_const)
        result = gj.placeholder(gj.float32, [None], name="result")

        def body(i, r):
            return i + 1, gj.cond(gj.sum(r) > 0, lambda: r * 2, lambda: r + 1)

        _, out = gj.while_loop(lambda i, r: i < n, body, [0, result])
    return g, n, result, out


CANONICAL_CASES = [
    pytest.param(3, [1.0, 2.0], id="positive"),
    pytest.param(4, [-3.0, 0.5], id="negative-then-positive"),
    pytest.param(3, [-5.0, -1.0, -2.0], id="negative"),
    pytest.param(2, [0.0], id="zero-sum"),
    pytest.param(0, [-1.0, 4.0], id="zero-iterations"),
]


@pytest.mark.parametrize("n, start", CANONICAL_CASES)
def test_canonical_loop_with_fed_bound_matches_python(n, start):
    g, n_ph, result, out = canonical_graph()
    got = run(g, out, {n_ph: n, result: np.array(start, np.float32)})
    np.testing.assert_array_equal(got, python_canonical(n, start))


@pytest.mark.parametrize("n, start", CANONICAL_CASES)
def test_canonical_loop_with_constant_bound_matches_python(n, start):
    g, _, result, out = canonical_graph(n_const=n)
    got = run(g, out, {result: np.array(start, np.float32)})
    np.testing.assert_array_equal(got, python_canonical(n, start))


def test_one_session_runs_the_canonical_loop_for_every_case():
    g, n_ph, result, out = canonical_graph()
    with gj.Session(g, backend="interpreter") as sess:
        for case in CANONICAL_CASES:
            n, start = case.values
            got = sess.run(out, {n_ph: n, result: np.array(start, np.float32)})
            np.testing.assert_array_equal(got, python_canonical(n, start))


# ---- nesting and captures ----------------------------------------------------------------


def test_nested_loops_with_inner_bound_from_outer_counter():
    g = gj.Graph()
    with g.as_default():
        n = gj.placeholder(gj.int32, [], name="n")
        scale = gj.placeholder(gj.float32, [], name="scale")

        def outer_body(i, total):
            def inner_body(j, t):
                return j + 1, t + gj.cast(i * j + 1, gj.float32) * scale

            _, total = gj.while_loop(lambda j, t: j < i, inner_body, [0, total])
            return i + 1, total

        _, total = gj.while_loop(lambda i, t: i < n, outer_body, [0, 0.0])

    expected = sum((i * j + 1) * 0.5 for i in range(5) for j in range(i))
    assert run(g, total, {n: 5, scale: 0.5}) == pytest.approx(expected)


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_captures_read_outer_values_and_the_variables_current_value(backend):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [3], name="x")
        v = gj.Variable(np.array([1.0, 2.0, 3.0], np.float32), name="v")
        offset = gj.constant(10.0)
        y = gj.cond(gj.sum(x) > 0, lambda: x * v, lambda: x + offset)
        _, z = gj.while_loop(lambda i, a: i < 2, lambda i, a: (i + 1, a + v), [0, x])
        scale_v = v.assign(v * 10)
    pos, neg = np.ones(3, np.float32), -np.ones(3, np.float32)
    with gj.Session(g, backend=backend) as sess:
        np.testing.assert_allclose(sess.run(y, {x: pos}), [1, 2, 3])
        np.testing.assert_allclose(sess.run(y, {x: neg}), [9, 9, 9])
        np.testing.assert_allclose(sess.run(z, {x: pos}), [3, 5, 7])
        sess.run(scale_v)
        np.testing.assert_allclose(sess.run(y, {x: pos}), [10, 20, 30])
        np.testing.assert_allclose(sess.run(z, {x: pos}), [21, 41, 61])


def test_while_inside_cond():
    g = gj.Graph()
    with g.as_default():
        n = gj.placeholder(gj.int32, [], name="n")
        x = gj.placeholder(gj.float32, [2], name="x")

        def repeat_add():
            return gj.while_loop(lambda i, a: i < n, lambda i, a: (i + 1, a + x), [0, x])[1]

        y = gj.cond(n > 0, repeat_add, lambda: -x)
    data = np.array([1.0, -2.0], np.float32)
    with gj.Session(g, backend="interpreter") as sess:
        np.testing.assert_allclose(sess.run(y, {n: 3, x: data}), 4 * data)
        np.testing.assert_allclose(sess.run(y, {n: 0, x: data}), -data)


# ---- max_iterations ----------------------------------------------------------------------


@pytest.mark.parametrize("limit, expected_count", [(0, 0), (1, 1), (4, 4), (10, 6), (None, 6)])
def test_max_iterations_stops_the_loop_with_the_state_so_far(limit, expected_count):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [2], name="x")
        i, acc = gj.while_loop(
            lambda i, a: i < 6, lambda i, a: (i + 1, a * 2), [0, x], max_iterations=limit
        )
    count, got = run(g, [i, acc], {x: np.array([1.0, -3.0], np.float32)})
    assert count == expected_count
    np.testing.assert_allclose(got, np.array([1.0, -3.0]) * 2**expected_count)


# ---- structures and dtypes ---------------------------------------------------------------

Pair = namedtuple("Pair", ["first", "second"])


def test_cond_returns_nested_structures():
    g = gj.Graph()
    with g.as_default():
        flag = gj.placeholder(gj.bool_, [], name="flag")
        x = gj.placeholder(gj.float32, [2], name="x")
        out = gj.cond(
            flag,
            lambda: (x, [x * 2, {"k": x + 1}], Pair(x, gj.sum(x))),
            lambda: (-x, [x * 3, {"k": x - 1}], Pair(x * 0, gj.max(x))),
        )
    data = np.array([1.0, 5.0], np.float32)
    with gj.Session(g, backend="interpreter") as sess:
        a, (b, c), pair = sess.run(out, {flag: True, x: data})
        assert isinstance(c, dict) and isinstance(pair, Pair)
        np.testing.assert_allclose([a, b, c["k"], pair.first], [data, 2 * data, data + 1, data])
        assert pair.second == 6
        a, (b, c), pair = sess.run(out, {flag: False, x: data})
        np.testing.assert_allclose(
            [a, b, c["k"], pair.first], [-data, 3 * data, data - 1, 0 * data]
        )
        assert pair.second == 5


def test_cond_of_a_list_returns_a_list():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.int32, [], name="x")
        out = gj.cond(x > 0, lambda: [x, x * 2], lambda: [x * 3, x * 4])
    assert isinstance(out, list)
    assert run(g, out, {x: 2}) == [2, 4]
    assert run(g, out, {x: -2}) == [-6, -8]


def test_loop_variables_of_different_dtypes():
    g = gj.Graph()
    with g.as_default():
        loop_vars = (
            gj.constant(0, gj.int64),
            gj.constant([1.0, 2.0]),
            gj.constant(True),
            gj.constant(0.0, gj.float64),
        )
        out = gj.while_loop(
            lambda i, f, b, d: i < 5,
            lambda i, f, b, d: (i + 1, f * 1.5, gj.logical_not(b), d + gj.cast(i, gj.float64)),
            loop_vars,
        )
    assert isinstance(out, tuple)
    assert [v.dtype for v in out] == [gj.int64, gj.float32, gj.bool_, gj.float64]
    i, f, b, d = run(g, out)
    assert (i.dtype, f.dtype, b.dtype, d.dtype) == (np.int64, np.float32, np.bool_, np.float64)
    assert i == 5 and b == np.False_ and d == 10.0
    np.testing.assert_allclose(f, np.array([1.0, 2.0]) * 1.5**5, rtol=1e-6)


def test_single_loop_variable_body_may_return_the_tensor_itself():
    g = gj.Graph()
    with g.as_default():
        (out,) = gj.while_loop(lambda a: a < 100, lambda a: a * 3, [gj.constant(1)])
    assert run(g, out) == 243


# ---- eager (non-graph) inputs ------------------------------------------------------------


def test_eager_cond_is_python_if():
    a = np.array([1.0, -2.0])
    np.testing.assert_allclose(gj.cond(a.sum() > 0, lambda: a * 2, lambda: a + 1), [2.0, -1.0])
    assert gj.cond(True, lambda: (1, [2]), lambda: None) == (1, [2])
    calls = []
    assert gj.cond(0, lambda: calls.append("true"), lambda: "false") == "false"
    assert calls == []  # only the chosen branch runs


@pytest.mark.parametrize("n, start", CANONICAL_CASES)
def test_eager_canonical_loop_matches_python(n, start):
    def body(i, r):
        return i + 1, gj.cond(np.sum(r) > 0, lambda: r * 2, lambda: r + 1)

    loop_vars = [0, np.array(start, np.float32)]
    i, out = gj.while_loop(lambda i, r: i < n, body, loop_vars)
    assert i == n
    np.testing.assert_array_equal(out, python_canonical(n, start))


def test_eager_while_loop_keeps_the_container_type_and_max_iterations():
    assert gj.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a * 2), [0, 1.5]) == [3, 12.0]
    assert gj.while_loop(lambda i: i < 10, lambda i: i + 1, (0,), max_iterations=4) == (4,)

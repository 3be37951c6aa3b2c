"""gj.cond and gj.while_loop: graphs run in the interpreter against plain Python, and the
same functions on non-graph inputs, where they are plain Python control flow."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import programs
import pytest
from programs import (
    CANONICAL_CASES,
    canonical_graph,  # noqa: F401  (tests/passes/test_differential.py imports it from here)
    python_canonical,
)

import graphjit as gj


def run(graph, fetches, feed_dict=None):
    with gj.Session(graph, backend="interpreter") as sess:
        return sess.run(fetches, feed_dict)


# ---- the canonical example (tests/programs.py) -------------------------------------------


@pytest.mark.parametrize("n, start", CANONICAL_CASES)
def test_canonical_loop_with_fed_bound_matches_python(n, start):
    programs.check_expected(programs.canonical_loop(n, start))


@pytest.mark.parametrize("n, start", CANONICAL_CASES)
def test_canonical_loop_with_constant_bound_matches_python(n, start):
    programs.check_expected(programs.canonical_loop(n, start, constant_bound=True))


def test_one_session_runs_the_canonical_loop_for_every_case():
    programs.check_canonical_loop_in_one_session("interpreter")


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
    programs.check_captures_in_one_session(backend)


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


@pytest.mark.parametrize("limit", [0, 1, 4, 10, None])
def test_max_iterations_stops_the_loop_with_the_state_so_far(limit):
    programs.check_expected(programs.max_iterations([limit]))


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
    program = programs.loop_variables_of_different_dtypes()
    assert isinstance(program.fetches, tuple)
    dtypes = [v.dtype for v in program.fetches]
    assert dtypes == [gj.int64, gj.float32, gj.bool_, gj.float64, gj.int32]
    programs.check_expected(program)


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

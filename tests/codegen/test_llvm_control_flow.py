"""cond and while_loop on the llvm backend (branches and loops inside the one native entry)
against the interpreter and plain Python: the canonical loop, nesting, captures, variables,
max_iterations, mixed-dtype and swapped loop variables. The programs the cuda suite runs
as well are in tests/programs.py."""

from __future__ import annotations

import numpy as np
import programs
import pytest
from llvm_helpers import assert_matches, compare_backends
from programs import CANONICAL_CASES

import graphjit as gj


def check(program: programs.Program, **tol) -> None:
    programs.check(program, compare_backends, **tol)


# ---- the canonical example ---------------------------------------------------------------


def test_canonical_loop_with_fed_bound():
    """`for i in range(n): result = result * 2 if sum(result) > 0 else result + 1` for
    positive, negative and zero sums and zero iterations, in one llvm Session."""
    programs.check_canonical_loop_in_one_session("llvm", assert_matches)


@pytest.mark.parametrize("steps, start", CANONICAL_CASES)
def test_canonical_loop_with_constant_bound(steps, start):
    check(programs.canonical_loop(steps, start, constant_bound=True))


def test_canonical_loop_fetching_its_input_and_counter():
    check(programs.canonical_loop_fetching_its_input())


# ---- nesting -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 5])
def test_nested_loops_with_inner_bound_from_outer_counter(n):
    check(programs.nested_loops(n, size=5, scale=0.5))


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
    check(programs.while_inside_cond_inside_while(iterations=5))


# ---- captures and variables ----------------------------------------------------------------


def test_loop_updates_a_variable_across_runs():
    check(programs.loop_updating_a_variable())


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
    check(programs.cond_branches_returning_inputs_unchanged())


# ---- max_iterations --------------------------------------------------------------------------


def test_max_iterations_stops_the_loop_with_the_state_so_far():
    check(programs.max_iterations(limits=(0, 1, 4, 10, None)))


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
    check(programs.loop_variables_of_different_dtypes())


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


def test_loop_body_kernel_writing_its_carried_buffer_in_place():
    """w = w * 0.5 + t writes straight into w's carried buffer (no copy at the yield). Its
    input and output pointers are then equal: once they were two pointers LLVM was told
    did not alias, and it hoisted the loads of w out of the loop (w came out as if the
    body had run once)."""
    g = gj.Graph()
    with g.as_default():
        n = gj.placeholder(gj.int32, [], name="n")
        v = gj.placeholder(gj.float64, [5], name="v")
        body = lambda j, t, w: (j + 1, t + 1.0, w * 0.5 + t)
        out = gj.while_loop(lambda j, t, w: j < n, body, [0, gj.constant(0.0, gj.float64), v])
    feeds = {n: 3, v: np.arange(5.0)}
    plan = gj.Session(g).inspect(out, feeds).memory_plan
    assert sum(1 for b in plan.buffers.values() if b.reuses is not None) >= 2
    got = compare_backends(g, out, feeds)
    np.testing.assert_array_equal(got[2], np.arange(5.0) / 8 + 2.5)

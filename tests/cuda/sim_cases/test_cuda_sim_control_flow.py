"""cond and while_loop on the cuda backend (Python control flow in the host driver, the
predicate read back from the device) against the interpreter and plain Python: the
canonical loop, nesting both ways, captures and variables, max_iterations, loop variables
of mixed dtypes, swapped and rotated loop variables. The programs the llvm suite runs as
well are in tests/programs.py."""

from __future__ import annotations

import numpy as np
import programs
import pytest
from cuda_helpers import assert_matches, compare_backends

import graphjit as gj


def check(program: programs.Program, **tol) -> None:
    programs.check(program, compare_backends, **tol)


def test_canonical_loop_with_fed_bound_in_one_session():
    programs.check_canonical_loop_in_one_session("cuda", assert_matches)


def test_canonical_loop_fetching_its_input():
    check(programs.canonical_loop_fetching_its_input(constant_bound=True))


@pytest.mark.parametrize("n", [0, 3])
def test_nested_loops_with_inner_bound_from_outer_counter(n):
    check(programs.nested_loops(n, size=3, scale=1.0))


def test_while_inside_cond_inside_while():
    check(programs.while_inside_cond_inside_while(iterations=4))


def test_captures_read_outer_values_and_the_variables_current_value():
    programs.check_captures_in_one_session("cuda")


def test_loop_updates_a_variable_across_runs():
    check(programs.loop_updating_a_variable())


def test_cond_branches_returning_inputs_unchanged():
    check(programs.cond_branches_returning_inputs_unchanged())


def test_max_iterations_stops_the_loop_with_the_state_so_far():
    check(programs.max_iterations(limits=(0, 1, 4, None)))


def test_loop_variables_of_different_dtypes():
    check(programs.loop_variables_of_different_dtypes())


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

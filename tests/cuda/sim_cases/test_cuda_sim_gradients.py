"""Gradient graphs on the cuda backend against the interpreter: every differentiable op-table
record (the gradients of sum(fn(x) * w) for all its shapes in one graph), gradients
through cond, and through while loops with data-dependent trip counts, whose tapes are
tensor lists held by the host driver; second order through both. The programs are in
tests/programs.py, shared with the llvm suite."""

from __future__ import annotations

import numpy as np
import programs
import pytest
from cuda_helpers import compare_backends
from programs import GRADIENT_CASES

import graphjit as gj


def check(program: programs.Program, **tol) -> None:
    programs.check(program, compare_backends, **tol)


@pytest.mark.parametrize("case, dtype", GRADIENT_CASES)
def test_op_gradient_matches_interpreter(case, dtype):
    check(programs.op_gradient(case, dtype))


@pytest.mark.parametrize("pv", [1.0, -1.0])
def test_cond_gradient_to_values_captured_by_either_branch(pv):
    check(programs.cond_gradient_to_values_captured_by_either_branch(pv))


@pytest.mark.parametrize("xv", [0.8, -0.6])
def test_second_derivative_through_cond(xv):
    check(programs.second_derivative_through_cond(xv))


@pytest.mark.parametrize("scale", [0.5, 20.0], ids=["long", "zero-trips"])
def test_data_dependent_while(scale):
    check(programs.data_dependent_while(scale))


def test_while_stopped_by_max_iterations():
    check(programs.data_dependent_while(max_iterations=2))


def test_nested_while_inner_trip_count_is_outer_counter():
    check(programs.nested_while_inner_trip_count_is_outer_counter(outer_trips=3))


def test_cond_inside_loop_body():
    check(programs.cond_inside_loop_body(trips=4))


def test_second_order_through_data_dependent_while():
    check(programs.data_dependent_while(second_order=True))


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

"""Gradient graphs on the llvm backend against the interpreter: every differentiable op-table
record (gj.gradients of sum(fn(x) * w), one graph per record and dtype over all its shapes),
gradients through cond, and through while loops, whose tapes are tensor lists. The
programs the cuda suite runs as well are in tests/programs.py."""

from __future__ import annotations

import numpy as np
import programs
import pytest
from llvm_helpers import compare_backends
from programs import GRADIENT_CASES, gradients_of

import graphjit as gj


def check(program: programs.Program, **tol) -> None:
    programs.check(program, compare_backends, **tol)


# ---- the op table ----------------------------------------------------------------------------


@pytest.mark.parametrize("case, dtype", GRADIENT_CASES)
def test_op_gradient_matches_interpreter(case, dtype):
    check(programs.op_gradient(case, dtype))


def test_every_differentiable_record_is_compared():
    names = {p.values[0].name for p in GRADIENT_CASES}
    assert {"exp", "pow", "where", "matmul", "softmax_cross_entropy", "unslice"} <= names
    assert "sign" not in names and len(GRADIENT_CASES) > 2 * 40


# ---- cond ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pv", [1.0, -1.0])
def test_cond_gradient_to_values_captured_by_either_branch(pv):
    check(programs.cond_gradient_to_values_captured_by_either_branch(pv))


@pytest.mark.parametrize("xv", [[0.3, 0.4], [-0.3, -0.4]])
def test_cond_with_several_results_and_an_unused_one(xv):
    def build(x, y):
        r1, r2, _ = gj.cond(
            gj.sum(x) > 0, lambda: (x * y, gj.tanh(y), x + 1), lambda: (y, x * x, y - x)
        )
        return gj.sum(r1) + 2 * gj.sum(r2)

    check(gradients_of(build, [np.array(xv), np.array([1.1, -0.6])]))


@pytest.mark.parametrize("pv", [1.0, -1.0])
def test_cond_branch_returning_a_captured_value(pv):
    def build(p, x, y):
        return gj.sum(gj.cond(p > 0, lambda: x, lambda: y) * np.array([1.0, 2.0]))

    def expect(_y, _dp, dx, dy):
        np.testing.assert_array_equal(dx if pv > 0 else dy, [1.0, 2.0])

    arrays = [np.array(pv), np.array([1.0, 2.0], np.float32), np.array([3.0, 4.0], np.float32)]
    check(gradients_of(build, arrays, expect=expect))


@pytest.mark.parametrize("xv", [0.8, -0.6])
def test_second_derivative_through_cond(xv):
    check(programs.second_derivative_through_cond(xv))


# ---- while loops (tapes are tensor lists) ---------------------------------------------------------


@pytest.mark.parametrize("scale", [0.5, 1.0, 20.0], ids=["long", "short", "zero-trips"])
def test_data_dependent_while(scale):
    check(programs.data_dependent_while(scale))


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_while_stopped_by_max_iterations(limit):
    check(programs.data_dependent_while(max_iterations=limit))


def test_nested_while_inner_trip_count_is_outer_counter():
    check(programs.nested_while_inner_trip_count_is_outer_counter(outer_trips=4))


def test_cond_inside_loop_body():
    check(programs.cond_inside_loop_body(trips=6))


@pytest.mark.parametrize("pv", [1.0, -1.0])
def test_loop_inside_cond_branch(pv):
    def build(p, x, w):
        def looped():
            _, y = gj.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, gj.tanh(y * w)), [0, x])
            return y

        return gj.sum(gj.cond(p > 0, looped, lambda: x * 3) * np.array([2.0, -1.0]))

    check(gradients_of(build, [np.array(pv), np.array([0.7, -0.2]), np.array([1.4, 0.6])]))


def test_loop_with_mixed_dtype_loop_variables():
    def build(x, y):
        def body(i, acc, s, f32):
            return i + 1, acc + s * gj.cast(i, gj.float64), s * y + x, f32 * 1.5

        _, acc, s, f32 = gj.while_loop(
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

    check(gradients_of(build, [np.array([0.3, -0.5]), np.array([0.9, 1.1])]))


def test_second_order_through_data_dependent_while():
    check(programs.data_dependent_while(second_order=True))


def test_second_derivative_of_power_computed_by_loop():
    """p = x ** n by n multiplications, n fed: d2p/dx2 = n (n - 1) x ** (n - 2)."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [3], name="x")
        n = gj.placeholder(gj.int32, [], name="n")
        one = gj.constant(np.ones(3))
        _, p = gj.while_loop(lambda i, p: i < n, lambda i, p: (i + 1, p * x), [0, one])
        (d1,) = gj.gradients(gj.sum(p), [x])
        (d2,) = gj.gradients(gj.sum(d1), [x])
    xv = np.array([0.7, -1.3, 2.0])
    for k in (0, 1, 4):
        _, _, d2v = compare_backends(g, [p, d1, d2], {x: xv, n: k}, what=f"n={k}")
        np.testing.assert_allclose(d2v, k * (k - 1) * xv ** max(k - 2, 0), rtol=1e-12)


def test_second_order_through_cond_in_loop():
    def build(x):
        def body(i, a):
            return i + 1, gj.cond(gj.sum(a) > 0, lambda: gj.tanh(a) * a, lambda: a * a + 1)

        _, a = gj.while_loop(lambda i, a: i < 3, body, [0, x])
        return gj.sum(a)

    for xv in ([0.3, -0.1], [-0.5, 0.2]):
        check(gradients_of(build, [np.array(xv)], second_order=True))

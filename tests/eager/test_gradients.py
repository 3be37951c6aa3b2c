"""Eager gradients of every record in the shared op table against float64 central finite
differences of its NumPy reference, and second derivatives (create_graph=True) against
finite differences of the eager first derivative."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj
from op_table import OP_TABLE, inputs_for, tolerance

EPS = 1e-6
TOL = {"rtol": 1e-5, "atol": 1e-7}
# Finite differences of a float32 result would measure float32 rounding: differentiate a
# float64 equivalent instead.
FD_REF = {"cast_f32": lambda x: x}

GRAD_CASES = [
    pytest.param(case, shapes, id=f"{case.name}-{shapes}")
    for case in OP_TABLE
    if case.grad
    for shapes in case.shapes
]
# Tensor lists are the static while-loop's tapes; they have no eager tensor form.
FORWARD_CASES = [
    pytest.param(case, shapes, dtype, id=f"{case.name}-{shapes}-{dtype}")
    for case in OP_TABLE
    if not case.name.startswith("tensor_lists")
    for shapes in case.shapes
    for dtype in case.dtypes
]


def _differentiable(case, arrays) -> list[int]:
    return [i for i, a in enumerate(arrays) if a.dtype.kind == "f" and i not in case.fixed]


def _leaves(case, arrays) -> list:
    wrt = _differentiable(case, arrays)
    return [gj.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]


def _weights(shape, seed=1) -> np.ndarray:
    """Random output weights, so that the scalar loss sum(w * y) exercises the whole VJP."""
    return np.random.default_rng(seed).uniform(0.5, 1.5, shape)


def _finite_differences(f, arrays, wrt) -> list:
    grads = []
    for i in wrt:
        x = arrays[i]
        g = np.zeros(x.shape)
        for idx in np.ndindex(x.shape):
            old = x[idx]
            x[idx] = old + EPS
            up = f(arrays)
            x[idx] = old - EPS
            down = f(arrays)
            x[idx] = old
            g[idx] = (up - down) / (2 * EPS)
        grads.append(g)
    return grads


@pytest.mark.parametrize("case, shapes", GRAD_CASES)
def test_first_derivative_matches_finite_differences(case, shapes):
    arrays = inputs_for(case, shapes, "float64")
    wrt = _differentiable(case, arrays)
    leaves = _leaves(case, arrays)
    y = case.fn(*leaves)
    w = _weights(y.shape)
    (y * gj.tensor(w)).sum().backward()
    ref = FD_REF.get(case.name, case.ref)
    expected = _finite_differences(lambda xs: float(np.sum(ref(*xs) * w)), arrays, wrt)
    for i, g in zip(wrt, expected):
        # An operand read for its shape alone (sum_to's reference) gets None, and none is due.
        got = np.zeros(g.shape) if leaves[i].grad is None else leaves[i].grad.numpy()
        np.testing.assert_allclose(got, g, err_msg=f"input {i}", **TOL)


def _first_derivative_dot(case, arrays, wrt, w, v) -> float:
    """sum_i <d(sum(w * y))/dx_i, v_i>, computed by eager autograd without create_graph."""
    leaves = _leaves(case, arrays)
    loss = (case.fn(*leaves) * gj.tensor(w)).sum()
    grads = gj.autograd.grad(loss, [leaves[i] for i in wrt], allow_unused=True)
    return sum(float(np.sum(g.numpy() * vi)) for g, vi in zip(grads, v) if g is not None)


@pytest.mark.parametrize("case, shapes", GRAD_CASES)
def test_second_derivative_matches_finite_differences(case, shapes):
    arrays = inputs_for(case, shapes, "float64")
    wrt = _differentiable(case, arrays)
    leaves = _leaves(case, arrays)
    y = case.fn(*leaves)
    w = _weights(y.shape)
    v = [_weights(arrays[i].shape, seed=2 + i) for i in wrt]
    loss = (y * gj.tensor(w)).sum()
    grads = gj.autograd.grad(loss, [leaves[i] for i in wrt], create_graph=True, allow_unused=True)
    dot = sum(
        ((g * gj.tensor(vi)).sum() for g, vi in zip(grads, v) if g is not None),
        gj.tensor(0.0, "float64"),
    )
    if not dot.requires_grad:  # piecewise-linear ops: the first derivative is constant
        hessian_v = [np.zeros(arrays[i].shape) for i in wrt]
    else:
        second = gj.autograd.grad(dot, [leaves[i] for i in wrt], allow_unused=True)
        hessian_v = [
            np.zeros(arrays[i].shape) if g is None else g.numpy() for i, g in zip(wrt, second)
        ]
    expected = _finite_differences(
        lambda xs: _first_derivative_dot(case, xs, wrt, w, v), arrays, wrt
    )
    for i, got, want in zip(wrt, hessian_v, expected):
        np.testing.assert_allclose(got, want, err_msg=f"input {i}", rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("case, shapes, dtype", FORWARD_CASES)
def test_forward_matches_reference_and_gradients_keep_dtype(case, shapes, dtype):
    arrays = inputs_for(case, shapes, dtype)
    leaves = _leaves(case, arrays) if case.grad else [gj.tensor(a) for a in arrays]
    y = case.fn(*leaves)
    assert isinstance(y, gj.Tensor)
    np.testing.assert_allclose(y.numpy(), case.ref(*arrays), **tolerance(dtype))
    if case.grad and y.requires_grad:
        y.backward(gj.ones_like(y))
        for x in leaves:
            if x.grad is not None:  # (operands read for their shape alone get none)
                assert x.grad.dtype == x.dtype and x.grad.shape == x.shape

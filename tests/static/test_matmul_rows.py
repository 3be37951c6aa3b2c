"""A batch of rows times one matrix (`x @ w`, x of shape (..., m, k), a Linear layer on a
sequence) is one product of all the rows: in the eager kernel, and in the weight's
cotangent, which is otherwise a batch of products summed (ir/ops/linalg.py). Values and
both gradients against NumPy's products matrix by matrix, on every backend and eagerly:
empty batches, rows, inner and outer dimensions, a transposed weight, a view as input."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj

CASES = [  # (x's shape, w's shape as stored, transpose_b)
    ((2, 3, 2, 4), (4, 5), False),
    ((3, 5, 4), (6, 4), True),
    ((0, 3, 4), (4, 2), False),
    ((2, 0, 4), (4, 3), False),
    ((2, 3, 0), (0, 3), False),
    ((2, 3, 4), (4, 0), False),
    ((2, 3, 0), (3, 0), True),
]


def _reference(x, w, transpose_b, c):
    """y = x @ op(w) and the gradients of sum(y * c), one matrix of the batch at a time."""
    op_w = w.T if transpose_b else w
    y = np.matmul(x, op_w)
    dx = np.matmul(c, op_w.T)
    batch = int(np.prod(x.shape[:-2]))
    pairs = zip(x.reshape(batch, *x.shape[-2:]), c.reshape(batch, *c.shape[-2:]))
    d_op_w = sum((xb.T @ cb for xb, cb in pairs), np.zeros(op_w.shape))
    return y, dx, d_op_w.T if transpose_b else d_op_w


def _inputs(x_shape, w_shape, transpose_b):
    rng = np.random.default_rng(sum(x_shape) + 7 * sum(w_shape))
    x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)
    out = x_shape[:-1] + (w_shape[0] if transpose_b else w_shape[1],)
    return x, w, np.cos(np.arange(int(np.prod(out)))).reshape(out)


@pytest.mark.parametrize("backend", ["llvm", "interpreter"])
@pytest.mark.parametrize("x_shape,w_shape,transpose_b", CASES)
def test_static_rows_times_a_matrix(backend, x_shape, w_shape, transpose_b):
    x, w, c = _inputs(x_shape, w_shape, transpose_b)
    graph = gj.Graph()
    with graph.as_default():
        xp, wp = gj.placeholder(gj.float64, x_shape), gj.placeholder(gj.float64, w_shape)
        y = gj.matmul(xp, wp, transpose_b=transpose_b)
        grads = gj.gradients(gj.sum(y * c), [xp, wp])
    got = gj.Session(graph, backend=backend).run([y, *grads], {xp: x, wp: w})
    for g, want in zip(got, _reference(x, w, transpose_b, c), strict=True):
        np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape,w_shape,transpose_b", CASES)
def test_eager_rows_times_a_matrix(x_shape, w_shape, transpose_b):
    x, w, c = _inputs(x_shape, w_shape, transpose_b)
    xt, wt = gj.tensor(x, requires_grad=True), gj.tensor(w, requires_grad=True)
    y = gj.matmul(xt, wt, transpose_b=transpose_b)
    gj.sum(y * gj.tensor(c)).backward()
    got = [y.numpy(), xt.grad.numpy(), wt.grad.numpy()]
    for g, want in zip(got, _reference(x, w, transpose_b, c), strict=True):
        np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-12)


def test_eager_rows_of_a_view_times_a_matrix():
    """Rows that are not contiguous (a transposed view) take np.matmul's own path."""
    x, w, c = _inputs((3, 4, 5), (5, 2), False)
    view = gj.tensor(np.ascontiguousarray(x.transpose(0, 2, 1)), requires_grad=True)
    xt = gj.transpose(view, [0, 2, 1])
    assert not xt.numpy().flags.c_contiguous
    wt = gj.tensor(w, requires_grad=True)
    y = xt @ wt
    gj.sum(y * gj.tensor(c)).backward()
    want_y, want_dx, want_dw = _reference(x, w, False, c)
    np.testing.assert_allclose(y.numpy(), want_y, rtol=1e-12)
    np.testing.assert_allclose(view.grad.numpy(), want_dx.transpose(0, 2, 1), rtol=1e-12)
    np.testing.assert_allclose(wt.grad.numpy(), want_dw, rtol=1e-12)

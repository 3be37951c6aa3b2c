"""Eager shortcuts for `x[i]`-style indexing, `a @ b` and the Python numbers of ops and
VJP rules: each gives what the general path gives (values, dtype, shape, shared storage,
history, gradient, or the same error), and a number's sign survives the constant cache."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj
from graphjit.frontend import ops, shape_ops
from graphjit.frontend.eager.views import VIEW_KERNELS


def outcome(fn, x):
    """fn(x)'s value, storage sharing, history and the gradient of a weighted sum of it,
    or its error's type and message."""
    x.grad = None
    try:
        y = fn(x)
    except Exception as e:  # noqa: BLE001 (the error is the outcome compared)
        return ("error", type(e), str(e))
    described = (y.dtype.name, y.shape, y.numpy().tobytes(), np.shares_memory(y.numpy(), x.numpy()))
    if not y.requires_grad:
        return described, None
    weights = gj.tensor(np.arange(y.numpy().size, dtype=np.float32).reshape(y.shape))
    (y * weights).sum().backward()
    return described, type(y.grad_fn).__name__, x.grad.numpy().tobytes()


KEYS = [
    5,
    -1,
    0,
    (1, slice(None), 2),
    (slice(1, 3),),
    slice(None, None, -1),
    slice(-3, None, 2),
    (slice(0, 2), 1),
    (2, -1),
    (1, 2, 3),
    np.int64(2),  # (not a Python int: the general path, both times)
    (None, 1),
    (Ellipsis, 0),
    True,
    [0, 2],
    99,  # out of range: ShapeError
    (0, 5),
    (1, 2, 3, 4),  # too many indices
    slice(0, 2.5),  # a float bound: the general path refuses it
]


@pytest.mark.parametrize("key", KEYS, ids=repr)
def test_basic_indexing_of_eager_tensors_matches_the_general_path(monkeypatch, key):
    x = gj.tensor(np.arange(60, dtype=np.float32).reshape(6, 5, 2), requires_grad=True)

    def index(t):
        return t[key]  # (one line for both paths: errors name it)

    fast = outcome(index, x)
    monkeypatch.setattr(shape_ops, "plain_eager", lambda kind: False)
    assert outcome(index, x) == fast


def view_outcome(fn, x):
    """fn(x) of a tensor off the tape: its value, whether it is a view of x with x's
    version cell and the chain of view ops it would replay, and x after adding 1 to it in
    place; or the error."""
    try:
        y = fn(x)
    except Exception as e:  # noqa: BLE001 (the error is the outcome compared)
        return ("error", type(e), str(e))
    described = (y.dtype.name, y.shape, y.numpy().tobytes(), y._base is x, y._view_chain)
    same_cell = y._version is x._version
    y.add_(1.0)
    return described, same_cell, x._version[0], x.numpy().tobytes()


@pytest.mark.parametrize("key", KEYS, ids=repr)
def test_indexing_a_tensor_off_the_tape_matches_the_general_path(monkeypatch, key):
    """`xs[t]` of a batch nothing differentiates is one NumPy view (tensor_methods'
    _fast_getitem): the same view, chain and version cell as the slice and squeeze the
    general path binds, so an in-place change through it reaches the base the same way."""
    from graphjit.frontend.eager import tensor_methods

    def index(t):
        return t[key]

    fast = view_outcome(index, gj.tensor(np.arange(60, dtype=np.float32).reshape(6, 5, 2)))
    monkeypatch.setattr(tensor_methods, "basic_index", lambda key, shape: None)
    general = view_outcome(index, gj.tensor(np.arange(60, dtype=np.float32).reshape(6, 5, 2)))
    assert fast == general


def test_squeeze_views_are_numpys():
    """The squeeze view (a reshape) against np.squeeze: shape, storage and the strides of
    every axis longer than 1 (a unit axis's stride never moves a pointer), on contiguous,
    strided and reversed arrays, every axis spelling; None where NumPy refuses."""
    squeeze = VIEW_KERNELS["squeeze"]
    base = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    views = [base[:1, :1, :1, :1], base[1:2, ::2, 2:3, ::-2], base[:, 1:2, :, 3:4], base]
    for array in views:
        for axes in [(), (0,), (-1,), (0, 1), (1, 3), (-4, 2), (0, 0), (4,), (-5,), (np.int64(0),)]:
            try:
                want = np.squeeze(array, axes)
            except ValueError:
                assert squeeze(array, axes) is None
                continue
            got = squeeze(array, axes)
            assert got.shape == want.shape and np.shares_memory(got, array)
            long_axes = [i for i, d in enumerate(want.shape) if d > 1]
            assert [got.strides[i] for i in long_axes] == [want.strides[i] for i in long_axes]
            assert (got == want).all()


MATMUL_CASES = [
    ((2, 3), (3, 4), np.float32),
    ((4, 2, 3), (3, 5), np.float32),
    ((2, 1, 2, 3), (3, 3, 2), np.float64),
    ((2, 3), (3, 4), np.float16),
    ((3,), (3, 4), np.float32),  # a vector: the shared operator
    ((2, 3), (4, 5), np.float32),  # mismatched: the same ShapeError
    ((2, 3), (3, 4), np.int64),  # integers: the shared operator
]


@pytest.mark.parametrize("sa,sb,dtype", MATMUL_CASES)
def test_matmul_operator_matches_the_op_function(sa, sb, dtype):
    rng = np.random.default_rng(0)
    b = gj.tensor(rng.normal(size=sb).astype(dtype))
    is_float = np.dtype(dtype).kind == "f"
    x = gj.tensor(rng.normal(size=sa).astype(dtype), requires_grad=is_float)
    assert outcome(lambda t: t @ b, x) == outcome(lambda t: ops.matmul(t, b), x)


@pytest.mark.parametrize("zero", [0.0, -0.0])
def test_a_zeros_sign_is_kept(zero):
    """-0.0 == 0.0, so the cache of constants must not serve one for the other."""
    data = np.array([1.0, -2.0, 0.0], np.float32)
    x = gj.tensor(data)
    for _ in range(2):  # (a second time: from the cache, if anything was cached)
        for got, want in [
            (x * zero, data * np.float32(zero)),
            (zero * x, np.float32(zero) * data),
            (x + zero, data + np.float32(zero)),
            (gj.mul(x, zero), data * np.float32(zero)),
        ]:
            assert got.numpy().tobytes() == want.tobytes()


def test_cached_constants_cannot_be_changed_through_a_result():
    """A VJP rule's `1 - y * y` and `x * 0.5` share constant tensors; their arrays are
    read-only, so nothing reached through an op's result can change the next op's value."""
    x = gj.tensor(np.array([0.5, -1.0], np.float32), requires_grad=True)
    (g,) = gj.autograd.grad(gj.tanh(x).sum(), [x])
    g.add_(100.0)
    (again,) = gj.autograd.grad(gj.tanh(x).sum(), [x])
    np.testing.assert_allclose(again.numpy(), 1 - np.tanh(x.numpy()) ** 2, rtol=1e-6)
    y = x * 0.5
    y.mul_(3.0)
    np.testing.assert_array_equal((x * 0.5).numpy(), x.numpy() * np.float32(0.5))

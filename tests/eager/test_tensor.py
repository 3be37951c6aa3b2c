"""gj.Tensor as a value: factories, dtypes, properties, Python protocols, repr, methods with
PyTorch's spellings, and in-place ops."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import graphjit as gj


@pytest.mark.parametrize(
    "data, dtype",
    [
        (1.5, gj.float32),
        ([1, 2], gj.int64),
        (True, gj.bool_),
        ([[1.0, 2.0]], gj.float32),
        (np.array([1.0]), gj.float64),
        (np.array([1], np.int32), gj.int32),
        (np.float64(2.0), gj.float64),
    ],
)
def test_tensor_dtypes_follow_pytorch_for_python_data_and_keep_numpy_dtypes(data, dtype):
    assert gj.tensor(data).dtype == dtype


def test_tensor_copies_its_data_and_accepts_a_dtype():
    a = np.array([1.0, 2.0])
    t = gj.tensor(a, dtype="float32")
    a[0] = 9
    assert t.dtype == gj.float32 and t.tolist() == [1.0, 2.0]
    with pytest.raises(gj.DTypeError):
        gj.tensor(np.array([1.0], np.int16))


def test_factories():
    assert gj.zeros(2, 3).shape == (2, 3) and gj.zeros((2, 3)).numpy().sum() == 0
    assert gj.ones(4, dtype="int64").dtype == gj.int64
    assert gj.arange(5).tolist() == [0, 1, 2, 3, 4] and gj.arange(5).dtype == gj.int64
    assert gj.arange(0, 1, 0.25).dtype == gj.float32 and gj.arange(1, 4).tolist() == [1, 2, 3]
    t = gj.tensor([[1, 2]], dtype="float64")
    assert gj.zeros_like(t).dtype == gj.float64 and gj.ones_like(t).tolist() == [[1.0, 1.0]]
    assert gj.ones(2, requires_grad=True).requires_grad
    u = gj.rand(1000)
    assert u.dtype == gj.float32 and 0 <= u.numpy().min() and u.numpy().max() < 1


def test_manual_seed_makes_random_tensors_reproducible():
    gj.manual_seed(7)
    a = gj.randn(3, 2)
    gj.manual_seed(7)
    b = gj.randn(3, 2)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), gj.randn(3, 2).numpy())


def test_properties_and_conversions():
    t = gj.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert (
        t.shape == (2, 2) and isinstance(t.shape, tuple) and t.ndim == 2 and t.dtype == gj.float32
    )
    assert isinstance(t.data, gj.Tensor) and isinstance(t.numpy(), np.ndarray)
    assert t.tolist() == [[1.0, 2.0], [3.0, 4.0]] and t.size(1) == 2 and t.numel() == 4
    assert (
        gj.tensor([2.5]).item() == 2.5 and float(gj.tensor(2.5)) == 2.5 and int(gj.tensor([3])) == 3
    )
    assert len(t) == 2 and [row.tolist() for row in t] == [[1.0, 2.0], [3.0, 4.0]]
    assert np.asarray(t).shape == (2, 2)
    with pytest.raises(gj.ShapeError):
        t.item()


def test_truth_value_equality_and_hashing():
    t = gj.tensor([1.0, 2.0])
    assert (t == gj.tensor([1.0, 3.0])).tolist() == [True, False]
    assert (t != 1.0).tolist() == [False, True]
    assert bool(gj.tensor([1.0]) == 1.0)
    with pytest.raises(gj.ShapeError, match="ambiguous"):
        bool(t)
    assert {t: "x"}[t] == "x" and len({t, gj.tensor([1.0, 2.0])}) == 2


def test_repr_follows_pytorch():
    assert repr(gj.tensor([12.0])) == "tensor([12.])"
    assert repr(gj.tensor(3.5)) == "tensor(3.5000)"
    assert repr(gj.tensor([1.5, 20.25])) == "tensor([ 1.5000, 20.2500])"
    assert repr(gj.tensor([1, 2, 3])) == "tensor([1, 2, 3])"
    assert repr(gj.tensor([1.0], dtype="float64")) == "tensor([1.], dtype=gj.float64)"
    x = gj.tensor([2.0], requires_grad=True)
    assert repr(x) == "tensor([2.], requires_grad=True)"
    assert repr(x * 3) == "tensor([6.], grad_fn=<MulBackward>)"
    assert repr(gj.tensor([[1.0, 2.0], [3.0, 4.5]])) == (
        "tensor([[1.0000, 2.0000],\n        [3.0000, 4.5000]])"
    )


def test_methods_accept_dim_and_keepdim():
    t = gj.tensor([[1.0, 5.0], [3.0, 2.0]])
    assert t.sum(dim=0).tolist() == [4.0, 7.0]
    assert t.mean(dim=1, keepdim=True).shape == (2, 1)
    values, indices = t.max(dim=1)  # PyTorch's (values, indices)
    assert values.tolist() == [5.0, 3.0] and indices.tolist() == [1, 0]
    assert t.max(axis=1).tolist() == [5.0, 3.0] and t.argmax(dim=1).tolist() == [1, 0]
    np.testing.assert_allclose(t.softmax(dim=0).numpy().sum(axis=0), [1.0, 1.0], rtol=1e-6)
    assert t.sum(0, keepdims=True).shape == (1, 2)
    assert t.unsqueeze(0).shape == (1, 2, 2) and t.unsqueeze(0).squeeze(dim=0).shape == (2, 2)


def test_shape_methods_in_both_spellings():
    t = gj.arange(6.0).reshape(2, 3)
    assert t.shape == (2, 3) and t.reshape((3, 2)).shape == (3, 2) and t.view(-1).shape == (6,)
    assert t.transpose(0, 1).shape == (3, 2) and t.T.shape == (3, 2) and t.t().shape == (3, 2)
    cube = gj.zeros(2, 3, 4)
    assert cube.transpose(0, 2).shape == (4, 3, 2)
    assert cube.transpose((1, 2, 0)).shape == (3, 4, 2) and cube.permute(2, 0, 1).shape == (4, 2, 3)
    assert t.flatten().shape == (6,) and t[1, 1:].tolist() == [4.0, 5.0]


def test_clamp_passes_the_gradient_inside_the_bounds_inclusive():
    x = gj.tensor([-2.0, -1.0, 0.0, 1.0, 2.0], requires_grad=True)
    y = x.clamp(min=-1.0, max=1.0)
    assert y.tolist() == [-1.0, -1.0, 0.0, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_in_place_methods():
    t = gj.tensor([1.0, 2.0])
    assert t.add_(1) is t and t.tolist() == [2.0, 3.0]
    t.sub_(gj.tensor([1.0, 1.0]), alpha=2)
    t.mul_(10)
    t.div_(2)
    assert t.tolist() == [0.0, 5.0]
    t.clamp_(1, 4)
    assert t.tolist() == [1.0, 4.0] and t._version[0] == 5
    t.zero_()
    assert t.tolist() == [0.0, 0.0]
    t[1] = 7
    assert t.tolist() == [0.0, 7.0]
    with pytest.raises(gj.DTypeError):
        gj.tensor([1, 2]).add_(0.5)


def test_in_place_on_a_leaf_is_seen_by_its_detached_alias():
    w = gj.tensor([1.0, 2.0], requires_grad=True)
    alias = w.detach()
    with gj.no_grad():
        w.mul_(2)
    assert alias.tolist() == [2.0, 4.0]


def test_clone_stays_on_the_tape_and_copies():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    c = x.clone()
    assert not np.shares_memory(c.numpy(), x.numpy()) and c.grad_fn is not None
    (c * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_numpy_arrays_and_scalars_mix_with_tensors():
    t = gj.tensor([1.0, 2.0])
    assert isinstance(np.array([2.0, 2.0], np.float32) * t, gj.Tensor)
    assert (2 * t).tolist() == [2.0, 4.0] and (1 - t).tolist() == [0.0, -1.0]
    assert (t / 2).dtype == gj.float32 and (gj.tensor([1, 2]) / 2).dtype == gj.float64
    assert (t**2).tolist() == [1.0, 4.0] and (2.0**t).tolist() == [2.0, 4.0]
    assert isinstance(gj.exp(t), gj.Tensor)


def test_requires_grad_rules():
    x = gj.tensor([1.0])
    x.requires_grad = True
    y = x * 2
    with pytest.raises(gj.GradientError, match="leaf"):
        y.requires_grad_(False)
    x.requires_grad_(False)
    assert not x.requires_grad
    with pytest.raises(gj.GradientError):
        gj.tensor([1.0]).retain_grad()


def test_copy_and_pickle_make_fresh_leaves():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    for clone in (copy.deepcopy(x), pickle.loads(pickle.dumps(x))):
        assert clone.tolist() == [1.0, 2.0] and clone.requires_grad and clone.is_leaf
        assert not np.shares_memory(clone.numpy(), x.numpy())

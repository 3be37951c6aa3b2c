"""Eager mode's fast paths give what the plain paths give: the branch-free select kernel
(np.where's bits), mean dividing by a count it knows (the graph's count op's bits), and backward handing a VJP's fresh cotangent array to `.grad` instead of
copying it (only where nobody else can see that array)."""

from __future__ import annotations

import weakref

import numpy as np
import pytest

import graphjit as gj
from graphjit.autograd import Function
from graphjit.bench.workloads import mlp
from graphjit.frontend.eager import dispatch, engine
from graphjit.ir.ops import bind

# ---- mean ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32])
@pytest.mark.parametrize(
    "shape, axis", [((256, 1), None), ((3, 5, 7), (0, 2)), ((0, 3), 0), ((2**24 + 3,), None)]
)
def test_eager_mean_gives_the_graphs_bits(dtype, shape, axis):
    """Eagerly the count is known, so mean divides by it as a number: the same bits as the
    graph's sum / count op (float32 rounding of counts above 2**24 included)."""
    x = np.random.default_rng(1).normal(size=shape).astype(dtype)
    g = gj.Graph()
    with g.as_default():
        p = gj.placeholder(dtype, shape)
        out = gj.mean(p, axis=axis)
    want = gj.Session(g, backend="interpreter").run(out, {p: x})
    with np.errstate(invalid="ignore"):
        got = gj.mean(gj.tensor(x), axis=axis)
    np.testing.assert_array_equal(got.numpy(), want)
    assert got.dtype.np == want.dtype
    w = gj.tensor(np.array([1.0, 2.0, 4.0]), requires_grad=True)
    gj.mean(w).backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.full(3, 1 / 3))


# ---- select -------------------------------------------------------------------------------


def _special_values(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=shape).astype(dtype)
    flat = a.reshape(-1)
    flat[:6] = [np.nan, -np.nan, 0.0, -0.0, np.inf, -np.inf]
    return a


def _conditions(shape, seed):
    rng = np.random.default_rng(seed)
    yield rng.random(shape) > 0.5
    # a bool array viewed from bytes other than 0 and 1: np.where reads them as True
    yield rng.integers(0, 4, size=shape).astype(np.uint8).view(np.bool_)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 5), (64, 64), (4, 33, 17)])
@pytest.mark.parametrize("constant", [0.0, -0.0, 1.5, np.nan])
def test_select_kernel_gives_np_where_bits(dtype, shape, constant):
    a = _special_values(dtype, shape, seed=1)
    k = np.array(constant, dtype)
    for c in _conditions(shape, seed=2):
        for args in [(c, a, k), (c, k, a), (c, a, a[::-1].copy())]:
            got, want = dispatch._select(*args), np.where(*args)
            assert got.dtype == want.dtype and got.shape == want.shape
            assert got.tobytes() == want.tobytes()


def test_select_kernel_falls_back_for_layouts_it_does_not_handle():
    a = _special_values(np.float32, (64, 64), seed=3)
    c = np.random.default_rng(4).random((64, 64)) > 0.5
    zero = np.array(0.0, np.float32)
    cases = [
        (c, a.T, zero),  # a transposed operand
        (c.T, a, zero),  # a transposed condition
        (c[:, :1], a, zero),  # a broadcast condition
        (c, a, np.zeros(64, np.float32)),  # a broadcast branch
        (c.astype(np.int8), a, zero),  # not a bool condition
        (c, np.arange(64 * 64, dtype=np.int32).reshape(64, 64), np.array(0, np.int32)),  # ints
    ]
    for args in cases:
        assert dispatch._select(*args).tobytes() == np.where(*args).tobytes()


def test_relu_backward_matches_the_mask_formula():
    x = gj.tensor(_special_values(np.float32, (128, 64), seed=5)[:, ::-1].copy())
    x.requires_grad_()
    g = np.random.default_rng(6).normal(size=(128, 64)).astype(np.float32)
    gj.relu(x).backward(gj.tensor(g))
    want = np.where(x.numpy() > 0, g, np.float32(0))
    assert x.grad.numpy().tobytes() == want.tobytes()


def test_the_eager_select_op_uses_the_fast_kernel_with_the_same_result():
    c = gj.tensor(np.random.default_rng(7).random(5000) > 0.3)
    a = gj.tensor(_special_values(np.float32, (5000,), seed=8))
    got = bind("select", c, a, 0)
    assert got.numpy().tobytes() == np.where(c.numpy(), a.numpy(), np.float32(0)).tobytes()


# ---- gradients handed over without a copy ---------------------------------------------------


class _Identity(Function):
    """backward returns `make(grad)`; `seen` keeps a weak reference to each returned array."""

    make = staticmethod(lambda g: g * 1.0)
    seen: list = []

    @staticmethod
    def forward(ctx, x):
        return x * 1.0

    @classmethod
    def backward(cls, ctx, grad):
        out = cls.make(grad)
        cls.seen.append(weakref.ref(out._data))
        return out


@pytest.fixture
def identity():
    _Identity.seen = []
    yield _Identity
    _Identity.make = staticmethod(lambda g: g * 1.0)


def test_a_fresh_cotangent_becomes_the_leaf_gradient_without_a_copy(identity):
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    identity.apply(x).sum().backward()
    assert identity.seen[0]() is x.grad._data  # handed over, not copied
    assert x.grad.tolist() == [1.0, 1.0]


def test_a_cotangent_somebody_keeps_is_copied(identity):
    kept = []
    identity.make = staticmethod(lambda g: kept.append(g * 1.0) or kept[-1])
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    identity.apply(x).sum().backward()
    assert not np.shares_memory(x.grad.numpy(), kept[0].numpy())
    identity.apply(x).sum().backward()  # accumulates into x.grad in place
    assert x.grad.tolist() == [2.0, 2.0] and kept[0].tolist() == [1.0, 1.0]


def test_a_cotangent_whose_array_is_viewed_elsewhere_is_copied(identity):
    views = []
    identity.make = staticmethod(lambda g: (lambda t: views.append(t.numpy()[:1]) or t)(g * 1.0))
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    identity.apply(x).sum().backward()
    assert not np.shares_memory(x.grad.numpy(), views[0])
    x.grad.numpy()[0] = 5.0
    assert views[0].tolist() == [1.0]


def test_one_cotangent_sent_to_two_leaves_gives_independent_gradients():
    a = gj.tensor([1.0, 2.0], requires_grad=True)
    b = gj.tensor([3.0, 4.0], requires_grad=True)
    (a + b).backward(gj.tensor([1.0, 1.0]))  # add's rule sends the same tensor to both
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())
    (a * 2).sum().backward()
    assert a.grad.tolist() == [3.0, 3.0] and b.grad.tolist() == [1.0, 1.0]


def test_the_gradient_a_leaf_hook_sees_stays_its_own():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_hook(seen.append)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    assert seen[0].tolist() == [3.0, 3.0] and x.grad.tolist() == [6.0, 6.0]


def test_a_held_gradient_is_accumulated_into_in_place():
    w = gj.tensor(np.ones((4, 3), np.float32), requires_grad=True)
    x = gj.tensor(np.arange(8, dtype=np.float32).reshape(2, 4))
    (x @ w).sum().backward()
    grad = w.grad
    first = grad.numpy().copy()
    (x @ w).sum().backward()
    assert w.grad is grad and np.array_equal(grad.numpy(), 2 * first)


def test_a_gradient_of_another_dtype_is_cast_and_kept_once():
    x = gj.tensor([1.0, 2.0], dtype=gj.float64, requires_grad=True)
    y = gj.tensor([1.0, 1.0], dtype=gj.float32)
    y.requires_grad_()
    (x.float() * y).sum().backward()
    assert x.grad.dtype == gj.float64 and x.grad.tolist() == [1.0, 1.0]


def test_any_other_holder_of_a_cotangent_or_its_array_shows_in_the_counts():
    ct = gj.tensor([1.0])  # (held by this one local variable, as in backward)
    assert engine._ref_counts(ct) == engine._UNSHARED_COUNTS
    holders = [ct]
    assert engine._ref_counts(ct) != engine._UNSHARED_COUNTS
    holders.clear()
    array_view = ct.numpy()[:]
    assert engine._ref_counts(ct) != engine._UNSHARED_COUNTS
    del array_view
    alias = ct.detach()  # another tensor over the same array
    assert engine._ref_counts(ct) != engine._UNSHARED_COUNTS
    del alias
    assert engine._ref_counts(ct) == engine._UNSHARED_COUNTS


# ---- the MLP training step ------------------------------------------------------------------


def _train(steps: int) -> list:
    data = mlp.make_data(mlp.SIZES["quick"])
    prepared = mlp.build_eager(data, train=True)
    losses = [prepared.run().numpy().copy() for _ in range(steps)]
    return losses + [p.numpy().copy() for p in prepared.readout(None)]


def test_the_training_step_gives_the_same_bits_as_the_plain_paths(monkeypatch):
    # (products on NumPy in both runs: compiled ones, from a signature's third call, are
    # equal to NumPy's up to rounding only; tests/eager/test_native_products.py)
    monkeypatch.setenv("GRAPHJIT_EAGER_COMPILE", "0")
    fast = _train(steps=3)
    monkeypatch.setattr(dispatch, "EAGER_KERNELS", {})  # np.where for every select
    monkeypatch.setattr(engine, "_UNSHARED_COUNTS", (-1, -1))  # every gradient copied
    plain = _train(steps=3)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(fast, plain, strict=True))

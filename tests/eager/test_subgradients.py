"""Where a function has no derivative, the gradient PyTorch gives (and users rely on): a
norm at zero gives 0, not NaN; max/min with `dim=` send the gradient to the index they
return, not shared among ties. And batch norm refuses a batch with one value per channel,
as PyTorch does, instead of writing NaN into its running variance."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj


def static_grad(fn, x_value, backend):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, x_value.shape)
        (dx,) = gj.gradients(gj.reduce_sum(fn(x)), [x])
    return gj.Session(g, backend=backend).run(dx, {x: x_value})


NORMS = {
    "2": lambda x: gj.norm(x, axis=1),
    "fro": lambda x: gj.norm(x, p="fro", axis=1),
    "3": lambda x: gj.norm(x, p=3, axis=1),
    "1": lambda x: gj.norm(x, p=1, axis=1),
}


@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("mode", ["eager", "interpreter", "llvm"])
def test_the_gradient_of_a_norm_at_zero_is_zero(mode, p):
    x_value = np.array([[0.0, 0.0, 0.0], [3.0, -4.0, 0.0]])
    p_value = {"2": 2, "fro": 2, "3": 3, "1": 1}[p]
    norms = np.sum(np.abs(x_value) ** p_value, axis=1, keepdims=True) ** (1 / p_value)
    want = np.zeros_like(x_value)
    want[1] = np.sign(x_value[1]) * np.abs(x_value[1]) ** (p_value - 1) / norms[1] ** (p_value - 1)
    if mode == "eager":
        x = gj.tensor(x_value, requires_grad=True)
        value = NORMS[p](x)
        gj.sum(value).backward()
        np.testing.assert_allclose(value.numpy(), norms[:, 0], rtol=1e-12)
        got = x.grad.numpy()
    else:
        got = static_grad(NORMS[p], x_value, mode)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_the_gradient_of_a_norm_away_from_zero_matches_finite_differences():
    x = gj.tensor([[3.0, -4.0, 1e-3], [1e-8, 2.0, 0.0]], dtype=gj.float64, requires_grad=True)
    for p in (2, 3, 1.5):
        assert gj.autograd.gradcheck(lambda t, p=p: gj.norm(t, p=p, axis=1), (x,))


@pytest.mark.parametrize("reduce", ["max", "min"])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_and_min_with_dim_send_the_gradient_to_their_index(reduce, keepdim):
    x_value = np.array([[1.0, 3.0, 3.0], [5.0, 2.0, 5.0], [2.0, 2.0, 2.0]])
    weights = gj.tensor(np.array([1.0, 2.0, 3.0]))
    x = gj.tensor(x_value, requires_grad=True)
    values, indices = getattr(x, reduce)(dim=1, keepdim=keepdim)
    flat = values.reshape(-1) if keepdim else values
    gj.sum(flat * weights).backward()
    pick = np.argmax if reduce == "max" else np.argmin
    want_indices = pick(x_value, axis=1)
    want = np.zeros_like(x_value)
    want[np.arange(3), want_indices] = [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(indices.numpy().reshape(-1), want_indices)
    np.testing.assert_array_equal(flat.numpy(), x_value[np.arange(3), want_indices])
    np.testing.assert_array_equal(x.grad.numpy(), want)
    torch = pytest.importorskip("torch")
    t = torch.tensor(x_value, requires_grad=True)
    t_values = getattr(t, reduce)(dim=1, keepdim=keepdim).values
    (t_values.reshape(-1) * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())


def test_the_reduction_without_dim_still_shares_the_gradient_among_ties():
    """gj.max(x, axis=1) (TF1's reduce_max) returns values alone and keeps TF1's rule."""
    x = gj.tensor([[1.0, 3.0, 3.0]], requires_grad=True)
    gj.sum(gj.max(x, axis=1)).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 0.5, 0.5]])


@pytest.mark.parametrize(
    "make, shape", [(gj.nn.BatchNorm1d, (1, 3)), (gj.nn.BatchNorm2d, (1, 3, 1, 1))]
)
def test_batch_norm_refuses_one_value_per_channel_when_training(make, shape):
    bn = make(3)
    with pytest.raises(gj.ShapeError, match="more than 1 value per channel"):
        bn(gj.ones(*shape))
    np.testing.assert_array_equal(bn.running_var.numpy(), np.ones(3))  # untouched
    bn.eval()
    assert bn(gj.ones(*shape)).shape == shape  # inference takes one example
    bn.train()
    assert bn(gj.ones(2, *shape[1:])).shape == (2, *shape[1:])

"""gj.nn modules and losses, gradient clipping, and gj.optim against PyTorch's formulas
written out by hand in NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special

import graphjit as gj


class TwoLayer(gj.nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = gj.nn.Linear(3, 4)
        self.out = gj.nn.Linear(4, 2, bias=False)
        self.scale = gj.nn.Parameter(gj.ones(2))
        self.note = "plain attributes are not parameters"

    def forward(self, x):
        return self.out(self.hidden(x).tanh()) * self.scale


def test_module_registers_parameters_and_submodules():
    model = TwoLayer()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["scale", "hidden.weight", "hidden.bias", "out.weight"]
    assert all(isinstance(p, gj.nn.Parameter) and p.requires_grad for p in model.parameters())
    assert len(list(model.children())) == 2 and model.note.startswith("plain")
    model.train(False)
    assert not model.hidden.training and model.eval() is model
    assert model.train().out.training


def test_module_needs_super_init():
    class Forgetful(gj.nn.Module):
        def __init__(self):
            self.w = gj.nn.Parameter(gj.ones(1))

    with pytest.raises(gj.GraphjitError, match="super"):
        Forgetful()


def test_zero_grad_and_call():
    model = TwoLayer()
    model(gj.randn(5, 3)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_linear_shapes_initialisation_and_forward():
    gj.manual_seed(0)
    layer = gj.nn.Linear(16, 5)
    assert layer.weight.shape == (5, 16) and layer.bias.shape == (5,)
    bound = 1 / np.sqrt(16)
    assert np.abs(layer.weight.numpy()).max() <= bound and np.abs(layer.bias.numpy()).max() <= bound
    assert np.abs(layer.weight.numpy()).max() > 0.8 * bound  # uniform over the whole range
    x = gj.randn(3, 16)
    expected = x.numpy() @ layer.weight.numpy().T + layer.bias.numpy()
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5)
    assert repr(layer) == "Linear(in_features=16, out_features=5, bias=True)"


def test_sequential_and_activations():
    model = gj.nn.Sequential(gj.nn.Linear(2, 3), gj.nn.ReLU(), gj.nn.Tanh(), gj.nn.Sigmoid())
    assert len(model) == 4 and isinstance(model[0], gj.nn.Linear)
    x = gj.randn(4, 2)
    h = np.maximum(x.numpy() @ model[0].weight.numpy().T + model[0].bias.numpy(), 0)
    np.testing.assert_allclose(model(x).numpy(), scipy.special.expit(np.tanh(h)), rtol=1e-6)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]


def test_mse_loss_value_and_gradient():
    pred = gj.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    target = gj.tensor([[0.0, 2.0], [5.0, 4.0]])
    loss = gj.nn.MSELoss()(pred, target)
    assert loss.item() == pytest.approx((1 + 4) / 4)
    loss.backward()
    np.testing.assert_allclose(pred.grad.numpy(), 2 * (pred.numpy() - target.numpy()) / 4)
    assert gj.nn.MSELoss(reduction="sum")(pred, target).item() == pytest.approx(5.0)


def test_cross_entropy_loss_value_and_gradient():
    logits = gj.randn(5, 4, dtype="float64", requires_grad=True)
    labels = gj.tensor([0, 3, 1, 1, 2])
    loss = gj.nn.CrossEntropyLoss()(logits, labels)
    log_p = scipy.special.log_softmax(logits.numpy(), axis=1)
    assert loss.item() == pytest.approx(-log_p[np.arange(5), labels.numpy()].mean())
    loss.backward()
    expected = (np.exp(log_p) - np.eye(4)[labels.numpy()]) / 5
    np.testing.assert_allclose(logits.grad.numpy(), expected, rtol=1e-10)
    assert gj.nn.softmax_cross_entropy(logits, labels).item() == pytest.approx(loss.item())


def test_functional_softmax_cross_entropy_still_builds_graphs():
    g = gj.Graph()
    with g.as_default():
        logits = gj.placeholder(gj.float32, [2, 3], name="logits")
        loss = gj.nn.softmax_cross_entropy(logits, gj.constant(np.array([0, 2])))
    z = np.array([[1.0, 2.0, 3.0], [1.0, 0.0, -1.0]], np.float32)
    with gj.Session(g, backend="interpreter") as sess:
        value = sess.run(loss, {logits: z})
    log_p = scipy.special.log_softmax(z, axis=1)
    assert value == pytest.approx(-(log_p[0, 0] + log_p[1, 2]) / 2, rel=1e-5)


def _params_with_grads(grads):
    params = []
    for g in grads:
        p = gj.nn.Parameter(gj.zeros(len(g)))
        p.grad = gj.tensor(g)
        params.append(p)
    return params


def test_clip_grad_norm_scales_all_gradients_together():
    params = _params_with_grads([[3.0, 0.0], [0.0, 4.0]])
    norm = gj.nn.utils.clip_grad_norm_(params, max_norm=1.0)
    assert norm.item() == pytest.approx(5.0)
    scale = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(params[0].grad.numpy(), [3 * scale, 0.0], rtol=1e-6)
    small = _params_with_grads([[0.1, 0.2]])
    gj.nn.utils.clip_grad_norm_(small, max_norm=1.0)
    np.testing.assert_allclose(small[0].grad.numpy(), [0.1, 0.2], rtol=1e-6)
    assert gj.nn.utils.clip_grad_norm_(small, 1.0, norm_type=float("inf")).item() == pytest.approx(
        0.2
    )


def test_clip_grad_value_clamps_elements():
    params = _params_with_grads([[3.0, -0.2, -7.0]])
    gj.nn.utils.clip_grad_value_(params, 1.0)
    assert params[0].grad.tolist() == pytest.approx([1.0, -0.2, -1.0])


def _quadratic_steps(optimizer_factory, steps=3):
    """Minimise sum(c * p**2) from p0, returning the parameter after each step."""
    p = gj.nn.Parameter(gj.tensor([1.0, -2.0], dtype="float64"))
    c = gj.tensor([0.5, 3.0], dtype="float64")
    optimizer = optimizer_factory([p])
    history = []
    for _ in range(steps):
        optimizer.zero_grad()
        (c * p * p).sum().backward()
        optimizer.step()
        history.append(p.numpy().copy())
    return history


def _reference_steps(update, steps=3):
    p, c, state, history = np.array([1.0, -2.0]), np.array([0.5, 3.0]), {}, []
    for t in range(1, steps + 1):
        p = update(p, 2 * c * p, state, t)
        history.append(p.copy())
    return history


def test_sgd_with_momentum_matches_pytorch_formula():
    lr, momentum = 0.1, 0.9

    def update(p, g, state, t):
        state["b"] = g if t == 1 else momentum * state["b"] + g
        return p - lr * state["b"]

    got = _quadratic_steps(lambda ps: gj.optim.SGD(ps, lr=lr, momentum=momentum))
    np.testing.assert_allclose(got, _reference_steps(update), rtol=1e-12)
    plain = _quadratic_steps(lambda ps: gj.optim.SGD(ps, lr=lr))
    np.testing.assert_allclose(plain, _reference_steps(lambda p, g, s, t: p - lr * g), rtol=1e-12)


def test_adam_matches_pytorch_formula():
    lr, (b1, b2), eps = 0.05, (0.9, 0.999), 1e-8

    def update(p, g, state, t):
        state["m"] = b1 * state.get("m", 0) + (1 - b1) * g
        state["v"] = b2 * state.get("v", 0) + (1 - b2) * g * g
        denominator = np.sqrt(state["v"]) / np.sqrt(1 - b2**t) + eps
        return p - lr / (1 - b1**t) * state["m"] / denominator

    got = _quadratic_steps(lambda ps: gj.optim.Adam(ps, lr=lr), steps=5)
    np.testing.assert_allclose(got, _reference_steps(update, steps=5), rtol=1e-12)


def test_optimizer_step_bumps_versions_and_skips_parameters_without_grad():
    a, b = gj.nn.Parameter(gj.ones(2)), gj.nn.Parameter(gj.ones(2))
    optimizer = gj.optim.SGD([a, b], lr=0.5)
    loss = (a * a).sum()
    loss.backward(retain_graph=True)
    optimizer.step()
    assert a.tolist() == [0.0, 0.0] and b.tolist() == [1.0, 1.0]
    with pytest.raises(gj.GradientError, match="in-place"):
        loss.backward()  # the graph saw a before the step
    with pytest.raises(gj.GraphjitError, match="leaf"):
        gj.optim.SGD([a * 2], lr=0.1)

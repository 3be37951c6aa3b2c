"""Gradients and gj.function, both ways: gj.gradients inside a traced function, and eager
`.backward()` through a compiled call (one CompiledFunctionBackward node whose backward is
the compiled VJP), to higher order and through data-dependent loops."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj


def traced(fn):
    return gj.function(fn, backend="interpreter")


def loss_fn(x, w):
    return gj.sum(gj.tanh(x @ w) ** 2)


X = np.random.default_rng(0).normal(size=(4, 3))
W = np.random.default_rng(1).normal(size=(3, 2))


def eager_grads(fn, *arrays):
    tensors = [gj.tensor(a, requires_grad=True) for a in arrays]
    fn(*tensors).backward()
    return [t.grad.numpy() for t in tensors]


def test_gj_gradients_inside_a_traced_function():
    @gj.function  # the default (LLVM) backend
    def value_and_grads(x, w):
        loss = loss_fn(x, w)
        return loss, gj.gradients(loss, [x, w])

    loss, (dx, dw) = value_and_grads(X, W)
    want_dx, want_dw = eager_grads(loss_fn, X, W)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-10)
    np.testing.assert_allclose(dw, want_dw, rtol=1e-10)


def test_backward_through_a_compiled_call_equals_eager():
    compiled = gj.function(loss_fn)  # the default (LLVM) backend
    x, w = gj.tensor(X, requires_grad=True), gj.tensor(W, requires_grad=True)
    out = compiled(x, w)
    assert type(out.grad_fn).__name__ == "CompiledFunctionBackward"
    out.backward()
    for got, want in zip([x.grad, w.grad], eager_grads(loss_fn, X, W)):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)


def test_only_inputs_that_require_grad_get_one_and_numpy_inputs_are_constants():
    compiled = traced(loss_fn)
    w = gj.tensor(W, requires_grad=True)
    compiled(X, w).backward()  # X a NumPy array: a constant for autograd
    np.testing.assert_allclose(w.grad.numpy(), eager_grads(loss_fn, X, W)[1], rtol=1e-10)
    x = gj.tensor(X)
    compiled(x, w)
    assert x.grad is None


def test_several_outputs_an_integer_output_and_an_unused_input():
    @traced
    def f(x, unused):
        return x * 3, gj.argmax(x), gj.sum(x**2)

    x, unused = (
        gj.tensor([1.0, -2.0], dtype="float64", requires_grad=True),
        gj.tensor([5.0], dtype="float64", requires_grad=True),
    )
    tripled, index, total = f(x, unused)
    assert index.grad_fn is None and index.item() == 0
    (gj.sum(tripled) + total).backward()
    assert x.grad.tolist() == [3.0 + 2.0, 3.0 - 4.0]
    assert unused.grad is None


def test_higher_order_through_compiled_calls():
    cube = traced(lambda x: gj.sum(x**3))
    x = gj.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    (g,) = gj.autograd.grad(cube(x), [x], create_graph=True)
    (h,) = gj.autograd.grad(gj.sum(g), [x], create_graph=True)
    (t,) = gj.autograd.grad(gj.sum(h), [x])
    assert g.tolist() == [3.0, 12.0] and h.tolist() == [6.0, 12.0] and t.tolist() == [6.0, 6.0]


def sqrt_newton(a):
    """sqrt(a) by Newton's method until converged: a loop with a data-dependent trip count."""
    _, root = gj.while_loop(
        lambda i, r: gj.logical_and(gj.max(gj.abs(r * r - a)) > 1e-12, i < 100),
        lambda i, r: (i + 1, 0.5 * (r + a / r)),
        [gj.constant(0), a * 0 + 1],
    )
    return root


def test_backward_through_a_compiled_data_dependent_loop():
    a = gj.tensor([2.0, 9.0], dtype="float64", requires_grad=True)
    root = traced(sqrt_newton)(a)
    gj.sum(root).backward()
    np.testing.assert_allclose(root.numpy(), np.sqrt([2.0, 9.0]), rtol=1e-12)
    np.testing.assert_allclose(a.grad.numpy(), 0.5 / np.sqrt([2.0, 9.0]), rtol=1e-9)


def test_gradcheck_through_a_compiled_call():
    compiled = traced(lambda x, w: gj.sum(gj.sigmoid(x @ w)))
    inputs = (gj.tensor(X, requires_grad=True), gj.tensor(W, requires_grad=True))
    assert gj.autograd.gradcheck(compiled, inputs)
    assert compiled.trace_count == 1 and compiled.vjp.trace_count == 1


def test_no_node_under_no_grad_and_in_place_changes_are_caught():
    compiled = traced(lambda x: gj.sum(gj.exp(x)))
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    with gj.no_grad():
        assert compiled(x).grad_fn is None
    out = compiled(x)
    with gj.no_grad():
        x.add_(1.0)
    with pytest.raises(gj.GraphjitError, match="modified by an in-place operation"):
        out.backward()


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_no_grad_inside_a_compiled_function_stops_gradients_as_in_eager(backend):
    """Ops the function runs under its own gj.no_grad() are constants to gradients (the
    compiled call's VJP and gj.gradients inside it); a value passed through no_grad
    unchanged is still the input, and a trace made under the caller's no_grad is the
    same trace (the caller's mode decides only whether the call is taped)."""

    def f(x, w):
        with gj.no_grad():
            scale = gj.sum(x @ w)  # a constant to gradients
            same = x  # no op: the input itself, as in PyTorch
            picked = gj.cond(gj.sum(x) > 0, lambda: w, lambda: w * 2)
        return gj.sum(gj.tanh(x @ w) * scale) + gj.sum(same * x) + gj.sum(picked * w)

    compiled = gj.function(f, backend=backend)
    with gj.no_grad():  # the first call, and so the trace, under the caller's no_grad
        value = compiled(gj.tensor(X, requires_grad=True), gj.tensor(W))
        assert value.grad_fn is None
        np.testing.assert_allclose(value.numpy(), f(gj.tensor(X), gj.tensor(W)).numpy())
    for got, want in zip(_grads_of(compiled, X, W), eager_grads(f, X, W)):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    assert compiled.trace_count == 1

    @gj.function(backend=backend)
    def inner_gradients(x, w):
        loss = f(x, w)
        return gj.gradients(loss, [x, w])

    for got, want in zip(inner_gradients(X, W), eager_grads(f, X, W)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def _grads_of(fn, *arrays):
    tensors = [gj.tensor(a, requires_grad=True) for a in arrays]
    fn(*tensors).backward()
    return [t.grad for t in tensors]


def test_module_parameters_get_gradients_through_a_compiled_forward():
    gj.manual_seed(0)
    model = gj.nn.Sequential(gj.nn.Linear(3, 5), gj.nn.ReLU(), gj.nn.Linear(5, 1))
    compiled = gj.function(model, backend="interpreter")
    x = gj.tensor(X.astype(np.float32))
    gj.sum(compiled(x) ** 2).backward()
    got = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    gj.sum(model(x) ** 2).backward()
    for g, p in zip(got, model.parameters()):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-5, atol=1e-6)

"""Gradients and gj.function, both ways: gj.gradients inside a traced function, and eager
`.backward()` through a compiled call (one CompiledFunctionBackward node whose backward is
a program split from the trace, reading what the forward kept; or, for a trace with control
flow or assigns and with create_graph, the compiled VJP), to higher order and through
data-dependent loops."""

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
    # (its backward is a program split from the trace: no VJP traced)
    assert compiled.trace_count == 1 and compiled.vjp.trace_count == 0


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


def _small_model():
    gj.manual_seed(0)
    return gj.nn.Sequential(gj.nn.Linear(3, 8), gj.nn.Tanh(), gj.nn.Linear(8, 2))


def _same_parameter_grads(model, compiled, x) -> None:
    """The parameters' gradients of sum(compiled(x)**2) are those of the eager model."""
    model.zero_grad()
    gj.sum(compiled(x) ** 2).backward()
    got = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    gj.sum(model(x) ** 2).backward()
    for g, p in zip(got, model.parameters(), strict=True):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-5, atol=1e-6)


def _backward_matmuls(compiled, *args) -> int:
    (split,) = [s for s in compiled.concrete(*args)._splits.values() if s]
    session = split.programs[0][0]
    return [op.name for op in session.graph.block.ops].count("matmul")


def test_a_compiled_models_backward_reads_what_its_forward_kept():
    """The backward of a compiled call is a program of its own, fed what the forward kept
    (frontend/partition.py): no VJP is traced and no product of the forward is computed
    again; the gradients are eager's."""
    model = _small_model()
    compiled = gj.function(model)
    x = gj.tensor(X.astype(np.float32))
    for _ in range(2):
        _same_parameter_grads(model, compiled, x)
    assert compiled.trace_count == 1 and compiled.vjp.trace_count == 0
    # (the two weights' cotangents and the hidden layer's: not the forward's two products)
    assert _backward_matmuls(compiled, x) == 3


def test_an_output_may_change_in_place_before_the_split_backward():
    """What the backward reads is the forward's own copy: tanh(x @ w), kept (made from a
    product) and also handed out, then changed in place, does not change the gradient."""

    def f(x, w):
        t = gj.tanh(x @ w)
        return t, gj.sum(t * 3.0)

    compiled = traced(f)
    x, w = gj.tensor(X, requires_grad=True), gj.tensor(W, requires_grad=True)
    t, total = compiled(x, w)
    t.mul_(0.0)
    total.backward()
    assert compiled.vjp.trace_count == 0
    d_pre = 3.0 * (1 - np.tanh(X @ W) ** 2)
    np.testing.assert_allclose(x.grad.numpy(), d_pre @ W.T, rtol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), X.T @ d_pre, rtol=1e-12)


def test_random_masks_are_kept_for_the_backward():
    """Dropout's mask is drawn once, by the forward, and the backward reads it."""
    compiled = gj.function(lambda x: gj.nn.functional.dropout(x, 0.5, training=True) * 2.0)
    x = gj.tensor(np.ones((64, 64)), requires_grad=True)
    out = compiled(x)
    gj.sum(out).backward()
    assert compiled.vjp.trace_count == 0
    np.testing.assert_array_equal(x.grad.numpy(), 2.0 * out.numpy() / 2.0)
    assert 0 < (out.numpy() == 0).mean() < 1


def test_a_trace_that_assigns_is_differentiated_by_its_vjp():
    """Batch norm in training updates its running statistics: the forward must run its
    assigns once, so the backward is the VJP (which does not assign), as before."""
    gj.manual_seed(0)
    model = gj.nn.Sequential(gj.nn.Linear(3, 4), gj.nn.BatchNorm1d(4))
    compiled = gj.function(model, backend="interpreter")
    x = gj.tensor(X.astype(np.float32))
    gj.sum(compiled(x) ** 3).backward()
    got = [p.grad.numpy().copy() for p in model.parameters()]
    assert compiled.vjp.trace_count == 1
    running = model[1].running_mean.numpy().copy()
    model.zero_grad()
    gj.sum(model(x) ** 3).backward()
    for g, p in zip(got, model.parameters(), strict=True):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-4, atol=1e-5)
    assert not np.allclose(model[1].running_mean.numpy(), running)  # (one update each)


def test_the_split_backward_of_a_trace_for_any_batch_size():
    """reduce_retracing: one trace with the batch unknown; its backward program, fed what
    the forward kept at each batch size, gives eager's gradients at each."""
    model = _small_model()
    compiled = gj.function(model, reduce_retracing=True)
    for batch in (4, 7, 5):
        x = gj.tensor(np.random.default_rng(batch).normal(size=(batch, 3)).astype(np.float32))
        _same_parameter_grads(model, compiled, x)
    assert compiled.trace_count == 2 and compiled.vjp.trace_count == 0


def test_a_trace_that_cannot_be_split_is_differentiated_by_its_vjp(monkeypatch):
    """The split is made when the call is taped: where making it fails (an op with no
    gradient rule), the forward still runs and the backward is the VJP, which reports such
    an op where it is reached, as before."""
    from graphjit.errors import GradientError
    from graphjit.frontend import partition

    def no_split(*args, **kwargs):
        raise GradientError("op 'all_reduce' has no gradient")

    monkeypatch.setattr(partition, "split", no_split)
    compiled = traced(loss_fn)
    x, w = gj.tensor(X, requires_grad=True), gj.tensor(W, requires_grad=True)
    compiled(x, w).backward()
    assert compiled.vjp.trace_count == 1
    for got, want in zip([x.grad, w.grad], eager_grads(loss_fn, X, W), strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)

"""The tape: backward, accumulation, retain_graph, retain_grad, grad(), create_graph, grad
mode, detach, version counters, and errors that name the op and the user's line."""

from __future__ import annotations

import gc
import threading
import weakref

import numpy as np
import pytest

import graphjit as gj
from graphjit.ir.ops import OpDef, bind, register
from graphjit.ir.ops.elementwise import elementwise_rule
from graphjit.ir.registry import _REGISTRY


def test_tutorial_example():
    x = gj.tensor([2.0], requires_grad=True)
    y = x**2
    z = y * 3
    z.backward()
    assert repr(x.grad) == "tensor([12.])"
    assert isinstance(x.grad, gj.Tensor)
    assert type(z.grad_fn).__name__ == "MulBackward"
    assert type(y.grad_fn).__name__ == "PowBackward"
    assert x.grad_fn is None and x.is_leaf and not z.is_leaf


def test_grad_fn_of_a_composition_is_its_last_primitive():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    assert x.mean().grad_fn.name == "ReduceMeanBackward"  # (one op: PyTorch's MeanBackward0)
    assert x.mean().grad_fn.next_functions[0][0] is x  # (the leaf itself: no sum between)
    assert x.sum().grad_fn.name == "ReduceSumBackward"
    assert (x + 1).grad_fn.name == "AddBackward"
    assert x.relu().grad_fn.name == "MaximumBackward"


def test_gradients_accumulate_until_zeroed():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    for _ in range(3):
        (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * 2 * np.array([1.0, 2.0]))
    x.grad.zero_()
    (x * 5).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 5.0])


def test_grads_of_two_leaves_are_independent_tensors():
    a, b = gj.tensor([1.0], requires_grad=True), gj.tensor([2.0], requires_grad=True)
    (a + b).sum().backward()
    (a + b).sum().backward()
    assert a.grad is not b.grad
    assert a.grad.item() == 2.0 and b.grad.item() == 2.0


def test_second_backward_needs_retain_graph():
    x = gj.tensor([3.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(gj.GradientError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = gj.tensor([3.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(3.0) * 4.0, rtol=1e-6)


def test_non_leaf_grad_is_kept_only_when_retained():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    z = x * 3
    y.retain_grad()
    (y * z).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), z.numpy())
    assert z.grad is None and y.retains_grad and not z.retains_grad


def test_non_scalar_backward_needs_a_gradient():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    y = x * x
    with pytest.raises(gj.GradientError, match="gradient="):
        y.backward()
    y.backward(gj.tensor([1.0, 10.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 40.0])


def test_backward_of_a_tensor_without_history_is_an_error():
    with pytest.raises(gj.GradientError, match="does not require grad"):
        gj.tensor([1.0]).sum().backward()


def test_backward_on_a_leaf_sets_its_grad():
    x = gj.tensor(2.0, requires_grad=True)
    x.backward()
    assert x.grad.item() == 1.0


def test_autograd_backward_with_several_roots():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    gj.autograd.backward([x * 2, x * x], [gj.ones(2), gj.tensor([1.0, 1.0])])
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 6.0])


def test_grad_returns_without_touching_dot_grad():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    w = gj.tensor([3.0, 4.0], requires_grad=True)
    (gx,) = gj.autograd.grad((x * w).sum(), [x])
    np.testing.assert_allclose(gx.numpy(), [3.0, 4.0])
    assert x.grad is None and w.grad is None


def test_grad_with_respect_to_an_intermediate_tensor():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    (gh,) = gj.autograd.grad((h * h).sum(), [h])
    np.testing.assert_allclose(gh.numpy(), 2 * h.numpy())


def test_grad_unused_inputs():
    x = gj.tensor([1.0], requires_grad=True)
    unused = gj.tensor([1.0], requires_grad=True)
    with pytest.raises(gj.GradientError, match="allow_unused=True"):
        gj.autograd.grad((x * 2).sum(), [x, unused])
    gx, gu = gj.autograd.grad((x * 2).sum(), [x, unused], allow_unused=True)
    assert gx.item() == 2.0 and gu is None


def test_grad_inputs_must_require_grad():
    x = gj.tensor([1.0], requires_grad=True)
    with pytest.raises(gj.GradientError, match="require"):
        gj.autograd.grad((x * 2).sum(), [gj.tensor([1.0])])


def test_create_graph_gives_higher_derivatives():
    x = gj.tensor(1.5, dtype="float64", requires_grad=True)
    (d1,) = gj.autograd.grad(x**4, [x], create_graph=True)
    (d2,) = gj.autograd.grad(d1, [x], create_graph=True)
    (d3,) = gj.autograd.grad(d2, [x])
    assert d1.grad_fn is not None
    np.testing.assert_allclose(
        [d1.item(), d2.item(), d3.item()], [4 * 1.5**3, 12 * 1.5**2, 24 * 1.5]
    )


def test_backward_with_create_graph_leaves_a_differentiable_grad():
    x = gj.tensor(2.0, dtype="float64", requires_grad=True)
    (x**3).backward(create_graph=True)
    assert x.grad.requires_grad and x.grad.item() == 12.0
    (g2,) = gj.autograd.grad(x.grad, [x])
    assert g2.item() == 12.0


def test_no_grad_context_and_decorator_and_enable_grad():
    x = gj.tensor([1.0], requires_grad=True)
    with gj.no_grad():
        y = x * 2
        with gj.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.grad_fn is None and z.requires_grad

    @gj.no_grad()
    def double(t):
        return t * 2

    assert not double(x).requires_grad
    assert (x * 2).requires_grad  # the mode is restored after the decorated call


def test_grad_mode_is_per_thread():
    x = gj.tensor([1.0], requires_grad=True)
    seen = {}

    def worker():
        seen["requires_grad"] = (x * 2).requires_grad

    with gj.no_grad():
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    assert seen["requires_grad"]


def test_detach_shares_data_but_not_history():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None
    assert np.shares_memory(d.numpy(), y.numpy())


def test_integer_tensors_never_get_cotangents():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    k = gj.tensor([3, 4])
    (x * k).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])
    assert k.grad is None
    with pytest.raises(gj.GradientError, match="floating-point"):
        k.requires_grad_()


def test_nondifferentiable_ops_pass_no_gradient():
    x = gj.tensor([-2.0, 3.0], requires_grad=True)
    s = x.sign()
    assert not s.requires_grad
    (s * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [-1.0, 1.0])


@pytest.fixture
def op_without_vjp():
    opdef = register(OpDef("test_eager_no_vjp", elementwise_rule(), np.copy, None))
    yield opdef
    del _REGISTRY[opdef.name]


def test_an_op_without_vjp_rule_raises_naming_it(op_without_vjp):
    x = gj.tensor([1.0], requires_grad=True)
    y = bind("test_eager_no_vjp", x)
    assert y.grad_fn.name == "TestEagerNoVjpBackward"
    with pytest.raises(gj.GradientError, match="test_eager_no_vjp"):
        (y * 2).sum().backward()


def test_in_place_change_of_a_saved_tensor_is_caught_at_backward():
    w = gj.tensor([1.0, 2.0], requires_grad=True)
    x = gj.tensor([3.0, 4.0])
    loss = (w * x).sum()
    x.mul_(2)  # mul saved x for w's gradient
    with pytest.raises(gj.GradientError, match="in-place") as caught:
        loss.backward()
    assert "test_autograd.py" in str(caught.value)  # names the backward() line


def test_in_place_change_through_a_detached_alias_is_caught():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()  # exp's gradient reads its output
    y.detach().zero_()
    with pytest.raises(gj.GradientError, match="in-place"):
        y.sum().backward()


def test_in_place_on_a_non_leaf_is_recorded():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.add_(1)
    y.mul_(3)
    assert y.grad_fn.name == "MulBackward" and y._version[0] == 2
    y.sum().backward()
    np.testing.assert_allclose(y.numpy(), [9.0, 15.0])
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])


def test_in_place_on_an_output_whose_rule_reads_it_is_caught():
    # As in PyTorch: exp's gradient reads its output, which mul_ overwrote.
    x = gj.tensor([0.5, 1.0], dtype="float64", requires_grad=True)
    y = x.exp()
    y.mul_(2)
    with pytest.raises(gj.GradientError, match="modified by an inplace operation"):
        y.sum().backward()


def test_in_place_on_a_leaf_that_requires_grad():
    w = gj.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(gj.GradientError, match="no_grad"):
        w -= 1
    with gj.no_grad():
        w -= 1
        w += gj.tensor([0.5, 0.5])
    np.testing.assert_allclose(w.numpy(), [0.5, 1.5])
    assert w.is_leaf and w.requires_grad


def test_a_constant_leaf_changed_by_a_tracked_value_joins_the_tape():
    w = gj.tensor([2.0], requires_grad=True)
    acc = gj.zeros(1)
    acc.add_(w * 3)
    assert not acc.is_leaf
    acc.sum().backward()
    assert w.grad.item() == 3.0


def test_kernel_errors_name_the_op_and_the_users_line():
    with pytest.raises(gj.ShapeError) as caught:
        gj.tensor([1.0, 2.0]) + gj.tensor([1.0, 2.0, 3.0])
    message = str(caught.value)
    assert "add" in message and "test_autograd.py" in message


def test_mixing_eager_and_graph_tensors_is_a_clear_error():
    with gj.Graph().as_default():
        p = gj.placeholder(gj.float32, [2], name="p")
        with pytest.raises(gj.GraphjitError, match="mixes eager and graph tensors"):
            gj.tensor([1.0, 2.0]) * p


def test_the_hot_path_does_no_stack_inspection(monkeypatch):
    def forbidden():
        raise AssertionError("stack inspected on the hot path")

    for module in ("dispatch", "node", "engine", "anomaly", "custom_function"):
        monkeypatch.setattr(
            f"graphjit.frontend.eager.{module}.user_location", forbidden, raising=False
        )
    monkeypatch.setattr("graphjit.ir.core.user_location", forbidden)
    x = gj.ones(10, requires_grad=True)
    r = x
    for _ in range(50):
        r = r * 0.999 + 1.0
    (r.exp().mean() + gj.sum(r)).backward()
    assert x.grad is not None


def test_detect_anomaly_names_the_forward_line_and_catches_nan_gradients():
    x = gj.tensor([0.0, 1.0], requires_grad=True)
    with gj.autograd.detect_anomaly():
        assert gj.autograd.is_anomaly_enabled()
        y = x.sqrt()  # d/dx sqrt(x) at 0 is inf; times the 0 cotangent below, nan
        line = y.grad_fn.location.line
        with pytest.raises(gj.GradientError, match="SqrtBackward returned nan") as caught:
            with np.errstate(all="ignore"):
                (y * 0).sum().backward()
    assert not gj.autograd.is_anomaly_enabled()
    assert f"test_autograd.py:{line}" in str(caught.value)


def test_graph_functions_run_eagerly_on_tensors():
    x = gj.tensor([1.0, -2.0], requires_grad=True)
    y = gj.cond(gj.sum(x) < 0, lambda: gj.relu(x) * 2, lambda: x)
    _, acc = gj.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a * 2), [0, y])
    acc.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [16.0, 0.0])


def test_the_tape_is_freed_by_reference_counting():
    """No reference cycles: a graph goes away with its last tensor, without the collector."""
    x = gj.ones(3, requires_grad=True)
    gc.disable()
    try:
        y = (x * 2).exp().sum()
        node = weakref.ref(y.grad_fn)
        del y
        assert node() is None
        y = (x * 2).exp().sum()
        node = weakref.ref(y.grad_fn)
        y.backward()
        del y
        assert node() is None
    finally:
        gc.enable()

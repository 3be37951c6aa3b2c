"""Custom autograd Functions and gradcheck."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj
from graphjit.autograd import Function, gradcheck


class Cube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * 3 * x**2


class WrongCube(Cube):
    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * 3 * x


class ScaleAndShift(Function):
    """Two tensor inputs, a Python number, and two outputs."""

    @staticmethod
    def forward(ctx, x, shift, scale):
        ctx.scale = scale
        ctx.seen_needs = ctx.needs_input_grad
        return x * scale, x + shift

    @staticmethod
    def backward(ctx, grad_scaled, grad_shifted):
        return grad_scaled * ctx.scale + grad_shifted, grad_shifted.sum(), None


def test_function_apply_records_a_named_node():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    y = Cube.apply(x)
    assert y.grad_fn.name == "CubeBackward" and y.tolist() == [1.0, 8.0]
    y.sum().backward()
    assert x.grad.tolist() == [3.0, 12.0]


def test_function_with_several_inputs_and_outputs():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    shift = gj.tensor(0.5, requires_grad=True)
    scaled, shifted = ScaleAndShift.apply(x, shift, 3.0)
    (scaled.sum() + shifted.sum() * 2).backward()
    assert x.grad.tolist() == [5.0, 5.0] and shift.grad.item() == 4.0
    assert scaled.grad_fn is shifted.grad_fn


def test_outputs_without_cotangent_get_zeros_and_needs_input_grad():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    node_inputs = (x, gj.tensor(0.0), 2.0)
    scaled, _ = ScaleAndShift.apply(*node_inputs)
    scaled.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]
    assert scaled.grad_fn.ctx.seen_needs == (True, False, False)


def test_function_saved_tensors_are_freed_and_checked():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    y = Cube.apply(x).sum()
    y.backward()
    with pytest.raises(gj.GradientError, match="retain_graph"):
        y.backward()
    h = x * 1
    z = Cube.apply(h).sum()
    with gj.no_grad():
        h.add_(1)
    with pytest.raises(gj.GradientError, match="in-place"):
        z.backward()


def test_function_returning_its_input_does_not_rewrite_the_inputs_history():
    class Identity(Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 2

    x = gj.tensor([1.0], requires_grad=True)
    y = Identity.apply(x)
    assert x.is_leaf and y is not x
    y.sum().backward()
    assert x.grad.tolist() == [2.0]


def test_wrong_number_or_shape_of_gradients_is_reported():
    class TooMany(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, g):
            return g, g

    class BadShape(TooMany):
        @staticmethod
        def backward(ctx, g):
            return g.sum()

    x = gj.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(gj.GradientError, match="TooManyBackward returned 2"):
        TooMany.apply(x).sum().backward()
    with pytest.raises(gj.GradientError, match="shape"):
        BadShape.apply(x).sum().backward()


def test_function_backward_can_be_differentiated_with_create_graph():
    x = gj.tensor(2.0, dtype="float64", requires_grad=True)
    (g,) = gj.autograd.grad(Cube.apply(x), [x], create_graph=True)
    (h,) = gj.autograd.grad(g, [x])
    assert g.item() == 12.0 and h.item() == 12.0


def test_no_node_under_no_grad():
    x = gj.tensor([1.0], requires_grad=True)
    with gj.no_grad():
        y = Cube.apply(x)
    assert y.grad_fn is None and not y.requires_grad


def test_gradcheck_passes_for_correct_gradients():
    gj.manual_seed(0)
    x = gj.randn(4, requires_grad=True)
    w = gj.randn(4, 3, requires_grad=True)
    assert gradcheck(Cube.apply, (x,))
    assert gradcheck(lambda a, b: (a @ b).tanh().softmax(dim=0), (x, w))
    assert gradcheck(
        lambda a, s: ScaleAndShift.apply(a, s, 2.0), (x, gj.tensor(1.0, requires_grad=True))
    )


def test_gradcheck_catches_a_wrong_backward_and_names_the_worst_element():
    x = gj.tensor([0.5, 1.0, 3.0], dtype="float64", requires_grad=True)
    assert gradcheck(WrongCube.apply, (x,), raise_exception=False) is False
    with pytest.raises(gj.GradientError) as caught:
        gradcheck(WrongCube.apply, (x,))
    message = str(caught.value)
    # 3x vs 3x^2: the largest error is at x = 3 (analytical 9, numerical 27)
    assert "element (2,)" in message and "analytical 9," in message and "numerical 27" in message


def test_gradcheck_works_in_float64_for_float32_inputs():
    x = gj.tensor([0.3, 0.7], requires_grad=True)
    assert gradcheck(lambda t: (t * t).exp(), (x,), eps=1e-6, atol=1e-5)
    with pytest.raises(gj.GradientError, match="no input requires grad"):
        gradcheck(Cube.apply, (gj.tensor([1.0]),))
    np.testing.assert_array_equal(x.numpy(), np.array([0.3, 0.7], np.float32))

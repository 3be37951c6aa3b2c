"""Custom autograd Functions (forward and backward written by hand), checked against finite
differences with gradcheck. Run: python examples/eager_custom_functions.py"""

import graphjit as gj

Function, gradcheck = gj.autograd.Function, gj.autograd.gradcheck


class MyReLU(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * (x > 0).float()


class MySigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        y = 1 / (1 + (-x).exp())
        ctx.save_for_backward(y)  # the output is all the derivative needs
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return grad_output * y * (1 - y)


class Cubic(Function):
    """a * x**3 with a constant (non-tensor) coefficient a: its gradient slot is None."""

    @staticmethod
    def forward(ctx, x, a):
        ctx.save_for_backward(x)
        ctx.a = a
        return a * x**3

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * 3 * ctx.a * x**2, None


class WrongCubic(Cubic):
    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * 2 * ctx.a * x**2, None  # 2 instead of 3: a bug


gj.manual_seed(0)
x = gj.randn(5, dtype="float64", requires_grad=True)
print("MyReLU gradcheck:", gradcheck(MyReLU.apply, (x,)))
print("MySigmoid gradcheck:", gradcheck(MySigmoid.apply, (x,)))
print("Cubic gradcheck:", gradcheck(lambda t: Cubic.apply(t, 2.0), (x,)))
print(
    "WrongCubic gradcheck:",
    gradcheck(lambda t: WrongCubic.apply(t, 2.0), (x,), raise_exception=False),
)

y = Cubic.apply(gj.tensor(2.0, requires_grad=True), 0.5)
print("Cubic(2, a=0.5) =", y.item(), "with grad_fn", y.grad_fn)
try:
    gradcheck(lambda t: WrongCubic.apply(t, 2.0), (x,))
except gj.GradientError as error:
    print("the error names the worst element:", error)

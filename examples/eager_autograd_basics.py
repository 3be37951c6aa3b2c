"""Scalar autograd, as in the PyTorch tutorials: build an expression, call backward(), read
the gradient from .grad. Run: python examples/eager_autograd_basics.py"""

import graphjit as gj

# 1. The classic: y = x**2, z = 3y, so dz/dx = 6x = 12 at x = 2.
x = gj.tensor([2.0], requires_grad=True)
y = x**2
z = y * 3
z.backward()
print("dz/dx of 3*x**2 at x=2:", x.grad)  # tensor([12.])
print("grad_fn of z and y:", z.grad_fn, y.grad_fn)  # <MulBackward> <PowBackward>

# 2. A simple function: f(x) = x**2 + x, f'(x) = 2x + 1 = 5 at x = 2.
x = gj.tensor(2.0, requires_grad=True)
f = x**2 + x
f.backward()
print("f'(2) for f = x**2 + x:", x.grad.item())  # 5.0

# 3. The chain rule: y = x**2, z = 3 * y**2 = 3x**4, dz/dx = 12x**3 = 96 at x = 2.
x = gj.tensor(2.0, requires_grad=True)
y = x**2
z = 3 * y**2
z.backward()
print("dz/dx of 3*(x**2)**2 at x=2:", x.grad.item())  # 96.0

# 4. Two inputs: f(a, b) = a**2 + 2ab + b**3, so df/da = 2a + 2b = 10 and
#    df/db = 2a + 3b**2 = 31 at (a, b) = (2, 3).
a = gj.tensor(2.0, requires_grad=True)
b = gj.tensor(3.0, requires_grad=True)
f = a**2 + 2 * a * b + b**3
f.backward()
print("df/da, df/db of a**2 + 2ab + b**3 at (2, 3):", a.grad.item(), b.grad.item())  # 10.0 31.0

"""A Hessian-vector product by double backward: differentiate <grad f(x), v> again, with
create_graph=True keeping the first backward on the tape. Run:
python examples/eager_hessian_vector_product.py"""

import numpy as np

import graphjit as gj


def rosenbrock(p):
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


point = gj.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
v = gj.tensor([1.0, 0.5], dtype="float64")

f = rosenbrock(point)
(gradient,) = gj.autograd.grad(f, [point], create_graph=True)  # the gradient has a grad_fn
(hvp,) = gj.autograd.grad((gradient * v).sum(), [point])

# The Hessian by hand: [[2 - 400 (y - x^2) + 800 x^2, -400 x], [-400 x, 200]].
x, y = point.tolist()
hessian = np.array([[2 - 400 * (y - x**2) + 800 * x**2, -400 * x], [-400 * x, 200]])
print("f(1, 2) =", f.item())
print("gradient =", gradient.tolist())
print("Hessian-vector product by double backward:", hvp.tolist())
print("Hessian @ v computed by hand:             ", (hessian @ v.numpy()).tolist())

"""sqrt(a) by Newton's method, iterated until converged: a loop whose trip count depends on
the data, differentiated in reverse mode — to first and second order — by differentiating
the loop itself (JAX's while_loop refuses reverse mode; TF1 does only first order).

    r = a;  while |r*r - a| > tol * a:  r = (r + a/r) / 2

d sqrt(a)/da = 1 / (2 sqrt(a)) and d2/da2 = -1 / (4 a^1.5): the derivatives of the
iterations converge to them along with the values. Run: python examples/newton_sqrt.py"""

import numpy as np

import graphjit as gj

TOL = 1e-14  # relative


def newton_sqrt(a):
    """Works on eager and graph tensors alike; the loop counts its iterations too."""
    steps, root = gj.while_loop(
        lambda i, r: gj.max(gj.abs(r * r - a) / a) > TOL,
        lambda i, r: (i + 1, 0.5 * (r + a / r)),
        [0, a],
    )
    return steps, root


a_values = np.array([0.5, 2.0, 9.0, 1e4])
want = np.sqrt(a_values), 0.5 / np.sqrt(a_values), -0.25 * a_values**-1.5

# static graph: the first and second derivatives are graphs too (gradients of gradients)
g = gj.Graph()
with g.as_default():
    a = gj.placeholder(gj.float64, [None], name="a")
    steps, root = newton_sqrt(a)
    (d1,) = gj.gradients(gj.sum(root), [a])
    (d2,) = gj.gradients(gj.sum(d1), [a])
with gj.Session(g) as sess:
    n, value, first, second = sess.run([steps, root, d1, d2], {a: a_values})
    n_small = sess.run(steps, {a: np.array([1.5])})
print(f"static: {n} Newton steps for a = {a_values.tolist()}, {n_small} for a = [1.5]")
for name, got, expected in zip(["sqrt(a)", "d/da", "d2/da2"], [value, first, second], want):
    error = np.abs(got - expected).max()
    print(f"  {name:8s} {np.array2string(got, precision=8)}  max error {error:.1e}")
    np.testing.assert_allclose(got, expected, rtol=1e-9)
assert n_small < n  # the trip count depends on the data

# eager: the same function, the loop runs in Python and the tape records every step
x = gj.tensor(a_values, requires_grad=True)
_, root_e = newton_sqrt(x)
(d1_e,) = gj.autograd.grad(gj.sum(root_e), [x], create_graph=True)
(d2_e,) = gj.autograd.grad(gj.sum(d1_e), [x])
np.testing.assert_allclose(d1_e.numpy(), first, rtol=1e-12)
np.testing.assert_allclose(d2_e.numpy(), second, rtol=1e-12)
print("eager autograd (double backward) agrees")

# gj.function: compiled once, differentiated through by eager backward, to second order
compiled = gj.function(lambda a: newton_sqrt(a)[1])
x = gj.tensor(a_values, requires_grad=True)
(d1_f,) = gj.autograd.grad(gj.sum(compiled(x)), [x], create_graph=True)
(d2_f,) = gj.autograd.grad(gj.sum(d1_f), [x])
np.testing.assert_allclose(d1_f.numpy(), first, rtol=1e-12)
np.testing.assert_allclose(d2_f.numpy(), second, rtol=1e-12)
print("gj.function with backward through the compiled loop agrees")

"""Hessian-vector products H v without forming H: differentiate <grad f(w), v> once more.
Three ways — a static graph (gj.gradients applied to its own output), gj.function over the
same code, and eager double backward (create_graph=True) — checked against the Hessian of
the logistic loss in closed form, H = X^T diag(p (1 - p)) X / n.
Run: python examples/hessian_vector_products.py"""

import numpy as np

import graphjit as gj

rng = np.random.default_rng(0)
X = rng.normal(size=(50, 4))
labels = (X @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(0, 0.5, 50) > 0).astype(np.float64)
w0 = rng.normal(size=4)
v = np.array([1.0, 0.0, -1.0, 2.0])


def logistic_loss(w):
    """Mean binary cross-entropy of sigmoid(X w): log(1 + e^z) - y z."""
    z = X @ w
    return gj.mean(gj.logsumexp(gj.stack([z * 0, z], axis=-1), axis=-1) - labels * z)


def hvp(w, v):
    """H v = d/dw <grad f(w), v>; written with gj.gradients, so it builds a graph."""
    (grad,) = gj.gradients(logistic_loss(w), [w])
    (hv,) = gj.gradients(gj.sum(grad * v), [w])
    return hv


p = 1 / (1 + np.exp(-X @ w0))
hessian = X.T @ (X * (p * (1 - p))[:, None]) / len(X)
want = hessian @ v

# static graph
g = gj.Graph()
with g.as_default():
    w = gj.placeholder(gj.float64, [4], name="w")
    vec = gj.placeholder(gj.float64, [4], name="v")
    hv = hvp(w, vec)
with gj.Session(g) as sess:
    static = sess.run(hv, {w: w0, vec: v})
    columns = [sess.run(hv, {w: w0, vec: e}) for e in np.eye(4)]  # H, one column at a time

# gj.function over the same Python function
compiled = gj.function(hvp)
function_result = compiled(w0, v)

# eager: double backward
w_e = gj.tensor(w0, requires_grad=True)
(grad,) = gj.autograd.grad(logistic_loss(w_e), [w_e], create_graph=True)
(eager,) = gj.autograd.grad(gj.sum(grad * gj.tensor(v)), [w_e])

print("H v closed form :", np.round(want, 8).tolist())
print("static graph    :", np.round(static, 8).tolist())
print("gj.function     :", np.round(function_result, 8).tolist())
print("eager           :", np.round(eager.numpy(), 8).tolist())
for got in (static, function_result, eager.numpy()):
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
np.testing.assert_allclose(np.stack(columns, axis=1), hessian, rtol=1e-10, atol=1e-12)
print("all agree; the Hessian rebuilt from 4 products matches too")

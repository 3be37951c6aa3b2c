"""Helpers shared by the autodiff tests: central finite differences in float64, and small
graphs compiled once in an interpreter Session and run many times."""

from __future__ import annotations

import numpy as np

import graphjit as gj

EPS = 1e-6
TOL = {"rtol": 1e-6, "atol": 1e-8}


def numeric_grad(f, arrays, wrt=None, eps=EPS) -> list:
    """Central differences of the scalar `f(*arrays)` with respect to `arrays[i]` for each
    i in `wrt` (default: all), one element at a time."""
    arrays = [np.array(a) for a in arrays]
    wrt = range(len(arrays)) if wrt is None else wrt
    grads = []
    for i in wrt:
        x = arrays[i]
        assert x.dtype == np.float64, "finite differences need float64 inputs"
        g = np.zeros(x.shape)
        for idx in np.ndindex(x.shape):
            old = x[idx]
            x[idx] = old + eps
            up = float(f(*arrays))
            x[idx] = old - eps
            down = float(f(*arrays))
            x[idx] = old
            g[idx] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


def assert_close(got, expected, what="", **tol):
    tol = {**TOL, **tol}
    assert got is not None, f"{what}: no gradient (None) where one was expected"
    got = np.asarray(got)
    expected = np.asarray(expected)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    np.testing.assert_allclose(got, expected, err_msg=what, **tol)


class Compiled:
    """`build(*placeholders) -> scalar tensor` in a fresh graph, with placeholders shaped
    and typed like `arrays`; `extra(*placeholders, y)` may add more fetches (gradients)."""

    def __init__(self, build, arrays, dynamic=False):
        self.graph = gj.Graph()
        with self.graph.as_default():
            self.xs = [
                gj.placeholder(
                    a.dtype, [None] * np.ndim(a) if dynamic else np.shape(a), name=f"x{i}"
                )
                for i, a in enumerate(arrays)
            ]
            self.y = build(*self.xs)
        self.sess = gj.Session(self.graph, backend="interpreter")

    def feed(self, arrays) -> dict:
        return dict(zip(self.xs, arrays))

    def __call__(self, *arrays) -> float:
        return float(self.sess.run(self.y, self.feed(arrays)))

    def run(self, fetches, arrays):
        return self.sess.run(fetches, self.feed(arrays))

    def gradients(self, wrt, arrays, grad_of=None):
        """gj.gradients of `grad_of` (default: y) w.r.t. the placeholders `wrt`, run."""
        with self.graph.as_default():
            grads = gj.gradients(
                grad_of if grad_of is not None else self.y, [self.xs[i] for i in wrt]
            )
        fetch = [g for g in grads if g is not None]
        values = iter(self.run(fetch, arrays))
        return [None if g is None else next(values) for g in grads]


def check_gradients(build, arrays, wrt=None, **tol):
    """gj.gradients of `build` w.r.t. the float inputs `wrt` equals finite differences of the
    compiled forward graph."""
    arrays = [np.asarray(a) for a in arrays]
    wrt = [i for i, a in enumerate(arrays) if a.dtype == np.float64] if wrt is None else wrt
    fn = Compiled(build, arrays)
    got = fn.gradients(wrt, arrays)
    expected = numeric_grad(fn, arrays, wrt)
    for i, g, e in zip(wrt, got, expected):
        assert_close(g, e, f"d/d x{i}", **tol)
    return got

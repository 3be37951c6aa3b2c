"""Infinite inputs where the mathematical answer is defined: every backend and eager mode
give SciPy's (and PyTorch's) answer, not a NaN made by an intermediate inf - inf or
0 * inf. Masked logits (-inf) are the common case."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special
from reliability_helpers import BACKENDS

import graphjit as gj

INF = np.inf
ROWS = np.array(
    [[-INF, -INF, -INF], [INF, 0.0, 1.0], [-INF, 0.0, 1.0], [1.0, 2.0, 3.0], [np.nan, 0.0, INF]]
)


def run_static(backend, fn, *arrays):
    g = gj.Graph()
    with g.as_default():
        holders = [gj.placeholder(a.dtype, a.shape) for a in arrays]
        out = fn(*holders)
    return gj.Session(g, backend=backend).run(out, dict(zip(holders, arrays)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", [*BACKENDS, "eager"])
def test_logsumexp_of_infinite_rows(backend, dtype):
    x = ROWS.astype(dtype)
    with np.errstate(all="ignore"):
        want = scipy.special.logsumexp(x, axis=1)  # -inf, inf, ..., nan
    for fn in (lambda t: gj.reduce_logsumexp(t, axis=1), lambda t: gj.logsumexp(t, dim=1)):
        if backend == "eager":
            with np.errstate(all="ignore"):
                got = fn(gj.tensor(x)).numpy()
        else:
            got = run_static(backend, fn, x)
        np.testing.assert_allclose(got, want.astype(dtype), rtol=1e-6)


@pytest.mark.parametrize("backend", [*BACKENDS, "eager"])
def test_sparse_cross_entropy_with_masked_logits(backend):
    """A class masked out with -inf costs nothing and gets no gradient; the loss is
    -log_softmax at the label, as PyTorch's cross_entropy and TF1's sparse kernel give."""
    logits = np.array([[-INF, 0.0, 1.0], [-INF, -INF, 2.0], [0.5, -INF, -1.0]], np.float32)
    labels = np.array([1, 2, 0])
    shifted = logits - logits.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    want_loss = -log_p[np.arange(3), labels]
    want_grad = np.exp(log_p) - np.eye(3, dtype=np.float32)[labels]

    def losses(lg, lb):
        return [
            gj.nn.sparse_softmax_cross_entropy_with_logits(labels=lb, logits=lg),
            gj.softmax_cross_entropy(lg, lb, reduction="none"),
        ]

    if backend == "eager":
        for i in range(2):
            lg = gj.tensor(logits, requires_grad=True)
            loss = losses(lg, gj.tensor(labels))[i]
            gj.sum(loss).backward()
            np.testing.assert_allclose(loss.numpy(), want_loss, rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(lg.grad.numpy(), want_grad, rtol=1e-6, atol=1e-7)
        return

    def with_grads(lg, lb):
        out = losses(lg, lb)
        return out + [gj.gradients(gj.reduce_sum(loss), [lg])[0] for loss in out]

    got = run_static(backend, with_grads, logits, labels)
    for loss in got[:2]:
        np.testing.assert_allclose(loss, want_loss, rtol=1e-6, atol=1e-7)
    for grad in got[2:]:
        np.testing.assert_allclose(grad, want_grad, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", [*BACKENDS, "eager"])
def test_isnan_isinf_isfinite(backend):
    floats = np.array([0.0, -1.5, INF, -INF, np.nan, 1e-310], np.float64)
    ints = np.array([0, -7, 2**31 - 1], np.int32)
    for x in (floats, floats.astype(np.float32), ints):
        with np.errstate(over="ignore"):
            x = x.astype(x.dtype)
        fns = [gj.isnan, gj.isinf, gj.isfinite, gj.is_nan, gj.is_inf, gj.is_finite]
        wants = [np.isnan, np.isinf, np.isfinite] * 2
        for fn, want in zip(fns, wants):
            got = fn(gj.tensor(x)).numpy() if backend == "eager" else run_static(backend, fn, x)
            assert got.dtype == np.bool_
            np.testing.assert_array_equal(got, want(x))
    method = gj.tensor(floats).isfinite().numpy()
    np.testing.assert_array_equal(method, np.isfinite(floats))

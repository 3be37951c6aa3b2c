"""Eager mode's IEEE results do not depend on NumPy's floating-point error handling: under a
warning filter that makes warnings errors (`-W error`, pytest's `filterwarnings = error`)
or `np.seterr(all="raise")`, x / 0, log(0), exp(1000), inf - inf, an overflowing sum and
the gradients and updates made of them give the values the interpreter gives (and
PyTorch), not a ShapeError naming NumPy's warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import graphjit as gj

F32 = np.float32

# (name, function of gj tensors, inputs): each has an inf or NaN in its result or gradient
CASES = [
    ("x / 0", lambda x, y: x / y, [[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]]),
    ("log(0)", lambda x: gj.log(x), [[0.0, 1.0, 2.0]]),
    ("exp(1000)", lambda x: gj.exp(x), [[1000.0, 0.0, -1000.0]]),
    ("sqrt(-1)", lambda x: gj.sqrt(x), [[-1.0, 0.0, 4.0]]),
    ("inf - inf", lambda x, y: x - y, [[np.inf, 1.0, 2.0], [np.inf, 1.0, np.inf]]),
    ("0 * inf", lambda x, y: x * y, [[0.0, 1.0, 2.0], [np.inf, 1.0, -np.inf]]),
    ("overflowing sum", lambda x: gj.sum(x), [[3e38, 3e38, 1.0]]),
    ("mean of nothing", lambda x: gj.mean(x), [np.zeros((0, 3))]),
    ("matmul of infs", lambda x, y: gj.matmul(x, y), [[[np.inf, 1.0]], [[1.0], [-np.inf]]]),
]


def _interpreted(fn, arrays):
    graph = gj.Graph()
    with graph.as_default():
        feeds = [gj.placeholder(gj.float32, a.shape) for a in arrays]
        out = fn(*feeds)
        grads = gj.gradients(gj.sum(out), feeds)
    return gj.Session(graph, backend="interpreter").run([out, *grads], dict(zip(feeds, arrays)))


def _eager(fn, arrays):
    tensors = [gj.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    gj.sum(out).backward()
    return [out.numpy()] + [t.grad.numpy() for t in tensors]


@pytest.mark.parametrize("strict", ["warnings as errors", "np.seterr raise"])
@pytest.mark.parametrize("name, fn, inputs", CASES, ids=[c[0] for c in CASES])
def test_eager_results_are_ieee_whatever_numpys_error_handling(name, fn, inputs, strict):
    arrays = [np.asarray(a, F32) for a in inputs]
    with np.errstate(all="ignore"):
        want = _interpreted(fn, arrays)
    with warnings.catch_warnings(), np.errstate(all="raise" if "seterr" in strict else "warn"):
        warnings.simplefilter("error")
        got = _eager(fn, arrays)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_no_numpy_warning_reaches_the_user_from_backward_or_the_optimizer():
    """Backward and the optimizers' updates run inside one IEEE context each: an infinite
    gradient accumulates, steps and clips to the values PyTorch gives, silently."""
    w = gj.tensor(np.asarray([0.0, 1.0, 4.0], F32), requires_grad=True)
    optimizer = gj.optim.SGD([w], lr=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="ignore"):  # (the forward's own sqrt(0) is fine; its gradient)
            loss = gj.sum(gj.sqrt(w)) - gj.sum(gj.sqrt(w))
        loss.backward()  # 1 / (2 sqrt(0)) twice, of opposite signs: inf - inf
        np.testing.assert_array_equal(w.grad.numpy(), [np.nan, 0.0, 0.0])
        norm = gj.nn.utils.clip_grad_norm_([w], 1.0)
        assert np.isnan(norm.item())
        optimizer.step()
        np.testing.assert_array_equal(w.numpy(), [np.nan, np.nan, np.nan])


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
@pytest.mark.parametrize("nan_in", ["first", "second"])
def test_a_nan_gradient_norm_scales_every_gradient_by_nan_as_pytorchs_clip(norm_type, nan_in):
    """torch.nn.utils.clip_grad_norm_ clamps max_norm / (norm + 1e-6) to at most 1 with a
    clamp that passes NaN through: one NaN gradient makes every gradient NaN, whichever
    parameter holds it (graphjit took min(1, NaN) = 1, and the inf norm's max() depended
    on the order of the parameters)."""
    grads = [[1.0, 2.0], [3.0, 4.0]]
    grads[0 if nan_in == "first" else 1][1] = np.nan
    params = [gj.tensor(np.zeros(2, F32), requires_grad=True) for _ in grads]
    for p, g in zip(params, grads):
        p.grad = gj.tensor(np.asarray(g, F32))
    norm = gj.nn.utils.clip_grad_norm_(params, 1.0, norm_type=norm_type)
    assert np.isnan(norm.item())
    assert all(np.isnan(p.grad.numpy()).all() for p in params)


def test_values_too_large_for_float32_become_inf_when_made_or_fed():
    """A tensor made from 1e40 as float32, a fill of it, and a float64 feed of it to a
    float32 placeholder are inf (NumPy's cast and PyTorch's), whatever the warning filters."""
    graph = gj.Graph()
    with graph.as_default():
        x = gj.placeholder(gj.float32, [2])
        doubled = x * 2.0
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            huge = gj.constant(1e40, dtype=gj.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(gj.tensor([1e40, 1.0]).numpy(), [np.inf, 1.0])
        np.testing.assert_array_equal(gj.full((2,), -1e40, dtype=gj.float32).numpy(), -np.inf)
        for backend in ("interpreter", "llvm"):
            run = gj.Session(graph, backend=backend).run
            fed, constant = run([doubled, huge], {x: np.array([1e40, 1.0])})
            np.testing.assert_array_equal(fed, [np.inf, 2.0])
            assert constant == np.inf

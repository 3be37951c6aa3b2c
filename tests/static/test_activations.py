"""Activations, elementwise math, scans, masks, padding and normalisation (issue 17) against
PyTorch (torch.nn.functional, when installed) and NumPy/SciPy references, in every mode:
eager, graphs on the interpreter and llvm, and gj.function; gradients included.
batch_norm's running statistics over several training steps, eager and in a Session; the new
elementwise primitives' special values on llvm; the same primitives and cumsum on the cuda
backend in Numba's simulator (a subprocess, as tests/cuda does), compiled to PTX too.

The op-table records (tests/op_table_math.py) check values and gradients against finite
differences in float64 for every backend; this file checks the PyTorch semantics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.special
from backend_check import compare_on

import graphjit as gj
from graphjit.codegen.cuda.compiler import compile_ptx, ptx_unavailable
from graphjit.codegen.cuda.source import KernelSource

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the NumPy references still run
    torch = F = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
ROOT = Path(__file__).resolve().parents[2]

# ---- the functions, with their references ------------------------------------------------


@dataclass
class Fn:
    name: str
    gj: Callable  # gj_fn(x) on one tensor
    torch: Callable | None  # the same with torch (None: no torch equivalent)
    ref: Callable  # NumPy/SciPy reference
    domain: Callable = lambda x: x  # maps the common input grid into the function's domain
    grad: bool = True


def _softplus_ref(x, beta, threshold):
    return np.where(beta * x > threshold, x, np.log1p(np.exp(beta * x)) / beta)


def _pad_ref(x):
    return np.pad(x, [(2, 0), (1, 2)], constant_values=3.0)


FUNCTIONS = [
    Fn("gelu", gj.gelu, F and F.gelu, lambda x: 0.5 * x * (1 + scipy.special.erf(x / np.sqrt(2)))),
    Fn(
        "gelu_tanh",
        lambda x: gj.gelu(x, approximate="tanh"),
        F and (lambda t: F.gelu(t, approximate="tanh")),
        lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),
    ),
    Fn("silu", gj.silu, F and F.silu, lambda x: x * scipy.special.expit(x)),
    Fn(
        "softplus",
        lambda x: gj.softplus(x, beta=2.0, threshold=5.0),
        F and (lambda t: F.softplus(t, beta=2.0, threshold=5.0)),
        lambda x: _softplus_ref(x, 2.0, 5.0),
    ),
    Fn(
        "softplus_large",  # stable where exp(beta * x) would overflow
        gj.softplus,
        F and F.softplus,
        lambda x: _softplus_ref(x, 1.0, 20.0),
        lambda x: 200 * x,
    ),
    Fn(
        "leaky_relu",
        lambda x: gj.leaky_relu(x, 0.1),
        F and (lambda t: F.leaky_relu(t, 0.1)),
        lambda x: np.where(x > 0, x, 0.1 * x),
    ),
    Fn(
        "elu",
        lambda x: gj.elu(x, alpha=0.7),
        F and (lambda t: F.elu(t, alpha=0.7)),
        lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)),
        lambda x: 100 * x,  # exp of the discarded branch would overflow
    ),
    Fn("erf", gj.erf, torch and torch.erf, scipy.special.erf),
    Fn("log1p", gj.log1p, torch and torch.log1p, np.log1p, lambda x: np.abs(x) - 0.9),
    Fn("expm1", gj.expm1, torch and torch.expm1, np.expm1),
    Fn(
        "rsqrt",
        gj.rsqrt,
        torch and torch.rsqrt,
        lambda x: 1 / np.sqrt(x),
        lambda x: np.abs(x) + 0.1,
    ),
    Fn("floor", gj.floor, torch and torch.floor, np.floor, grad=False),
    Fn("ceil", gj.ceil, torch and torch.ceil, np.ceil, grad=False),
    Fn(
        "round", gj.round, torch and torch.round, np.round, grad=False
    ),  # the grid has halves: to even
    Fn(
        "round_decimals",
        lambda x: gj.round(x, decimals=1),
        torch and (lambda t: torch.round(t, decimals=1)),
        lambda x: np.round(x, 1),
        lambda x: x * 0.37,
        grad=False,
    ),
    Fn(
        "cumsum",
        lambda x: gj.cumsum(x, dim=1),
        torch and (lambda t: torch.cumsum(t, 1)),
        lambda x: np.cumsum(x, 1),
    ),  # fmt: skip
    Fn(
        "flip",
        lambda x: gj.flip(x, (0, 1)),
        torch and (lambda t: torch.flip(t, (0, 1))),
        lambda x: x[::-1, ::-1],
    ),  # fmt: skip
    Fn(
        "triu",
        lambda x: gj.triu(x, 1),
        torch and (lambda t: torch.triu(t, 1)),
        lambda x: np.triu(x, 1),
    ),  # fmt: skip
    Fn(
        "tril",
        lambda x: gj.tril(x, -1),
        torch and (lambda t: torch.tril(t, -1)),
        lambda x: np.tril(x, -1),
    ),  # fmt: skip
    Fn(
        "pad",
        lambda x: gj.pad(x, (1, 2, 2, 0), value=3.0),
        F and (lambda t: F.pad(t, (1, 2, 2, 0), value=3.0)),
        _pad_ref,
    ),  # fmt: skip
]
IDS = [f.name for f in FUNCTIONS]
# a grid with zeros, halves (round to even) and both signs
GRID = np.arange(-12, 12, dtype=np.float64).reshape(4, 6) / 4


def _input(fn: Fn, dtype=np.float64) -> np.ndarray:
    return fn.domain(GRID).astype(dtype)


def _tolerance(dtype) -> dict:
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}


def run_graph(fn: Callable, arrays: list, backend: str):
    g = gj.Graph()
    with g.as_default():
        xs = [gj.placeholder(a.dtype.name, shape=a.shape) for a in arrays]
        y = fn(*xs)
    with gj.Session(g, backend=backend) as sess:
        return sess.run(y, dict(zip(xs, arrays)))


def all_modes(fn: Callable, arrays: list) -> dict:
    """fn's result on the same inputs in every mode."""
    function = gj.function(fn)
    return {
        "eager": fn(*map(gj.tensor, arrays)).numpy(),
        "interpreter": run_graph(fn, arrays, "interpreter"),
        "llvm": run_graph(fn, arrays, "llvm"),
        "function": function(*map(gj.tensor, arrays)).numpy(),
    }


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("fn", FUNCTIONS, ids=IDS)
def test_forward_matches_numpy_in_every_mode(fn, dtype):
    x = _input(fn, dtype)
    with np.errstate(over="ignore"):
        want = fn.ref(x.astype(np.float64))
    for mode, got in all_modes(fn.gj, [x]).items():
        assert got.dtype == dtype, mode
        np.testing.assert_allclose(got, want, err_msg=mode, **_tolerance(dtype))


@needs_torch
@pytest.mark.parametrize("fn", FUNCTIONS, ids=IDS)
def test_forward_matches_torch(fn):
    x = _input(fn, np.float32)
    want = fn.torch(torch.tensor(x)).numpy()
    got = fn.gj(gj.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.signbit(got[want == 0]), np.signbit(want[want == 0]))


# ---- gradients -------------------------------------------------------------------------


def _weights(shape) -> np.ndarray:
    """Output weights, so that each gradient element is tested (not just their sum)."""
    return np.random.default_rng(7).uniform(0.5, 1.5, shape)


def gradients_in_every_mode(fn: Callable, arrays: list, out_shape) -> dict:
    """d sum(fn(*arrays) * w) / d each array: eager, graph (interpreter, llvm), gj.function."""
    w = _weights(out_shape)

    def loss(*xs):
        return gj.sum(gj.mul(fn(*xs), w.astype(np.float64)))

    results = {}
    for mode in ("eager", "function"):
        tensors = [gj.tensor(a, requires_grad=True) for a in arrays]
        (gj.function(loss) if mode == "function" else loss)(*tensors).backward()
        results[mode] = [t.grad.numpy() for t in tensors]
    results["interpreter"] = run_graph(lambda *xs: gj.gradients(loss(*xs), list(xs)), arrays,
                                       "interpreter")  # fmt: skip
    results["llvm"] = run_graph(lambda *xs: gj.gradients(loss(*xs), list(xs)), arrays, "llvm")
    return results


def torch_gradients(fn: Callable, arrays: list, out_shape) -> list:
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    (fn(*tensors) * torch.tensor(_weights(out_shape))).sum().backward()
    return [t.grad.numpy() for t in tensors]


@pytest.mark.parametrize("fn", [f for f in FUNCTIONS if f.grad], ids=lambda f: f.name)
def test_gradients_agree_across_modes_and_with_torch(fn):
    x = _input(fn)
    out_shape = fn.ref(x).shape
    results = gradients_in_every_mode(fn.gj, [x], out_shape)
    want = torch_gradients(fn.torch, [x], out_shape) if torch is not None else results["eager"]
    assert np.all(np.isfinite(want[0]))
    for mode, got in results.items():
        np.testing.assert_allclose(got[0], want[0], rtol=1e-10, atol=1e-12, err_msg=mode)


def test_rounding_has_zero_gradient_and_flip_gradient_flips_back():
    """floor(x) + x has the gradient of x alone in every mode (rounding is piecewise
    constant: no gradient flows through it, as through sign)."""
    x = GRID.copy()
    for fn in (gj.floor, gj.ceil, gj.round):
        grads = gradients_in_every_mode(lambda t, fn=fn: gj.add(fn(t), t), [x], x.shape)
        for mode, (g,) in grads.items():
            np.testing.assert_array_equal(g, _weights(x.shape), err_msg=mode)
    (g,) = gradients_in_every_mode(lambda t: gj.flip(t, 1), [x], x.shape)["llvm"]
    np.testing.assert_array_equal(g, _weights(x.shape)[:, ::-1])


def test_second_order_gradients_of_the_new_primitives():
    """d2/dx2 by gj.gradients twice against closed forms."""
    x = np.linspace(-1.5, 1.5, 7)
    second = {
        gj.erf: -4 / np.sqrt(np.pi) * x * np.exp(-x * x),
        gj.log1p: -1 / (1 + (x + 2)) ** 2,
        gj.expm1: np.exp(x),
        gj.silu: scipy.special.expit(x) * (1 - scipy.special.expit(x)) * (2 + x * (1 - 2 * scipy.special.expit(x))),
    }  # fmt: skip
    for fn, want in second.items():
        shift = 2.0 if fn is gj.log1p else 0.0

        def d2(t, fn=fn, shift=shift):
            (g,) = gj.gradients(gj.sum(fn(t + shift)), [t])
            return gj.gradients(gj.sum(g), [t])[0]

        for backend in ("interpreter", "llvm"):
            got = run_graph(d2, [x], backend)
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=fn.__name__)


# ---- shapes and masks ------------------------------------------------------------------


def test_causal_mask_with_unknown_sizes():
    """triu/tril of a tensor whose last two sizes are known only when fed."""
    x = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5) + 1
    g = gj.Graph()
    with g.as_default():
        p = gj.placeholder(gj.float32, shape=[None, None, None])
        ys = [gj.triu(p), gj.tril(p, 1), gj.tril(p, -2)]
    for backend in ("interpreter", "llvm"):
        with gj.Session(g, backend=backend) as sess:
            got = sess.run(ys, {p: x})
        for y, want in zip(got, [np.triu(x), np.tril(x, 1), np.tril(x, -2)]):
            np.testing.assert_array_equal(y, want)


def test_pad_with_unknown_sizes_and_crops():
    x = np.arange(12, dtype=np.float64).reshape(3, 4)
    g = gj.Graph()
    with g.as_default():
        p = gj.placeholder(gj.float64, shape=[None, None])
        y = gj.pad(p, (2, -1, -1, 1), value=-7.0)
    want = np.pad(x[1:, :-1], [(0, 1), (2, 0)], constant_values=-7.0)
    for backend in ("interpreter", "llvm"):
        with gj.Session(g, backend=backend) as sess:
            np.testing.assert_array_equal(sess.run(y, {p: x}), want)
    with pytest.raises(gj.GraphjitError, match="constant"):
        gj.pad(gj.tensor(x), (1, 1), mode="reflect")
    with pytest.raises(gj.ShapeError):
        gj.pad(gj.tensor(x), (1, 1, 1))


def test_cumsum_accumulates_integers_as_numpy_and_in_order():
    ints = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
    got = gj.cumsum(gj.tensor(ints), axis=1)
    assert got.dtype == gj.int64
    np.testing.assert_array_equal(got.numpy(), np.cumsum(ints, 1))
    # float32 sums in order: the same rounding as np.cumsum's, bit for bit, on llvm too
    x = np.random.default_rng(3).normal(size=(3, 1000)).astype(np.float32) * 1e3
    for axis in (0, 1):
        want = np.cumsum(x, axis)
        np.testing.assert_array_equal(run_graph(lambda t: gj.cumsum(t, axis), [x], "llvm"), want)
    np.testing.assert_array_equal(gj.cumsum(gj.tensor(True)).numpy(), [1])


# ---- special values on llvm -------------------------------------------------------------

SPECIAL = [np.nan, np.inf, -np.inf, -0.0, 0.0, 0.5, -0.5, 1.5, 2.5, -2.5, -1.0, -2.0, 1e-30,
           -1e-30, 1e30, 3e15 + 0.5, 88.5, 710.0, -1e300]  # fmt: skip
NEW_PRIMITIVES = [gj.erf, gj.log1p, gj.expm1, gj.floor, gj.ceil, gj.round]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_special_values_on_llvm_match_the_interpreter(dtype):
    with np.errstate(over="ignore"):
        x = np.array(SPECIAL, dtype)
    g = gj.Graph()
    with g.as_default():
        p = gj.placeholder(np.dtype(dtype).name, shape=[len(SPECIAL)])
        ys = [fn(p) for fn in NEW_PRIMITIVES]
    got = compare_on("llvm", g, ys, {p: x}, signed_zeros=True)
    np.testing.assert_array_equal(got[5], np.round(x))  # halves to even, -0.0 kept


# ---- normalisation ---------------------------------------------------------------------

RNG = np.random.default_rng(11)
X4 = RNG.normal(2.0, 3.0, (4, 6, 3, 2))  # (N, C, H, W), away from zero mean
W6, B6 = RNG.uniform(0.5, 1.5, 6), RNG.normal(size=6)


def _norm_cases():
    """(name, gj function, torch function, NumPy reference, inputs)."""
    mean, var = X4.mean((0, 2, 3)), X4.var((0, 2, 3))
    per_channel = (1, 6, 1, 1)

    def ln_ref(x, w, b):
        m, v = x.mean((2, 3), keepdims=True), x.var((2, 3), keepdims=True)
        return (x - m) / np.sqrt(v + 1e-5) * w + b

    def gn_ref(x, w, b):
        g = x.reshape(4, 3, -1)
        y = (g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-5)
        return y.reshape(x.shape) * w.reshape(per_channel) + b.reshape(per_channel)

    def bn_ref(x, w, b):
        return (x - mean.reshape(per_channel)) / np.sqrt(var.reshape(per_channel) + 1e-5) * (
            w.reshape(per_channel)
        ) + b.reshape(per_channel)

    wl, bl = RNG.uniform(0.5, 1.5, (3, 2)), RNG.normal(size=(3, 2))
    return [
        ("layer_norm", lambda x, w, b: gj.layer_norm(x, (3, 2), w, b),
         F and (lambda x, w, b: F.layer_norm(x, (3, 2), w, b)), ln_ref, [X4, wl, bl]),
        ("group_norm", lambda x, w, b: gj.group_norm(x, 3, w, b),
         F and (lambda x, w, b: F.group_norm(x, 3, w, b)), gn_ref, [X4, W6, B6]),
        ("batch_norm", lambda x, w, b: gj.batch_norm(x, None, None, w, b, training=True),
         F and (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True)), bn_ref,
         [X4, W6, B6]),
    ]  # fmt: skip


NORM_CASES = _norm_cases()


@pytest.mark.parametrize("case", NORM_CASES, ids=[c[0] for c in NORM_CASES])
def test_normalisation_forward_and_gradients(case):
    name, fn, torch_fn, ref, arrays = case
    want = ref(*arrays)
    for mode, got in all_modes(fn, arrays).items():
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=mode)
        np.testing.assert_allclose(got.mean((0, 2, 3) if name == "batch_norm" else None),
                                   ref(*arrays).mean((0, 2, 3) if name == "batch_norm" else None),
                                   atol=1e-10)  # fmt: skip
    grads = gradients_in_every_mode(fn, arrays, want.shape)
    expected = torch_gradients(torch_fn, arrays, want.shape) if torch else grads["eager"]
    for mode, got in grads.items():
        for k, (a, b) in enumerate(zip(got, expected)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10, err_msg=f"{mode} input {k}")


def test_layer_norm_is_stable_for_a_large_offset():
    x = (1e4 + np.arange(8, dtype=np.float32)).reshape(2, 4)
    got = gj.layer_norm(gj.tensor(x), 4).numpy()
    want = (np.arange(4) - 1.5) / np.sqrt(1.25 + 1e-5)
    np.testing.assert_allclose(got, np.stack([want, want]), rtol=1e-4, atol=1e-4)


def test_shape_errors_name_the_problem():
    x = gj.tensor(np.ones((2, 6, 3)))
    with pytest.raises(gj.ShapeError, match="normalized_shape"):
        gj.layer_norm(x, (4,))
    with pytest.raises(gj.ShapeError, match="groups"):
        gj.group_norm(x, 4)
    with pytest.raises(gj.GraphjitError, match="running_mean"):
        gj.batch_norm(x, None, None, training=False)


BATCHES = [RNG.normal(1.0 + k, 2.0, (5, 3, 2, 2)).astype(np.float32) for k in range(3)]


def _running_reference(momentum=0.1):
    """(outputs, running mean, running var) after each batch, with NumPy."""
    mean, var, outs = np.zeros(3), np.ones(3), []
    for x in BATCHES:
        m, v = x.mean((0, 2, 3)), x.var((0, 2, 3))
        n = x.size / 3
        outs.append((x - m.reshape(1, 3, 1, 1)) / np.sqrt(v.reshape(1, 3, 1, 1) + 1e-5))
        mean = (1 - momentum) * mean + momentum * m
        var = (1 - momentum) * var + momentum * v * n / (n - 1)
    return outs, mean, var


def test_batch_norm_running_statistics_eager():
    outs, mean, var = _running_reference()
    rm, rv = gj.tensor(np.zeros(3, np.float32)), gj.tensor(np.ones(3, np.float32))
    x = None
    for x_np, want in zip(BATCHES, outs):
        x = gj.tensor(x_np, requires_grad=True)
        y = gj.batch_norm(x, rm, rv, training=True)
        np.testing.assert_allclose(y.numpy(), want, rtol=1e-4, atol=1e-5)
    y.sum().backward()  # the in-place updates are not on the tape
    assert rm.grad_fn is None and not rm.requires_grad
    np.testing.assert_allclose(rm.numpy(), mean, rtol=1e-5)
    np.testing.assert_allclose(rv.numpy(), var, rtol=1e-5)
    inference = gj.batch_norm(gj.tensor(BATCHES[0]), rm, rv, training=False).numpy()
    want = (BATCHES[0] - mean.reshape(1, 3, 1, 1)) / np.sqrt(var.reshape(1, 3, 1, 1) + 1e-5)
    np.testing.assert_allclose(inference, want, rtol=1e-4, atol=1e-5)
    if torch is not None:
        trm, trv = torch.zeros(3), torch.ones(3)
        for x_np in BATCHES:
            F.batch_norm(torch.tensor(x_np), trm, trv, training=True)
        np.testing.assert_allclose(rm.numpy(), trm.numpy(), rtol=1e-6)
        np.testing.assert_allclose(rv.numpy(), trv.numpy(), rtol=1e-6)


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_batch_norm_running_statistics_in_a_session(backend):
    """The assigns run when grouped with the train op (update_ops), not otherwise."""
    outs, mean, var = _running_reference()
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, shape=[None, 3, 2, 2])
        rm = gj.Variable(np.zeros(3, np.float32), trainable=False)
        rv = gj.Variable(np.ones(3, np.float32), trainable=False)
        w = gj.Variable(np.ones(3, np.float32))
        y = gj.batch_norm(x, rm, rv, weight=w, training=True)
        loss = gj.sum(gj.square(y))
        assert len(gj.update_ops()) == 2
        train = gj.group(gj.train.SGD(0.0).minimize(loss), *gj.update_ops())
        inference = gj.batch_norm(x, rm, rv, weight=w, training=False)
    with gj.Session(g, backend=backend) as sess:
        sess.run(y, {x: BATCHES[0]})  # fetching y alone leaves the statistics alone
        np.testing.assert_array_equal(sess.run(rm), np.zeros(3))
        for batch, want in zip(BATCHES, outs):
            got, _ = sess.run([y, train], {x: batch})
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(sess.run(rm), mean, rtol=1e-5)
        np.testing.assert_allclose(sess.run(rv), var, rtol=1e-5)
        got = sess.run(inference, {x: BATCHES[0]})
    want = (BATCHES[0] - mean.reshape(1, 3, 1, 1)) / np.sqrt(var.reshape(1, 3, 1, 1) + 1e-5)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_batch_norm_in_a_graph_needs_variables():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, shape=[2, 3])
        with pytest.raises(gj.GraphjitError, match="Variable"):
            gj.batch_norm(x, gj.constant(np.zeros(3, np.float32)), None, training=True)


# ---- cuda (simulated) and PTX -----------------------------------------------------------

CUDA_SCRIPT = textwrap.dedent(
    """
    import dataclasses, json, sys
    import numpy as np
    import graphjit as gj
    from backend_check import compare_on
    from graphjit.codegen.cuda.compiler import GENERATED

    special = np.array(json.loads(sys.argv[2]))
    grid = np.arange(-12, 12).reshape(4, 6) / 4
    for dtype in (np.float64, np.float32):
        g = gj.Graph()
        with g.as_default():
            s = gj.placeholder(np.dtype(dtype).name, shape=special.shape)
            x = gj.placeholder(np.dtype(dtype).name, shape=grid.shape)
            ys = [f(s) for f in (gj.erf, gj.log1p, gj.expm1, gj.floor, gj.ceil, gj.round)]
            ys += [gj.cumsum(x, a, reverse=r) for a in (0, 1) for r in (False, True)]
            ys += [gj.gelu(x), gj.softplus(x), gj.triu(x), gj.layer_norm(x, 6)]
            ys += gj.gradients(gj.sum(gj.cumsum(x, 1) * x + gj.erf(x)), [x])
        with np.errstate(all="ignore"):
            feed = {s: special.astype(dtype), x: grid.astype(dtype)}
        compare_on("cuda", g, ys, feed, signed_zeros=True)
    json.dump([dataclasses.asdict(k) for k in GENERATED.values()], open(sys.argv[1], "w"))
    """
)


@pytest.fixture(scope="module")
def simulated_kernels(tmp_path_factory):
    log = tmp_path_factory.mktemp("cuda") / "kernels.json"
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(ROOT / "tests")}
    done = subprocess.run(
        [sys.executable, "-c", CUDA_SCRIPT, str(log), json.dumps(SPECIAL)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return [
        KernelSource(k["source"], tuple(k["params"]), k["label"])
        for k in json.loads(log.read_text())
    ]


def test_cuda_simulator_matches_the_interpreter(simulated_kernels):
    labels = " ".join(k.label for k in simulated_kernels)
    assert "cumsum over axis 1" in labels and "reversed cumsum" in labels


def test_cuda_kernels_compile_to_ptx(simulated_kernels):
    reason = ptx_unavailable()
    if reason:
        pytest.skip(f"cannot compile to PTX here: {reason}")
    for kernel in simulated_kernels:
        compile_ptx(kernel, opt=False)

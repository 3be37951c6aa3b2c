"""Convolution and pooling across configurations (stride, padding incl. "same", dilation,
groups incl. depthwise, non-square), forward and gradients, on the interpreter, llvm and
eager, against PyTorch's torch.nn.functional where it is installed and always against the
plain NumPy references of tests/op_table_conv.py; a few small cases on the cuda backend in
Numba's simulator (in a subprocess, as tests/cuda/test_cuda_sim.py runs it); unknown batch
sizes; the errors users meet."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from simulator import run_script_simulated

import graphjit as gj
import op_table  # noqa: F401 (first: it imports op_table_conv, which imports it)
from graphjit.errors import ShapeError

# isort: split
from op_table_conv import conv_ref, conv_transpose_ref, pool_grad_ref, pool_ref

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the NumPy references still run
    torch = F = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
ROOT = Path(__file__).resolve().parents[2]

# (x shape, w shape, keyword arguments of conv2d); "same" padding and even kernels included
CONV_CONFIGS = [
    ((2, 3, 8, 8), (4, 3, 3, 3), {}),
    ((2, 3, 8, 8), (4, 3, 3, 3), {"padding": 1}),
    ((1, 4, 9, 7), (6, 4, 3, 2), {"stride": 2, "padding": (1, 0)}),
    ((1, 4, 9, 7), (4, 4, 3, 3), {"stride": (2, 3), "padding": 2}),
    ((2, 2, 9, 9), (3, 2, 3, 3), {"dilation": 2, "padding": 2}),
    ((1, 2, 10, 8), (2, 2, 3, 2), {"dilation": (2, 3), "padding": "same"}),
    ((1, 3, 6, 7), (5, 3, 4, 4), {"padding": "same"}),
    ((1, 3, 6, 7), (5, 3, 2, 3), {"padding": "valid"}),
    ((2, 6, 7, 7), (4, 3, 3, 3), {"groups": 2, "padding": 1}),
    ((2, 4, 7, 6), (4, 1, 3, 3), {"groups": 4, "padding": 1}),  # depthwise
    ((1, 4, 7, 6), (8, 1, 3, 3), {"groups": 4, "stride": 2}),  # depthwise, multiplier 2
    ((2, 6, 5, 5), (4, 6, 1, 1), {}),  # pointwise: im2col is the image itself
    ((1, 3, 5, 9), (2, 3, 1, 1), {"stride": 2}),
]

POOL_CONFIGS = [
    ((2, 3, 8, 8), {"kernel_size": 2}),
    ((2, 3, 7, 9), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ((1, 2, 7, 6), {"kernel_size": (3, 2), "stride": (1, 2), "padding": (1, 1)}),
    # every output's window but the middle one's reaches into the padding (the llvm
    # kernels scan the interior unchecked, the border checked)
    ((1, 2, 3, 5), {"kernel_size": 3, "stride": 1, "padding": 1}),
    # windows that share no tap (the llvm gradient writes each tap once): odd sides leave
    # a row and a column no window covers; a stride past the kernel leaves gaps
    ((2, 3, 9, 7), {"kernel_size": 2}),
    ((1, 2, 8, 11), {"kernel_size": 2, "stride": 3, "padding": 1}),
]


def _pairs(value):
    return value if isinstance(value, tuple) else (value, value)


def numpy_conv(x, w, stride=1, padding=0, dilation=1, groups=1):
    """The NumPy reference, with PyTorch's arguments."""
    dilation = _pairs(dilation)
    if padding in ("same", "valid"):
        totals = (
            [0, 0] if padding == "valid" else [d * (k - 1) for d, k in zip(dilation, w.shape[2:])]
        )
        pads = tuple((t // 2, t - t // 2) for t in totals)
    else:
        pads = tuple((p, p) for p in _pairs(padding))
    return conv_ref(x, w, _pairs(stride), pads, dilation, groups)


def _arrays(shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, s).astype(dtype) for s in shapes]


def static_run(build, arrays, backend, batch_unknown=False):
    """(outputs, gradients of Σ outputs · weights) of a graph run on `backend`."""
    g = gj.Graph()
    with g.as_default():
        xs = [
            gj.placeholder(a.dtype, (None, *a.shape[1:]) if batch_unknown and i == 0 else a.shape)
            for i, a in enumerate(arrays)
        ]
        y = build(*xs)
        weights = np.random.default_rng(5).uniform(-1, 1, y.shape).astype(arrays[0].dtype)
        grads = gj.gradients(gj.sum(y * gj.constant(weights)), xs)
    with gj.Session(g, backend=backend) as sess:
        out, *dxs = sess.run([y, *grads], dict(zip(xs, arrays)))
    return out, dxs, weights


def eager_run(build, arrays, weights):
    ts = [gj.tensor(a, requires_grad=True) for a in arrays]
    y = build(*ts)
    gj.sum(y * gj.tensor(weights)).backward()
    return y.numpy(), [t.grad.numpy() for t in ts]


def torch_run(build, arrays, weights):
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = build(*ts)
    (y * torch.tensor(weights)).sum().backward()
    return y.detach().numpy(), [t.grad.numpy() for t in ts]


def _close(got, want, dtype):
    tol = {"rtol": 2e-4, "atol": 2e-4} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-10}
    np.testing.assert_allclose(got, want, **tol)


def _conv_id(config):
    x, w, kw = config
    return f"{x}*{w}-{kw}"


# ---- convolution ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
@pytest.mark.parametrize("config", CONV_CONFIGS, ids=_conv_id)
def test_conv2d_forward_matches_numpy(config, backend):
    x_shape, w_shape, kwargs = config
    x, w = _arrays([x_shape, w_shape], np.float64)
    out, _, _ = static_run(lambda a, b: gj.conv2d(a, b, **kwargs), [x, w], backend)
    _close(out, numpy_conv(x, w, **kwargs), np.float64)


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", CONV_CONFIGS, ids=_conv_id)
def test_conv2d_and_its_gradients_match_pytorch(config, dtype):
    """Interpreter, llvm and eager, values and both gradients, against torch."""
    x_shape, w_shape, kwargs = config
    arrays = _arrays([x_shape, w_shape], dtype)
    ours = lambda a, b: gj.conv2d(a, b, **kwargs)  # noqa: E731
    results = {b: static_run(ours, arrays, b) for b in ("interpreter", "llvm")}
    weights = results["llvm"][2]
    results["eager"] = (*eager_run(ours, arrays, weights), weights)
    want, want_grads = torch_run(lambda a, b: F.conv2d(a, b, **kwargs), arrays, weights)
    for out, grads, _ in results.values():
        _close(out, want, dtype)
        for got, expected in zip(grads, want_grads):
            _close(got, expected, dtype)


@needs_torch
@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs",
    [
        ((2, 4, 3, 3), (4, 2, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1}),
        ((1, 4, 4, 5), (4, 3, 2, 3), {"stride": (2, 1), "groups": 2}),
        ((1, 2, 3, 3), (2, 3, 3, 3), {"dilation": 2, "padding": 1}),
    ],
)
def test_conv_transpose2d_matches_pytorch(x_shape, w_shape, kwargs):
    arrays = _arrays([x_shape, w_shape], np.float64)
    ours = lambda a, b: gj.conv_transpose2d(a, b, **kwargs)  # noqa: E731
    out, grads, weights = static_run(ours, arrays, "llvm")
    want, want_grads = torch_run(lambda a, b: F.conv_transpose2d(a, b, **kwargs), arrays, weights)
    _close(out, want, np.float64)
    for got, expected in zip(grads, want_grads):
        _close(got, expected, np.float64)


def test_conv_transpose2d_matches_numpy():
    x, w = _arrays([(2, 4, 3, 3), (4, 2, 3, 3)], np.float64)
    kwargs = {"stride": 2, "padding": 1, "output_padding": 1}
    out = gj.conv_transpose2d(gj.tensor(x), gj.tensor(w), **kwargs).numpy()
    _close(out, conv_transpose_ref(x, w, (2, 2), (1, 1), (1, 1)), np.float64)


@needs_torch
def test_conv1d_and_bias_match_pytorch():
    x, w, b = _arrays([(2, 3, 11), (4, 3, 3), (4,)], np.float32)
    kwargs = {"stride": 2, "padding": 1, "dilation": 2}
    out, _, _ = static_run(lambda *a: gj.conv1d(*a, **kwargs), [x, w, b], "llvm")
    want = F.conv1d(torch.tensor(x), torch.tensor(w), torch.tensor(b), **kwargs).numpy()
    _close(out, want, np.float32)
    same = gj.conv1d(gj.tensor(x), gj.tensor(w), padding="same").numpy()
    _close(same, F.conv1d(torch.tensor(x), torch.tensor(w), padding="same").numpy(), np.float32)


@pytest.mark.parametrize("dynamic", [False, True], ids=["fixed sizes", "sizes of the run"])
def test_random_windows_and_their_gradients_match_the_interpreter(dynamic):
    """Kernels, strides, dilations and paddings drawn at random, up to paddings past the
    kernel's reach (taps that never land inside the input, outputs all padding): the llvm
    backend's convolution and both gradients against NumPy's and the interpreter's,
    compiled for the fed sizes and for sizes of the run (image sides unknown). The llvm
    backend's im2col and col2im loop over the kernel's rows, each row's range of outputs
    inside the input computed when the code runs."""
    rng = np.random.default_rng(17)
    for _ in range(8):
        kernel = tuple(int(k) for k in rng.integers(1, 6, size=2))
        stride = tuple(int(s) for s in rng.integers(1, 4, size=2))
        dilation = tuple(int(d) for d in rng.integers(1, 4, size=2))
        padding = tuple(int(p) for p in rng.integers(0, 2 * max(kernel) + 1, size=2))
        reach = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
        side = tuple(int(rng.integers(max(1, r - 2 * p), r + 9)) for r, p in zip(reach, padding))
        x, w = _arrays([(2, 3, *side), (4, 3, *kernel)], np.float32, seed=int(rng.integers(99)))
        kwargs = {"stride": stride, "padding": padding, "dilation": dilation}
        graph = gj.Graph()
        with graph.as_default():
            xp = gj.placeholder(gj.float32, [None, 3, None, None] if dynamic else x.shape)
            wp = gj.placeholder(gj.float32, w.shape)
            y = gj.conv2d(xp, wp, **kwargs)
            gy = gj.placeholder(gj.float32, [None] * 4)
            grads = gj.gradients(y, [xp, wp], grad_ys=[gy])
        g = rng.uniform(-1, 1, numpy_conv(x, w, **kwargs).shape).astype(np.float32)
        feed = {xp: x, wp: w, gy: g}
        want, got = (
            gj.Session(graph, backend=b, dynamic=dynamic or None).run([y, *grads], feed)
            for b in BACKENDS
        )
        what = f"kernel {kernel}, stride {stride}, dilation {dilation}, padding {padding}"
        _close(got[0], numpy_conv(x, w, **kwargs), np.float32)
        for got_value, want_value in zip(got, want):
            assert got_value.shape == want_value.shape, what
            _close(got_value, want_value, np.float32)


def test_conv2d_bias_is_added_per_channel():
    x, w, b = _arrays([(2, 3, 5, 5), (4, 3, 3, 3), (4,)], np.float64)
    out, grads, weights = static_run(lambda *a: gj.conv2d(*a, padding=1), [x, w, b], "llvm")
    _close(out, numpy_conv(x, w, padding=1) + b[:, None, None], np.float64)
    _close(grads[2], weights.sum(axis=(0, 2, 3)), np.float64)


def test_unknown_batch_size_is_specialised_when_fed():
    """A placeholder [None, C, H, W]: one graph runs batches of 1 and 3, gradients too."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 3, 6, 6])
        w = gj.Variable(_arrays([(4, 3, 3, 3)], np.float32)[0])
        y = gj.max_pool2d(gj.conv2d(x, w, stride=2, padding=1), 2)
        (dx,) = gj.gradients(gj.sum(y), [x])
    with gj.Session(g) as sess:
        for n in (1, 3):
            xv = _arrays([(n, 3, 6, 6)], np.float32, seed=n)[0]
            out, grad = sess.run([y, dx], {x: xv})
            conv = numpy_conv(xv, sess.run(w), stride=2, padding=1)
            _close(out, pool_ref(conv, (2, 2), (2, 2), (0, 0), "max"), np.float32)
            assert grad.shape == xv.shape


def test_second_derivative_through_conv2d():
    """d/dw of Σ (d/dx Σ conv(x, w)²)·v, against finite differences of the first derivative."""
    x, w = _arrays([(1, 2, 5, 5), (2, 2, 3, 3)], np.float64)
    v = np.random.default_rng(3).uniform(-1, 1, x.shape)
    g = gj.Graph()
    with g.as_default():
        xp, wp = gj.placeholder(gj.float64, x.shape), gj.placeholder(gj.float64, w.shape)
        y = gj.conv2d(xp, wp, stride=2, padding=1)
        (dx,) = gj.gradients(gj.sum(y * y), [xp])
        first = gj.sum(dx * gj.constant(v))
        (dw,) = gj.gradients(first, [wp])
    with gj.Session(g, backend="llvm") as sess:
        got = sess.run(dw, {xp: x, wp: w})
        eps, expected = 1e-6, np.zeros_like(w)
        for k in np.ndindex(*w.shape):
            step = np.zeros_like(w)
            step[k] = eps
            plus, minus = (sess.run(first, {xp: x, wp: w + s}) for s in (step, -step))
            expected[k] = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)


# ---- pooling -------------------------------------------------------------------------------


def _pool_args(kwargs):
    kernel = _pairs(kwargs["kernel_size"])
    return kernel, _pairs(kwargs.get("stride", kernel)), _pairs(kwargs.get("padding", 0))


@pytest.mark.parametrize("how", ["max", "avg"])
@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
@pytest.mark.parametrize("x_shape, kwargs", POOL_CONFIGS)
def test_pooling_matches_numpy(x_shape, kwargs, backend, how):
    (x,) = _arrays([x_shape], np.float64)
    pool = gj.max_pool2d if how == "max" else gj.avg_pool2d
    out, (dx,), weights = static_run(lambda a: pool(a, **kwargs), [x], backend)
    _close(out, pool_ref(x, *_pool_args(kwargs), how), np.float64)
    _close(dx, pool_grad_ref(x, weights, *_pool_args(kwargs), how), np.float64)


@needs_torch
@pytest.mark.parametrize("how", ["max", "avg"])
@pytest.mark.parametrize("x_shape, kwargs", POOL_CONFIGS)
def test_pooling_matches_pytorch(x_shape, kwargs, how):
    (x,) = _arrays([x_shape], np.float32)
    ours, theirs = (gj.max_pool2d, F.max_pool2d) if how == "max" else (gj.avg_pool2d, F.avg_pool2d)
    out, grads, weights = static_run(lambda a: ours(a, **kwargs), [x], "llvm")
    eager, eager_grads = eager_run(lambda a: ours(a, **kwargs), [x], weights)
    want, want_grads = torch_run(lambda a: theirs(a, **kwargs), [x], weights)
    for got, got_grads in ((out, grads), (eager, eager_grads)):
        _close(got, want, np.float32)
        _close(got_grads[0], want_grads[0], np.float32)


@needs_torch
def test_max_pool_routes_ties_to_the_first_maximum_as_pytorch_does():
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1:3, 1:3] = 1.0  # each 3x3 window with padding sees several equal maxima
    kwargs = {"kernel_size": 3, "stride": 1, "padding": 1}
    _, (dx,), weights = static_run(lambda a: gj.max_pool2d(a, **kwargs), [x], "llvm")
    _, (want,) = torch_run(lambda a: F.max_pool2d(a, **kwargs), [x], weights)
    np.testing.assert_allclose(dx, want, rtol=1e-6)


def test_max_pool_propagates_nan_and_never_picks_padding():
    x = -np.ones((1, 1, 3, 3))
    x[0, 0, 1, 1] = np.nan
    for backend in ("interpreter", "llvm"):
        out, (dx,), _ = static_run(lambda a: gj.max_pool2d(a, 2, 1, 1), [x], backend)
        assert np.isnan(out[0, 0, 1:3, 1:3]).all() and (out[0, 0, 0] == -1).all()
        assert dx[0, 0, 1, 1] != 0 and np.isfinite(dx).all()


@pytest.mark.parametrize("kwargs", [{"kernel_size": 2}, {"kernel_size": 3, "stride": 1}])
def test_max_pool_gradient_has_the_interpreters_bits_on_hostile_values(kwargs):
    """Ties, NaN, infinities and signed zeros: where windows share no tap (the llvm kernel
    routes g with a store per tap) bit for bit; where they do (adds in the windows' order,
    the interpreter in the taps') the same up to rounding, NaNs at the same places."""
    rng = np.random.default_rng(5)
    x = rng.integers(-2, 3, size=(3, 2, 9, 8)).astype(np.float32)  # many ties
    x[0, 0, 0, 0], x[1, 1, 4, 5], x[2, 0, 3, 3] = np.nan, np.inf, -np.inf
    x[2, 1] = -0.0
    graph = gj.Graph()
    with graph.as_default():
        xp = gj.placeholder(gj.float32, x.shape)
        pooled = gj.max_pool2d(xp, **kwargs)
        gp = gj.placeholder(gj.float32, pooled.shape)
        dx = gj.gradients(pooled, [xp], grad_ys=[gp])[0]
    g = rng.normal(size=pooled.shape).astype(np.float32)
    g[0, 0, 0, 0], g[1, 0, 1] = -0.0, np.nan
    want, got = (gj.Session(graph, backend=b).run(dx, {xp: x, gp: g}) for b in BACKENDS)
    if kwargs.get("stride", 2) == 2:
        np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))
    else:
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


BACKENDS = ("interpreter", "llvm")


def test_max_pool_gradient_of_random_windows_that_share_no_tap_is_bitwise_the_interpreters():
    """Kernels, strides past them, paddings (up to half the kernel) and sides drawn at
    random, integer-valued inputs (ties everywhere): the routed gradient, bit for bit."""
    rng = np.random.default_rng(11)
    for _ in range(10):
        kernel = tuple(int(k) for k in rng.integers(1, 4, size=2))
        stride = tuple(k + int(rng.integers(0, 2)) for k in kernel)
        padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
        side = tuple(int(rng.integers(k, k + 9)) for k in kernel)
        x = rng.integers(-2, 3, size=(2, 3, *side)).astype(np.float32)
        graph = gj.Graph()
        with graph.as_default():
            xp = gj.placeholder(gj.float32, x.shape)
            pooled = gj.max_pool2d(xp, kernel, stride, padding)
            gp = gj.placeholder(gj.float32, pooled.shape)
            dx = gj.gradients(pooled, [xp], grad_ys=[gp])[0]
        g = rng.normal(size=pooled.shape).astype(np.float32)
        want, got = (gj.Session(graph, backend=b).run(dx, {xp: x, gp: g}) for b in BACKENDS)
        np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))


def _hostile_pooling_inputs(rng, shape, dtype):
    """Integer values (ties in most windows), a NaN before and after a larger value, +-inf,
    a window of signed zeros, a window of NaNs; the cotangent with -0.0 and a NaN."""
    x = rng.integers(-2, 3, size=shape).astype(dtype)
    flat = x.reshape(-1)
    flat[rng.integers(0, flat.size, size=4)] = np.nan
    flat[rng.integers(0, flat.size, size=2)] = np.inf
    flat[rng.integers(0, flat.size, size=2)] = -np.inf
    x[..., :2, :2] = -0.0
    x[-1, -1, -2:, -2:] = np.nan
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("padding", [0, 1])
def test_two_by_two_max_pooling_is_the_interpreters_bits_at_every_row_width(dtype, padding):
    """2x2 stride-2 max pooling and its gradient load two input rows a step and split the
    taps by shuffles (codegen/llvm/conv.py, _Pairs), `lanes` outputs a step, the last step
    overlapping the one before: row widths from 1 output to past two steps of 16, odd
    sides (an uncovered last row and column), padding, and hostile values give the
    interpreter's bits; so do sizes known only when the program runs (the step's width is
    chosen from the first size seen)."""
    rng = np.random.default_rng(21)
    for width in [2, 3, 8, 9, 17, 33, 40, 70]:  # (1 to 35 outputs: each step width, overlaps)
        shape = (2, 3, 5 + width % 3, width)
        x = _hostile_pooling_inputs(rng, shape, dtype)
        graph = gj.Graph()
        with graph.as_default():
            xp = gj.placeholder(np.dtype(dtype).name, x.shape)
            pooled = gj.max_pool2d(xp, 2, 2, padding)
            gp = gj.placeholder(np.dtype(dtype).name, pooled.shape)
            dx = gj.gradients(pooled, [xp], grad_ys=[gp])[0]
        g = rng.normal(size=pooled.shape).astype(dtype)
        g.reshape(-1)[:2] = (-0.0, np.nan)
        feeds = {xp: x, gp: g}
        want = gj.Session(graph, backend="interpreter").run([pooled, dx], feeds)
        llvm = gj.Session(graph, backend="llvm")
        llvm.run([pooled, dx], {xp: x[..., ::-1].copy(), gp: g + 1})  # (other maxima first:
        got = llvm.run([pooled, dx], feeds)  # every element of the reused buffers rewritten)
        for w, o in zip(want, got):
            assert o.tobytes() == w.tobytes(), (width, padding)
    graph = gj.Graph()  # sizes of the run: one program, compiled at the widest
    with graph.as_default():
        xp = gj.placeholder(np.dtype(dtype).name, (None, 3, None, None))
        pooled = gj.max_pool2d(xp, 2, 2, padding)
        dx = gj.gradients(gj.sum(pooled * pooled), [xp])[0]
    sessions = [gj.Session(graph, backend=b, dynamic=True) for b in BACKENDS]
    for width in [64, 9, 2]:
        x = _hostile_pooling_inputs(rng, (2, 3, 7, width), dtype)
        want, got = (s.run([pooled, dx], {xp: x}) for s in sessions)
        for w, o in zip(want, got):
            assert o.tobytes() == w.tobytes(), ("dynamic", width, padding)


@needs_torch
@pytest.mark.parametrize("size", [1, (2, 3), (None, 2)])
def test_adaptive_avg_pool2d_matches_pytorch(size):
    (x,) = _arrays([(2, 3, 4, 6)], np.float32)
    out, (dx,), weights = static_run(lambda a: gj.adaptive_avg_pool2d(a, size), [x], "llvm")
    want, (want_dx,) = torch_run(lambda a: F.adaptive_avg_pool2d(a, size), [x], weights)
    _close(out, want, np.float32)
    _close(dx, want_dx, np.float32)


# ---- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x, w: gj.conv2d(x, w[:, :2]), "channels"),
        (lambda x, w: gj.conv2d(x, w, groups=2), "channels"),
        (lambda x, w: gj.conv2d(x, w, stride=2, padding="same"), "strided"),
        (lambda x, w: gj.conv2d(x[:, :, :2, :2], w), "does not fit"),
        (lambda x, w: gj.conv2d(x, w, stride=0), "positive"),
        (lambda x, w: gj.conv2d(x[0], w), "rank 4"),
        (lambda x, w: gj.max_pool2d(x, 2, padding=2), "half the kernel"),
        (lambda x, w: gj.adaptive_avg_pool2d(x, 4), "divide"),
    ],
)
def test_errors_name_the_problem(call, match):
    x, w = (gj.tensor(a) for a in _arrays([(1, 3, 6, 6), (4, 3, 3, 3)], np.float32))
    with pytest.raises(ShapeError, match=match):
        call(x, w)


def test_integer_inputs_are_refused():
    x = gj.tensor(np.ones((1, 1, 3, 3), np.int64))
    with pytest.raises(gj.errors.DTypeError, match="floating-point"):
        gj.conv2d(x, x)


# ---- cuda, in Numba's simulator --------------------------------------------------------------

CUDA_SCRIPT = textwrap.dedent(
    """
    import numpy as np, graphjit as gj
    from test_conv import static_run
    rng = np.random.default_rng(0)
    cases = [
        (lambda x, w: gj.conv2d(x, w, stride=(2, 1), padding=1, dilation=(1, 2), groups=2),
         [(1, 4, 5, 6), (2, 2, 3, 2)]),
        (lambda x, w: gj.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
         [(1, 2, 3, 3), (2, 3, 3, 3)]),
        (lambda x: gj.max_pool2d(x, 3, 2, 1), [(1, 2, 5, 4)]),
        (lambda x: gj.avg_pool2d(x, 2, 1, 1), [(1, 2, 4, 3)]),
    ]
    for build, shapes in cases:
        arrays = [rng.uniform(-1, 1, s) for s in shapes]
        want, want_grads, _ = static_run(build, arrays, "interpreter")
        got, grads, _ = static_run(build, arrays, "cuda")
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
        for a, b in zip(grads, want_grads):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    print("cuda ok")
    """
)


def test_cuda_kernels_match_the_interpreter_in_the_simulator():
    pytest.importorskip("numba")
    done = run_script_simulated(CUDA_SCRIPT, [ROOT / "tests", ROOT / "tests" / "static"])
    assert done.returncode == 0 and "cuda ok" in done.stdout, done.stdout + done.stderr[-4000:]


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_an_empty_batch_runs_forward_and_backward(backend):
    """Batch 0: the reference kernels reshaped with -1, which NumPy cannot infer for an
    empty array (the interpreter raised where llvm returned empty results)."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [0, 3, 5, 5], name="x")
        w = gj.placeholder(gj.float32, [4, 3, 3, 3], name="w")
        y = gj.nn.max_pool2d(gj.nn.conv2d(x, w, padding=1), 2)
        t = gj.nn.avg_pool2d(gj.nn.conv_transpose2d(x, gj.transpose(w, [1, 0, 2, 3])), 2)
        grads = gj.gradients(gj.sum(y) + gj.sum(t), [x, w])
    feeds = {x: np.zeros((0, 3, 5, 5), np.float32), w: np.ones((4, 3, 3, 3), np.float32)}
    out_y, out_t, dx, dw = gj.Session(g, backend=backend).run([y, t, *grads], feeds)
    assert out_y.shape == (0, 4, 2, 2) and out_t.shape == (0, 4, 3, 3)
    assert dx.shape == (0, 3, 5, 5)
    np.testing.assert_array_equal(dw, np.zeros((4, 3, 3, 3), np.float32))


def test_small_images_in_blocks_give_one_threads_bits_and_the_interpreters_values():
    """LeNet-sized convolutions (each image's product too small to split) run in fixed
    blocks of images on graphjit's threads, the filter gradient summing each block's
    images into partial sums of its own and then the blocks in order: the same bits on
    one thread as on two, and the interpreter's values, for a grouped strided padded
    convolution, a pointwise one, and batches smaller than the blocks."""
    rng = np.random.default_rng(12)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 4, 11, 9], name="x")
        w = gj.Variable(rng.normal(size=(6, 2, 3, 3)).astype(np.float32) * 0.3, name="w")
        p = gj.Variable(rng.normal(size=(5, 6, 1, 1)).astype(np.float32) * 0.3, name="p")
        h = gj.conv2d(x, w, stride=2, padding=1, groups=2)
        y = gj.conv2d(gj.relu(h), p)
        loss = gj.reduce_sum(y * y)
        fetches = [y, *gj.gradients(loss, [x, w, p])]
    for batch in [37, 3]:
        feed = {x: rng.normal(size=(batch, 4, 11, 9)).astype(np.float32)}
        want = gj.Session(g, backend="interpreter").run(fetches, feed)
        two = gj.Session(g).run(fetches, feed)
        gj.set_num_threads(1)
        try:
            one = gj.Session(g).run(fetches, feed)
        finally:
            gj.set_num_threads(gj.config.num_threads())
        for a, b, c in zip(two, one, want, strict=True):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-4)

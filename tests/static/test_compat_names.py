"""The TF1 and PyTorch names of frontend/compat.py and the PyTorch losses of losses.py,
checked against NumPy and SciPy: eagerly and in one graph per dtype run on the interpreter
and llvm, with gradients against float64 finite differences (eager gradcheck) and the
graph's gradients (gj.gradients) against the eager ones. The edge cases where their
semantics are subtle are checked by hand. PyTorch's values and gradients: the eager file
tests/eager/test_compat_names_torch.py."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import scipy.special

import graphjit as gj

# (NaN and infinite inputs are the point of some cases: NumPy's warnings about them are not)
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
F = gj.nn.functional
BACKENDS = ["interpreter", "llvm"]
RNG = np.random.default_rng(7)


def _normal(*shape):
    return RNG.normal(size=shape)


def _positive(*shape):
    return RNG.uniform(0.5, 2.0, shape)


def _nonzero(*shape):
    return RNG.uniform(0.5, 2.0, shape) * RNG.choice([-1.0, 1.0], shape)


def _np_moments(x, axes, keepdims=False):
    return x.mean(axis=axes, keepdims=keepdims), x.var(axis=axes, keepdims=keepdims)


def _np_roll(x, shifts, dims):
    return np.roll(x, shifts, dims)


def _np_bce(p, t):
    return -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log1p(-p), -100))


def _np_bce_logits(x, t, pos_weight=1.0):
    log_sigmoid, log_one_minus = -np.logaddexp(0, -x), -np.logaddexp(0, x)
    return -(pos_weight * t * log_sigmoid + (1 - t) * log_one_minus)


def _np_smooth_l1(x, y, beta):
    d = np.abs(x - y)
    return np.where(d < beta, 0.5 * d**2 / beta, d - 0.5 * beta)


def _np_nll(logp, target, weight, ignore_index=-100):
    kept = target != ignore_index
    w = np.where(kept, weight[np.where(kept, target, 0)], 0.0)
    picked = -np.take_along_axis(logp, np.where(kept, target, 0)[:, None], 1)[:, 0]
    return np.sum(w * picked) / np.sum(w)


def _np_diag_matrix(v, k):
    return np.diag(v, k)


@dataclass(frozen=True)
class Case:
    """`fn(*tensors)` with gj, `ref(*arrays)` with NumPy; inputs are arrays (float ones
    take the dtype under test); `grad`: differentiable in its float inputs."""

    name: str
    fn: object
    ref: object
    inputs: tuple
    grad: bool = True


X34, Y34, P34, N34 = _normal(3, 4), _normal(3, 4), _positive(3, 4), _nonzero(3, 4)
V3, V4 = _normal(3), _normal(4)
PROBS, TARGETS = RNG.uniform(0.05, 0.95, (3, 4)), RNG.uniform(0, 1, (3, 4))
CLASSES = np.array([0, 3, -100, 2, 1])
LOGITS = scipy.special.log_softmax(_normal(5, 4), axis=1)
CLASS_WEIGHTS = np.array([0.5, 1.0, 2.0, 1.5])

CASES = [
    Case("multiply", gj.multiply, np.multiply, (X34, Y34)),
    Case("subtract", gj.subtract, np.subtract, (X34, V4)),
    Case("divide", gj.divide, np.divide, (X34, N34)),
    Case("add_n", lambda x, y, z: gj.add_n([x, y, z]), lambda x, y, z: x + y + z,
         (X34, Y34, P34)),
    Case("squared_difference", gj.squared_difference, lambda x, y: (x - y) ** 2, (X34, V4)),
    Case("reciprocal", gj.reciprocal, np.reciprocal, (N34,)),
    Case("fill", lambda v: gj.fill([2, 3], v), lambda v: np.full((2, 3), v), (np.array(1.5),)),
    Case("log2", gj.log2, np.log2, (P34,)),
    Case("log10", gj.log10, np.log10, (P34,)),
    Case("tan", gj.tan, np.tan, (X34,)),
    Case("logical_xor", lambda x, y: gj.logical_xor(x > 0, y > 0),
         lambda x, y: np.logical_xor(x > 0, y > 0), (X34, Y34), grad=False),
    Case("bias_add", gj.nn.bias_add, lambda x, b: x + b, (X34, V4)),
    Case("bias_add NCHW", lambda x, b: gj.nn.bias_add(x, b, data_format="NCHW"),
         lambda x, b: x + b[:, None], (_normal(2, 3, 4), V3)),
    Case("moments", lambda x: gj.nn.moments(x, [0]), lambda x: _np_moments(x, 0), (X34,)),
    Case("moments keepdims", lambda x: gj.nn.moments(x, [0, 1], keepdims=True),
         lambda x: _np_moments(x, (0, 1), True), (X34,)),
    Case("l2_normalize", lambda x: gj.nn.l2_normalize(x, axis=1),
         lambda x: x / np.sqrt(np.maximum(np.sum(x**2, 1, keepdims=True), 1e-12)), (X34,)),
    Case("l2_normalize all", gj.nn.l2_normalize, lambda x: x / np.sqrt(np.sum(x**2)), (X34,)),
    Case("embedding_lookup", lambda p: gj.nn.embedding_lookup(p, [[2, 0], [1, 2]]),
         lambda p: p[[[2, 0], [1, 2]]], (X34,)),
    Case("clamp", lambda x: gj.clamp(x, -0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), (X34,)),
    Case("clamp min", lambda x: gj.clamp(x, min=0.1), lambda x: np.maximum(x, 0.1), (X34,)),
    Case("mm", lambda x, y: gj.mm(x, y.T), lambda x, y: x @ y.T, (X34, Y34)),
    Case("mv", gj.mv, np.matmul, (X34, V4)),
    Case("outer", gj.outer, np.outer, (V3, V4)),
    Case("amax", lambda x: gj.amax(x, 1), lambda x: np.amax(x, 1), (X34,)),
    Case("amax all keepdim", lambda x: gj.amax(x, keepdim=True),
         lambda x: np.amax(x, keepdims=True), (X34,)),
    Case("amin", lambda x: gj.amin(x, (0, 1)), np.amin, (X34,)),
    Case("amin keepdim", lambda x: gj.amin(x, -1, True), lambda x: np.amin(x, -1, keepdims=True),
         (X34,)),
    Case("fmod", gj.fmod, np.fmod, (X34 * 5, N34)),
    Case("fmod scalar", lambda x: gj.fmod(x, -1.5), lambda x: np.fmod(x, -1.5), (X34 * 5,)),
    Case("isclose", lambda x, y: gj.isclose(x, x + y * 1e-6, rtol=1e-3),
         lambda x, y: np.isclose(x, x + y * 1e-6, rtol=1e-3), (X34, Y34), grad=False),
    Case("nan_to_num", lambda x: gj.nan_to_num(gj.log(x)), lambda x: np.nan_to_num(np.log(x)),
         (X34,)),
    Case("roll", lambda x: gj.roll(x, -1, 1), lambda x: np.roll(x, -1, 1), (X34,)),
    Case("roll two", lambda x: gj.roll(x, (1, 6), (0, -1)), lambda x: np.roll(x, (1, 6), (0, 1)),
         (X34,)),
    Case("roll flat", lambda x: gj.roll(x, 5), lambda x: np.roll(x, 5), (X34,)),
    Case("diag 1-D", gj.diag, np.diag, (V4,)),
    Case("diag 1-D offset", lambda v: gj.diag(v, -2), lambda v: np.diag(v, -2), (V3,)),
    Case("diag 2-D", gj.diag, np.diag, (X34,)),
    Case("diag 2-D offset", lambda x: gj.diag(x, 2), lambda x: np.diag(x, 2), (X34,)),
    Case("nll_loss", lambda x: F.nll_loss(x, CLASSES), lambda x: _np_nll(x, CLASSES, np.ones(4)),
         (LOGITS,)),
    Case("nll_loss weight none", lambda x: F.nll_loss(x, CLASSES, weight=CLASS_WEIGHTS,
                                                      reduction="sum"),
         lambda x: _np_nll(x, CLASSES, CLASS_WEIGHTS) * CLASS_WEIGHTS[[0, 3, 2, 1]].sum(),
         (LOGITS,)),
    Case("binary_cross_entropy", F.binary_cross_entropy, lambda p, t: _np_bce(p, t).mean(),
         (PROBS, TARGETS)),
    Case("binary_cross_entropy_with_logits",
         lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="none"),
         _np_bce_logits, (X34 * 3, TARGETS)),
    Case("binary_cross_entropy_with_logits pos_weight",
         lambda x, t: F.binary_cross_entropy_with_logits(x, t, pos_weight=np.arange(1.0, 5.0),
                                                         reduction="sum"),
         lambda x, t: _np_bce_logits(x, t, np.arange(1.0, 5.0)).sum(), (X34 * 3, TARGETS)),
    Case("l1_loss", F.l1_loss, lambda x, y: np.abs(x - y).mean(), (X34, Y34)),
    Case("smooth_l1_loss", lambda x, y: F.smooth_l1_loss(x, y, reduction="none", beta=0.8),
         lambda x, y: _np_smooth_l1(x, y, 0.8), (X34, Y34)),
    Case("smooth_l1_loss beta 0", lambda x, y: F.smooth_l1_loss(x, y, "sum", beta=0.0),
         lambda x, y: np.abs(x - y).sum(), (X34, Y34)),
]  # fmt: skip
IDS = [c.name for c in CASES]


def _inputs(case: Case, dtype) -> list:
    return [a.astype(dtype) if a.dtype.kind == "f" else a for a in case.inputs]


def _leaves(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _tol(dtype) -> dict:
    return {"rtol": 2e-5, "atol": 2e-6} if dtype == np.float32 else {"rtol": 1e-11, "atol": 1e-12}


def _check(got, expected, dtype, what) -> None:
    for g, e in zip(_leaves(got), _leaves(expected), strict=True):
        g = g.numpy() if hasattr(g, "numpy") else np.asarray(g)
        e = np.asarray(e)
        assert g.shape == e.shape, f"{what}: shape {g.shape} != {e.shape}"
        if e.dtype.kind == "f":
            assert g.dtype == dtype, f"{what}: dtype {g.dtype}"
            np.testing.assert_allclose(g, e, err_msg=what, **_tol(dtype))
        else:
            np.testing.assert_array_equal(g, e, err_msg=what)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_eager_matches_numpy(dtype):
    for case in CASES:
        arrays = _inputs(case, dtype)
        _check(case.fn(*map(gj.tensor, arrays)), case.ref(*arrays), dtype, case.name)


def _graph(dtype):
    """One graph holding every case, its placeholders, results and gradients (of the sum
    of each result times fixed weights, with respect to the float inputs)."""
    g = gj.Graph()
    fetches, grads, feed = {}, {}, {}
    with g.as_default():
        for case in CASES:
            arrays = _inputs(case, dtype)
            holders = [gj.placeholder(a.dtype, a.shape) for a in arrays]
            feed.update(zip(holders, arrays, strict=True))
            out = _leaves(case.fn(*holders))
            fetches[case.name] = out
            if case.grad:
                floats = [h for h in holders if h.dtype.is_floating]
                total = gj.add_n([gj.sum(o * _weights(o.shape, dtype)) for o in out])
                grads[case.name] = gj.gradients(total, floats)
    return g, fetches, grads, feed


def _weights(shape, dtype):
    return np.linspace(0.5, 1.5, int(np.prod(shape))).reshape(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("backend", BACKENDS)
def test_graph_matches_numpy_and_eager_gradients(backend, dtype):
    g, fetches, grads, feed = _graph(dtype)
    with gj.Session(g, backend=backend) as sess:
        got, got_grads = sess.run([fetches, grads], feed)
    for case in CASES:
        arrays = _inputs(case, dtype)
        _check(got[case.name], case.ref(*arrays), dtype, f"{backend} {case.name}")
        if not case.grad:
            continue
        tensors = [gj.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
        out = _leaves(case.fn(*tensors))
        total = gj.add_n([gj.sum(o * _weights(o.shape, dtype)) for o in out])
        eager = gj.autograd.grad(total, [t for t in tensors if t.requires_grad])
        _check(got_grads[case.name], [e.numpy() for e in eager], dtype, f"grad {case.name}")


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.grad], ids=[c.name for c in CASES if c.grad]
)
def test_gradients_match_finite_differences(case):
    tensors = [gj.tensor(a, requires_grad=a.dtype.kind == "f") for a in case.inputs]
    weights = [_weights(np.shape(r), np.float64) for r in _leaves(case.ref(*case.inputs))]

    def fn(*args):
        return gj.add_n([gj.sum(o * w) for o, w in zip(_leaves(case.fn(*args)), weights)])

    assert gj.autograd.gradcheck(fn, tensors, atol=1e-6, rtol=1e-5)


# ---- TF1 names -------------------------------------------------------------------------------


def test_tf1_names_take_name_and_fetch_by_it():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [2], name="x")
        gj.multiply(x, 2.0, name="doubled")
        gj.add_n([x, x], name="total")
        gj.squared_difference(x, 1.0, name="sq")
        gj.range(3, name="counts")
        gj.logical_xor(x > 0, True, name="xor")
        done = gj.no_op()
    with gj.Session(g, backend="interpreter") as sess:
        feed = {"x:0": np.array([1.0, -2.0], np.float32)}
        assert sess.run(done, feed) is None
        got = sess.run(["doubled:0", "total:0", "sq:0", "counts:0", "xor:0"], feed)
    np.testing.assert_array_equal(got[0], [2.0, -4.0])
    np.testing.assert_array_equal(got[1], [2.0, -4.0])
    np.testing.assert_array_equal(got[2], [0.0, 9.0])
    assert got[3].dtype == np.int32 and got[3].tolist() == [0, 1, 2]
    assert got[4].tolist() == [False, True]


def test_range_and_fill_follow_tf1():
    g = gj.Graph()
    with g.as_default():
        ints, floats = gj.range(2, 11, 3), gj.range(0.0, 1.0, 0.25)
        down, typed = gj.range(5, 0, -2), gj.range(4, dtype=gj.float64)
        filled, scalar = gj.fill([2, 0, 3], 7), gj.fill([], 2.5)
    with gj.Session(g, backend="llvm") as sess:
        got = sess.run([ints, floats, down, typed, filled, scalar])
    assert got[0].dtype == np.int32 and got[0].tolist() == [2, 5, 8]
    assert got[1].dtype == np.float32 and got[1].tolist() == [0.0, 0.25, 0.5, 0.75]
    assert got[2].tolist() == [5, 3, 1] and got[3].dtype == np.float64
    assert got[4].dtype == np.int32 and got[4].shape == (2, 0, 3) and got[5] == 2.5
    assert gj.range(3).tolist() == [0, 1, 2]  # eager
    with pytest.raises(gj.ShapeError, match="Python numbers"):
        gj.range(gj.tensor(3))
    with pytest.raises(gj.ShapeError, match="scalar"):
        gj.fill([2], [1.0, 2.0])


def test_add_n_refuses_mismatched_shapes_and_empty_lists():
    with pytest.raises(gj.ShapeError, match="one shape"):
        gj.add_n([gj.ones(2), gj.ones(2, 1)])
    with pytest.raises(gj.GraphjitError, match="non-empty"):
        gj.add_n([])


def test_embedding_lookup_over_shards():
    params = _normal(7, 3)
    ids = np.array([[6, 0], [3, 5], [1, 1]])
    for strategy, shards in [
        ("mod", [params[0::3], params[1::3], params[2::3]]),  # id i: shard i % 3, row i // 3
        ("div", [params[:3], params[3:5], params[5:]]),
    ]:
        got = gj.nn.embedding_lookup([gj.tensor(s) for s in shards], ids, strategy)
        np.testing.assert_array_equal(got.numpy(), params[ids], err_msg=strategy)


def test_bias_add_checks_the_channels():
    with pytest.raises(gj.ShapeError, match="channels"):
        gj.nn.bias_add(gj.ones(2, 3), gj.ones(4))
    with pytest.raises(gj.ShapeError, match="rank >= 2"):
        gj.nn.bias_add(gj.ones(3), gj.ones(3))


# ---- PyTorch names: edge cases -----------------------------------------------------------------


def _on_backends(fn, *arrays):
    """fn's results eagerly and on each backend, in that order."""
    results = [fn(*map(gj.tensor, arrays))]
    g = gj.Graph()
    with g.as_default():
        holders = [gj.placeholder(a.dtype, a.shape) for a in arrays]
        out = fn(*holders)
    for backend in BACKENDS:
        with gj.Session(g, backend=backend) as sess:
            results.append(sess.run(out, dict(zip(holders, arrays, strict=True))))
    return [r.numpy() if hasattr(r, "numpy") else r for r in results]


def test_fmod_takes_the_dividends_sign_exactly():
    x = np.array([-5.0, 5.0, -5.0, 5.0, -1e-20, 7.5, -7.5, 3.0, -3.0, 2.0, np.inf, 1.0])
    y = np.array([3.0, -3.0, -3.0, 3.0, 3.0, 2.0, 2.0, 3.0, 3.0, np.inf, 2.0, 0.0])
    for dtype in (np.float64, np.float32):
        for got in _on_backends(gj.fmod, x.astype(dtype), y.astype(dtype)):
            np.testing.assert_array_equal(got, np.fmod(x, y).astype(dtype))
            assert np.signbit(got[4]) and got.dtype == dtype
    xi = np.array([-5, 5, -5, 5, -6, 0, 7, -(2**31)], np.int32)
    yi = np.array([3, -3, -3, 3, 3, -4, 1, 3], np.int32)
    for got in _on_backends(gj.fmod, xi, yi):
        np.testing.assert_array_equal(got, np.fmod(xi, yi))
        assert got.dtype == np.int32
    with pytest.raises(gj.RuntimeCheckError):
        gj.fmod(gj.tensor([1, 2]), gj.tensor([1, 0]))
    with pytest.raises(gj.DTypeError):
        gj.fmod(gj.tensor([True]), True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("backend", ["eager", *BACKENDS])
def test_logarithms_are_exact_at_powers_of_their_base(backend, dtype):
    """log(x) / log(10) alone gives log10(1000) = 2.9999999999999996, and floor(log10(x))
    miscounts digits; each backend gives the integer at every power the dtype holds (and
    stays within 2 ulps of NumPy elsewhere, 0 and inf included)."""
    info = np.finfo(dtype)
    tens = np.array([float(f"1e{k}") for k in range(-37, 39)], dtype)
    twos = np.ldexp(1.0, np.arange(info.minexp - info.nmant, info.maxexp)).astype(dtype)
    other = np.array([0.0, np.inf, 3.0, 999.0, 1001.0, 0.3, 7e-5], dtype)
    for fn, exponents, base in ((gj.log10, np.arange(-37, 39), tens), (gj.log2, None, twos)):
        x = np.concatenate([base, other])
        if backend == "eager":
            got = fn(gj.tensor(x)).numpy()
        else:
            g = gj.Graph()
            with g.as_default():
                p = gj.placeholder(dtype, [None])
                out = fn(p)
            # (subnormal powers of 2 too: llvm flushes them to 0 by default, as XLA)
            session = gj.Session(g, backend=backend, flush_denormals=False)
            got = session.run(out, {p: x})
        want_at_powers = exponents if exponents is not None else np.log2(twos.astype(np.float64))
        np.testing.assert_array_equal(got[: len(base)], want_at_powers.astype(dtype))
        with np.errstate(divide="ignore"):
            reference = (np.log10 if fn is gj.log10 else np.log2)(other.astype(np.float64))
        np.testing.assert_allclose(got[len(base) :], reference, rtol=4 * info.eps)
    digits = np.floor(gj.log10(gj.tensor(np.array([999.0, 1000.0, 1001.0, 1e6]))).numpy())
    assert digits.tolist() == [2.0, 3.0, 3.0, 6.0]


def test_nan_to_num_replaces_nan_and_infinities():
    x = np.array([np.nan, np.inf, -np.inf, 1.5, -0.0])
    for dtype in (np.float64, np.float32, np.float16):
        want = np.nan_to_num(x.astype(dtype))
        for got in _on_backends(gj.nan_to_num, x.astype(dtype)):
            np.testing.assert_array_equal(got, want)
            assert got.dtype == dtype
    custom = lambda t: gj.nan_to_num(t, nan=-1.0, posinf=9.0, neginf=-9.0)
    for got in _on_backends(custom, x):
        np.testing.assert_array_equal(got, [-1.0, 9.0, -9.0, 1.5, 0.0])
    assert gj.nan_to_num(gj.tensor([3, -1])).tolist() == [3, -1]
    t = gj.tensor(x, requires_grad=True)
    gj.sum(gj.nan_to_num(t) * 0.5).backward()
    np.testing.assert_array_equal(t.grad.numpy(), [0.0, 0.0, 0.0, 0.5, 0.5])


def test_roll_with_negative_multiple_and_large_shifts():
    x = np.arange(24.0).reshape(2, 3, 4)
    for shifts, dims in [(-1, 2), (7, -1), ((1, -2), (0, 2)), ((2, -1), (1, 1)), (0, 0)]:
        for got in _on_backends(lambda t: gj.roll(t, shifts, dims), x):
            np.testing.assert_array_equal(got, np.roll(x, shifts, dims), err_msg=f"{shifts}")
    for got in _on_backends(lambda t: gj.roll(t, -5), x):
        np.testing.assert_array_equal(got, np.roll(x, -5))
    assert gj.roll(gj.zeros(0), 3).shape == (0,)
    with pytest.raises(gj.ShapeError, match="differ in length"):
        gj.roll(gj.tensor(x), (1, 2), 0)


def test_isclose_and_allclose_with_infinities_and_nan():
    a = np.array([1.0, np.inf, np.inf, -np.inf, np.nan, 1.0, 0.0])
    b = np.array([1.0 + 1e-6, np.inf, -np.inf, 1e308, np.nan, 1.1, 1e-9])
    for equal_nan in (False, True):
        want = np.isclose(a, b, equal_nan=equal_nan)
        for got in _on_backends(lambda x, y: gj.isclose(x, y, equal_nan=equal_nan), a, b):
            np.testing.assert_array_equal(got, want)
    ints = gj.tensor([100, 200])
    assert gj.isclose(ints, gj.tensor([101, 200]), rtol=0.01).tolist() == [True, True]
    assert gj.isclose(ints, gj.tensor([101, 200]), rtol=0, atol=0).tolist() == [False, True]
    assert gj.allclose(gj.tensor(a[:2]), gj.tensor(b[:2])) is True
    assert gj.allclose(np.array([1.0]), np.array([1.1])) is False
    assert gj.allclose(gj.tensor(a), gj.tensor(a), equal_nan=True) is True
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [None])
        close = gj.allclose(x, x + 1e-9)
    with gj.Session(g, backend="llvm") as sess:
        assert close.dtype == gj.bool_ and sess.run(close, {x: a[:2]}) == np.True_


def test_amax_and_amin_share_the_gradient_among_ties():
    x = gj.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], requires_grad=True)
    gj.sum(gj.amax(x, 1) + gj.amin(x, 1)).backward()
    np.testing.assert_allclose(x.grad.numpy(), [[1.0, 0.5, 0.5], [2 / 3, 2 / 3, 2 / 3]])


def test_matrix_products_check_ranks():
    with pytest.raises(gj.ShapeError, match="mm needs a 2-D"):
        gj.mm(gj.ones(2, 3, 4), gj.ones(4, 2))
    with pytest.raises(gj.ShapeError, match="vector"):
        gj.mv(gj.ones(2, 3), gj.ones(3, 1))
    with pytest.raises(gj.ShapeError, match="outer"):
        gj.outer(gj.ones(2, 2), gj.ones(2))
    with pytest.raises(gj.ShapeError, match="diag"):
        gj.diag(gj.ones(2, 2, 2))
    with pytest.raises(gj.GraphjitError, match="min, max"):
        gj.clamp(gj.ones(2))


def test_binary_cross_entropy_at_zero_and_one():
    p = np.array([0.0, 0.0, 1.0, 1.0, 0.5, 1e-50])
    t = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    want = [0.0, 100.0, 100.0, 0.0, np.log(2.0), 100.0]
    for got in _on_backends(lambda a, b: F.binary_cross_entropy(a, b, reduction="none"), p, t):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    pt = gj.tensor(p, requires_grad=True)
    F.binary_cross_entropy(pt, gj.tensor(t), reduction="sum").backward()
    assert np.all(np.isfinite(pt.grad.numpy())), pt.grad
    outside = F.binary_cross_entropy(gj.tensor([-0.5, 1.5, 0.5]), gj.tensor([1.0, 0.0, 0.0]),
                                     reduction="none")  # fmt: skip
    assert np.isnan(outside.numpy()[:2]).all() and np.isfinite(outside.numpy()[2])
    x = gj.tensor([-800.0, 0.0, 800.0], requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, gj.tensor([1.0, 1.0, 0.0]), reduction="none")
    np.testing.assert_allclose(loss.numpy(), [800.0, np.log(2.0), 800.0])
    gj.sum(loss).backward()
    np.testing.assert_allclose(x.grad.numpy(), [-1.0, -0.5, 1.0])


def test_one_hot_is_pytorchs():
    got = F.one_hot(gj.tensor([[0, 2], [1, 2]]))
    assert (
        got.dtype == gj.int64
        and got.numpy().tolist() == np.eye(3, dtype=int)[[[0, 2], [1, 2]]].tolist()
    )
    assert F.one_hot(gj.tensor([1]), 4).tolist() == [[0, 1, 0, 0]]
    assert F.one_hot(gj.tensor(np.zeros(0, np.int64)), 2).shape == (0, 2)
    with pytest.raises(gj.RuntimeCheckError, match="class values"):
        F.one_hot(gj.tensor([0, 3]), 3)
    with pytest.raises(gj.RuntimeCheckError, match="class values"):
        F.one_hot(gj.tensor([-1, 0]))
    with pytest.raises(gj.ShapeError, match="empty"):
        F.one_hot(gj.tensor(np.zeros(0, np.int64)))
    with pytest.raises(gj.DTypeError):
        F.one_hot(gj.tensor([1.0]), 2)
    g = gj.Graph()
    with g.as_default():
        labels = gj.placeholder(gj.int64, [None])
        rows = F.one_hot(labels, 3)
        with pytest.raises(gj.ShapeError, match="num_classes"):
            F.one_hot(labels)
    for backend in BACKENDS:
        with gj.Session(g, backend=backend) as sess:
            assert sess.run(rows, {labels: np.array([2, 0])}).tolist() == [[0, 0, 1], [1, 0, 0]]
            for bad in ([0, 3], [-1]):
                with pytest.raises(gj.RuntimeCheckError):
                    sess.run(rows, {labels: np.array(bad)})


def test_losses_check_their_arguments():
    with pytest.raises(gj.GraphjitError, match="reduction"):
        F.l1_loss(gj.ones(2), gj.ones(2), reduction="avg")
    with pytest.raises(gj.GraphjitError, match="beta"):
        F.smooth_l1_loss(gj.ones(2), gj.ones(2), beta=-1.0)
    with pytest.raises(gj.DTypeError, match="integer"):
        F.nll_loss(gj.ones(2, 3), gj.ones(2))
    with pytest.raises(gj.ShapeError):
        F.binary_cross_entropy(gj.ones(2, 3) * 0.5, gj.ones(3))
    # nll_loss: an out-of-range class gives NaN (PyTorch raises); (N, C, d) inputs
    assert np.isnan(F.nll_loss(gj.zeros(2, 3), gj.tensor([0, 3])).item())
    logp = scipy.special.log_softmax(_normal(2, 3, 4), axis=1)
    target = np.array([[0, 2, 1, 1], [2, 2, 0, 1]])
    want = -np.take_along_axis(logp, target[:, None], 1)[:, 0]
    got = F.nll_loss(gj.tensor(logp), gj.tensor(target), reduction="none")
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)

"""Slices with run-time bounds (issue 17): x[i], x[i:i + b], gj.slice (TF1), gj.dynamic_slice and
gj.dynamic_update_slice (JAX) — values against NumPy on the interpreter, llvm and the cuda
simulator (in a subprocess), out-of-range starts (clamped or a RuntimeCheckError), gradients
against float64 finite differences (second order too, and through a while loop), eager and
gj.function, and one epoch of minibatch training sliced by a loop counter in one Session.run."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from simulator import run_script_simulated

import graphjit as gj
from graphjit.ir.ops.dynamic_slice import static_length

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "autodiff"))
from fd import assert_close, check_gradients, numeric_grad  # noqa: E402

BACKENDS = ["interpreter", "llvm"]
ROOT = Path(__file__).resolve().parents[2]
X = np.arange(42, dtype=np.float64).reshape(7, 6) / 7.0


def _jnp_clamp(start: int, dim: int, size: int) -> int:
    """JAX's placement of a window: a negative start counts from the end, then the start is
    clamped into [0, dim - size]."""
    start = start + dim if start < 0 else start
    return min(max(start, 0), dim - size)


def forms(x, i, j):
    """Every indexing form this module supports, with its NumPy equivalent for starts i, j."""
    clamp = _jnp_clamp
    return [
        (x[i], lambda a, i, j: a[i]),
        (x[i : i + 3], lambda a, i, j: a[i : i + 3]),
        (x[i * 2 : (i + 1) * 2, 1:4], lambda a, i, j: a[i * 2 : (i + 1) * 2, 1:4]),
        (x[:, j], lambda a, i, j: a[:, j]),
        (x[None, i, ..., j : j + 2], lambda a, i, j: a[None, i, ..., j : j + 2]),
        (x[::2, j - 1 : j + 1], lambda a, i, j: a[::2, j - 1 : j + 1]),
        (x[-1, j], lambda a, i, j: a[-1, j]),
        (gj.slice(x, [i, 0], [2, -1]), lambda a, i, j: a[i : i + 2]),
        (gj.slice(x, [0, j], [-1, 2]), lambda a, i, j: a[:, j : j + 2]),
        (
            gj.dynamic_slice(x, [i, j], [3, 2]),
            lambda a, i, j: a[clamp(i, 7, 3) :][:3, clamp(j, 6, 2) :][:, :2],
        ),
        (
            gj.dynamic_update_slice(x, -np.ones((2, 3)), [i, j]),
            lambda a, i, j: _updated(a, -np.ones((2, 3)), clamp(i, 7, 2), clamp(j, 6, 3)),
        ),
    ]


def _updated(a, update, i, j):
    out = a.copy()
    out[i : i + update.shape[0], j : j + update.shape[1]] = update
    return out


def _graph(dtype=gj.int64, dims=(7, 6)):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, list(dims), name="x")
        i = gj.placeholder(dtype, [], name="i")
        j = gj.placeholder(dtype, [], name="j")
        cases = forms(x, i, j)
    return g, x, i, j, cases


# ---- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dims", [(7, 6), (None, None)], ids=["static", "unknown dims"])
def test_every_form_matches_numpy(backend, dims):
    g, x, i, j, cases = _graph(dims=dims)
    with gj.Session(g, backend=backend) as sess:
        for iv, jv in [(0, 1), (1, 3), (2, 4)]:
            got = sess.run([c for c, _ in cases], {x: X, i: iv, j: jv})
            for k, (value, (_, ref)) in enumerate(zip(got, cases)):
                np.testing.assert_array_equal(value, ref(X, iv, jv), err_msg=f"form {k}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_int32_starts_and_negative_index(backend):
    g, x, i, j, cases = _graph(dtype=gj.int32)
    with gj.Session(g, backend=backend) as sess:
        got = sess.run([cases[0][0], cases[3][0]], {x: X, i: -1, j: -6})
    np.testing.assert_array_equal(got[0], X[-1])
    np.testing.assert_array_equal(got[1], X[:, -6])


@pytest.mark.parametrize("backend", BACKENDS)
def test_jax_functions_clamp_out_of_range_starts(backend):
    """JAX's semantics: the window is moved back inside the operand, never read past it."""
    g, x, i, j, cases = _graph()
    fetch = [cases[9][0], cases[10][0]]
    with gj.Session(g, backend=backend) as sess:
        for iv, jv in [(-5, 9), (100, -100), (6, 5), (-1, -2)]:
            got = sess.run(fetch, {x: X, i: iv, j: jv})
            for value, (_, ref) in zip(got, cases[9:]):
                np.testing.assert_array_equal(value, ref(X, iv, jv))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("form, i_value", [(0, 7), (0, -8), (1, 5), (1, -1), (7, 6)])
def test_checked_forms_raise_out_of_range(backend, form, i_value):
    """x[i], x[i:i + b] and tf.slice: a start outside the operand is a RuntimeCheckError
    (NumPy's IndexError, TF1's error), on every backend."""
    g, x, i, j, cases = _graph()
    with gj.Session(g, backend=backend) as sess:
        with pytest.raises(gj.RuntimeCheckError, match="slice start out of range on axis 0"):
            sess.run(cases[form][0], {x: X, i: i_value, j: 1})


def test_static_lengths_are_read_from_the_graph():
    g = gj.Graph()
    with g.as_default():
        i = gj.placeholder(gj.int64, [], name="i")
        k = gj.placeholder(gj.int32, [], name="k")
        assert static_length(i, i + 4) == 4
        assert static_length(i * 8, (i + 1) * 8) == 8
        assert static_length(i - 1, 1 + i) == 2
        assert static_length(gj.cast(k, gj.int64) * 2, gj.cast(k * 2 + 3, gj.int64)) == 3
        assert static_length(None, i - i + 5) == 5
        assert static_length(i, k) is None
        assert static_length(i, i * 2) is None


def test_unsupported_forms_say_what_to_use():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [7, 6], name="x")
        i = gj.placeholder(gj.int64, [], name="i")
        n = gj.placeholder(gj.int64, [], name="n")
        with pytest.raises(gj.ShapeError, match="gj.dynamic_slice"):
            x[i:]
        with pytest.raises(gj.ShapeError, match="gj.dynamic_slice"):
            x[i:n]
        with pytest.raises(gj.ShapeError, match="step of 1"):
            x[i : i + 4 : 2]
        with pytest.raises(gj.DTypeError, match="integer"):
            gj.dynamic_slice(x, [gj.cast(i, gj.float64), 0], [2, 2])
        with pytest.raises(gj.ShapeError, match="does not fit"):
            gj.dynamic_slice(x, [i, 0], [8, 2])
        with pytest.raises(gj.ShapeError, match="size of -1"):
            gj.slice(x, [i, 0], [-1, 2])


def test_dynamic_update_slice_of_a_dying_operand_is_written_in_place():
    """The memory plan lets the update write over its operand's buffer when the operand is
    read last there: the result is right either way, and here it shares the storage."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [7, 6], name="x")
        i = gj.placeholder(gj.int64, [], name="i")
        doubled = x * 2.0
        out = gj.dynamic_update_slice(doubled, np.ones((2, 6)), [i, 0]) + 1.0
    with gj.Session(g, backend="llvm") as sess:
        got = sess.run(out, {x: X, i: 3})
        plan = sess.inspect(out, {x: X, i: 3}).memory_plan
    expected = 2 * X + 1
    expected[3:5] = 2.0
    np.testing.assert_array_equal(got, expected)
    assert any(v.op.name == "dynamic_update_slice" for v in plan.in_place), plan.describe()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_loop_fills_its_carried_buffer_window_by_window(backend):
    """carry = dynamic_update_slice(carry, ..., [k, 0]) in a while body: the plan may write
    each update straight into the carried buffer; every row must land where it belongs."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [7, 6], name="x")

        def body(k, out):
            row = gj.dynamic_slice(x, [k, 0], [1, 6]) * 2.0
            return k + 1, gj.dynamic_update_slice(out, row, [6 - k, 0])

        _, flipped = gj.while_loop(lambda k, out: k < 7, body, [0, gj.zeros_like(x)])
    with gj.Session(g, backend=backend) as sess:
        np.testing.assert_array_equal(sess.run(flipped, {x: X}), 2 * X[::-1])


# ---- gradients ----------------------------------------------------------------------------------


def _weights(shape, seed):
    return np.random.default_rng(seed).uniform(-1, 1, shape)


@pytest.mark.parametrize("start", [(1, 2), (6, -3), (-2, 4)])
def test_gradients_match_finite_differences(start):
    """Through every form at once, with starts in range, clamped and wrapped."""
    x0 = np.random.default_rng(0).uniform(-2, 2, (7, 6))
    update = np.random.default_rng(1).uniform(-2, 2, (2, 3))
    iv, jv = np.int64(start[0]), np.int64(start[1])

    def build(x, u, i, j):
        total = gj.sum(gj.square(x[i]) * _weights(6, 2))
        total += gj.sum(gj.dynamic_slice(x, [i, j], [3, 2]) * _weights((3, 2), 3))
        total += gj.sum(gj.square(gj.dynamic_update_slice(x, u, [i, j])) * _weights((7, 6), 4))
        return total

    check_gradients(build, [x0, update, iv, jv], wrt=[0, 1])


def test_second_order_gradients_match_finite_differences():
    """d/dx of (the gradient's weighted sum): the VJPs' own VJPs."""
    x0 = np.random.default_rng(5).uniform(-2, 2, (7, 6))
    u0 = np.random.default_rng(6).uniform(-2, 2, (2, 6))
    w = _weights((7, 6), 7)

    def loss(x, u, i):
        window = gj.dynamic_slice(x, [i, 0], [2, 6])
        return gj.sum(gj.square(gj.dynamic_update_slice(x, u * window, [i + 1, 0])) * w)

    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [7, 6], name="x")
        u = gj.placeholder(gj.float64, [2, 6], name="u")
        i = gj.placeholder(gj.int64, [], name="i")
        dx, du = gj.gradients(loss(x, u, i), [x, u])
        second = gj.gradients(gj.sum(dx * w) + gj.sum(du * u), [x, u])
    with gj.Session(g, backend="interpreter") as sess:

        def first(xv, uv):
            dxv, duv = sess.run([dx, du], {x: xv, u: uv, i: 2})
            return np.sum(dxv * w) + np.sum(duv * uv)

        got = sess.run(second, {x: x0, u: u0, i: 2})
        expected = numeric_grad(first, [x0, u0])
    for k in range(2):
        assert_close(got[k], expected[k], f"second order, input {k}", rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_through_a_loop_of_windows(backend):
    """A taped while loop whose body slices x at its counter: the backward loop writes each
    window's cotangent back with dynamic_update_slice."""
    x0 = np.random.default_rng(8).uniform(-1, 1, (8, 3))
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [8, 3], name="x")

        def body(k, acc):
            weight = gj.cast(k, gj.float64) + 1.0
            return k + 1, acc + gj.sum(gj.square(x[k * 2 : k * 2 + 2]) * weight)

        _, total = gj.while_loop(lambda k, acc: k < 4, body, [np.int64(0), np.float64(0.0)])
        (dx,) = gj.gradients(total, [x])
    with gj.Session(g, backend=backend) as sess:
        got = sess.run(dx, {x: x0})
    weights = np.repeat(np.arange(1.0, 5.0), 2)[:, None]
    np.testing.assert_allclose(got, 2 * weights * x0, rtol=1e-12)


# ---- eager and gj.function ---------------------------------------------------------------------


def test_eager_uses_the_same_windows_and_gradients():
    x = gj.tensor(X, requires_grad=True)
    i = gj.tensor(np.int64(2))
    y = x[i : i + 3]
    np.testing.assert_array_equal(y.numpy(), X[2:5])
    gj.sum(y * y).backward()
    expected = np.zeros_like(X)
    expected[2:5] = 2 * X[2:5]
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    np.testing.assert_array_equal(x[-i].numpy(), X[-2])
    with pytest.raises(gj.RuntimeCheckError):
        x[i + 5 : i + 7]  # NumPy would return a shorter slice; every mode refuses instead


@pytest.mark.parametrize("backend", BACKENDS)
def test_function_with_a_dynamic_index(backend):
    @gj.function(backend=backend)
    def window_sum(x, i):
        return gj.sum(x[i : i + 2], axis=0) + gj.dynamic_slice(x, [i, 0], [1, 6])[0]

    for iv in [0, 3, 5]:
        got = window_sum(X, np.int64(iv))
        np.testing.assert_allclose(got, X[iv : iv + 2].sum(0) + X[iv], rtol=1e-12)
    assert window_sum.trace_count == 1  # one trace: the index is a run-time value


# ---- the motivating use: one training epoch, one Session.run ----------------------------------


def _numpy_epoch(features, targets, w, b, batch, lr):
    for start in range(0, len(features), batch):
        xb, yb = features[start : start + batch], targets[start : start + batch]
        error = xb @ w + b - yb
        w = w - lr * 2 * xb.T @ error / error.size
        b = b - lr * 2 * error.mean()
    return w, b


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_epoch_of_minibatches_runs_as_one_graph(backend):
    rng = np.random.default_rng(9)
    n, d, batch, lr = 64, 3, 8, 0.05
    features = rng.normal(size=(n, d)).astype(np.float32)
    targets = (features @ np.array([[1.5], [-2.0], [0.5]]) + 0.3).astype(np.float32)
    g = gj.Graph()
    with g.as_default():
        data = gj.placeholder(gj.float32, [n, d], name="data")
        labels = gj.placeholder(gj.float32, [n, 1], name="labels")
        w = gj.Variable(np.zeros((d, 1), np.float32), name="w")
        b = gj.Variable(np.float32(0.0), name="b")

        def step(k, w_now, b_now):
            xb = data[k * batch : (k + 1) * batch]
            yb = labels[k * batch : (k + 1) * batch]
            loss = gj.mean(gj.square(xb @ w_now + b_now - yb))
            dw, db = gj.gradients(loss, [w_now, b_now])
            return k + 1, w_now - lr * dw, b_now - lr * db

        _, w_end, b_end = gj.while_loop(lambda k, *_: k < n // batch, step, [0, w, b])
        epoch = gj.group(w.assign(w_end), b.assign(b_end))
    with gj.Session(g, backend=backend) as sess:
        sess.run(epoch, {data: features, labels: targets})
        w_got, b_got = sess.run([w, b])
    w_ref, b_ref = _numpy_epoch(
        features.astype(np.float64), targets.astype(np.float64), np.zeros((d, 1)), 0.0, batch, lr
    )
    np.testing.assert_allclose(w_got, w_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b_got, b_ref, rtol=1e-4, atol=1e-5)


# ---- the cuda backend, in Numba's simulator ----------------------------------------------------

CUDA_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import graphjit as gj
    from graphjit.codegen.cuda.compiler import GENERATED
    sys.path.insert(0, {tests!r})
    from test_dynamic_slicing import X, _graph

    g, x, i, j, cases = _graph()
    with gj.Session(g, backend="cuda") as sess:
        for iv, jv in [(1, 3), (2, 4), (0, 1)]:
            got = sess.run([c for c, _ in cases[:7] + cases[9:]], {{x: X, i: iv, j: jv}})
            for value, (_, ref) in zip(got, cases[:7] + cases[9:]):
                np.testing.assert_array_equal(value, ref(X, iv, jv))
        got = sess.run([cases[0][0], cases[3][0]], {{x: X, i: -1, j: -6}})
        np.testing.assert_array_equal(got[0], X[-1])
        np.testing.assert_array_equal(got[1], X[:, -6])
        for iv, jv in [(-5, 9), (100, -100)]:
            got = sess.run([cases[9][0], cases[10][0]], {{x: X, i: iv, j: jv}})
            for value, (_, ref) in zip(got, cases[9:]):
                np.testing.assert_array_equal(value, ref(X, iv, jv))
        try:
            sess.run(cases[1][0], {{x: X, i: 5, j: 0}})
            raise AssertionError("no RuntimeCheckError for an out-of-range start")
        except gj.RuntimeCheckError as e:
            assert "slice start out of range on axis 0" in str(e), e
    print(json.dumps([[k.source, list(k.params), k.label] for k in GENERATED.values()]))
    """
)


def test_cuda_simulator_matches_numpy():
    pytest.importorskip("numba")
    script = CUDA_SCRIPT.format(tests=str(Path(__file__).parent))
    done = run_script_simulated(script, [ROOT / "tests"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    kernels = json.loads(done.stdout.strip().splitlines()[-1])
    windows = [k for k in kernels if k[2].startswith("dynamic_")]
    assert windows, "no window kernel was generated"
    _compile_to_ptx(windows)


def _compile_to_ptx(kernels) -> None:
    """The simulator runs kernels as Python; NVVM checks they would type-check on a GPU."""
    from graphjit.codegen.cuda.compiler import compile_ptx, ptx_unavailable
    from graphjit.codegen.cuda.source import KernelSource

    if ptx_unavailable():
        return  # (no NVVM here: tests/cuda/test_cuda_sim.py's PTX check says so by skipping)
    for source, params, label in kernels:
        compile_ptx(KernelSource(source, tuple(params), label), opt=False)


# ---- against JAX, where it is installed -----------------------------------------------------------


def test_matches_jax_lax_where_installed():
    """The same placements as JAX's, clamped starts included (JAX computes in float32
    unless x64 is enabled: the values compared are float32's)."""
    lax = pytest.importorskip("jax.lax")
    x32 = X.astype(np.float32)
    g, x, i, j, cases = _graph()
    with gj.Session(g, backend="interpreter") as sess:
        for iv, jv in [(1, 2), (-4, 9), (6, 5)]:
            got = sess.run([cases[9][0], cases[10][0]], {x: X, i: iv, j: jv})
            sliced = lax.dynamic_slice(x32, (iv, jv), (3, 2))
            updated = lax.dynamic_update_slice(x32, -np.ones((2, 3), np.float32), (iv, jv))
            np.testing.assert_array_equal(got[0].astype(np.float32), np.asarray(sliced))
            np.testing.assert_array_equal(got[1].astype(np.float32), np.asarray(updated))

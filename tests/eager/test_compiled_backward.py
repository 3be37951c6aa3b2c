"""Backward over a hot tape as compiled code (frontend/eager/compiled_backward.py): a tape
of MIN_NODES nodes or more whose signature ran HOT_CALLS times the eager way runs as one
compiled program. Its gradients are the engine's up to rounding, accumulated, captured,
released and refused as the engine does; every pass the engine must run itself (hooks,
create_graph, anomaly detection, in-place changes, gradients at non-leaves, custom
Functions) still runs there; a tape that differs in anything the program depends on (a
shape, which tensors are one tensor) gets a program of its own."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj
from graphjit.errors import GradientError
from graphjit.frontend import eager_compiled
from graphjit.frontend.eager import compiled_backward
from op_table import OP_TABLE, inputs_for

pytestmark = pytest.mark.usefixtures("fresh_signatures")  # (tests/eager/conftest.py)

HOT = eager_compiled.HOT_CALLS + 1  # runs of a signature until the last one is compiled
STEPS = 4  # RNN steps: 5 nodes each, MIN_NODES and more with the loss


@pytest.fixture
def compiled_runs(monkeypatch):
    """How many backward passes ran as compiled code."""
    runs = []
    run = compiled_backward._Program.run

    def counted(self, arrays):
        runs.append(len(arrays))
        return run(self, arrays)

    monkeypatch.setattr(compiled_backward._Program, "run", counted)
    return runs


def _data(dtype=np.float32, batch=3, seed=0):
    r = np.random.default_rng(seed)
    xs = r.normal(size=(STEPS, batch, 5)).astype(dtype)
    params = [r.normal(size=s).astype(dtype) * 0.5 for s in ((5, 6), (6, 6), (6,))]
    return xs, params


def _rnn_loss(xs, wx, wh, b):
    h = gj.zeros((xs.shape[1], 6), dtype=wx.dtype)
    for t in range(STEPS):
        h = gj.tanh(xs[t] @ wx + h @ wh + b)
    return gj.mean(gj.square(h))


def _leaves(params):
    return [gj.tensor(p, requires_grad=True) for p in params]


def _eager_gradients(monkeypatch, xs, params):
    """The engine's gradients (compiled paths off)."""
    monkeypatch.setenv("GRAPHJIT_EAGER_COMPILE", "0")
    ps = _leaves(params)
    grads = gj.autograd.grad(_rnn_loss(gj.tensor(xs), *ps), ps)
    monkeypatch.delenv("GRAPHJIT_EAGER_COMPILE")
    return [g.numpy() for g in grads]


def _close(got, want):
    eps = np.finfo(want.dtype).eps
    np.testing.assert_allclose(got, want, rtol=64 * eps, atol=64 * eps * np.abs(want).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_hot_tape_runs_compiled_with_the_engines_gradients(monkeypatch, compiled_runs, dtype):
    xs, params = _data(dtype)
    want = _eager_gradients(monkeypatch, xs, params)
    ps = _leaves(params)
    for call in range(HOT + 1):
        got = gj.autograd.grad(_rnn_loss(gj.tensor(xs), *ps), ps)
        assert len(compiled_runs) == max(0, call - HOT + 2)
        # (a tape's key has a part per node: counted by its hash, not kept)
        assert all(type(k) is int for k in eager_compiled.SIGNATURES.counts)
        for g, w in zip(got, want):
            assert g.numpy().dtype == dtype and not g.requires_grad
            _close(g.numpy(), w)
    # backward(): .grad accumulated, each leaf's its own array
    for p in ps:
        p.grad = None
    for _ in range(HOT):
        _rnn_loss(gj.tensor(xs), *ps).backward()
    assert len(compiled_runs) >= 3
    for p, w in zip(ps, want):
        _close(p.grad.numpy(), HOT * w)
    arrays = [p.grad.numpy() for p in ps]
    assert len({id(a) for a in arrays}) == len(arrays)
    before = arrays[1].copy()
    arrays[0][...] = 7  # (the first leaf's gradient changes no other, nor the program's)
    np.testing.assert_array_equal(p.grad.numpy(), arrays[2])
    np.testing.assert_array_equal(ps[1].grad.numpy(), before)
    for p in ps:
        p.grad = None
    _rnn_loss(gj.tensor(xs), *ps).backward()
    _close(ps[0].grad.numpy(), want[0])


def test_captured_subsets_unused_inputs_and_materialized_zeros(monkeypatch, compiled_runs):
    xs, params = _data()
    want = _eager_gradients(monkeypatch, xs, params)
    ps = _leaves(params)
    unused = gj.tensor(np.ones(3, np.float32), requires_grad=True)
    for _ in range(HOT):
        (g_wh,) = gj.autograd.grad(_rnn_loss(gj.tensor(xs), *ps), [ps[1]])
        _close(g_wh.numpy(), want[1])
    for _ in range(HOT):
        g_b, none = gj.autograd.grad(_rnn_loss(gj.tensor(xs), *ps), [ps[2], unused],
                                     allow_unused=True)  # fmt: skip
        _close(g_b.numpy(), want[2])
        assert none is None
        with pytest.raises(GradientError, match="was not used"):
            gj.autograd.grad(_rnn_loss(gj.tensor(xs), *ps), [ps[2], unused])
    _, zeros = gj.autograd.grad(_rnn_loss(gj.tensor(xs), *ps), [ps[0], unused],
                                materialize_grads=True)  # fmt: skip
    np.testing.assert_array_equal(zeros.numpy(), np.zeros(3, np.float32))
    assert len(compiled_runs) >= 3


def test_the_tape_is_freed_unless_retained(compiled_runs):
    xs, params = _data()
    ps = _leaves(params)
    for _ in range(HOT):
        loss = _rnn_loss(gj.tensor(xs), *ps)
        first = gj.autograd.grad(loss, ps)
    assert compiled_runs
    with pytest.raises(GradientError, match="backward through the graph a second time"):
        gj.autograd.grad(loss, ps)
    loss = _rnn_loss(gj.tensor(xs), *ps)
    runs = len(compiled_runs)
    again = gj.autograd.grad(loss, ps, retain_graph=True)
    assert len(compiled_runs) == runs + 1
    twice = gj.autograd.grad(loss, ps)  # (an older tape than the last pass's: the engine's)
    for a, b, c in zip(first, again, twice):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        _close(c.numpy(), a.numpy())
    with pytest.raises(GradientError, match="backward through the graph a second time"):
        gj.autograd.grad(loss, ps)


def test_a_different_tape_gets_its_own_program(monkeypatch, compiled_runs):
    """Shapes and which saved tensors are one tensor are part of the signature."""
    xs, params = _data()
    ps = _leaves(params)
    for _ in range(HOT):
        gj.autograd.grad(_rnn_loss(gj.tensor(xs), *ps), ps)
    runs = len(compiled_runs)
    wide, _ = _data(batch=5, seed=1)
    want = _eager_gradients(monkeypatch, wide, params)
    got = gj.autograd.grad(_rnn_loss(gj.tensor(wide), *ps), ps)  # (eager: a new signature)
    assert len(compiled_runs) == runs
    for g, w in zip(got, want):
        _close(g.numpy(), w)
    # one leaf as both weights (the edges and saved arrays say so) against two
    r = np.random.default_rng(2)
    xs6 = gj.tensor(r.normal(size=(STEPS, 3, 6)).astype(np.float32))
    a, w, b = _leaves([r.normal(size=s).astype(np.float32) * 0.5 for s in ((6, 6), (6, 6), (6,))])
    for _ in range(HOT):
        gj.autograd.grad(_rnn_loss(xs6, a, w, b), [a, w])
    runs = len(compiled_runs)
    got = gj.autograd.grad(_rnn_loss(xs6, w, w, b), [w])[0]
    assert len(compiled_runs) == runs
    for _ in range(HOT - 1):  # (then hot in turn: its own program)
        hot = gj.autograd.grad(_rnn_loss(xs6, w, w, b), [w])[0]
    assert len(compiled_runs) == runs + 1
    monkeypatch.setenv("GRAPHJIT_EAGER_COMPILE", "0")
    want = gj.autograd.grad(_rnn_loss(xs6, w, w, b), [w])[0].numpy()
    _close(got.numpy(), want)
    _close(hot.numpy(), want)


def _hot_then(compiled_runs, make_loss, ps, **options):
    """HOT eager-way passes of make_loss's tape, then one more; its gradients, and
    whether any ran compiled."""
    for _ in range(HOT + 1):
        got = gj.autograd.grad(make_loss(), ps, **options)
    return got, bool(compiled_runs)


def test_passes_the_engine_must_run_stay_eager(monkeypatch, compiled_runs):
    xs, params = _data()
    x = gj.tensor(xs)
    want = _eager_gradients(monkeypatch, xs, params)

    ps = _leaves(params)  # a hook on a leaf: called every pass
    seen = []
    handle = ps[0].register_hook(lambda g: seen.append(g.shape))
    got, compiled = _hot_then(compiled_runs, lambda: _rnn_loss(x, *ps), ps)
    assert not compiled and len(seen) == HOT + 1
    handle.remove()

    ps = _leaves(params)  # create_graph: the gradient has a history, and a second order
    for _ in range(HOT + 1):
        (g,) = gj.autograd.grad(_rnn_loss(x, *ps), [ps[1]], create_graph=True)
        assert g.requires_grad
    assert not compiled_runs
    _close(g.detach().numpy(), want[1])
    (gg,) = gj.autograd.grad(g.sum(), [ps[2]])  # (a plain pass over the recorded backward)
    assert np.isfinite(gg.numpy()).all() and np.abs(gg.numpy()).max() > 0

    with gj.autograd.detect_anomaly():
        _, compiled = _hot_then(compiled_runs, lambda: _rnn_loss(x, *ps), ps)
    assert not compiled

    def retaining():  # retain_grad on a non-leaf: its .grad is set every pass
        loss = _rnn_loss(x, *ps)
        loss.retain_grad()
        retaining.last = loss
        return loss

    for _ in range(HOT + 1):
        retaining().backward()
        assert retaining.last.grad.item() == 1.0
    assert not compiled_runs

    def at_hidden():  # a gradient captured at a non-leaf
        h = gj.tanh(x[0] @ ps[0])
        loss = _rnn_loss(x, ps[0], ps[1], ps[2]) + h.sum()
        at_hidden.h = h
        return loss

    for _ in range(HOT + 1):
        loss = at_hidden()
        (gh,) = gj.autograd.grad(loss, [at_hidden.h])
        np.testing.assert_array_equal(gh.numpy(), np.ones((3, 6), np.float32))
    assert not compiled_runs

    class Twice(gj.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    _, compiled = _hot_then(compiled_runs, lambda: _rnn_loss(x, Twice.apply(ps[0]), *ps[1:]), ps)
    assert not compiled

    monkeypatch.setenv("GRAPHJIT_EAGER_COMPILE", "0")
    _, compiled = _hot_then(compiled_runs, lambda: _rnn_loss(x, *ps), ps)
    assert not compiled


def test_an_in_place_change_since_recording_is_the_engines_error(compiled_runs):
    xs, params = _data()
    x = gj.tensor(xs)
    ps = _leaves(params)

    def make():
        h = gj.tanh(x[0] @ ps[0])
        return _rnn_loss(x, *ps) + (h * h).sum(), h

    for _ in range(HOT):
        gj.autograd.grad(make()[0], ps)
    runs = len(compiled_runs)
    assert runs == 1
    loss, h = make()
    h.add_(1.0)  # (tanh's and mul's rules read h: the engine refuses, as PyTorch does)
    with pytest.raises(GradientError, match="modified by an in-place operation"):
        gj.autograd.grad(loss, ps)
    assert len(compiled_runs) == runs
    with gj.no_grad():
        ps[2].add_(0.0)  # (an optimizer's step: tapes recorded after it are plain again)
    gj.autograd.grad(make()[0], ps)
    assert len(compiled_runs) == runs + 1


def test_small_tapes_stay_with_the_engine(compiled_runs):
    w = gj.tensor(np.ones((4, 4), np.float32), requires_grad=True)
    x = gj.tensor(np.ones((2, 4), np.float32))
    for _ in range(2 * HOT):
        (g,) = gj.autograd.grad(gj.tanh(x @ w).sum(), [w])
    assert not compiled_runs
    assert compiled_backward.MIN_NODES > 3


def test_a_failing_program_leaves_the_signature_to_the_engine(monkeypatch):
    xs, params = _data()
    ps = _leaves(params)
    want = _eager_gradients(monkeypatch, xs, params)
    calls = []

    def broken(self, arrays):
        calls.append(1)
        raise RuntimeError("a broken program")

    monkeypatch.setattr(compiled_backward._Program, "run", broken)
    for _ in range(HOT + 2):
        got = gj.autograd.grad(_rnn_loss(gj.tensor(xs), *ps), ps)
        for g, w in zip(got, want):
            _close(g.numpy(), w)
    assert len(calls) == 1  # (then never again)


def test_nonfinite_values_index_operands_views_and_empty_batches(monkeypatch, compiled_runs):
    """NaN and infinity where the engine has them; a gather's integer indices and a
    transposed view among the saved arrays; a batch of no rows."""
    r = np.random.default_rng(3)
    table = r.normal(size=(10, 5)).astype(np.float32)
    table[4, 1] = np.nan
    table[7, 2] = np.inf
    ids = np.array([[1, 4, 7], [0, 7, 9], [4, 4, 2], [3, 8, 8]], np.int64)

    def loss(emb, w_t, b, rows=3):
        h = gj.zeros((rows, 6), dtype=gj.float32)
        for t in range(STEPS):
            x = gj.gather(emb, gj.tensor(ids[t, :rows]))
            h = gj.tanh(x @ w_t.T + h * b)  # (w_t.T: a transposed view, saved as it is)
        return gj.mean(gj.square(h)) if rows else h.sum()

    params = [table, r.normal(size=(6, 5)).astype(np.float32), r.normal(size=6).astype(np.float32)]
    with np.errstate(invalid="ignore"):  # (NumPy warns of the NaN in the forward's products)
        for rows in (3, 0):
            monkeypatch.setenv("GRAPHJIT_EAGER_COMPILE", "0")
            ps = _leaves(params)
            want = [
                g.numpy() for g in gj.autograd.grad(loss(*ps, rows=rows), ps, allow_unused=True)
            ]
            monkeypatch.delenv("GRAPHJIT_EAGER_COMPILE")
            runs = len(compiled_runs)
            for _ in range(HOT):
                got = gj.autograd.grad(loss(*ps, rows=rows), ps, allow_unused=True)
            assert len(compiled_runs) == runs + 1
            for g, w in zip(got, want):
                assert g.shape == w.shape
                np.testing.assert_array_equal(np.isnan(g.numpy()), np.isnan(w))
                finite = np.isfinite(w)
                np.testing.assert_array_equal(np.isfinite(g.numpy()), finite)
                _close(np.where(finite, g.numpy(), 0), np.where(finite, w, 0))


def test_several_roots_with_given_cotangents(monkeypatch, compiled_runs):
    xs, params = _data()
    x = gj.tensor(xs)
    r = np.random.default_rng(4)
    g1, g2 = r.normal(size=(3, 6)).astype(np.float32), r.normal(size=(3, 6)).astype(np.float32)

    def roots(ps):
        h = gj.zeros((3, 6), dtype=gj.float32)
        for t in range(STEPS):
            h = gj.tanh(x[t] @ ps[0] + h @ ps[1] + ps[2])
        first, second = h[:2] * 1.5, h.exp()
        return first, second

    cts = lambda: [gj.tensor(g1[:2]), gj.tensor(g2)]  # noqa: E731
    monkeypatch.setenv("GRAPHJIT_EAGER_COMPILE", "0")
    ps = _leaves(params)
    gj.autograd.backward(list(roots(ps)), cts())
    want = [p.grad.numpy().copy() for p in ps]
    monkeypatch.delenv("GRAPHJIT_EAGER_COMPILE")
    for _ in range(HOT):
        for p in ps:
            p.grad = None
        gj.autograd.backward(list(roots(ps)), cts())
    assert compiled_runs
    for p, w in zip(ps, want):
        _close(p.grad.numpy(), w)


def test_convolutions_and_pooling_in_a_compiled_tape(monkeypatch, compiled_runs):
    """The windowed ops' gradients (their own ops, compiled per op on the eager path)
    inside one program for the whole tape."""
    r = np.random.default_rng(5)
    x = r.normal(size=(4, 3, 12, 12)).astype(np.float32)
    params = [r.normal(size=s).astype(np.float32) * 0.3 for s in ((6, 3, 5, 5), (6,), (24, 5))]

    def loss(w, b, fc):
        h = gj.nn.max_pool2d(gj.relu(gj.nn.conv2d(gj.tensor(x), w, b, padding=2)), 2)
        h = gj.nn.avg_pool2d(h, 3).reshape(4, 24)
        h = gj.tanh(h @ fc)
        return gj.mean(gj.square(gj.tanh(h * 0.5 + 0.25)))

    monkeypatch.setenv("GRAPHJIT_EAGER_COMPILE", "0")
    ps = _leaves(params)
    want = [g.numpy() for g in gj.autograd.grad(loss(*ps), ps)]
    monkeypatch.delenv("GRAPHJIT_EAGER_COMPILE")
    for _ in range(HOT):
        got = gj.autograd.grad(loss(*ps), ps)
    assert compiled_runs
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-4, atol=1e-5 * np.abs(w).max())


def test_tapes_longer_than_max_nodes_stay_with_the_engine(monkeypatch, compiled_runs):
    xs, params = _data()
    ps = _leaves(params)
    monkeypatch.setattr(compiled_backward, "MAX_NODES", 5 * STEPS)  # (the tape: 5 a step + 2)
    for _ in range(HOT + 1):
        gj.autograd.grad(_rnn_loss(gj.tensor(xs), *ps), ps)
    assert not compiled_runs
    monkeypatch.setattr(compiled_backward, "MAX_NODES", 5 * STEPS + 2)
    for _ in range(HOT):
        gj.autograd.grad(_rnn_loss(gj.tensor(xs), *ps), ps)
    assert len(compiled_runs) == 1


# Every differentiable op of the shared op table (its largest case), its gradients through
# a program of its tape alone (compiled at the first pass) against the engine's.
OP_CASES = [pytest.param(case, case.shapes[-1], id=case.name) for case in OP_TABLE if case.grad]


@pytest.mark.parametrize("case, shapes", OP_CASES)
def test_every_op_s_gradient_in_a_program_is_the_engine_s(monkeypatch, compiled_runs, case, shapes):
    arrays = inputs_for(case, shapes, "float64")
    wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f" and i not in case.fixed]

    def gradients():
        leaves = [gj.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
        y = case.fn(*leaves)
        w = gj.tensor(np.random.default_rng(1).uniform(0.5, 1.5, y.shape))
        grads = gj.autograd.grad((y * w).sum(), [leaves[i] for i in wrt], allow_unused=True)
        return [None if g is None else g.numpy() for g in grads]

    want = gradients()
    monkeypatch.setattr(compiled_backward, "MIN_NODES", 1)
    monkeypatch.setattr(eager_compiled, "HOT_CALLS", 0)
    got = gradients()
    assert compiled_runs, "the tape ran on the engine"
    for i, g, w in zip(wrt, got, want):
        if w is None:
            assert g is None, f"input {i}"
        else:
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=f"input {i}")


def test_a_batch_norm_s_running_statistics_leave_the_tape_compiled(monkeypatch, compiled_runs):
    """In-place updates of tensors the tape did not save (running statistics) do not keep
    the pass on the engine; a leaf given a new array by `.data =` after recording does,
    since the engine's rule reads a leaf's array as it is at backward time."""
    r = np.random.default_rng(6)
    x = gj.tensor(r.normal(size=(8, 3, 8, 8)).astype(np.float32))

    def model():
        gj.manual_seed(0)
        return gj.nn.Conv2d(3, 4, 3, padding=1), gj.nn.BatchNorm2d(4), gj.nn.Linear(256, 10)

    def loss(conv, bn, fc):
        return gj.mean(gj.square(fc(gj.relu(bn(conv(x))).reshape(8, -1))))

    def grads(layers, passes):
        for _ in range(passes):
            params = [p for layer in layers for p in layer.parameters()]
            got = gj.autograd.grad(loss(*layers), params)
        return [g.numpy() for g in got]

    monkeypatch.setenv("GRAPHJIT_EAGER_COMPILE", "0")
    want = grads(model(), HOT)
    monkeypatch.delenv("GRAPHJIT_EAGER_COMPILE")
    got = grads(model(), HOT)
    assert len(compiled_runs) == 1
    _close_all(got, want)

    def swapped(layers):
        params = [p for layer in layers for p in layer.parameters()]
        value = loss(*layers)
        layers[2].weight.data = layers[2].weight.numpy() * 2  # (after recording)
        return [g.numpy() for g in gj.autograd.grad(value, params)]

    layers = model()
    grads(layers, HOT)  # (hot)
    runs = len(compiled_runs)
    got = swapped(layers)
    assert len(compiled_runs) == runs
    monkeypatch.setenv("GRAPHJIT_EAGER_COMPILE", "0")
    layers = model()
    grads(layers, HOT)
    _close_all(got, swapped(layers))


def _close_all(got, want):
    """Equal up to float32 rounding, against the largest gradient (a convolution's bias
    before a batch norm has a gradient of rounding noise alone)."""
    scale = max(np.abs(w).max() for w in want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize(
    "dtype, shape",
    [
        ("float32", ()),
        ("float64", ()),
        ("float16", (50,)),
        ("bfloat16", (50,)),
        ("float32", (0, 3)),
    ],
)
def test_zero_d_narrow_float_and_empty_tapes(monkeypatch, compiled_runs, dtype, shape):
    """0-d tensors, float16 and bfloat16 (computed in float32 on both paths, one rounding)
    and tensors of no elements: the engine's gradients, dtypes and shapes."""
    r = np.random.default_rng(7)

    def gradients():
        x = gj.tensor(r.normal(size=shape)).to(dtype)
        ps = [gj.tensor(r.normal(size=shape)).to(dtype).requires_grad_() for _ in range(2)]
        for _ in range(HOT):
            h = x
            for _ in range(4):
                h = gj.tanh(h * ps[0] + ps[1])
            grads = gj.autograd.grad((h * h).sum(), ps)
        return [(g.dtype, g.shape, g.numpy().astype(np.float64)) for g in grads]

    monkeypatch.setenv("GRAPHJIT_EAGER_COMPILE", "0")
    r = np.random.default_rng(7)
    want = gradients()
    monkeypatch.delenv("GRAPHJIT_EAGER_COMPILE")
    r = np.random.default_rng(7)
    got = gradients()
    assert len(compiled_runs) == 1
    for (gd, gs, g), (wd, ws, w) in zip(got, want):
        assert gd == wd and gd.name == dtype and gs == ws == shape
        np.testing.assert_allclose(g, w, rtol=1e-2 if dtype in ("float16", "bfloat16") else 1e-6)

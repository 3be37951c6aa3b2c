"""Eager work compiled once hot (frontend/eager_compiled.py): convolutions and pooling run
NumPy's kernel for a signature (op, attributes, shapes, dtypes) HOT_CALLS times, then the
llvm backend's; composites (softmax, log_softmax, layer norm, GELU, attention) run as one
gj.function call. Results and gradients (to second order) agree with the eager path, errors
and in-place rules are the same; small, one-off, non-float and failing calls stay eager."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import graphjit as gj
from graphjit.errors import ConfigError, GradientError, ShapeError
from graphjit.frontend import eager_compiled
from graphjit.frontend.eager import compiled_backward
from graphjit.ir.ops import get_op

LENET = {"x": (8, 3, 16, 16), "w": (6, 3, 5, 5)}  # 6144 and 450 elements ...
BIG = {"x": (16, 3, 24, 24), "w": (8, 3, 5, 5)}  # ... 27648: above NATIVE_MIN_ELEMENTS


pytestmark = pytest.mark.usefixtures("fresh_signatures")  # (tests/eager/conftest.py)


def _arrays(shapes, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype(dtype) for s in shapes]


def _close(got, want, eps):
    """Equal up to rounding: sums of 75 products in another order, with cancellation, so
    the error is relative to the array's scale, not to each element."""
    np.testing.assert_allclose(got, want, rtol=10 * eps, atol=eps * np.abs(want).max())


def _compiled_ops() -> set[str]:
    """The WINDOWED ops and composites with compiled code."""
    return {
        getattr(key[0], "name", None) or key[0].__name__
        for key, c in eager_compiled.SIGNATURES.compiled.items()
        if callable(c)
    }


def _per_op_backward(monkeypatch):
    """Backward node by node, each gradient op compiled for itself, rather than the whole
    tape as one program (compiled_backward.py, tested in test_compiled_backward.py)."""
    monkeypatch.setattr(compiled_backward, "MIN_NODES", 1 << 30)


def _step(x, w, b):
    """One LeNet-like stage and a loss, with the gradients of its inputs."""
    xt, wt, bt = (gj.tensor(a, requires_grad=True) for a in (x, w, b))
    h = gj.nn.max_pool2d(gj.relu(gj.nn.conv2d(xt, wt, bt, padding=2)), 2)
    loss = gj.sum(h * h)
    loss.backward()
    return [loss.numpy(), h.numpy()] + [t.grad.numpy() for t in (xt, wt, bt)]


def test_a_hot_signature_is_compiled_and_agrees_with_numpy(monkeypatch):
    _per_op_backward(monkeypatch)
    x, w, b = _arrays([BIG["x"], BIG["w"], (8,)])
    runs = [_step(x, w, b) for _ in range(eager_compiled.HOT_CALLS + 2)]
    assert _compiled_ops() == {
        "conv2d",
        "conv2d_input_grad",
        "conv2d_filter_grad",
        "max_pool2d",
        "max_pool2d_grad",
    }
    for numpy_run in runs[: eager_compiled.HOT_CALLS]:  # NumPy's kernels gave the first runs
        np.testing.assert_array_equal(numpy_run[1], runs[0][1])
    for compiled in runs[eager_compiled.HOT_CALLS :]:
        for got, want in zip(compiled, runs[0], strict=True):
            _close(got, want, 1e-5)
    monkeypatch.setenv("GRAPHJIT_EAGER_COMPILE", "0")  # off: NumPy's kernels again
    np.testing.assert_array_equal(_step(x, w, b)[1], runs[0][1])


def test_float64_compiled_matches_numpy_closely():
    x, w, b = _arrays([BIG["x"], BIG["w"], (8,)], np.float64)
    runs = [_step(x, w, b) for _ in range(eager_compiled.HOT_CALLS + 1)]
    assert "conv2d" in _compiled_ops()
    for got, want in zip(runs[-1], runs[0], strict=True):
        _close(got, want, 1e-13)


def test_small_one_off_and_non_float_calls_are_not_compiled():
    x, w, b = _arrays([LENET["x"], LENET["w"], (6,)])
    for _ in range(eager_compiled.HOT_CALLS + 2):  # small: NumPy's every time
        _step(x, w, b)
    big = _arrays([BIG["x"], BIG["w"], (8,)])
    _step(*big)  # once: never compiled
    assert _compiled_ops() == set()
    x16 = gj.tensor(_arrays([BIG["x"]])[0].astype(np.float16))
    for _ in range(eager_compiled.HOT_CALLS + 1):  # float16: NumPy's (computing in float32)
        pooled = gj.nn.max_pool2d(x16, 2)
    assert pooled.dtype == gj.float16 and _compiled_ops() == set()


def test_an_empty_batch_beside_large_weights_stays_with_numpy():
    w = gj.tensor(np.ones((64, 64, 3, 3), np.float32), requires_grad=True)  # 36864 elements
    for _ in range(eager_compiled.HOT_CALLS + 2):
        x = gj.tensor(np.ones((0, 64, 32, 32), np.float32), requires_grad=True)
        y = gj.nn.max_pool2d(gj.nn.conv2d(x, w, padding=1), 2)
        gj.sum(y).backward()
        assert y.shape == (0, 64, 16, 16) and x.grad.shape == (0, 64, 32, 32)
        np.testing.assert_array_equal(w.grad.numpy(), np.zeros((64, 64, 3, 3), np.float32))
        w.grad = None
    assert _compiled_ops() == set()


def test_errors_are_numpys_whether_or_not_the_signature_is_hot():
    (x,) = _arrays([BIG["x"]])
    w = gj.tensor(_arrays([(8, 4, 5, 5)])[0])  # 4 input channels for 3
    for _ in range(eager_compiled.HOT_CALLS + 2):
        with pytest.raises(ShapeError, match="conv2d"):
            gj.nn.conv2d(gj.tensor(x), w)
    assert _compiled_ops() == set()


def test_a_failing_compile_or_run_falls_back_to_numpy(monkeypatch):
    (x,) = _arrays([BIG["x"]])
    want = gj.nn.max_pool2d(gj.tensor(x), 2).numpy()

    def broken(*arrays):
        raise RuntimeError("a kernel that cannot run")

    monkeypatch.setattr(eager_compiled, "_compile_op", lambda *a: broken)
    for _ in range(eager_compiled.HOT_CALLS + 2):
        np.testing.assert_array_equal(gj.nn.max_pool2d(gj.tensor(x), 2).numpy(), want)
    (state,) = eager_compiled.SIGNATURES.compiled.values()
    assert state is eager_compiled._UNUSABLE  # tried once, then NumPy's for good


def test_a_malformed_switch_is_a_config_error(monkeypatch):
    (x,) = _arrays([BIG["x"]])
    monkeypatch.setenv("GRAPHJIT_EAGER_COMPILE", "sometimes")
    with pytest.raises(ConfigError, match="GRAPHJIT_EAGER_COMPILE"):
        gj.nn.max_pool2d(gj.tensor(x), 2)


def test_compiled_signatures_are_bounded(monkeypatch):
    monkeypatch.setattr(eager_compiled, "MAX_COMPILED", 2)
    monkeypatch.setattr(eager_compiled, "HOT_CALLS", 0)
    (x,) = _arrays([(8, 4, 32, 32)])
    for side in (32, 30, 28):
        gj.nn.max_pool2d(gj.tensor(x[..., :side, :side]), 2)
    shapes = [key[1][0][0] for key in eager_compiled.SIGNATURES.compiled]
    assert shapes == [(8, 4, 30, 30), (8, 4, 28, 28)]  # the oldest dropped


def test_subnormals_are_kept_as_numpy_keeps_them(monkeypatch):
    monkeypatch.setattr(eager_compiled, "HOT_CALLS", 0)
    x = np.full(BIG["x"], np.finfo(np.float32).smallest_subnormal * 4, np.float32)
    out = gj.nn.max_pool2d(gj.tensor(x), 2).numpy()
    assert "max_pool2d" in _compiled_ops()
    np.testing.assert_array_equal(out, x[:, :, ::2, ::2])


def test_threads_share_a_signature():
    (x,) = _arrays([BIG["x"]])
    want = gj.nn.max_pool2d(gj.tensor(x), 2).numpy()
    results, errors = [], []

    def work():
        try:
            for _ in range(eager_compiled.HOT_CALLS + 3):
                results.append(gj.nn.max_pool2d(gj.tensor(x), 2).numpy())
        except Exception as e:  # (reported below, not lost in the thread)
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 3 * (eager_compiled.HOT_CALLS + 3)
    for got in results:
        np.testing.assert_array_equal(got, want)
    assert _compiled_ops() == {"max_pool2d"}


def test_every_windowed_op_has_an_eager_native_kernel():
    from graphjit.frontend.eager.dispatch import EAGER_KERNELS
    from graphjit.ir.ops import WINDOWED, all_ops

    windowed = {op for op in all_ops().values() if op.has(WINDOWED)}
    assert get_op("conv2d") in windowed and get_op("avg_pool2d_grad") in windowed
    assert windowed <= set(EAGER_KERNELS)


# ---- composites ------------------------------------------------------------------------------

ROWS = (64, 512)  # 32768 elements: above NATIVE_MIN_ELEMENTS
F = gj.nn.functional


def _qkv(q, k, v, **kw):
    return F.scaled_dot_product_attention(q, k, v, **kw)


COMPOSITES = {  # name: (function of tensors, their shapes, the composite's name)
    "softmax": (lambda x: gj.softmax(x, axis=-1), [ROWS], "softmax"),
    "softmax_axis0": (lambda x: gj.softmax(x, axis=0), [ROWS], "softmax"),
    "log_softmax": (lambda x: gj.log_softmax(x, dim=-1), [ROWS], "log_softmax"),
    "layer_norm": (lambda x: F.layer_norm(x, (512,)), [ROWS], "layer_norm"),
    "layer_norm_affine": (
        lambda x, w, b: F.layer_norm(x, [512], w, b, 1e-5),
        [ROWS, (512,), (512,)],
        "layer_norm",
    ),
    "gelu": (lambda x: F.gelu(x), [ROWS], "gelu"),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), [ROWS], "gelu"),
    "attention_causal": (
        lambda q, k, v: _qkv(q, k, v, is_causal=True),
        [(4, 2, 64, 32)] * 3,
        "_attention",
    ),
}


def _run(build, arrays, create_graph=False):
    """The result, the gradient of sum(y * c) for every argument, and with create_graph
    the gradient of sum(dx * c2) for the first (second order)."""
    ts = [gj.tensor(a, requires_grad=True) for a in arrays]
    y = build(*ts)
    c = gj.tensor(np.cos(np.arange(y.numel()).reshape(y.shape)).astype(y.numpy().dtype))
    grads = gj.autograd.grad(gj.sum(y * c), ts, create_graph=create_graph)
    out = [y.numpy()] + [g.numpy() for g in grads]
    if create_graph:
        (second,) = gj.autograd.grad(gj.sum(grads[0] * grads[0]), [ts[0]])
        out.append(second.numpy())
    return out, y


@pytest.mark.parametrize("name", list(COMPOSITES))
def test_a_hot_composite_runs_compiled_and_agrees_with_eager(name, monkeypatch):
    build, shapes, composite = COMPOSITES[name]
    arrays = _arrays(shapes, np.float64, seed=3)
    monkeypatch.setenv("GRAPHJIT_EAGER_COMPILE", "0")
    want, eager_y = _run(build, arrays, create_graph=True)
    monkeypatch.delenv("GRAPHJIT_EAGER_COMPILE")
    for _ in range(eager_compiled.HOT_CALLS + 2):
        got, y = _run(build, arrays, create_graph=True)
        for g, w in zip(got, want, strict=True):
            _close(g, w, 1e-12)
    assert composite in _compiled_ops()
    assert type(y.grad_fn).__name__ != type(eager_y.grad_fn).__name__  # (one node, compiled)


@pytest.mark.parametrize("name", list(COMPOSITES))
def test_a_hot_composites_backward_reads_what_its_forward_kept(name, monkeypatch):
    """Without create_graph, a compiled composite's node runs a backward program of its
    own, fed what its forward kept (frontend/partition.py): the gradients are the eager
    path's up to rounding, every call."""
    build, shapes, composite = COMPOSITES[name]
    arrays = _arrays(shapes, np.float64, seed=5)
    monkeypatch.setenv("GRAPHJIT_EAGER_COMPILE", "0")
    want, _ = _run(build, arrays)
    monkeypatch.delenv("GRAPHJIT_EAGER_COMPILE")
    for _ in range(eager_compiled.HOT_CALLS + 2):
        got, y = _run(build, arrays)
        for g, w in zip(got, want, strict=True):
            _close(g, w, 1e-12)
    assert composite in _compiled_ops()
    assert type(y.grad_fn).__name__.startswith("Compiled")


def _splits() -> dict:
    """{composite name: the Split of its one compiled signature}."""
    return {
        key[0].__name__: c.split
        for key, c in eager_compiled.SIGNATURES.compiled.items()
        if isinstance(c, eager_compiled._Partitioned) and c.split is not None
    }


def _kept_shapes(split) -> list:
    return [tuple(v.shape) for v in split.kept_values]


def _backward_ops(split) -> list[str]:
    session = split.programs[1][0]
    return [op.name for op in session.graph.block.ops]


def test_what_a_compiled_composite_keeps_for_its_backward():
    """Elementwise values are made again from what the backward reads anyway; a product's
    or a reduction's result is kept, and so is a value as large made from one (attention's
    softmax, not its scores): no backward computes a product of the forward again."""
    (x,) = _arrays([ROWS])
    q = _arrays([(4, 2, 64, 32)] * 3)
    w, b = _arrays([(512,), (512,)])
    for _ in range(eager_compiled.HOT_CALLS + 1):
        _run(COMPOSITES["gelu_tanh"][0], [x])
        _run(COMPOSITES["layer_norm_affine"][0], [x, w, b])
        _run(COMPOSITES["attention_causal"][0], q)
    splits = _splits()
    gelu, norm, attention = splits["gelu"], splits["layer_norm"], splits["_attention"]
    assert gelu.kept_sources == [0] and _kept_shapes(gelu) == []  # (its input alone)
    assert 0 in norm.kept_sources  # (and its row statistics, counts: nothing as large)
    assert (64, 1) in _kept_shapes(norm) and max(map(np.prod, _kept_shapes(norm))) == 64
    assert (4, 2, 64, 64) in _kept_shapes(attention)
    # (dQ, dK, dV and the weights' cotangent: not QKᵀ or the weights times V again)
    assert _backward_ops(attention).count("matmul") == 4


def test_a_composites_output_may_change_in_place_before_backward():
    """GELU's and layer norm's nodes keep their inputs, as PyTorch's do: their results may
    change in place before backward (a kept value that is also an output is a copy)."""
    a, w = _arrays([ROWS, (512,)])
    grads = []
    for _ in range(eager_compiled.HOT_CALLS + 2):
        x = gj.tensor(a, requires_grad=True)
        y = F.layer_norm(F.gelu(x), (512,), gj.tensor(w))
        z = gj.sum(y * 3.0)  # (mul by a constant: z's rule does not keep y)
        y.mul_(2.0)
        z.backward()
        grads.append(x.grad.numpy())
    assert "layer_norm" in _splits()
    for g in grads[1:]:
        _close(g, grads[0], 1e-6)


def test_float32_composites_agree_with_eager(monkeypatch):
    (x,) = _arrays([ROWS])
    monkeypatch.setenv("GRAPHJIT_EAGER_COMPILE", "0")
    want = [_run(COMPOSITES[n][0], [x])[0] for n in ("softmax", "layer_norm", "gelu")]
    monkeypatch.delenv("GRAPHJIT_EAGER_COMPILE")
    for _ in range(eager_compiled.HOT_CALLS + 1):
        got = [_run(COMPOSITES[n][0], [x])[0] for n in ("softmax", "layer_norm", "gelu")]
    assert {"softmax", "layer_norm", "gelu"} <= _compiled_ops()
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g, w, strict=True):
            _close(a, b, 2e-6)


def test_softmax_input_may_change_in_place_before_backward_on_every_call():
    """PyTorch's softmax and log_softmax keep their result, not their input: so do the
    eager ops' rules and the compiled node."""
    (a,) = _arrays([ROWS])
    grads = []
    for _ in range(eager_compiled.HOT_CALLS + 2):
        x = gj.tensor(a, requires_grad=True)
        h = x * 2.0
        y = gj.softmax(h, axis=-1)
        h.add_(1.0)
        gj.sum(y * y).backward()
        grads.append(x.grad.numpy())
    assert type(y.grad_fn).__name__ == "CompiledSoftmaxBackward"
    for g in grads[1:]:
        _close(g, grads[0], 1e-6)


def test_a_changed_softmax_result_is_refused_on_every_call():
    (a,) = _arrays([ROWS])
    for _ in range(eager_compiled.HOT_CALLS + 2):
        x = gj.tensor(a, requires_grad=True)
        y = gj.softmax(x, axis=-1)
        z = gj.sum(y * 3.0)  # (mul by a constant: z's rule does not keep y)
        y.mul_(2.0)
        with pytest.raises(GradientError, match="in-place"):
            z.backward()


def test_compiled_layer_norm_keeps_its_input_as_pytorchs_does():
    (a,) = _arrays([ROWS])
    for _ in range(eager_compiled.HOT_CALLS + 1):
        x = gj.tensor(a, requires_grad=True)
        h = x * 2.0
        y = F.layer_norm(h, (512,))
    h.add_(1.0)
    with pytest.raises(GradientError, match="in-place"):
        gj.sum(y * y).backward()


def test_composite_errors_are_the_eager_paths_every_time():
    (x,) = _arrays([ROWS])
    for _ in range(eager_compiled.HOT_CALLS + 2):
        with pytest.raises(ShapeError, match="normalized_shape"):
            F.layer_norm(gj.tensor(x), (256,))
    assert _compiled_ops() == set()


def test_no_grad_anomaly_dropout_and_masks(monkeypatch):
    (x,) = _arrays([ROWS])
    with gj.no_grad():
        for _ in range(eager_compiled.HOT_CALLS + 1):
            y = gj.softmax(gj.tensor(x, requires_grad=True), axis=-1)
    assert y.grad_fn is None and not y.requires_grad and "softmax" in _compiled_ops()
    eager_compiled.SIGNATURES.clear()
    with gj.autograd.detect_anomaly():
        for _ in range(eager_compiled.HOT_CALLS + 1):
            gj.softmax(gj.tensor(x), axis=-1)
    assert _compiled_ops() == set()
    q = [gj.tensor(a) for a in _arrays([(4, 2, 64, 32)] * 3)]
    mask = gj.tensor(np.zeros((64, 64), np.float32))
    for _ in range(eager_compiled.HOT_CALLS + 1):
        _qkv(*q, dropout_p=0.5)
        _qkv(*q, attn_mask=mask)
    assert "_attention" not in _compiled_ops()  # (the softmax inside may be compiled)


def test_graph_values_take_the_composite_as_written():
    graph = gj.Graph()
    with graph.as_default():
        x = gj.placeholder(gj.float32, ROWS)
        for _ in range(eager_compiled.HOT_CALLS + 1):
            y = gj.softmax(x, axis=-1)
    assert not eager_compiled.SIGNATURES.counts and not eager_compiled.SIGNATURES.compiled
    (a,) = _arrays([ROWS])
    _close(gj.Session(graph).run(y, {x: a}), gj.softmax(gj.tensor(a), axis=-1).numpy(), 1e-6)


def test_a_failing_compiled_composite_falls_back_to_eager(monkeypatch):
    (x,) = _arrays([ROWS])
    want = F.gelu(gj.tensor(x)).numpy()

    def broken(*args, **kwargs):
        raise RuntimeError("a compile that fails")

    monkeypatch.setattr(eager_compiled, "_compiled", lambda fn, vjp: broken)
    for _ in range(eager_compiled.HOT_CALLS + 2):
        np.testing.assert_array_equal(F.gelu(gj.tensor(x)).numpy(), want)
    assert list(eager_compiled.SIGNATURES.compiled.values()) == [eager_compiled._UNUSABLE]


def test_compiled_composites_keep_subnormals():
    x = np.full(ROWS, np.finfo(np.float32).smallest_normal, np.float32)
    want = F.gelu(gj.tensor(x)).numpy()  # ~x / 2: subnormal
    assert (want > 0).all() and (want < np.finfo(np.float32).smallest_normal).all()
    for _ in range(eager_compiled.HOT_CALLS + 1):
        got = F.gelu(gj.tensor(x)).numpy()
    assert "gelu" in _compiled_ops()
    np.testing.assert_array_equal(got, want)


def test_compiled_eager_code_keeps_no_working_memory_between_runs(monkeypatch):
    """held_buffer_bytes=0: eager tensors hold their results anyway, and every hot
    signature keeping up to GRAPHJIT_HELD_BUFFER_BYTES would add up."""
    import gc

    _per_op_backward(monkeypatch)
    from graphjit.codegen.llvm import LLVMRunner

    x, w, b = _arrays([BIG["x"], BIG["w"], (8,)])
    (rows,) = _arrays([ROWS])
    for _ in range(eager_compiled.HOT_CALLS + 2):
        _step(x, w, b)
        _run(COMPOSITES["layer_norm"][0], [rows])
    assert {"conv2d", "max_pool2d_grad", "layer_norm"} <= _compiled_ops()
    runners = [r for r in gc.get_objects() if isinstance(r, LLVMRunner)]
    # (a program needing no scratch still has a one-byte arena)
    assert runners and all(r.held_limit == 0 and r.held_bytes <= 1 for r in runners)
    assert any(r.arena_size > 1 << 20 for r in runners)  # (MiB of scratch, not held)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "layer_norm", "gelu"])
def test_hostile_values_through_a_compiled_composite_match_eager(name, monkeypatch):
    """NaN, +-inf rows and entries, a value near float32's largest: NaN and infinities at
    the same places as on the eager path, the finite values equal up to rounding."""
    (a,) = _arrays([ROWS])
    a[0, 3], a[1, :], a[2, 5], a[3, :], a[4, 7] = np.nan, np.inf, -np.inf, -np.inf, 3e38
    build = COMPOSITES[name][0]
    monkeypatch.setenv("GRAPHJIT_EAGER_COMPILE", "0")
    with np.errstate(all="ignore"):
        want = build(gj.tensor(a)).numpy()
    monkeypatch.delenv("GRAPHJIT_EAGER_COMPILE")
    for _ in range(eager_compiled.HOT_CALLS + 1):
        with np.errstate(all="ignore"):
            got = build(gj.tensor(a)).numpy()
    assert name in _compiled_ops()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-5)


def test_scatter_add_runs_compiled_once_hot_with_numpys_bits_and_errors():
    """An embedding's gradient (scatter_add of rows into a table) runs as the llvm
    backend's scatter once hot: the bits of np.add.at, which adds in the same order; an
    index out of range is the registry kernel's error before and after, checked before the
    compiled code runs, so the program stays in use."""
    from graphjit.ir.ops import bind

    rng = np.random.default_rng(8)
    table = rng.normal(size=(96, 128)).astype(np.float32)
    rows = rng.normal(size=(16, 128, 128)).astype(np.float32)
    ids = rng.integers(-96, 96, size=(16, 128))  # (negative: counted from the end)
    scatter = get_op("scatter_add")
    want = scatter.kernel(rows, ids, table, axis=0, wrap_negative=True)
    bad = ids.copy()
    bad[3, 5] = 96
    for _ in range(eager_compiled.HOT_CALLS + 2):
        got = bind("scatter_add", gj.tensor(rows), gj.tensor(ids), gj.tensor(table), axis=0)
        assert got.numpy().tobytes() == want.tobytes()
        with pytest.raises(gj.RuntimeCheckError, match="index 96 is out of range"):
            bind("scatter_add", gj.tensor(rows), gj.tensor(bad), gj.tensor(table), axis=0)
    assert "scatter_add" in _compiled_ops()
    w = gj.tensor(table, requires_grad=True)  # through the embedding's gradient
    gj.sum(gj.nn.functional.embedding(gj.tensor(ids % 96), w) * gj.tensor(rows)).backward()
    np.testing.assert_array_equal(w.grad.numpy(), want)
    inner = rng.normal(size=(8, 300, 64)).astype(np.float32)  # along an inner axis: the same
    ids = rng.integers(-50, 50, size=300)  # order of additions into each element
    want = scatter.kernel(inner, ids, np.zeros((8, 50, 64), np.float32), axis=1, wrap_negative=True)
    for _ in range(eager_compiled.HOT_CALLS + 1):
        like = gj.tensor(np.zeros((8, 50, 64), np.float32))
        got = bind("scatter_add", gj.tensor(inner), gj.tensor(ids), like, axis=1)
        assert got.numpy().tobytes() == want.tobytes()

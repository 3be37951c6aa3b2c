"""Eager convolutions and pooling as compiled code (frontend/eager/native.py): a signature
(op, attributes, shapes, dtypes) runs NumPy's kernel HOT_CALLS times, then the llvm
backend's; the results agree with NumPy's kernel and the errors are the same; small,
one-off, non-float and failing calls stay with NumPy."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import graphjit as gj
from graphjit.errors import ConfigError, ShapeError
from graphjit.frontend.eager import native
from graphjit.ir.ops import get_op

LENET = {"x": (8, 3, 16, 16), "w": (6, 3, 5, 5)}  # 6144 and 450 elements ...
BIG = {"x": (16, 3, 24, 24), "w": (8, 3, 5, 5)}  # ... 27648: above NATIVE_MIN_ELEMENTS


@pytest.fixture(autouse=True)
def fresh_signatures(monkeypatch):
    monkeypatch.delenv("GRAPHJIT_EAGER_COMPILE", raising=False)
    native.SIGNATURES.clear()
    yield
    native.SIGNATURES.clear()


def _arrays(shapes, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype(dtype) for s in shapes]


def _close(got, want, eps):
    """Equal up to rounding: sums of 75 products in another order, with cancellation, so
    the error is relative to the array's scale, not to each element."""
    np.testing.assert_allclose(got, want, rtol=10 * eps, atol=eps * np.abs(want).max())


def _compiled_ops() -> set[str]:
    return {key[0].name for key, c in native.SIGNATURES.compiled.items() if callable(c)}


def _step(x, w, b):
    """One LeNet-like stage and a loss, with the gradients of its inputs."""
    xt, wt, bt = (gj.tensor(a, requires_grad=True) for a in (x, w, b))
    h = gj.nn.max_pool2d(gj.relu(gj.nn.conv2d(xt, wt, bt, padding=2)), 2)
    loss = gj.sum(h * h)
    loss.backward()
    return [loss.numpy(), h.numpy()] + [t.grad.numpy() for t in (xt, wt, bt)]


def test_a_hot_signature_is_compiled_and_agrees_with_numpy(monkeypatch):
    x, w, b = _arrays([BIG["x"], BIG["w"], (8,)])
    runs = [_step(x, w, b) for _ in range(native.HOT_CALLS + 2)]
    assert _compiled_ops() == {
        "conv2d",
        "conv2d_input_grad",
        "conv2d_filter_grad",
        "max_pool2d",
        "max_pool2d_grad",
    }
    for numpy_run in runs[: native.HOT_CALLS]:  # NumPy's kernels gave the first runs
        np.testing.assert_array_equal(numpy_run[1], runs[0][1])
    for compiled in runs[native.HOT_CALLS :]:
        for got, want in zip(compiled, runs[0], strict=True):
            _close(got, want, 1e-5)
    monkeypatch.setenv("GRAPHJIT_EAGER_COMPILE", "0")  # off: NumPy's kernels again
    np.testing.assert_array_equal(_step(x, w, b)[1], runs[0][1])


def test_float64_compiled_matches_numpy_closely():
    x, w, b = _arrays([BIG["x"], BIG["w"], (8,)], np.float64)
    runs = [_step(x, w, b) for _ in range(native.HOT_CALLS + 1)]
    assert "conv2d" in _compiled_ops()
    for got, want in zip(runs[-1], runs[0], strict=True):
        _close(got, want, 1e-13)


def test_small_one_off_and_non_float_calls_are_not_compiled():
    x, w, b = _arrays([LENET["x"], LENET["w"], (6,)])
    for _ in range(native.HOT_CALLS + 2):  # small: NumPy's every time
        _step(x, w, b)
    big = _arrays([BIG["x"], BIG["w"], (8,)])
    _step(*big)  # once: never compiled
    assert _compiled_ops() == set()
    x16 = gj.tensor(_arrays([BIG["x"]])[0].astype(np.float16))
    for _ in range(native.HOT_CALLS + 1):  # float16: NumPy's (computing in float32)
        pooled = gj.nn.max_pool2d(x16, 2)
    assert pooled.dtype == gj.float16 and _compiled_ops() == set()


def test_errors_are_numpys_whether_or_not_the_signature_is_hot():
    (x,) = _arrays([BIG["x"]])
    w = gj.tensor(_arrays([(8, 4, 5, 5)])[0])  # 4 input channels for 3
    for _ in range(native.HOT_CALLS + 2):
        with pytest.raises(ShapeError, match="conv2d"):
            gj.nn.conv2d(gj.tensor(x), w)
    assert _compiled_ops() == set()


def test_a_failing_compile_or_run_falls_back_to_numpy(monkeypatch):
    (x,) = _arrays([BIG["x"]])
    want = gj.nn.max_pool2d(gj.tensor(x), 2).numpy()

    def broken(*arrays):
        raise RuntimeError("a kernel that cannot run")

    monkeypatch.setattr(native, "_compile", lambda *a: broken)
    for _ in range(native.HOT_CALLS + 2):
        np.testing.assert_array_equal(gj.nn.max_pool2d(gj.tensor(x), 2).numpy(), want)
    (state,) = native.SIGNATURES.compiled.values()
    assert state is native._UNUSABLE  # tried once, then NumPy's for good


def test_a_malformed_switch_is_a_config_error(monkeypatch):
    (x,) = _arrays([BIG["x"]])
    monkeypatch.setenv("GRAPHJIT_EAGER_COMPILE", "sometimes")
    with pytest.raises(ConfigError, match="GRAPHJIT_EAGER_COMPILE"):
        gj.nn.max_pool2d(gj.tensor(x), 2)


def test_compiled_signatures_are_bounded(monkeypatch):
    monkeypatch.setattr(native, "MAX_COMPILED", 2)
    monkeypatch.setattr(native, "HOT_CALLS", 0)
    (x,) = _arrays([(8, 4, 32, 32)])
    for side in (32, 30, 28):
        gj.nn.max_pool2d(gj.tensor(x[..., :side, :side]), 2)
    shapes = [key[1][0][0] for key in native.SIGNATURES.compiled]
    assert shapes == [(8, 4, 30, 30), (8, 4, 28, 28)]  # the oldest dropped


def test_subnormals_are_kept_as_numpy_keeps_them(monkeypatch):
    monkeypatch.setattr(native, "HOT_CALLS", 0)
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
            for _ in range(native.HOT_CALLS + 3):
                results.append(gj.nn.max_pool2d(gj.tensor(x), 2).numpy())
        except Exception as e:  # (reported below, not lost in the thread)
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 3 * (native.HOT_CALLS + 3)
    for got in results:
        np.testing.assert_array_equal(got, want)
    assert _compiled_ops() == {"max_pool2d"}


def test_every_windowed_op_has_an_eager_native_kernel():
    from graphjit.frontend.eager.dispatch import EAGER_KERNELS
    from graphjit.ir.ops import WINDOWED, all_ops

    windowed = {op for op in all_ops().values() if op.has(WINDOWED)}
    assert get_op("conv2d") in windowed and get_op("avg_pool2d_grad") in windowed
    assert windowed <= set(EAGER_KERNELS)

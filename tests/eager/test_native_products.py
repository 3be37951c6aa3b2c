"""Eager matmuls of at least NATIVE_MIN_MACS multiply-adds run on graphjit's threads once
hot (frontend/eager_compiled.py: native_matmul), through one compiled program per dtype,
ranks and transposes whose sizes are run-time values. They agree with NumPy's products up
to rounding, forward and backward; small products, narrow floats, empty operands and
shape errors stay NumPy's; a failing program falls back to NumPy for good."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj
from graphjit.errors import ShapeError
from graphjit.frontend import eager_compiled
from graphjit.ir.ops import get_op

MATMUL = get_op("matmul")


pytestmark = pytest.mark.usefixtures("fresh_signatures")  # (tests/eager/conftest.py)


def _programs() -> list[tuple]:
    """(dtype char, rank of a, rank of b, transpose_a, transpose_b) of each compiled
    product program."""
    return [
        key[1:]
        for key, compiled in eager_compiled.SIGNATURES.compiled.items()
        if key[0] is MATMUL and callable(compiled)
    ]


def _op(x, transposed):
    return np.swapaxes(x, -1, -2) if transposed else x


def _hot_product(a, b, **flags):
    """The product HOT_CALLS + 1 times (the last one compiled), as a NumPy array."""
    x, y = gj.tensor(a), gj.tensor(b)
    for _ in range(eager_compiled.HOT_CALLS + 1):
        out = gj.matmul(x, y, **flags).numpy()
    return out


def _assert_close(got, want, dtype):
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(got, want, rtol=64 * eps, atol=64 * eps * np.abs(want).max())


# (a's shape, b's shape, transpose_a, transpose_b, the program's ranks and flags)
PRODUCTS = [
    ((128, 256), (256, 64), False, False, (2, 2, False, False)),
    ((256, 128), (256, 64), True, False, (2, 2, True, False)),
    ((128, 256), (64, 256), False, True, (2, 2, False, True)),
    ((8, 64, 128), (128, 96), False, False, (2, 2, False, False)),  # rows of a batch
    ((8, 128, 64), (128, 96), True, False, (3, 2, True, False)),
    ((4, 2, 64, 32), (4, 2, 32, 64), False, False, (4, 4, False, False)),  # a batch
    ((4, 1, 64, 48), (3, 48, 64), False, False, (4, 3, False, False)),  # broadcast batch
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("a_shape, b_shape, ta, tb, program", PRODUCTS)
def test_a_large_product_runs_compiled_and_agrees_with_numpy(
    a_shape, b_shape, ta, tb, program, dtype
):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=a_shape).astype(dtype), rng.normal(size=b_shape).astype(dtype)
    got = _hot_product(a, b, transpose_a=ta, transpose_b=tb)
    want = np.matmul(_op(a, ta), _op(b, tb))
    assert got.shape == want.shape and got.dtype == dtype
    _assert_close(got, want, dtype)
    assert _programs() == [(np.dtype(dtype).char, *program)]


def test_one_program_serves_every_size():
    rng = np.random.default_rng(1)
    for m, k, n in [(128, 256, 64), (96, 512, 80), (300, 64, 200), (64, 4096, 4)]:
        a = rng.normal(size=(m, k)).astype(np.float32)
        b = rng.normal(size=(k, n)).astype(np.float32)
        _assert_close(_hot_product(a, b), a @ b, np.float32)
    assert _programs() == [("f", 2, 2, False, False)]


def test_a_transposed_view_is_read_in_place_with_its_flag_flipped():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(128, 256)).astype(np.float32)
    w = rng.normal(size=(64, 256)).astype(np.float32)
    wt = gj.tensor(w).T  # (a view: (256, 64), not contiguous)
    for _ in range(eager_compiled.HOT_CALLS + 1):
        got = (gj.tensor(x) @ wt).numpy()
    _assert_close(got, x @ w.T, np.float32)
    assert _programs() == [("f", 2, 2, False, True)]  # w itself, transposed by the flag


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_through_compiled_products_agree_with_numpy(dtype):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(4, 64, 128)).astype(dtype), rng.normal(size=(128, 96)).astype(dtype)
    g = rng.normal(size=(4, 64, 96)).astype(dtype)
    for _ in range(eager_compiled.HOT_CALLS + 1):
        x, w = gj.tensor(a, requires_grad=True), gj.tensor(b, requires_grad=True)
        gj.sum(gj.matmul(x, w) * gj.tensor(g)).backward()
    _assert_close(x.grad.numpy(), g @ b.T, dtype)
    _assert_close(w.grad.numpy(), a.reshape(-1, 128).T @ g.reshape(-1, 96), dtype)
    assert len(_programs()) >= 2  # the forward's product and the gradients'


def test_small_narrow_empty_and_integer_products_stay_numpys():
    rng = np.random.default_rng(4)
    normal = lambda *shape, dtype=np.float32: rng.normal(size=shape).astype(dtype)  # noqa: E731
    cases = [
        (normal(16, 64), normal(64, 64)),
        (normal(128, 256, dtype=np.float16), normal(256, 64, dtype=np.float16)),
        (np.ones((0, 4096), np.float32), np.ones((4096, 4096), np.float32)),
        (np.ones((128, 256), np.int64), np.ones((256, 64), np.int64)),
    ]
    for a, b in cases:
        got = _hot_product(a, b)
        want = MATMUL.kernel(a, b)  # the registry's kernel: NumPy's bits
        np.testing.assert_array_equal(got, want)
    assert _programs() == []


def test_shape_errors_are_numpys_and_leave_the_program_usable():
    a = gj.tensor(np.ones((128, 256), np.float32))
    for _ in range(eager_compiled.HOT_CALLS + 2):
        with pytest.raises(ShapeError, match="inner dimensions"):
            gj.matmul(a, gj.tensor(np.ones((128, 64), np.float32)))
        with pytest.raises(ShapeError):
            gj.matmul(gj.tensor(np.ones((3, 64, 256), np.float32)),
                      gj.tensor(np.ones((2, 256, 64), np.float32)))  # fmt: skip
    b = np.full((256, 64), 0.5, np.float32)
    np.testing.assert_array_equal(_hot_product(np.ones((128, 256), np.float32), b), 128.0)
    assert _programs() == [("f", 2, 2, False, False)]


def test_non_finite_entries_propagate_as_numpys_do():
    a = np.ones((128, 256), np.float32)
    a[3, 7], a[5, 0], a[9, 1] = np.nan, np.inf, -np.inf
    got = _hot_product(a, np.ones((256, 64), np.float32))
    np.testing.assert_array_equal(got, a @ np.ones((256, 64), np.float32))


def test_a_failing_program_falls_back_to_numpy_for_good(monkeypatch):
    def broken(*arrays):
        raise RuntimeError("a program that cannot run")

    monkeypatch.setattr(eager_compiled, "_compile_product", lambda *args: broken)
    rng = np.random.default_rng(5)
    a, b = (
        rng.normal(size=(128, 256)).astype(np.float32),
        rng.normal(size=(256, 64)).astype(np.float32),
    )
    np.testing.assert_array_equal(_hot_product(a, b), MATMUL.kernel(a, b))
    (state,) = eager_compiled.SIGNATURES.compiled.values()
    assert state is eager_compiled._UNUSABLE


def test_switched_off_every_product_is_numpys(monkeypatch):
    monkeypatch.setenv("GRAPHJIT_EAGER_COMPILE", "0")
    rng = np.random.default_rng(6)
    a, b = (
        rng.normal(size=(128, 256)).astype(np.float32),
        rng.normal(size=(256, 64)).astype(np.float32),
    )
    np.testing.assert_array_equal(_hot_product(a, b), MATMUL.kernel(a, b))
    assert _programs() == []


def test_memory_running_out_is_a_resource_error_and_keeps_the_program(monkeypatch):
    """Running out of memory says nothing against the program (NumPy would run out too):
    the error is raised as eager mode raises it, and the next call may use the program."""

    def out_of_memory(*arrays):
        raise MemoryError

    monkeypatch.setattr(eager_compiled, "_compile_product", lambda *args: out_of_memory)
    a, b = gj.tensor(np.ones((128, 256), np.float32)), gj.tensor(np.ones((256, 64), np.float32))
    for _ in range(eager_compiled.HOT_CALLS):
        gj.matmul(a, b)
    with pytest.raises(gj.ResourceError, match="out of memory computing 'matmul'"):
        gj.matmul(a, b)
    (state,) = eager_compiled.SIGNATURES.compiled.values()
    assert state is out_of_memory

"""sort, argsort, topk, kthvalue and TF1's top_k: against NumPy and PyTorch (with ties, NaN,
±inf and ±0, ascending and descending, along several axes) on the interpreter, the llvm
backend and, in a process of its own, the cuda backend in Numba's simulator (whose
kernels are then compiled to PTX); eagerly and under gj.function; gradients against
finite differences; a row of 100k elements on llvm; the errors for a k out of range."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from backend_check import compare_on

import graphjit as gj

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "autodiff"))
from fd import assert_close, check_gradients  # noqa: E402

try:
    import torch
except ImportError:  # (a test-only dependency: the PyTorch comparisons are skipped)
    torch = None

ROOT = Path(__file__).resolve().parents[2]
SIMULATING = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
KERNEL_LOG = "GRAPHJIT_SORTING_KERNEL_LOG"
# The cuda backend runs only in the simulator's own process (test_cuda_simulator_...).
BACKENDS = ["llvm", "cuda"] if SIMULATING else ["llvm"]
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

DTYPES = ["float64", "float32", "int32", "int64"]
SPECIAL = [np.nan, np.inf, -np.inf, -0.0, 0.0]


def awkward(shape, dtype, seed=0) -> np.ndarray:
    """Small integers (so rows have ties) and, for floats, NaN, ±inf and ±0 among them."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, shape).astype(dtype)
    if x.dtype.kind == "f":
        spots = rng.random(shape) < 0.3
        x[spots] = rng.choice(SPECIAL, int(spots.sum()))
    return x


def distinct(shape, seed=0) -> np.ndarray:
    """float64 values with no ties, far enough apart for finite differences."""
    n = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(n).reshape(shape) * 0.25 - n / 8


def stable_reference(x: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """The stable order as keys for np.lexsort (stable): NaN largest, descending sorts by
    NaN first and then by -x (exact for these inputs: no integer minimum)."""
    moved = np.moveaxis(x, axis, -1)
    nan = np.isnan(moved) if moved.dtype.kind == "f" else np.zeros(moved.shape, bool)
    keys = (-moved, ~nan) if descending else (moved, nan)
    return np.moveaxis(np.lexsort(keys, axis=-1), -1, axis)


CASES = [((9,), 0), ((4, 7), 1), ((4, 7), 0), ((2, 5, 3), 1), ((3, 1), 1), ((3, 0), 1)]


# ---- the reference kernel (the interpreter) against NumPy and PyTorch ---------------------


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", CASES)
def test_sort_is_stable_with_nan_largest(shape, axis, dtype, descending):
    x = awkward(shape, dtype)
    values, indices = gj.sort(gj.tensor(x), dim=axis, descending=descending)
    order = stable_reference(x, axis, descending)
    np.testing.assert_array_equal(indices.numpy(), order)
    np.testing.assert_array_equal(values.numpy(), np.take_along_axis(x, order, axis))
    assert indices.dtype == gj.int64 and values.dtype.name == dtype


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_ascending_sort_is_numpys(axis):
    x = awkward((6, 8), "float64", seed=3)
    values, indices = gj.sort(gj.tensor(x), axis)
    np.testing.assert_array_equal(values.numpy(), np.sort(x, axis=axis))
    np.testing.assert_array_equal(indices.numpy(), np.argsort(x, axis=axis, kind="stable"))


@needs_torch
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_sort_and_argsort_equal_pytorchs_stable_sort(axis, dtype, descending):
    x = awkward((5, 9), dtype, seed=1)
    got = gj.sort(gj.tensor(x), dim=axis, descending=descending)
    want = torch.sort(torch.tensor(x), dim=axis, descending=descending, stable=True)
    np.testing.assert_array_equal(got.values.numpy(), want.values.numpy())
    np.testing.assert_array_equal(got.indices.numpy(), want.indices.numpy())
    order = gj.argsort(gj.tensor(x), dim=axis, descending=descending)
    np.testing.assert_array_equal(order.numpy(), want.indices.numpy())


@needs_torch
@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("dim", [0, -1])
def test_topk_equals_pytorch(dim, largest):
    """Values always (NaN counts as the largest, as in PyTorch); indices where there are no
    ties (PyTorch leaves the order of tied elements unspecified) and, with ties, indices
    that point at the same values."""
    x = awkward((6, 7), "float64", seed=2)
    got = gj.topk(gj.tensor(x), 3, dim=dim, largest=largest)
    want = torch.topk(torch.tensor(x), 3, dim=dim, largest=largest)
    np.testing.assert_array_equal(got.values.numpy(), want.values.numpy())
    picked = np.take_along_axis(x, got.indices.numpy(), dim)
    np.testing.assert_array_equal(picked, want.values.numpy())
    y = distinct((6, 7))
    got = gj.topk(gj.tensor(y), 3, dim=dim, largest=largest)
    want = torch.topk(torch.tensor(y), 3, dim=dim, largest=largest)
    np.testing.assert_array_equal(got.indices.numpy(), want.indices.numpy())


@needs_torch
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_kthvalue_equals_pytorch(k, keepdim):
    x = distinct((5, 7), seed=4)
    x[1, 2] = np.nan
    got = gj.kthvalue(gj.tensor(x), k, dim=1, keepdim=keepdim)
    want = torch.kthvalue(torch.tensor(x), k, dim=1, keepdim=keepdim)
    np.testing.assert_array_equal(got.values.numpy(), want.values.numpy())
    np.testing.assert_array_equal(got.indices.numpy(), want.indices.numpy())


def test_tf1_spellings():
    """tf.sort/tf.argsort (axis=, direction=: the values or indices alone) and
    tf.math.top_k (the last axis, largest first, a (values, indices) named tuple)."""
    x = awkward((4, 6), "float32", seed=5)
    down = gj.sort(gj.tensor(x), axis=0, direction="DESCENDING")
    np.testing.assert_array_equal(
        down.numpy(), np.take_along_axis(x, stable_reference(x, 0, True), 0)
    )
    order = gj.argsort(gj.tensor(x), axis=-1, direction="ASCENDING")
    np.testing.assert_array_equal(order.numpy(), stable_reference(x, -1, False))
    values, indices = gj.top_k(gj.tensor(x), k=2)
    np.testing.assert_array_equal(indices.numpy(), stable_reference(x, -1, True)[:, :2])
    assert gj.top_k(gj.tensor(x)).values.shape == (4, 1)
    with pytest.raises(ValueError, match="direction"):
        gj.sort(gj.tensor(x), direction="UP")


def test_a_scalar_sorts_as_one_element():
    values, indices = gj.sort(gj.tensor(2.5))
    assert values.shape == () and values.item() == 2.5 and indices.item() == 0
    assert gj.kthvalue(gj.tensor(2.5), 1).values.item() == 2.5


# ---- errors ---------------------------------------------------------------------------------


def test_k_out_of_range_is_a_shape_error():
    x = gj.tensor(np.ones((2, 3)))
    with pytest.raises(gj.ShapeError, match="k = 4 is out of range"):
        gj.topk(x, 4)
    with pytest.raises(gj.ShapeError, match="counts from 1"):
        gj.kthvalue(x, 0)
    with pytest.raises(gj.ShapeError, match="out of range"):
        gj.sort(x, dim=2)


def test_k_beyond_a_fed_dimension_is_a_shape_error_when_it_runs():
    """An unknown dimension is checked once the Session knows it, on every backend."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, None])
        top = gj.topk(x, 3).values
    for backend in ["interpreter", "llvm"]:
        with gj.Session(g, backend=backend) as sess:
            assert sess.run(top, {x: np.ones((2, 5), np.float32)}).shape == (2, 3)
            with pytest.raises(gj.ShapeError, match="k = 3 is out of range"):
                sess.run(top, {x: np.ones((2, 2), np.float32)})


# ---- backends against the interpreter ------------------------------------------------------


def _graph(build, x):
    g = gj.Graph()
    with g.as_default():
        p = gj.placeholder(x.dtype, x.shape, name="x")
        fetches = build(p)
    return g, fetches, {p: x}


SORTS = {
    "sort": lambda p, axis: list(gj.sort(p, dim=axis)),
    "sort descending": lambda p, axis: list(gj.sort(p, dim=axis, descending=True)),
    "topk": lambda p, axis: list(gj.topk(p, 1, dim=axis)),
    "topk smallest": lambda p, axis: list(gj.topk(p, 1, dim=axis, largest=False)),
    "kthvalue": lambda p, axis: list(gj.kthvalue(p, 1, dim=axis, keepdim=True)),
}


@pytest.mark.parametrize("name", SORTS)
@pytest.mark.parametrize("dtype", DTYPES + ["bool"])
@pytest.mark.parametrize("shape, axis", [c for c in CASES if c[0][c[1]] > 0])
@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_equals_interpreter(backend, shape, axis, dtype, name):
    x = awkward(shape, dtype, seed=6)
    g, fetches, feed = _graph(lambda p: SORTS[name](p, axis), x)
    compare_on(backend, g, fetches, feed, what=f"{name} on {backend}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_axis_and_empty_rows(backend):
    for shape, axis in [((3, 0), 1), ((0, 4), 1), ((0, 4), 0)]:
        x = np.zeros(shape, np.float32)
        g, fetches, feed = _graph(lambda p, a=axis: list(gj.sort(p, dim=a)), x)
        compare_on(backend, g, fetches, feed, what=f"sort of {shape} along {axis}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_equal_the_interpreters(backend):
    """Through sort (its VJP scatters through the indices) and topk, and of that gradient
    again (the scatter's VJP gathers)."""
    x = distinct((3, 6), seed=7)
    w = np.random.default_rng(8).normal(size=(3, 6))

    def build(p):
        values = gj.sort(p, dim=1, descending=True).values
        loss = gj.sum(values * gj.constant(w)) + gj.sum(gj.square(gj.topk(p, 2, dim=0).values))
        (grad,) = gj.gradients(loss, [p])
        (second,) = gj.gradients(gj.sum(grad * grad), [p])
        return [grad, second]

    g, fetches, feed = _graph(build, x)
    compare_on(backend, g, fetches, feed, what=f"gradients on {backend}")


def test_a_row_of_100k_elements_on_llvm():
    """O(n log n), with its scratch in the arena (a 100k-element row on the native stack
    would be 1.2 MB): correct, no crash, in either direction."""
    rng = np.random.default_rng(9)
    x = rng.integers(-1000, 1000, 100_000).astype(np.float32)
    x[rng.random(x.shape) < 0.01] = np.nan
    g, fetches, feed = _graph(
        lambda p: [*gj.sort(p), *gj.sort(p, descending=True), gj.topk(p, 5).values], x
    )
    with gj.Session(g, backend="llvm") as sess:
        up, up_order, down, down_order, top = sess.run(fetches, feed)
    for got_order, order in [
        (up_order, stable_reference(x, 0, False)),
        (down_order, stable_reference(x, 0, True)),
    ]:
        np.testing.assert_array_equal(got_order, order)
    np.testing.assert_array_equal(up, x[up_order])
    np.testing.assert_array_equal(down, x[down_order])
    np.testing.assert_array_equal(top, down[:5])


# ---- eager, gj.function, gradients ---------------------------------------------------------


def _calls(x):
    return [
        *gj.sort(x, dim=0),
        *gj.sort(x, descending=True),
        gj.argsort(x, dim=0, descending=True),
        *gj.topk(x, 2),
        *gj.kthvalue(x, 3, dim=0),
        *gj.top_k(x, k=2),
    ]


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_gj_function_equals_eager(backend):
    x = awkward((5, 4), "float64", seed=10)
    eager = _calls(gj.tensor(x))
    traced = gj.function(_calls, backend=backend)(gj.tensor(x))
    assert len(traced) == len(eager)
    for t, e in zip(traced, eager):
        np.testing.assert_array_equal(t.numpy(), e.numpy())
        assert t.dtype == e.dtype


@pytest.mark.parametrize(
    "build",
    [
        lambda x: gj.sort(x, dim=0).values,
        lambda x: gj.sort(x, dim=1, descending=True).values,
        lambda x: gj.topk(x, 2).values,
        lambda x: gj.topk(x, 3, dim=0, largest=False).values,
        lambda x: gj.kthvalue(x, 2, dim=1).values,
    ],
    ids=["sort", "sort descending", "topk", "topk smallest", "kthvalue"],
)
def test_gradients_match_finite_differences(build):
    x = distinct((4, 5), seed=11)
    w = np.random.default_rng(12).normal(size=np.shape(build(gj.tensor(x)).numpy()))
    static = check_gradients(lambda p: gj.sum(build(p) * gj.constant(w)), [x])
    tensor = gj.tensor(x, requires_grad=True)
    gj.sum(build(tensor) * gj.tensor(w)).backward()
    assert_close(tensor.grad.numpy(), static[0], "eager gradient")


# ---- the cuda backend, in Numba's simulator -----------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def log_cuda_kernels():
    """In the simulator's process: write the kernels this module generated, for the PTX
    check of the process that started it."""
    yield
    path = os.environ.get(KERNEL_LOG)
    if SIMULATING and path:
        from graphjit.codegen.cuda.compiler import GENERATED

        with open(path, "w") as f:
            json.dump([dataclasses.asdict(k) for k in GENERATED.values()], f)


def _template(source: str) -> str:
    """A kernel's source with its integer literals as N and its products by one dropped:
    a stride of 1 is written without its `* 1`, so every `* literal` goes."""
    return re.sub(r"\b\d+\b", "N", re.sub(r"\s*\*\s*\d+\b", "", source))


@pytest.mark.skipif(SIMULATING, reason="this is the process the simulator runs in")
def test_cuda_simulator_runs_the_backend_tests_and_its_kernels_compile_to_ptx(tmp_path):
    from graphjit.codegen.cuda.compiler import compile_ptx, ptx_unavailable
    from graphjit.codegen.cuda.source import KernelSource

    log = tmp_path / "kernels.json"
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", KERNEL_LOG: str(log)}
    command = [sys.executable, "-m", "pytest", __file__, "-p", "no:cacheprovider"]
    command += ["-k", "cuda and not simulator_runs", "-W", "ignore::RuntimeWarning"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"simulated sorting tests failed:\n{done.stdout[-6000:]}"
    assert " passed" in done.stdout
    kernels = [
        KernelSource(k["source"], tuple(k["params"]), k["label"])
        for k in json.loads(log.read_text())
    ]
    sorts = [k for k in kernels if k.label.startswith("sort ")]
    assert sorts, "the simulated tests generated no sort kernel"
    reason = ptx_unavailable()
    if reason:
        pytest.skip(f"cannot compile to PTX here: {reason}")
    # Sort kernels whose sources differ only in integer literals (the row length, strides
    # and merge passes baked into them; a stride of 1 is written without its `* 1`), with
    # the same parameter types, type, lower and verify alike (as tests/cuda/test_cuda_sim.py's
    # check has it): one of each compiles (40 of the 92 sort kernels the tests generate).
    templates = {(_template(k.source), k.params): k for k in sorts}
    for kernel in templates.values():
        assert ".entry" in compile_ptx(kernel, opt=False)

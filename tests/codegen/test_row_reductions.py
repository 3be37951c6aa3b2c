"""Row reductions in the llvm backend (issue 18): float max/min fold with llvm.maximum /
llvm.minimum in several vector accumulators, and kernels reducing along rows are split
over threads by rows.

- NaN propagates from any position of a row: the first and last lanes of a vector, the
  vector loop's remainder, a row longer than one chunk; ±inf and -0.0 as NumPy's;
- split kernels (softmax, layer norm, float16 sums, rows cut into chunks, an odd number
  of rows) give bit-for-bit the results of the same kernels on one thread, and
  check_numerics sees only finished rows."""

from __future__ import annotations

import numpy as np
import pytest
from llvm_helpers import assert_matches, record_llvm_ir, run_on

import graphjit as gj
from graphjit.codegen.llvm import parallel

# Row lengths around the vector loop's shapes: 16 lanes (float32, AVX-512), 4 interleaved
# vectors (64), their remainders, and a row longer than one chunk (ROW_CHUNK = 1024).
LENGTHS = (1, 3, 16, 17, 64, 67, 130, 1024 + 70)


def _reduce_rows(*xs: np.ndarray) -> tuple[list, list]:
    """max and min over the last axis of each x, llvm's (in one graph) and NumPy's."""
    g = gj.Graph()
    fetches, feeds = [], {}
    with g.as_default():
        for k, x in enumerate(xs):
            p = gj.placeholder(x.dtype.name, x.shape, name=f"x{k}")
            fetches += [gj.max(p, axis=-1), gj.min(p, axis=-1)]
            feeds[p] = x
    expected = [r for x in xs for r in (x.max(axis=-1), x.min(axis=-1))]
    return run_on("llvm", g, fetches, feeds), expected


def _nan_in_every_position(n: int, dtype) -> np.ndarray:
    """Row k has one NaN at position k, for the first 70 positions, the middle and the
    last; a last row has none."""
    positions = sorted({*range(min(n, 70)), n // 2, n - 1})
    x = np.random.default_rng(n).normal(size=(len(positions) + 1, n)).astype(dtype)
    for row, k in enumerate(positions):
        x[row, k] = np.nan
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_nan_propagates_from_every_position_of_a_row(dtype):
    """Every lane of the first vectors, the remainder of the vector loop and the last
    element, for each row length of LENGTHS."""
    xs = [_nan_in_every_position(n, dtype) for n in LENGTHS]
    got, expected = _reduce_rows(*xs)
    for k, (a, b) in enumerate(zip(got, expected, strict=True)):
        what = f"{'max' if k % 2 == 0 else 'min'} of rows of {LENGTHS[k // 2]}"
        assert_matches(a, b, what, signed_zeros=True)
        assert np.isnan(a[:-1]).all() and not np.isnan(a[-1]), what


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_infinities_and_zeros_as_numpy(dtype):
    """Rows of infinities (max of -inf rows is -inf, the fold's own start), of -0.0 (the
    result keeps its sign), NaN beside infinities, and zeros of both signs beside negative
    numbers: equal to 0 (NumPy's sign for that tie depends on its lane order)."""
    n = 67
    rows = {
        "-inf": np.full(n, -np.inf),
        "+inf": np.full(n, np.inf),
        "-0": np.full(n, -0.0),
        "+0": np.zeros(n),
        "inf and -inf": np.where(np.arange(n) % 2 == 0, np.inf, -np.inf),
        "nan after inf": np.concatenate([[np.inf, -np.inf], np.full(n - 3, 1.0), [np.nan]]),
        "huge": np.full(n, np.finfo(dtype).max) * np.where(np.arange(n) % 3 == 0, -1, 1),
    }
    ties = np.where(np.arange(n) % 2 == 0, 0.0, -0.0) - (np.arange(n) % 5 == 1)
    x = np.stack(list(rows.values())).astype(dtype)
    got, expected = _reduce_rows(x, ties[None, :].astype(dtype))
    for what, a, b in zip(("max", "min"), got[:2], expected[:2], strict=True):
        assert_matches(a, b, what, signed_zeros=True)
    assert got[2][0] == 0 and got[3][0] == -1


def _rows_graph(x: np.ndarray):
    """Reductions along rows and their neighbours: softmax, layer norm, a row max and sum
    with elementwise outputs beside them."""
    g = gj.Graph()
    with g.as_default():
        p = gj.placeholder(x.dtype.name, x.shape, name="x")
        weight = gj.constant(np.linspace(0.5, 1.5, x.shape[-1]).astype(x.dtype))
        fetches = [
            gj.softmax(p, axis=-1),
            gj.nn.functional.layer_norm(p, [x.shape[-1]], weight, None, 1e-5),
            gj.max(gj.abs(p) * 2, axis=-1),
            gj.sum(p, axis=-1, keepdims=True),
        ]
    return g, fetches, {p: x}


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((7, 300), np.float32), ((5, 1024 + 333), np.float32), ((9, 100), np.float16)],
    ids=["odd rows", "rows cut into chunks", "float16 sums"],
)
def test_row_kernels_split_over_threads_give_the_one_thread_results(monkeypatch, shape, dtype):
    x = np.random.default_rng(3).normal(scale=3, size=shape).astype(dtype)
    x[2, 5] = np.nan  # a NaN row among others
    graph, fetches, feeds = _rows_graph(x)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_WORK", 1 << 62)
    one_thread = run_on("llvm", graph, fetches, feeds)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_WORK", 1)
    texts = record_llvm_ir(monkeypatch)
    split = run_on("llvm", graph, fetches, feeds)
    assert "graphjit_parallel_run" in texts[-1]
    expected = run_on("interpreter", graph, fetches, feeds)
    for k, (a, b, e) in enumerate(zip(split, one_thread, expected, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"fetch {k}: split vs one thread")
        assert_matches(a, e, f"fetch {k}", rtol=1e-2 if dtype == np.float16 else 1e-5)


@pytest.mark.parametrize(
    ("shape", "axis", "splits"),
    [
        ((64, 100), 1, True),
        ((64, 5000), 1, True),  # a row in chunks: each chunk's sum goes to its own row
        ((64, 100), 0, False),  # the outermost loop is the reduced one
        ((64, 40_000), 1, False),  # more chunks than one chain: shared partial sums
    ],
)
def test_only_reductions_along_kept_rows_split(monkeypatch, shape, axis, splits):
    monkeypatch.setattr(parallel, "PARALLEL_MIN_WORK", 1)
    texts = record_llvm_ir(monkeypatch)
    x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    g = gj.Graph()
    with g.as_default():
        p = gj.placeholder(gj.float32, shape, name="x")
        y = gj.sum(p * 2, axis=axis)
    got = run_on("llvm", g, y, {p: x})
    assert ("graphjit_parallel_run" in texts[-1]) == splits
    assert_matches(got, run_on("interpreter", g, y, {p: x}), "sum")


def test_check_numerics_in_a_split_row_kernel_sees_only_finished_rows(monkeypatch):
    """Each thread checks the rows it reduced: a row max whose start value (-inf) is still
    in rows another thread has not finished is no infinity to report."""
    monkeypatch.setattr(parallel, "PARALLEL_MIN_WORK", 1)
    x = np.random.default_rng(0).normal(size=(64, 300)).astype(np.float32)
    g = gj.Graph()
    with g.as_default():
        p = gj.placeholder(gj.float32, x.shape, name="x")
        y = gj.max(p, axis=-1)
    with gj.Session(g, check_numerics=True) as sess:
        np.testing.assert_array_equal(sess.run(y, {p: x}), x.max(-1))
        x[40, 7] = np.inf
        with pytest.raises(gj.NumericsError, match="infinity"):
            sess.run(y, {p: x})

"""Matmul through BLAS: which library, how generated code reaches it, and transposed
operands read in place (no copies) — including where the memory plan writes over buffers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from llvm_helpers import record_llvm_ir

import graphjit as gj
from graphjit.codegen.llvm import blas

SCRIPT = textwrap.dedent(
    """
    import numpy as np, graphjit as gj
    from graphjit.codegen.llvm import blas
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 5)), rng.normal(size=(4, 5)).astype(np.float32)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [6, 5])
        y = gj.placeholder(gj.float32, [4, 5])
        out = [gj.matmul(x, x, transpose_a=True), y @ gj.transpose(y)]
    got = gj.Session(g).run(out, {x: a, y: b})
    assert np.allclose(got[0], a.T @ a) and np.allclose(got[1], b @ b.T, rtol=1e-5)
    print(blas.gemm("float64").provider, blas.gemm("float32").provider)
    """
)


def run_with(**env):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_numpy_openblas_is_preferred_and_scipy_is_the_fallback():
    if blas.gemm("float64").provider == "numpy-openblas":  # NumPy's wheel bundles it
        assert run_with() == ["numpy-openblas"] * 2
    assert run_with(GRAPHJIT_BLAS="scipy") == ["scipy-cython-blas"] * 2


def test_generated_code_calls_gemm_by_symbol_not_by_address():
    """An address baked into the IR would change with every process's layout: the disk
    cache would never hit, or worse, load code calling a stale address. (A product too
    large for small_gemm.py's tiles, whole or in blocks: its blocks call BLAS.)"""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [160, 160])
        y = x @ x
    sess = gj.Session(g)
    sess.run(y, {x: np.eye(160)})
    (executable,) = sess._cache.values()
    text = executable.runner.llvm_ir
    symbol = blas.split_gemm("float64") or blas.gemm("float64")  # (the one-thread one first)
    assert f'declare void @"{symbol.symbol}"(' in text
    assert "inttoptr" not in text


def test_backward_pass_has_no_transpose_copies():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [16, 8])
        w1 = gj.Variable(np.ones((8, 8), np.float32))
        w2 = gj.Variable(np.ones((8, 4), np.float32))
        loss = gj.sum(gj.tanh(gj.relu(x @ w1) @ w2))
        step = gj.train.SGD(0.1).minimize(loss)
    report = gj.Session(g).inspect(step, {x: np.ones((16, 8), np.float32)})
    final = report.ir["memory"]
    assert " = transpose " not in final
    assert "transpose_a = true" in final and "transpose_b = true" in final


def test_weight_update_in_place_never_clobbers_a_transposed_operand():
    """The gradient of x reads w transposed while w's update is written in place (both
    updates are gemms accumulating into their variables): the plan must order them (a
    BLAS 'T' flag hidden from the plan once broke this)."""
    rng = np.random.default_rng(1)
    xs, w0 = rng.normal(size=(5, 3)), rng.normal(size=(3, 4))
    g = gj.Graph()
    with g.as_default():
        x = gj.Variable(xs, name="x")
        w = gj.Variable(w0, name="w")
        loss = gj.sum(gj.tanh(x @ w))
        step = gj.train.SGD(0.5).minimize(loss)
    sess = gj.Session(g)
    final = sess.inspect(step).ir["memory"]
    assert final.count('"gj.gemm"(') == 2  # each update accumulates into its variable
    results = {}
    for backend in ("interpreter", "llvm"):
        sess = gj.Session(g, backend=backend)
        for _ in range(3):
            sess.run(step)
        results[backend] = sess.run([x, w])
    for got, want in zip(results["llvm"], results["interpreter"]):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    # and by hand: three SGD steps on both x and w
    xv, wv = xs.copy(), w0.copy()
    for _ in range(3):
        c = 1 - np.tanh(xv @ wv) ** 2
        xv, wv = xv - 0.5 * c @ wv.T, wv - 0.5 * xv.T @ c
    np.testing.assert_allclose(results["llvm"][0], xv, rtol=1e-12)
    np.testing.assert_allclose(results["llvm"][1], wv, rtol=1e-12)


SPLIT_CASES = [  # (a shape, b shape, transpose_a, transpose_b): every block/offset form
    ((128, 1024), (1024, 512), False, False),  # column blocks
    ((128, 1024), (512, 1024), False, True),
    ((1024, 600), (1024, 96), True, False),  # row blocks, A transposed
    ((1000, 96), (96, 300), False, False),  # row blocks of unequal size
    ((1024, 96), (600, 1024), True, True),  # column blocks, both transposed
    ((4, 1, 200, 128), (3, 128, 160), False, False),  # a broadcast batch (tiles take
    # smaller products: test_small_gemm's blocks of tiles)
]


def test_large_matmuls_run_as_blocks_on_graphjits_threads(monkeypatch):
    """Split into blocks of single-threaded BLAS calls (where SciPy bundles an OpenBLAS
    of its own): the products of NumPy's, the same bits at any thread count."""
    if blas.split_gemm("float32") is None:
        pytest.skip("no single-threaded OpenBLAS here (SciPy bundles none of its own)")
    texts = record_llvm_ir(monkeypatch)
    rng = np.random.default_rng(2)
    for sa, sb, ta, tb in SPLIT_CASES:
        g = gj.Graph()
        with g.as_default():
            a = gj.placeholder(gj.float32, sa, name="a")
            b = gj.placeholder(gj.float32, sb, name="b")
            y = gj.matmul(a, b, transpose_a=ta, transpose_b=tb)
        feeds = {
            a: rng.normal(size=sa).astype(np.float32),
            b: rng.normal(size=sb).astype(np.float32),
        }
        left = np.swapaxes(feeds[a], -1, -2) if ta else feeds[a]
        right = np.swapaxes(feeds[b], -1, -2) if tb else feeds[b]
        expected = np.matmul(left.astype(np.float64), right.astype(np.float64))
        with gj.Session(g) as sess:
            results = []
            for n in (1, 2, 3):
                gj.set_num_threads(n)
                results.append(sess.run(y, feeds))
        gj.set_num_threads(gj.config.num_threads())  # (the default again)
        assert 'define internal void @"gemm_blocks' in texts[-1], (sa, sb)
        kernel = blas.own_sgemm() or blas.split_gemm("float32")  # (products this large)
        assert kernel.symbol in texts[-1] and '@"graphjit_sgemm"(' not in texts[-1]
        np.testing.assert_allclose(results[0], expected, rtol=1e-4, atol=1e-4)
        for other in results[1:]:
            np.testing.assert_array_equal(other, results[0])


def test_a_large_batch_keeps_its_matrices_whole_and_a_small_one_splits_them():
    """Blocks per matrix: a batch of ENOUGH_BLOCKS products or more is work for every
    thread already (each block would repack what it shares), a smaller batch splits each
    matrix as one product would be; the same choice at run time for a batch known only
    then, and the same products either way."""
    assert blas._blocks(128, 128, 128, 1) == (True, 2)
    assert blas._blocks(128, 128, 128, blas.ENOUGH_BLOCKS) == (True, 1)
    assert blas._blocks(128, 128, 4096, blas.ENOUGH_BLOCKS // 2) == (True, 2)
    assert blas._blocks(2048, 1024, 1024, 3) == (False, 4)
    if blas.split_gemm("float32") is None:
        pytest.skip("no single-threaded OpenBLAS here (SciPy bundles none of its own)")
    g = gj.Graph()
    with g.as_default():
        a = gj.placeholder(gj.float32, [None, 128, 128], name="a")
        b = gj.placeholder(gj.float32, [None, 128, 128], name="b")
        y = gj.matmul(a, b, transpose_b=True)
    rng = np.random.default_rng(3)
    symbolic = gj.Session(g, dynamic=True)
    for batch in (2, 40, 5):
        feeds = {v: rng.normal(size=(batch, 128, 128)).astype(np.float32) for v in (a, b)}
        static = gj.Session(g, dynamic=False).run(y, feeds)
        np.testing.assert_array_equal(symbolic.run(y, feeds), static)
        expected = feeds[a].astype(np.float64) @ np.swapaxes(feeds[b], 1, 2)
        np.testing.assert_allclose(static, expected, rtol=1e-4, atol=1e-4)


def test_convolution_gemms_split_like_matmuls_and_never_wake_numpys_blas_threads(monkeypatch):
    """conv2d and its gradients multiply per image; those products take the matmul's path
    (blocks of single-threaded calls), the same bits at any thread count."""
    if blas.split_gemm("float32") is None:
        pytest.skip("no single-threaded OpenBLAS here (SciPy bundles none of its own)")
    texts = record_llvm_ir(monkeypatch)
    rng = np.random.default_rng(3)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [3, 32, 28, 28], name="x")
        w = gj.placeholder(gj.float32, [64, 32, 3, 3], name="w")
        y = gj.nn.conv2d(x, w, padding=1)
        loss = gj.reduce_sum(y * y)
        fetches = [y, *gj.gradients(loss, [x, w])]
    feeds = {x: rng.normal(size=(3, 32, 28, 28)), w: rng.normal(size=(64, 32, 3, 3)) * 0.1}
    feeds = {k: v.astype(np.float32) for k, v in feeds.items()}
    with gj.Session(g) as sess:
        results = []
        for n in (1, 2, 3):
            gj.set_num_threads(n)
            results.append(sess.run(fetches, feeds))
    gj.set_num_threads(gj.config.num_threads())
    assert texts[-1].count('define internal void @"gemm_blocks') >= 3, "all three convs split"
    assert '@"graphjit_sgemm"(' not in texts[-1]
    expected = gj.Session(g, backend="interpreter").run(fetches, feeds)
    for got, want in zip(results[0], expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-3)
    for other in results[1:]:
        for got, first in zip(other, results[0], strict=True):
            np.testing.assert_array_equal(got, first)


def test_GRAPHJIT_BLAS_numpy_keeps_one_call_on_openblas_threads():
    script = SCRIPT.replace(
        "print(blas.gemm",
        "assert blas.split_gemm('float32') is None\nprint(blas.gemm",
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "GRAPHJIT_BLAS": "numpy"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_sizes_beyond_32_bits_never_reach_a_32_bit_gemm():
    """SciPy's gemm takes 32-bit sizes: a larger dimension must not be truncated into an
    out-of-bounds product (split matmuls fall back to NumPy's 64-bit gemm instead)."""
    from llvmlite import ir

    assert blas.single_threaded_gemm("float32", (1, 1 << 31, 1)) is None
    module = ir.Module()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), []), "f")
    b = ir.IRBuilder(fn.append_basic_block())
    null = ir.Constant(blas.F32.as_pointer(), None)
    narrow = blas.Gemm("graphjit_test_gemm", "test", 0, blas.I32)
    with pytest.raises(gj.BackendError, match="too large for the BLAS"):
        blas.call_gemm(
            b,
            b.alloca,
            "float32",
            (null,) * 3,
            (1, 1 << 31, 1),
            (False, False),
            (1.0, False),
            blas=narrow,
        )


def test_random_products_match_numpy_and_their_bits_do_not_depend_on_the_threads():
    """Float32 matmuls of random sizes around every path's edges (graphjit's kernel and
    its tile edges, the blocks, the small products OpenBLAS takes, a batch, sizes of the
    run), transposes, NaN in an operand: within a k-eps bound of float64 NumPy with its
    NaN pattern, and the same bits on one thread and two."""
    rng = np.random.default_rng(12)
    for _ in range(40):
        m = int(rng.choice([1, 12, 31, 32, 33, 100, 128, 257, 513]))
        n = int(rng.choice([1, 11, 12, 13, 31, 100, 256, 600, 2049]))
        k = int(rng.choice([1, 15, 17, 255, 256, 257, 1024, 4097]))
        ta, tb = (bool(t) for t in rng.integers(2, size=2))
        batch = [int(rng.integers(1, 4))] if rng.random() < 0.3 else []
        dynamic = bool(rng.integers(2))
        sa = batch + ([k, m] if ta else [m, k])
        sb = batch + ([n, k] if tb else [k, n])
        g = gj.Graph()
        with g.as_default():
            a = gj.placeholder(gj.float32, [None, *sa[1:]] if dynamic else sa, name="a")
            b = gj.placeholder(gj.float32, [None, *sb[1:]] if dynamic and batch else sb)
            y = gj.matmul(a, b, transpose_a=ta, transpose_b=tb)
        left = rng.standard_normal(sa).astype(np.float32)
        right = rng.standard_normal(sb).astype(np.float32)
        if rng.random() < 0.2:
            left.reshape(-1)[rng.integers(left.size)] = np.nan
        results = []
        with gj.Session(g) as sess:
            for threads in (1, 2):
                gj.set_num_threads(threads)
                results.append(sess.run(y, {a: left, b: right}))
        gj.set_num_threads(gj.config.num_threads())
        op_a = np.swapaxes(left, -1, -2) if ta else left
        op_b = np.swapaxes(right, -1, -2) if tb else right
        want = op_a.astype(np.float64) @ op_b.astype(np.float64)
        bound = 4 * k * np.finfo(np.float32).eps * (np.abs(op_a) @ np.abs(op_b))
        case = (m, n, k, ta, tb, batch, dynamic)
        assert results[0].shape == want.shape, case
        np.testing.assert_array_equal(np.isnan(results[0]), np.isnan(want), err_msg=str(case))
        finite = ~np.isnan(want)
        assert np.all(np.abs(results[0] - want)[finite] <= bound[finite]), case
        np.testing.assert_array_equal(results[1], results[0], err_msg=str(case))

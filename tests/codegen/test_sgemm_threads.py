"""graphjit's float32 product split over its threads (codegen/llvm/sgemm_threads.py): the
single-threaded kernel's bits at every thread count, for every transpose and beta, in the
products it takes and in those it hands on; a worker that stalls holding a chunk neither
holds the caller up nor touches C after the caller has returned; generated code calls it
for one product it takes, of sizes known when compiling or only when it runs."""

import ctypes
import time

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvm_helpers import record_llvm_ir
from llvmlite import ir
from test_sgemm import call, operands

import graphjit as gj
from graphjit.codegen.llvm import blas, jit, sgemm_threads

pytestmark = pytest.mark.skipif(
    blas.threaded_sgemm() is None,
    reason="graphjit's sgemm runs on AVX-512 CPUs, beside SciPy's single-threaded OpenBLAS",
)


@pytest.fixture
def set_threads():
    yield gj.set_num_threads
    gj.set_num_threads(gj.config.num_threads())  # (the default again)


SHAPES = [  # (m, n, k) of the column-major C (m x n)
    (1024, 128, 1024),  # the MLP's forward product: 16 chunks
    (1024, 1024, 128),  # its weight gradient
    (130, 13, 700),  # a last chunk of 2 rows, a sliver of one column
    (517, 131, 700),  # edge tiles every way
    (200, 2048, 40),  # NC columns, the most it takes
    (127, 64, 1000),  # too few rows for two chunks: handed on
    (300, 2049, 8),  # more than NC columns: handed on
]


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("ta,tb", [(b"N", b"N"), (b"N", b"T"), (b"T", b"N"), (b"T", b"T")])
def test_every_thread_count_gives_the_single_threaded_kernels_bits(set_threads, m, n, k, ta, tb):
    rng = np.random.default_rng(m + 3 * n + 7 * k)
    threaded = blas.threaded_sgemm()
    for alpha, beta in ((1.0, 0.0), (-1.5, 0.5)):
        a, lda, b, ldb, op_a, op_b = operands(rng, ta, tb, m, n, k, pad=1)
        start = rng.standard_normal((n, m + 1)).astype(np.float32)
        if beta == 0.0:
            start[:, :m] = np.nan  # beta = 0 never reads C
        want = start.copy()
        call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, want, m + 1)
        for count in (1, 2, 3):
            set_threads(count)
            got = start.copy()
            call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, got, m + 1, gemm=threaded)
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        product = alpha * (op_a @ op_b) + beta * np.nan_to_num(start[:, :m].T)
        np.testing.assert_allclose(want[:, :m].T, product, rtol=1e-3, atol=1e-3 * k**0.5)


def test_the_run_time_test_of_a_product_is_takes():
    """emit_takes (generated code, sizes of the run) and takes (sizes known when
    compiling) agree, edges and sizes that would overflow or divide by zero included."""
    module = ir.Module(name="takes")
    module.triple = llvm.get_process_triple()
    i64 = ir.IntType(64)
    fn = ir.Function(module, ir.FunctionType(ir.IntType(8), [i64] * 3), "takes")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(b.zext(sgemm_threads.emit_takes(b, *fn.args), ir.IntType(8)))
    compiled = jit.compile_module(str(module))
    native = ctypes.CFUNCTYPE(ctypes.c_uint8, *[ctypes.c_int64] * 3)(compiled.address("takes"))
    taken = 0
    for m in (-5, 0, 1, 127, 128, 129, 1024, 1 << 40):
        for n in (-1, 0, 11, 12, 13, 2048, 2049):
            for k in (-1, 0, 1, 63, 64, 1024, 8193, 1 << 30, 1 << 62):
                assert bool(native(m, n, k)) == sgemm_threads.takes(m, n, k), (m, n, k)
                taken += sgemm_threads.takes(m, n, k)
    assert taken > 20


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_a_stalled_worker_holds_up_neither_the_caller_nor_c(set_threads, beta):
    """A worker asleep for STALL after claiming a chunk (as one preempted by another
    process): the caller takes the chunk back and returns long before it wakes, with
    the product's bits; the worker, awake, finds the chunk taken and leaves C alone."""
    stall, threaded = 0.5, blas.threaded_sgemm()
    set_threads(2)
    rng = np.random.default_rng(4)
    m, n, k = 1024, 128, 1024
    a, lda, b, ldb, _, _ = operands(rng, b"N", b"N", m, n, k)
    start = rng.standard_normal((n, m)).astype(np.float32)
    want = start.copy()
    call(b"N", b"N", m, n, k, 1.0, a, lda, b, ldb, beta, want, m)
    before = sgemm_threads.taken_back()
    sgemm_threads._stall_us.value = int(stall * 1e6)
    try:
        for _ in range(50):  # until a worker joins and claims a chunk (it usually does)
            got = start.copy()
            began = time.perf_counter()
            call(b"N", b"N", m, n, k, 1.0, a, lda, b, ldb, beta, got, m, gemm=threaded)
            elapsed = time.perf_counter() - began
            if sgemm_threads.taken_back() > before:
                break
        else:
            pytest.fail("no worker claimed a chunk in 50 products")
    finally:
        sgemm_threads._stall_us.value = 0
    assert elapsed < stall / 2, elapsed
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    got[:] = 7.0  # C is the caller's again
    time.sleep(stall * 1.5)  # the worker wakes, finds its chunk taken back, and leaves
    assert np.all(got == 7.0)


def test_generated_code_calls_it_for_one_product_it_takes(set_threads, monkeypatch):
    """x @ w with a batch known only when it runs: the threaded kernel for batches it
    takes, the blocks for the others; NumPy's products, the same bits on 1 to 3 threads,
    the same as a program compiled for the batch's size."""
    texts = record_llvm_ir(monkeypatch)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 1024], name="x")
        w = gj.placeholder(gj.float32, [1024, 512], name="w")
        y = gj.matmul(x, w)
    rng = np.random.default_rng(6)
    weights = rng.standard_normal((1024, 512)).astype(np.float32)
    dynamic = gj.Session(g, dynamic=True)
    for batch in (128, 100, 8):  # 8: too few columns of the kernel's C to take
        assert sgemm_threads.takes(512, batch, 1024) == (batch != 8)
        feeds = {x: rng.standard_normal((batch, 1024)).astype(np.float32), w: weights}
        results = []
        for count in (1, 2, 3):
            set_threads(count)
            results.append(dynamic.run(y, feeds))
        for other in results[1:]:
            np.testing.assert_array_equal(other, results[0])
        np.testing.assert_array_equal(gj.Session(g, dynamic=False).run(y, feeds), results[0])
        want = feeds[x].astype(np.float64) @ weights
        np.testing.assert_allclose(results[0], want, rtol=1e-4, atol=1e-3)
    assert f'@"{sgemm_threads.SYMBOL}"(' in texts[0] and "gemm_blocks" in texts[0]

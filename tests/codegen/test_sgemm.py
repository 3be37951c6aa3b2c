"""graphjit's own float32 matrix product (codegen/llvm/sgemm.py), called as generated code
calls it: Fortran sgemm's arguments by reference, 64-bit integers. Checked against NumPy
in float64 for every transpose, alpha and beta, tile edges, leading dimensions larger than
the matrix, the calls it hands to OpenBLAS, and the product it computes without buffers
when none can be allocated."""

import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest

from graphjit.codegen.llvm import blas, sgemm

pytestmark = pytest.mark.skipif(
    blas.own_sgemm() is None,
    reason="graphjit's sgemm runs on AVX-512 CPUs, beside SciPy's single-threaded OpenBLAS",
)


def _kernel(gemm=None):
    gemm = gemm or blas.own_sgemm()
    assert gemm.symbol == sgemm.SYMBOL
    return ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 13)(gemm.address)


def call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, offset_c=0, gemm=None):
    """sgemm on column-major views: `a`, `b`, `c` are float32 arrays whose memory holds the
    column-major matrices (a row-major array of shape (cols, rows) is one). `gemm`: the
    kernel to call (the process's by default)."""
    ref = ctypes.byref
    pointer = ctypes.c_void_p
    _kernel(gemm)(
        ref(ctypes.c_char(ta)),
        ref(ctypes.c_char(tb)),
        *(ref(ctypes.c_int64(v)) for v in (m, n, k)),
        ref(ctypes.c_float(alpha)),
        pointer(a.ctypes.data),
        ref(ctypes.c_int64(lda)),
        pointer(b.ctypes.data),
        ref(ctypes.c_int64(ldb)),
        ref(ctypes.c_float(beta)),
        pointer(c.ctypes.data + 4 * offset_c),
        ref(ctypes.c_int64(ldc)),
    )


def operands(rng, ta, tb, m, n, k, pad=0):
    """A, B stored column-major with `pad` spare rows (leading dimensions beyond the
    matrix), as row-major arrays of their columns; and op(A), op(B) in float64."""
    a_rows, a_cols = (m, k) if ta == b"N" else (k, m)
    b_rows, b_cols = (k, n) if tb == b"N" else (n, k)
    a = rng.standard_normal((a_cols, a_rows + pad)).astype(np.float32)
    b = rng.standard_normal((b_cols, b_rows + pad)).astype(np.float32)
    op_a = a[:, :a_rows].T.astype(np.float64)
    op_b = b[:, :b_rows].T.astype(np.float64)
    op_a = op_a if ta == b"N" else op_a.T
    op_b = op_b if tb == b"N" else op_b.T
    return a, a_rows + pad, b, b_rows + pad, op_a, op_b


SHAPES = [  # (m, n, k): whole tiles, edges of every kind, several blocks, the fallbacks
    (32, 12, 4096),
    (1024, 1024, 1),
    (33, 13, 4097),
    (64, 24, 1025),
    (100, 50, 300),
    (517, 131, 700),
    (40, 2100, 20),  # two blocks of NC columns
    (31, 40, 1000),  # fewer than MR rows: handed to OpenBLAS
    (64, 11, 2000),  # fewer than NR columns: likewise
    (64, 64, 64),  # fewer than MIN_MACS multiply-adds: likewise
]


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("ta,tb", [(b"N", b"N"), (b"N", b"T"), (b"T", b"N"), (b"T", b"T")])
def test_products_match_numpy(m, n, k, ta, tb):
    rng = np.random.default_rng(m * 7 + n * 3 + k)
    for alpha, beta, pad in ((1.0, 0.0, 0), (2.0, 0.5, 3), (-1.0, 1.0, 1)):
        a, lda, b, ldb, op_a, op_b = operands(rng, ta, tb, m, n, k, pad)
        c = rng.standard_normal((n, m + pad)).astype(np.float32)
        before = c.copy()
        if beta == 0.0:
            c[:, :m] = np.nan  # beta = 0 never reads C
        call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, m + pad)
        want = alpha * (op_a @ op_b) + beta * before[:, :m].T.astype(np.float64)
        bound = 4 * k * np.finfo(np.float32).eps * (np.abs(op_a) @ np.abs(op_b)) * abs(alpha)
        bound += 2 * np.finfo(np.float32).eps * np.abs(want)
        assert np.all(np.abs(c[:, :m].T - want) <= bound), (m, n, k, ta, tb, alpha, beta)
        np.testing.assert_array_equal(c[:, m:], before[:, m:])  # the padding untouched


def test_alpha_zero_or_nothing_to_sum_only_scales_c():
    rng = np.random.default_rng(5)
    a, lda, b, ldb, _, _ = operands(rng, b"N", b"N", 40, 20, 30)
    a[0, 0] = np.nan  # alpha = 0: A and B are not read (BLAS's rule)
    for alpha, beta, k in ((0.0, 3.0, 30), (1.0, 3.0, 0), (0.0, 0.0, 30)):
        c = rng.standard_normal((20, 40)).astype(np.float32)
        want = (beta * c.astype(np.float64)) if beta else np.zeros_like(c)
        if beta == 0.0:
            c[:] = np.nan
        call(b"N", b"N", 40, 20, k, alpha, a, lda, b, ldb, beta, c, 40)
        np.testing.assert_array_equal(c, want.astype(np.float32))
    c = np.full((20, 40), 7.0, np.float32)
    call(b"N", b"N", 0, 20, 30, 1.0, a, lda, b, ldb, 0.0, c, 40)  # nothing to compute
    call(b"N", b"N", 40, 0, 30, 1.0, a, lda, b, ldb, 0.0, c, 40)
    assert np.all(c == 7.0)


def test_a_negative_zero_is_kept_in_whole_and_edge_tiles():
    """alpha = -1 times a zero row is -0.0, as NumPy has it, in every tile (edge tiles
    are written back element by element, whole ones as vectors)."""
    rng = np.random.default_rng(9)
    m, n, k = 45, 30, 1000  # 32 + 13 rows, 24 + 6 columns: whole and edge tiles
    a, lda, b, ldb, op_a, op_b = operands(rng, b"N", b"N", m, n, k)
    a[:, [0, 40]] = 0.0  # rows 0 and 40 of op(A): zero
    c = np.full((n, m), 7.0, np.float32)
    call(b"N", b"N", m, n, k, -1.0, a, lda, b, ldb, 0.0, c, m)
    want = (-1.0 * (a[:, :m].T.astype(np.float64) @ op_b)).astype(np.float32)
    assert np.all(np.signbit(want[[0, 40]]))
    np.testing.assert_array_equal(np.signbit(c.T[[0, 40]]), np.signbit(want[[0, 40]]))


def test_blocks_of_a_product_have_its_bits():
    """Every element is computed by the same operations whichever tile holds it, so the
    blocks blas.split_matmul hands to threads give the whole product's bits."""
    rng = np.random.default_rng(7)
    m, n, k = 300, 100, 600
    for ta, tb in ((b"N", b"N"), (b"T", b"N"), (b"N", b"T")):
        a, lda, b, ldb, _, _ = operands(rng, ta, tb, m, n, k)
        whole = np.zeros((n, m), np.float32)
        call(ta, tb, m, n, k, 1.0, a, lda, b, ldb, 0.0, whole, m)
        blocks = np.zeros((n, m), np.float32)
        for first, size in ((0, 96), (96, 101), (197, 103)):  # rows of C, then columns
            a_off = a.reshape(-1)[first:] if ta == b"N" else a.reshape(-1)[first * lda :]
            call(ta, tb, size, n, k, 1.0, a_off, lda, b, ldb, 0.0, blocks, m, offset_c=first)
        np.testing.assert_array_equal(blocks, whole)
        blocks[:] = 0
        for first, size in ((0, 37), (37, 63)):
            b_off = b.reshape(-1)[first * ldb :] if tb == b"N" else b.reshape(-1)[first:]
            call(ta, tb, m, size, k, 1.0, a, lda, b_off, ldb, 0.0, blocks, m, offset_c=first * m)
        np.testing.assert_array_equal(blocks, whole)


SCRIPT = """
import resource, sys
import numpy as np
sys.path.insert(0, {here!r})
from test_sgemm import call, operands
rng = np.random.default_rng(11)
m, n, k = 512, 512, 256  # packing buffers of 768 KiB
a, lda, b, ldb, op_a, op_b = operands(rng, b"T", b"N", m, n, k)
packed = np.zeros((n, m), np.float32)
call(b"T", b"N", m, n, k, 2.0, a, lda, b, ldb, 0.0, packed, m)
c = np.full((n, m), np.nan, np.float32)
with open("/proc/self/statm") as f:
    used = int(f.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + (256 << 10), resource.RLIM_INFINITY))
call(b"T", b"N", m, n, k, 2.0, a, lda, b, ldb, 0.0, c, m)
resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
np.testing.assert_allclose(c.T, 2.0 * op_a @ op_b, rtol=1e-4, atol=1e-3)
assert not np.array_equal(c, packed), "the packed path ran (its fused multiply-adds' bits)"
print("ok")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, sets RLIMIT_AS")
def test_without_memory_for_its_buffers_it_still_computes_the_product():
    """malloc failing (an address-space limit here) leaves the product to a loop that
    needs no buffers: a right answer, slowly, rather than none."""
    here = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(here=here)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_programs_of_small_products_call_openblas_directly():
    """Products the kernel would hand over whole (thin, or under MIN_MACS) call OpenBLAS
    from the generated code, so a program of small products never compiles the kernel;
    a product of sizes known only when it runs may be large."""
    from graphjit.ir.symbolic import ShapeEnv

    batch = ShapeEnv().symbol(128)
    openblas, own = blas.split_gemm("float32").symbol, sgemm.SYMBOL
    for sizes, want in (
        ((16, 64, 64), openblas),  # the RNN's steps: under MIN_MACS
        ((128, 10, 1024), openblas),  # C 10 wide: fewer than MR rows of the kernel's C
        ((8, 1024, 1024), openblas),  # 8 rows: fewer than NR columns of the kernel's C
        ((128, 1024, 1024), own),
        ((batch, 64, 64), own),
    ):
        assert blas.single_threaded_gemm("float32", sizes).symbol == want, sizes
    assert blas.single_threaded_gemm("float64", (128, 1024, 1024)).symbol != own


def test_compiled_without_the_ir_pipeline_it_has_the_o3_builds_bits():
    """The kernel's module is CODEGEN_ONLY (target.py: code generation optimises it, LLVM's
    O3 IR pipeline does not run): what O3 would make of it computes the same bits, for
    tile edges, transposes, alpha and beta, zeros (signed)."""
    from graphjit.codegen.llvm import jit, target
    from graphjit.codegen.llvm.types import I64

    fallback = blas.split_gemm("float32")
    text = str(sgemm._module(fallback.symbol, fallback.int_type.width))
    tm = jit.target_machine()
    kernels, engines = [], []
    for with_o3 in (True, False):
        with jit._lock:
            module = target.parse(text)
            target.prepare(module, tm)
            assert not target.wants_ir_pipeline(module)
            if with_o3:
                builder = target._pass_builder(tm)
                builder.getModulePassManager().run(module, builder)
            else:
                target.optimise(module, tm)
                # (and the compile worker's path skips O3 alike: the same object)
                assert target.compile_object(text, tm)[1] == tm.emit_object(module)
            engine = target.new_engine(module)
            engine.finalize_object()
        engines.append(engine)
        address = engine.get_function_address(sgemm.SYMBOL)
        kernels.append(blas.Gemm(sgemm.SYMBOL, "test", address, I64))
    rng = np.random.default_rng(13)
    for m, n, k in ((33, 13, 4097), (517, 131, 700), (40, 2100, 20), (1024, 128, 1024)):
        for ta, tb in ((b"N", b"N"), (b"N", b"T"), (b"T", b"N"), (b"T", b"T")):
            for alpha, beta in ((-1.0, 0.0), (2.0, 0.5)):
                a, lda, b, ldb, _, _ = operands(rng, ta, tb, m, n, k, pad=1)
                a.reshape(-1)[::97] = 0.0
                start = rng.standard_normal((n, m + 1)).astype(np.float32)
                results = []
                for kernel in kernels:
                    c = start.copy()
                    call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, m + 1, gemm=kernel)
                    results.append(c.view(np.uint32))
                np.testing.assert_array_equal(results[0], results[1])

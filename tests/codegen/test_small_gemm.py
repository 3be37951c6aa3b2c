"""Small float products emitted inline (codegen/llvm/small_gemm.py): which products take
that path, their values against NumPy in float64 for every tile shape and transpose, the
same bits wherever an element lies, special values, and BLAS for what they do not take."""

from __future__ import annotations

import numpy as np
import pytest
from llvm_helpers import record_llvm_ir

import graphjit as gj
from graphjit.codegen.llvm import blas, small_gemm
from graphjit.ir.symbolic import ShapeEnv

DTYPES = [(gj.float32, np.float32, 2e-6), (gj.float64, np.float64, 1e-13)]
# (m, n, k): whole tiles, edge tiles in rows, columns and both, k under, at and over one
# vector (16 floats, 8 doubles with AVX-512), one element, a long thin inner dimension
SHAPES = [
    (16, 64, 64),
    (16, 32, 64),
    (5, 7, 3),
    (1, 1, 1),
    (3, 40, 17),
    (33, 70, 19),
    (8, 16, 8),
    (7, 9, 100),
    (2, 3, 1024),
    (6, 5, 33),
    (1, 300, 2),
    (300, 1, 2),
]
TRANSPOSES = [(False, False), (True, False), (False, True)]


def product_graph(gdtype, shapes, transposed, alpha=1.0, accumulate=False):
    (sa, sb), (ta, tb) = shapes, transposed
    g = gj.Graph()
    with g.as_default():
        a = gj.placeholder(gdtype, sa, name="a")
        b = gj.placeholder(gdtype, sb, name="b")
        c = gj.placeholder(gdtype, (sa[1] if ta else sa[0], sb[0] if tb else sb[1]), name="c")
        y = gj.matmul(a, b, transpose_a=ta, transpose_b=tb)
        if alpha != 1.0:
            y = y * alpha
        if accumulate:
            y = y + c
    return g, (a, b, c), y


def operands(rng, npdtype, m, n, k, transposed):
    ta, tb = transposed
    a = rng.normal(size=(k, m) if ta else (m, k)).astype(npdtype)
    b = rng.normal(size=(n, k) if tb else (k, n)).astype(npdtype)
    return a, b, rng.normal(size=(m, n)).astype(npdtype)


def expected(a, b, c, transposed, alpha, accumulate):
    ta, tb = transposed
    product = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    return alpha * product + (c if accumulate else 0)


@pytest.mark.parametrize("gdtype,npdtype,rtol", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("transposed", TRANSPOSES, ids=["nn", "tn", "nt"])
def test_small_products_match_numpy_and_call_no_blas(
    monkeypatch, gdtype, npdtype, rtol, transposed
):
    texts = record_llvm_ir(monkeypatch)
    rng = np.random.default_rng(0)
    for m, n, k in SHAPES:
        for alpha, accumulate in ((1.0, False), (0.5, True)):
            a, b, c = operands(rng, npdtype, m, n, k, transposed)
            g, (pa, pb, pc), y = product_graph(
                gdtype, (a.shape, b.shape), transposed, alpha, accumulate
            )
            got = gj.Session(g, backend="llvm").run(y, {pa: a, pb: b, pc: c})
            want = expected(a, b, c, transposed, alpha, accumulate)
            assert got.dtype == npdtype
            scale = np.abs(want).max()
            np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale * np.sqrt(k))
            assert "graphjit.small_gemm." in texts[-1]
            assert "gemm_" not in texts[-1].replace("small_gemm.", "")  # (no BLAS symbol)


def test_scaling_and_accumulation_are_part_of_the_kernel(monkeypatch):
    """`y * 0.5 + c` is one gemm (alpha 0.5, accumulating): the kernel is specialised to
    both, and differs from the plain product's."""
    texts = record_llvm_ir(monkeypatch)
    rng = np.random.default_rng(1)
    a, b, c = operands(rng, np.float32, 4, 5, 6, (False, False))
    g, (pa, pb, pc), y = product_graph(gj.float32, (a.shape, b.shape), (False, False), 0.5, True)
    got = gj.Session(g, backend="llvm").run(y, {pa: a, pb: b, pc: c})
    np.testing.assert_allclose(got, expected(a, b, c, (False, False), 0.5, True), rtol=1e-5)
    assert '"graphjit.small_gemm.float32.4x5x6.nn.rows+.0x1.0000000000000p-1"' in texts[-1]


@pytest.mark.parametrize(
    "transposed,k",
    [((False, False), 45), ((True, False), 45), ((False, True), 45), ((False, True), 16)],
    ids=["nn", "tn", "nt-dots", "nt-copied"],
)
def test_an_element_has_the_same_bits_in_any_tile(transposed, k):
    """Rows and columns repeated across whole and edge tiles: each copy of an element is
    computed by the same operations in the same order (as BLAS's kernels promise), in
    each form (k = 16 with B transposed: B's rows copied transposed, then the rows form)."""
    rng = np.random.default_rng(2)
    m, n = 37, 70  # 9 row tiles + 1, whole column tiles + an edge
    a, b, _ = operands(rng, np.float32, m, n, k, transposed)
    ta, tb = transposed
    a_rows = a.T if ta else a  # (views: writing them writes a and b)
    b_cols = b if tb else b.T
    a_rows[m - 1] = a_rows[0]  # first row of a whole tile, and the last (edge) row
    a_rows[5] = a_rows[0]
    b_cols[n - 1] = b_cols[0]
    b_cols[33] = b_cols[0]
    g, (pa, pb, _), y = product_graph(gj.float32, (a.shape, b.shape), transposed)
    got = gj.Session(g, backend="llvm").run(y, {pa: a, pb: b})
    for row in (5, m - 1):
        assert got[row].tobytes() == got[0].tobytes()
    for col in (33, n - 1):
        assert got[:, col].tobytes() == got[:, 0].tobytes()


def test_special_values_propagate_as_in_numpy():
    rng = np.random.default_rng(3)
    for transposed in TRANSPOSES:
        a, b, _ = operands(rng, np.float32, 6, 20, 18, transposed)
        a[(0, 0)] = np.inf
        a[(1, 2)] = np.nan
        b[(2, 3)] = -np.inf
        g, (pa, pb, _), y = product_graph(gj.float32, (a.shape, b.shape), transposed)
        got = gj.Session(g, backend="llvm").run(y, {pa: a, pb: b})
        want = gj.Session(g, backend="interpreter").run(y, {pa: a, pb: b})
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        finite = np.isfinite(want)
        np.testing.assert_array_equal(
            got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)]
        )
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "sizes,transposed,why",
    [
        ((128, 160, 129), (False, False), "over MAX_BLOCKED_MACS"),
        ((1, 1, 1025), (False, False), "a longer inner dimension than MAX_INNER"),
        ((4, 4, 4), (True, True), "both operands transposed"),
    ],
)
def test_blas_takes_what_the_kernel_does_not(monkeypatch, sizes, transposed, why):
    texts = record_llvm_ir(monkeypatch)
    m, n, k = sizes
    assert not small_gemm.takes("float64", sizes, transposed), why
    assert not small_gemm.takes_blocks("float64", sizes, transposed), why
    rng = np.random.default_rng(4)
    a, b, c = operands(rng, np.float64, m, n, k, transposed)
    g, (pa, pb, _), y = product_graph(gj.float64, (a.shape, b.shape), transposed)
    got = gj.Session(g, backend="llvm").run(y, {pa: a, pb: b})
    np.testing.assert_allclose(got, expected(a, b, c, transposed, 1.0, False), rtol=1e-12)
    assert "graphjit.small_gemm." not in texts[-1]
    symbol = (blas.split_gemm("float64") or blas.gemm("float64")).symbol
    assert f'@"{symbol}"(' in texts[-1]


def test_sizes_of_the_run_integers_and_narrow_floats_keep_their_paths():
    rows = ShapeEnv().symbol(4)  # (a batch size known only when the program runs)
    assert not small_gemm.takes("float32", (rows, 4, 4), (False, False))
    assert not small_gemm.takes("int32", (4, 4, 4), (False, False))
    assert not small_gemm.takes("float16", (4, 4, 4), (False, False))  # (widened first)
    assert not small_gemm.takes("float32", (0, 4, 4), (False, False))
    assert small_gemm.takes("float32", (4, 4, 4), (False, True))


@pytest.mark.parametrize("transposed", TRANSPOSES, ids=["nn", "tn", "nt"])
def test_blas_and_the_kernel_agree(monkeypatch, transposed):
    """The same programs with the kernel switched off (BLAS for every product) give the
    same values to rounding: neither path is tested only against itself."""
    rng = np.random.default_rng(5)
    for m, n, k in SHAPES[:6]:
        a, b, c = operands(rng, np.float64, m, n, k, transposed)
        g, (pa, pb, pc), y = product_graph(gj.float64, (a.shape, b.shape), transposed, 2.0, True)
        feeds = {pa: a, pb: b, pc: c}
        inline = gj.Session(g, backend="llvm").run(y, feeds)
        with monkeypatch.context() as patch:
            patch.setattr(small_gemm, "MAX_MACS", 0)
            through_blas = gj.Session(g, backend="llvm").run(y, feeds)
        np.testing.assert_allclose(inline, through_blas, rtol=1e-12, atol=1e-12)


def test_the_rnn_step_and_its_gradient_match_the_interpreter():
    """Products in a while_loop and in its gradient (transposed both ways), as the RNN
    workload runs them."""
    rng = np.random.default_rng(6)
    xs_value = rng.normal(size=(12, 4, 5)).astype(np.float32)
    params = [rng.normal(size=s).astype(np.float32) * 0.4 for s in ((5, 16), (16, 16), (16,))]
    g = gj.Graph()
    with g.as_default():
        xs = gj.placeholder(gj.float32, xs_value.shape)
        length = gj.placeholder(gj.int32, [])
        ws = [gj.placeholder(gj.float32, p.shape) for p in params]
        wx, wh, bias = ws

        def cell(t, h):
            return t + 1, gj.tanh(xs[t] @ wx + h @ wh + bias)

        start = [gj.constant(0, gj.int32), gj.zeros((4, 16))]
        _, h = gj.while_loop(lambda t, h: t < length, cell, start)
        loss = gj.mean(gj.square(h))
        fetches = [loss, gj.gradients(loss, ws)]
    feeds = {xs: xs_value, length: np.int32(9), **dict(zip(ws, params))}
    got = gj.Session(g, backend="llvm").run(fetches, feeds)
    want = gj.Session(g, backend="interpreter").run(fetches, feeds)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    for x, y in zip(got[1], want[1]):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("vector", [(256, 16), (128, 16)], ids=["avx2", "sse"])
def test_tiles_for_narrower_vector_units(monkeypatch, vector):
    """The tiles chosen for CPUs with 16 registers of 256 or 128 bits (compiled for this
    one, which runs them too)."""
    monkeypatch.setattr(small_gemm, "_vector_bits", lambda: vector)
    texts = record_llvm_ir(monkeypatch)
    rng = np.random.default_rng(7)
    lanes = vector[0] // 32
    for transposed in TRANSPOSES:
        for m, n, k in ((9, 2 * lanes + 3, lanes + 1), (4, 8, 2 * lanes), (1, 1, 3)):
            a, b, c = operands(rng, np.float32, m, n, k, transposed)
            g, (pa, pb, pc), y = product_graph(
                gj.float32, (a.shape, b.shape), transposed, 0.5, True
            )
            got = gj.Session(g, backend="llvm").run(y, {pa: a, pb: b, pc: c})
            want = expected(a, b, c, transposed, 0.5, True)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
            if m > 1:  # (1 x 1 x 3: vectors of 3 or 1 lanes)
                assert f"<{lanes} x float>" in texts[-1]


@pytest.mark.parametrize("transposed", TRANSPOSES + [(True, True)], ids=["nn", "tn", "nt", "tt"])
def test_products_with_a_vector_run_in_the_wider_form(monkeypatch, transposed):
    """One row or column of C is the same memory as its transpose: x @ w of one output
    becomes dot products, X^T @ r one row of r^T @ X (a tile of one lane would be a chain
    of scalar multiply-adds), for every transpose, both included."""
    texts = record_llvm_ir(monkeypatch)
    rng = np.random.default_rng(8)
    for m, n, k in ((256, 1, 8), (8, 1, 256), (1, 8, 256), (1, 1, 40), (1, 37, 3)):
        assert small_gemm.takes("float32", (m, n, k), transposed)
        a, b, c = operands(rng, np.float32, m, n, k, transposed)
        g, (pa, pb, pc), y = product_graph(gj.float32, (a.shape, b.shape), transposed, 0.5, True)
        got = gj.Session(g, backend="llvm").run(y, {pa: a, pb: b, pc: c})
        want = expected(a, b, c, transposed, 0.5, True)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
        form = "nt" if n == 1 and not transposed[0] else "nn" if n == 1 else None
        if form is not None:
            assert (
                f".{m if form == 'nt' else 1}x{1 if form == 'nt' else m}x{k}.{form}." in texts[-1]
            )


@pytest.mark.parametrize("gdtype,npdtype,rtol", DTYPES, ids=["float32", "float64"])
def test_short_dot_products_run_on_a_transposed_copy(monkeypatch, gdtype, npdtype, rtol):
    """B transposed with k shorter than two vectors, or many rows sharing each of B's:
    blocks of B's rows copied transposed into a scratch block, then summed as the rows
    form sums (the fold across lanes would cost more than the copy); one column of C, and
    few rows of long dot products, stay dot products."""
    texts = record_llvm_ir(monkeypatch)
    rng = np.random.default_rng(9)
    lanes = small_gemm._vector_bits()[0] // (32 if npdtype == np.float32 else 64)
    for m, n, k in (
        (64, 64, 8),
        (9, 70, 2 * lanes - 1),
        (5, 3, 1),
        (70, 130, lanes),
        (130, 20, 2 * lanes),
    ):
        a, b, c = operands(rng, npdtype, m, n, k, (False, True))
        g, (pa, pb, pc), y = product_graph(gdtype, (a.shape, b.shape), (False, True), 0.5, True)
        got = gj.Session(g, backend="llvm").run(y, {pa: a, pb: b, pc: c})
        want = expected(a, b, c, (False, True), 0.5, True)
        np.testing.assert_allclose(got, want, rtol=0, atol=rtol * np.abs(want).max() * np.sqrt(k))
        assert "pack.c.header" in texts[-1]
    a, b, c = operands(rng, npdtype, 64, 1, 8, (False, True))
    g, (pa, pb, pc), y = product_graph(gdtype, (a.shape, b.shape), (False, True))
    gj.Session(g, backend="llvm").run(y, {pa: a, pb: b})
    assert "pack.c" not in texts[-1]
    a, b, c = operands(rng, npdtype, 16, 64, 4 * lanes, (False, True))
    g, (pa, pb, pc), y = product_graph(gdtype, (a.shape, b.shape), (False, True))
    got = gj.Session(g, backend="llvm").run(y, {pa: a, pb: b})
    want = expected(a, b, c, (False, True), 1.0, False)
    np.testing.assert_allclose(got, want, rtol=0, atol=rtol * np.abs(want).max() * 8)
    assert "pack.c" not in texts[-1] and "sd.p" in texts[-1]


# ---- products split into blocks of tiles (MAX_MACS to MAX_BLOCKED_MACS) --------------------

# (m, n, k, transposed): each form, whole and edge blocks, one product of 2^21
BLOCKED = [
    (200, 160, 24, (False, False)),  # rows, blocks of rows
    (60, 700, 24, (False, False)),  # rows, blocks of columns (span-wide, the last narrower)
    (200, 97, 40, (True, False)),  # A transposed
    (100, 100, 100, (False, True)),  # dot products
    (300, 130, 16, (False, True)),  # B copied transposed: blocks of columns
    (128, 128, 128, (False, False)),  # 2^21
]


@pytest.mark.parametrize("gdtype,npdtype,rtol", DTYPES, ids=["float32", "float64"])
def test_blocks_of_tiles_match_numpy_the_whole_product_and_any_thread_count(
    monkeypatch, gdtype, npdtype, rtol
):
    """A product between MAX_MACS and MAX_BLOCKED_MACS runs as blocks of rows or columns of
    C on graphjit's threads, each block the tiles' function for its sizes and the whole
    product's strides, no BLAS: its values are NumPy's, and its bits those of the whole
    product as one function (MAX_MACS and the split's threshold raised) and the same at 1,
    2 or 3 threads."""
    texts = record_llvm_ir(monkeypatch)
    rng = np.random.default_rng(10)
    for m, n, k, transposed in BLOCKED:
        assert not small_gemm.takes("float32", (m, n, k), transposed)
        assert small_gemm.takes_blocks("float32", (m, n, k), transposed)
        a, b, c = operands(rng, npdtype, m, n, k, transposed)
        g, (pa, pb, pc), y = product_graph(gdtype, (a.shape, b.shape), transposed, 0.5, True)
        feeds = {pa: a, pb: b, pc: c}
        with gj.Session(g, backend="llvm") as sess:
            runs = []
            for threads in (1, 2, 3):
                gj.set_num_threads(threads)
                runs.append(sess.run(y, feeds))
        gj.set_num_threads(gj.config.num_threads())
        assert 'void @"gemm_tiles' in texts[-1] and "gemm_1" not in texts[-1]
        want = expected(a, b, c, transposed, 0.5, True)
        np.testing.assert_allclose(runs[0], want, rtol=0, atol=rtol * np.abs(want).max() * k**0.5)
        for other in runs[1:]:
            assert other.tobytes() == runs[0].tobytes()
        with monkeypatch.context() as whole:
            whole.setattr(small_gemm, "MAX_MACS", m * n * k)
            whole.setattr(blas, "SPLIT_MIN_MACS", m * n * k + 1)
            one = gj.Session(g, backend="llvm").run(y, feeds)
            assert 'void @"gemm_tiles' not in texts[-1]
        assert one.tobytes() == runs[0].tobytes(), (m, n, k, transposed)


def test_a_batch_of_products_runs_as_whole_products_or_blocks_of_them(monkeypatch):
    """A broadcast batch: each product a block where the batch gives every thread work
    (ENOUGH_BLOCKS), else each split; NumPy's values either way."""
    texts = record_llvm_ir(monkeypatch)
    rng = np.random.default_rng(11)
    for sa, sb in [((4, 1, 64, 48), (3, 48, 40)), ((2, 150, 96), (96, 80))]:
        g = gj.Graph()
        with g.as_default():
            a = gj.placeholder(gj.float32, sa, name="a")
            b = gj.placeholder(gj.float32, sb, name="b")
            y = gj.matmul(a, b)
        feeds = {
            a: rng.normal(size=sa).astype(np.float32),
            b: rng.normal(size=sb).astype(np.float32),
        }
        got = gj.Session(g, backend="llvm").run(y, feeds)
        assert 'void @"gemm_tiles' in texts[-1] and "gemm_1" not in texts[-1]
        want = np.matmul(feeds[a].astype(np.float64), feeds[b].astype(np.float64))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_block_plans_are_whole_tiles_and_what_blocks_take():
    span = small_gemm._span_of(small_gemm._ELEMENT["float32"])
    for sizes, transposed in [((200, 160, 24), (False, False)), ((60, 700, 24), (False, False))]:
        by_columns, step = small_gemm.block_plan("float32", sizes, transposed, 8)
        m, n, k = sizes
        width, unit = (n, span) if by_columns else (m, 4)
        assert step % unit == 0 and -(-width // step) <= 8
        assert min(step, width) * (m if by_columns else n) * k >= small_gemm.BLOCK_MIN_MACS
    assert small_gemm.block_plan("float32", (300, 130, 16), (False, True), 8)[0]  # (copied)
    # B copied transposed but C too narrow for blocks of columns: BLAS's blocks
    assert not small_gemm.takes_blocks("float32", (2048, 64, 16), (False, True))
    assert not small_gemm.takes_blocks("float32", (1, 4096, 256), (False, False))  # one row
    assert not small_gemm.takes_blocks("float32", (64, 64, 64), (True, True))


def test_convolutions_small_per_image_products_run_as_tiles(monkeypatch):
    """A batch of images whose products are too small to split (LeNet's second
    convolution) runs in blocks of images on the threads; each image's product (and the
    gradients') is the tiles' function, not a BLAS call. Values as the interpreter's."""
    texts = record_llvm_ir(monkeypatch)
    rng = np.random.default_rng(12)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [8, 6, 14, 14], name="x")
        w = gj.placeholder(gj.float32, [16, 6, 5, 5], name="w")
        y = gj.nn.conv2d(x, w)
        fetches = [y, *gj.gradients(gj.reduce_sum(y * y), [x, w])]
    feeds = {x: rng.normal(size=(8, 6, 14, 14)), w: rng.normal(size=(16, 6, 5, 5)) * 0.1}
    feeds = {k: v.astype(np.float32) for k, v in feeds.items()}
    got = gj.Session(g, backend="llvm").run(fetches, feeds)
    assert "graphjit.small_gemm." in texts[-1] and "gemm_1" not in texts[-1]
    want = gj.Session(g, backend="interpreter").run(fetches, feeds)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4 * np.abs(b).max())


def test_a_batch_of_the_runs_size_runs_as_tiles_without_pinning_it(monkeypatch):
    """A batch known only when the program runs (Session(dynamic=True)): the blocks are
    counted at run time, one compile serves every batch size, NumPy's values."""
    texts = record_llvm_ir(monkeypatch)
    rng = np.random.default_rng(13)
    w = rng.normal(size=(48, 40)).astype(np.float32)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 64, 48], name="x")
        y = gj.matmul(x, gj.constant(w))
    sess = gj.Session(g, dynamic=True)
    for batch in (3, 20, 7):
        data = rng.normal(size=(batch, 64, 48)).astype(np.float32)
        got = sess.run(y, {x: data})
        np.testing.assert_allclose(got, data.astype(np.float64) @ w, rtol=1e-5, atol=1e-4)
    assert len(texts) == 1 and 'void @"gemm_tiles' in texts[0]
    assert sess.run(y, {x: np.zeros((0, 64, 48), np.float32)}).shape == (0, 64, 40)


@pytest.mark.parametrize("transposed", TRANSPOSES, ids=["nn", "tn", "nt"])
def test_blocks_of_tiles_carry_nan_and_inf_as_the_interpreter(transposed):
    """NaN and inf in the operands of a product split into blocks: the interpreter's NaNs,
    infinities and finite values (inf * a nonzero finite is inf; inf - inf is NaN)."""
    m, n, k = 200, 160, 24
    assert small_gemm.takes_blocks("float32", (m, n, k), transposed)
    rng = np.random.default_rng(14)
    a, b, c = operands(rng, np.float32, m, n, k, transposed)
    a[(3, 5) if not transposed[0] else (5, 3)] = np.nan
    b[(7, 100) if not transposed[1] else (100, 7)] = np.inf
    b[(8, 101) if not transposed[1] else (101, 8)] = -np.inf
    b[(9, 101) if not transposed[1] else (101, 9)] = np.inf
    g, (pa, pb, _), y = product_graph(gj.float32, (a.shape, b.shape), transposed)
    feeds = {pa: a, pb: b}
    got = gj.Session(g, backend="llvm").run(y, feeds)
    want = gj.Session(g, backend="interpreter").run(y, feeds)
    assert np.isnan(got).sum() > 0 and np.isinf(got).sum() > 0
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_array_equal(np.sign(got[np.isinf(got)]), np.sign(want[np.isinf(want)]))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-4)

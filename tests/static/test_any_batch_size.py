"""One compile for every batch size (ir/symbolic.py): the llvm backend compiles a feed's
unknown dimensions as sizes of the run, guarded, and every size the guards admit runs the
same native code. Each size's results are checked against the interpreter, and the compiles
are counted where the Session makes them."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj
import graphjit.runtime.session as session_module
from graphjit.codegen.llvm.lower import Lowering
from graphjit.ir.symbolic import ShapeEnv
from graphjit.passes.pipeline import optimize
from graphjit.runtime.program import build_program, size_class, symbolic_feed_types
from graphjit.runtime.staged import has_runtime_shapes
from op_table import OP_TABLE, inputs_for

WIDTH = 256  # wide enough that the hidden layers' matmuls split into blocks from 32 rows


@pytest.fixture
def compiles(monkeypatch) -> list:
    """The programs Sessions compile for the llvm backend, in order."""
    seen = []
    compile_program = session_module.compile_program

    def counting(program, backend, *args, **kwargs):
        if backend == "llvm":
            seen.append(program)
        return compile_program(program, backend, *args, **kwargs)

    monkeypatch.setattr(session_module, "compile_program", counting)
    return seen


def mlp(train: bool):
    """A relu MLP WIDTH-WIDTH-10 with a softmax cross-entropy loss (and an SGD step)."""
    rng = np.random.default_rng(0)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, WIDTH], name="x")
        labels = gj.placeholder(gj.int64, [None], name="labels")
        h = x
        for i, (n_in, n_out) in enumerate([(WIDTH, WIDTH), (WIDTH, WIDTH), (WIDTH, 10)]):
            w = gj.Variable((rng.normal(size=(n_in, n_out)) * n_in**-0.5).astype(np.float32))
            b = gj.Variable(rng.normal(size=n_out).astype(np.float32) * 0.1)
            h = gj.matmul(h, w) + b
            if i < 2:
                h = gj.nn.relu(h)
        loss = gj.reduce_mean(
            gj.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=h)
        )
        fetches = [loss, h]
        if train:
            fetches.append(gj.train.GradientDescentOptimizer(0.1).minimize(loss))
    return g, x, labels, fetches


def feed(x, labels, batch: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        x: rng.normal(size=(batch, WIDTH)).astype(np.float32),
        labels: rng.integers(0, 10, batch),
    }


def test_the_mlp_compiles_once_for_every_batch_size(compiles):
    g, x, labels, fetches = mlp(train=False)
    sess, oracle = gj.Session(g, dynamic=True), gj.Session(g, backend="interpreter")
    for i, batch in enumerate([128, 17, 33, 65, 129, 257, 40, 1000, 11]):
        feeds = feed(x, labels, batch, i)
        got, want = sess.run(fetches, feeds), oracle.run(fetches, feeds)
        assert got[1].shape == (batch, 10)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-5)
    assert len(compiles) == 1
    report = sess.inspect(fetches, feed(x, labels, 33, 0))  # (compiles again, keeping IR)
    assert report.any_size and report.size_guards
    assert "every size" in str(report)


def test_a_training_step_at_each_batch_size_matches_the_interpreter(compiles):
    """Gradients sum over the batch (the biases' column sums): the step's variables after
    each size agree with the interpreter's, run for run."""
    g, x, labels, fetches = mlp(train=True)
    sess, oracle = gj.Session(g, dynamic=True), gj.Session(g, backend="interpreter")
    for i, batch in enumerate([64, 23, 2000, 64, 37]):
        feeds = feed(x, labels, batch, i)
        got, want = sess.run(fetches[:2], feeds), oracle.run(fetches[:2], feeds)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-4)
        sess.run(fetches[2], feeds)
        oracle.run(fetches[2], feeds)
        for name in sess.variables:
            np.testing.assert_allclose(
                sess.variables[name], oracle.variables[name], rtol=1e-4, atol=1e-6
            )
    assert len(compiles) == 2  # the forward pass and the step, each for every size


def test_by_default_the_second_size_compiles_for_every_size_and_false_for_none(compiles):
    """dynamic=None: the first batch size compiles static code for itself (a program run
    at one size keeps it); the second compiles for every size; dynamic=False compiles
    each size."""
    g, x, labels, fetches = mlp(train=False)
    sess, oracle = gj.Session(g), gj.Session(g, backend="interpreter")
    for i, batch in enumerate([128, 128, 17, 33, 65, 128]):
        feeds = feed(x, labels, batch, i)
        np.testing.assert_allclose(
            sess.run(fetches[1], feeds), oracle.run(fetches[1], feeds), rtol=1e-4, atol=1e-5
        )
    assert [bool(p.sizes) for p in compiles] == [False, True]
    static = gj.Session(g, dynamic=False)
    for batch in [17, 33]:
        static.run(fetches[1], feed(x, labels, batch, 0))
    assert len(compiles) == 4 and not any(p.sizes for p in compiles[2:])


def test_sizes_the_guards_do_not_admit_compile_again_and_are_right(compiles):
    """A batch of 256 makes the activations 256 x 256, as the weights are: the compile's
    decisions took them to differ (a guard), so 256 compiles for itself; 2000 and 3000,
    longer than a reduction's 1024-element chunks, reuse the first compile."""
    g, x, labels, fetches = mlp(train=False)
    sess, oracle = gj.Session(g, dynamic=True), gj.Session(g, backend="interpreter")
    for i, batch in enumerate([128, 2000, 256, 3000, 64]):
        feeds = feed(x, labels, batch, i)
        got, want = sess.run(fetches, feeds), oracle.run(fetches, feeds)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-5)
    assert len(compiles) == 2
    assert [p.shape_env.hints[0] for p in compiles] == [128, 256]


@pytest.mark.parametrize("batch", [0, 1])
def test_sizes_zero_and_one_are_specialised(compiles, batch):
    """0 and 1 change what a program does (nothing to compute, broadcasting): they are
    compiled as the fed shapes, never as a symbol's value."""
    g, x, labels, fetches = mlp(train=False)
    sess, oracle = gj.Session(g, dynamic=True), gj.Session(g, backend="interpreter")
    feeds = feed(x, labels, batch, 0)
    got, want = sess.run(fetches[1], feeds), oracle.run(fetches[1], feeds)
    assert got.shape == (batch, 10)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert len(compiles) == 1
    assert not sess.inspect(fetches[1], feeds).any_size
    sess.run(fetches[1], feed(x, labels, 50, 1))
    assert len(compiles) == 3  # (inspect compiled again, keeping the IR)


def test_equal_unknown_sizes_share_a_symbol_and_unequal_ones_are_checked():
    """Duck sizing: x and y of equal batches are one symbol (their sum needs no guard);
    later unequal batches are another signature, whose broadcast fails as it would have."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 3], name="x")
        y = gj.placeholder(gj.float32, [None, 3], name="y")
        z = gj.reduce_sum(x * y, axis=0) / gj.cast(gj.shape(x)[0], gj.float32)
    sess = gj.Session(g, dynamic=True)
    for n in [4, 9, 2]:
        a, b = np.ones((n, 3), np.float32), np.arange(3 * n, dtype=np.float32).reshape(n, 3)
        np.testing.assert_allclose(sess.run(z, {x: a, y: b}), b.mean(axis=0), rtol=1e-6)
    with pytest.raises(gj.ShapeError):
        sess.run(z, {x: np.ones((4, 3), np.float32), y: np.ones((5, 3), np.float32)})


def test_a_mean_over_the_batch_divides_by_the_run_size(compiles):
    """mean's count is the run's batch size, not the first one's; a sum over everything
    ([B, 5] is one row of 5B elements, cut into chunks of 1024 whose count is known only
    when it runs) keeps NumPy's pairwise accuracy at every size. The column sums' pairwise
    tree compiled at 3 rows reaches the levels each run's rows need (its scratch holds 40:
    a tree compiled at 3 rows once covered 16384 rows, and 300001 compiled again)."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 5], name="x")
        m = gj.reduce_mean(x, axis=0)
        v = gj.reduce_mean(gj.square(x - m))
    sess = gj.Session(g, dynamic=True)
    rng = np.random.default_rng(1)
    for n in [3, 100, 7, 2048, 300_001]:
        data = (rng.normal(size=(n, 5)) + 10).astype(np.float32)
        got = sess.run([m, v], {x: data})
        exact = data.astype(np.float64)
        np.testing.assert_allclose(got[0], exact.mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(got[1], exact.var(axis=0).mean(), rtol=2e-6)
    assert [p.shape_env.hints[0] for p in compiles] == [3]


def test_large_batches_split_over_threads_at_run_time():
    """A kernel's split over threads is chosen when it runs: small and large batches of
    one compile give the one-thread results bit for bit."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 1024], name="x")
        y = gj.tanh(x) * gj.sigmoid(x) + 1.0
    sess = gj.Session(g, dynamic=True)
    rng = np.random.default_rng(2)
    outputs = {}
    for n in [4, 2000, 4]:
        data = rng.normal(size=(n, 1024)).astype(np.float32)
        outputs[n] = (sess.run(y, {x: data}), data)
    gj.set_num_threads(1)
    try:
        one = gj.Session(g)
        for got, data in outputs.values():
            np.testing.assert_array_equal(got, one.run(y, {x: data}))
    finally:
        gj.set_num_threads(gj.config.num_threads())


def test_guards_admit_exactly_the_sizes_whose_decisions_agree():
    env = ShapeEnv()
    b = env.symbol(128)
    assert b * 1024 // 16 == 64 * b  # exact: no guard
    assert not env.guards
    assert b > 16 and b * 4 <= 4096  # decided at the hint, guarded
    assert env.admits([17]) and env.admits([1024])
    assert not env.admits([16]) and not env.admits([1025]) and not env.admits([1])
    assert int(b) == 128  # a Python int pins the symbol
    assert env.admits([128]) and not env.admits([129])


def test_sizes_rounded_up_to_cache_lines_are_exact_and_decided_without_guards():
    """round_up of 4*s0 is 64 * floor((4*s0 + 63) / 64) at every size, not 64*s0 (the
    coefficient rounded): and comparisons of such offsets with the sizes they round up
    are decided for every size, so first fit places buffers without pinning s0."""
    from graphjit.ir.symbolic import round_up

    env = ShapeEnv()
    b = env.symbol(1000)
    line = round_up(4 * b + 1280, 64)
    assert round_up(4096 * b + 100, 64) == 4096 * b + 128  # terms already multiples
    assert line >= 4 * b + 1280 and line < 4 * b + 1280 + 64 and line != 4 * b + 1280 + 64
    assert line + 4 * b > 1280 and not (line + 4 * b <= 4 * b + 1280)
    assert not env.guards
    for size in (2, 3, 17, 1000, 16, 1 << 24):
        assert line.evaluate(env.values([size])) == -(-(4 * size + 1280) // 64) * 64


def test_the_arena_at_any_size_is_the_arena_of_a_compile_for_that_size(compiles):
    """A chain of [B] vectors plans the same bytes symbolically as statically (the
    symbolic plan once put each buffer 64*B bytes above the last: 16x the memory, and an
    arena too large to be kept between runs), and still compiles once for every size."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None])
        y, total = x, 0.0
        for _ in range(6):
            y = gj.tanh(y) * 1.01 + 0.1
            total = total + gj.reduce_sum(y)
    data = np.random.default_rng(0).normal(size=100_003).astype(np.float32)
    reports = {}
    for dynamic in (False, True):
        sess = gj.Session(g, dynamic=dynamic)
        reports[dynamic] = sess.inspect(total, {x: data})
        np.testing.assert_allclose(sess.run(total, {x: data}), total_of(data), rtol=1e-5)
    assert reports[True].any_size
    assert reports[True].arena_bytes <= reports[False].arena_bytes + 256
    sess, before = gj.Session(g, dynamic=True), len(compiles)
    for size in (17, 5000, 64, 100_003, 3):
        data = np.random.default_rng(size).normal(size=size).astype(np.float32)
        np.testing.assert_allclose(sess.run(total, {x: data}), total_of(data), rtol=1e-5)
    assert len(compiles) == before + 1


def total_of(data):
    y, total = data.astype(np.float64), 0.0
    for _ in range(6):
        y = np.tanh(y) * 1.01 + 0.1
        total += y.sum()
    return total


def test_inspect_reports_the_code_that_runs_at_these_shapes(compiles):
    """dynamic=None runs a signature's first size as static code: inspect at that size
    reports (and keeps) static code too, not the compile for every size it would make
    for a second size."""
    g, x, labels, fetches = mlp(train=False)
    sess = gj.Session(g)
    sess.run(fetches, feed(x, labels, 32, 0))
    report = sess.inspect(fetches, feed(x, labels, 32, 1))
    assert not report.any_size and report.ir
    assert not sess.inspect(fetches, feed(x, labels, 32, 2)).any_size
    assert sess.inspect(fetches, feed(x, labels, 48, 3)).any_size  # a second size
    assert sess.inspect(fetches, feed(x, labels, 40, 4)).any_size
    assert [p.shape_env is not None for p in compiles] == [False, False, True]


def test_a_fed_size_the_fetches_never_read_is_no_error(compiles):
    """A symbol whose placeholders the program prunes (`rank(x)` folds x away) is read
    from another placeholder of the same size, or needs no reading at all: it raised a
    ValueError from the second size on."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 3])
        y = gj.placeholder(gj.float32, [None])
        fetches = [gj.rank(x), gj.reduce_sum(y) * 2.0]
    sess = gj.Session(g)
    for n in (4, 5, 6, 9):
        rank, total = sess.run(fetches, {x: np.ones((n, 3), np.float32), y: np.ones(n, np.float32)})
        assert rank == 2 and total == 2.0 * n
        assert sess.run(fetches[0], {x: np.ones((n + 1, 3), np.float32)}) == 2
    assert len(compiles) == 4  # each signature: its first size, then one for all sizes


def test_convolutions_of_fed_filters_of_any_shape_match_the_interpreter():
    """Every dimension unknown, a filter's included: sizes equal by chance to a kernel
    size share its symbol (divmod of an int by a SymInt once failed the lowering)."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None] * 4)
        w = gj.placeholder(gj.float32, [None] * 4)
        y = gj.nn.conv2d(x, w, padding=1)
        fetches = [y, gj.gradients(gj.reduce_sum(y * y), [x, w])]
    sess, oracle = gj.Session(g, dynamic=True), gj.Session(g, backend="interpreter")
    rng = np.random.default_rng(6)
    for image, kernel in [((2, 3, 8, 8), (4, 3, 3, 3)), ((3, 2, 9, 7), (5, 2, 2, 2))]:
        feed = {
            x: rng.normal(size=image).astype(np.float32),
            w: rng.normal(size=kernel).astype(np.float32),
        }
        got, want = sess.run(fetches, feed), oracle.run(fetches, feed)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-4)
        for a, b in zip(got[1], want[1], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


def _sequence_model(tokens):
    """Embedding, one attention head, a layer norm over the features and a mean over the
    sequence, with the gradients of its table and projection: what varies with both the
    batch and the sequence length."""
    rng = np.random.default_rng(8)
    table = gj.Variable(rng.normal(size=(20, 16)).astype(np.float32))
    project = gj.Variable((rng.normal(size=(16, 48)) * 0.2).astype(np.float32))
    q, k, v = gj.split(gj.gather(table, tokens) @ project, 3, axis=2)
    attended = gj.nn.softmax(gj.matmul(q, k, transpose_b=True) * 0.25, axis=-1) @ v
    centred = attended - gj.reduce_mean(attended, axis=-1, keepdims=True)
    normed = centred * gj.rsqrt(gj.reduce_mean(gj.square(centred), axis=-1, keepdims=True) + 1e-5)
    loss = gj.reduce_mean(gj.square(gj.reduce_mean(normed, axis=1)))
    return [loss, *gj.gradients(loss, [table, project])]


def test_a_batch_and_a_sequence_length_of_any_sizes_compile_once(compiles):
    """Two symbols (B, T): reductions along a row of symbolic length keep their own
    kernels (a row chain would pin T), and the memory plan, where first fit would decide on
    B*T against B, shares slots among storages of one size instead (no guard)."""
    g = gj.Graph()
    with g.as_default():
        tokens = gj.placeholder(gj.int64, [None, None])
        fetches = _sequence_model(tokens)
    sess, oracle = gj.Session(g, dynamic=True), gj.Session(g, backend="interpreter")
    rng = np.random.default_rng(9)
    for shape in [(2, 5), (3, 7), (4, 12), (2, 9), (5, 3)]:
        feed = {tokens: rng.integers(0, 20, shape)}
        for got, want in zip(sess.run(fetches, feed), oracle.run(fetches, feed), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert len(compiles) == 1


def test_a_compile_whose_guards_fix_every_size_is_told_apart():
    env = ShapeEnv()
    b, t = env.symbol(6), env.symbol(8)
    assert b % 2 == 0 and b > 4 and t < 100  # parity and ranges leave other sizes
    assert not env.fixes_every_symbol()
    assert int(t) == 8 and not env.fixes_every_symbol()  # b still free
    assert int(b) == 6 and env.fixes_every_symbol()


def test_a_size_class_whose_compile_for_every_size_was_pinned_compiles_static_code(
    compiles, monkeypatch
):
    """Where a compile for every size turned out to serve its own sizes alone (a lowering
    took each as a number), later sizes of that class get static code: it compiles faster
    and runs as fast."""
    monkeypatch.setattr(ShapeEnv, "admits", lambda self, sizes: sizes == self.hints[:1])
    g, x, labels, fetches = mlp(train=False)
    sess = gj.Session(g, dynamic=True)
    for n in (5, 9, 12):
        sess.run(fetches, feed(x, labels, n, n))
    assert [p.shape_env is not None for p in compiles] == [True, False, False]


def test_reductions_of_everything_compile_once(compiles):
    """max/min/prod/any/all over every element once pinned the batch (a row-chain test
    took the remainder of two sizes of the run). (A while loop's gradient did too, its
    tensor lists taking their elements' bytes as a number: PROGRAMS' while_loop_grad.)"""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 4])
        fetches = [gj.reduce_max(x), gj.reduce_prod(1.0 + x * 0.1), gj.reduce_any(x > 1.5)]
    sess, oracle = gj.Session(g, dynamic=True), gj.Session(g, backend="interpreter")
    for n in (3, 8, 17, 2):
        data = {x: np.random.default_rng(n).normal(size=(n, 4)).astype(np.float32)}
        for got, want in zip(sess.run(fetches, data), oracle.run(fetches, data), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5)
    assert len(compiles) == 1


def test_column_sums_of_rows_of_any_length_compile_once_with_static_bits(compiles):
    """A sum over the batch of [B, T] rows: its pairwise cascade's partial sums are T
    wide, a size of the run too (it pinned T); float16 sums keep float32 ones after them.
    The bits are a static compile's."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, None])
        h = gj.placeholder(gj.float16, [None, None])
        fetches = [gj.reduce_sum(x, axis=0), gj.reduce_sum(h, axis=0), gj.reduce_max(x, axis=0)]
    sess = gj.Session(g, dynamic=True)
    for shape in [(5, 7), (3000, 40), (17, 300), (40, 3)]:
        data = np.random.default_rng(shape[0]).normal(size=shape).astype(np.float32)
        feed = {x: data, h: data.astype(np.float16)}
        static = gj.Session(g, dynamic=False).run(fetches, feed)
        for got, want in zip(sess.run(fetches, feed), static, strict=True):
            np.testing.assert_array_equal(got, want)
    assert sum(p.shape_env is not None for p in compiles) == 1


def test_sizes_that_do_not_depend_on_the_batch_still_fold():
    """A mean over the feature axis divides by its constant width: folded as in a static
    compile (the same kernels), while a mean over the batch axis divides at run time."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 64], name="x")
        m = gj.reduce_mean(x, axis=1, keepdims=True)
        out = (x - m) * gj.rsqrt(gj.reduce_mean(gj.square(x - m), axis=1, keepdims=True) + 1e-5)
    data = np.random.default_rng(3).normal(size=(50, 64)).astype(np.float32)
    static, dynamic = gj.Session(g, dynamic=False), gj.Session(g, dynamic=True)
    assert dynamic.inspect(out, {x: data}).kernels == static.inspect(out, {x: data}).kernels
    np.testing.assert_allclose(dynamic.run(out, {x: data}), static.run(out, {x: data}), rtol=1e-6)


def _attention(x):
    q = gj.transpose(gj.reshape(x, [-1, 8, 4, 16]), [0, 2, 1, 3])
    weights = gj.nn.softmax(gj.matmul(q, q, transpose_b=True) / 4.0)
    return gj.reshape(gj.transpose(gj.matmul(weights, q), [0, 2, 1, 3]), [-1, 8, 64])


W = np.random.default_rng(4).normal(size=(6, 1, 5, 5)).astype(np.float32) * 0.2
W2 = np.random.default_rng(8).normal(size=(4, 6, 3, 3)).astype(np.float32) * 0.2
U = np.random.default_rng(7).normal(size=(8, 8)).astype(np.float32) * 0.3


def _recurrence(x):
    """h <- tanh(h @ U + x), four times: its gradient stacks each step's h in a tensor list
    (elements of a size of the run)."""
    return gj.while_loop(
        lambda i, h: i < 4, lambda i, h: (i + 1, gj.tanh(h @ gj.constant(U) + x)), [0, x]
    )[1]


def _cnn(x):
    """Convolutions (padded, strided) and pooling (max, average) of constant filters."""
    h = gj.relu(gj.nn.conv2d(x, gj.constant(W), padding=2))
    h = gj.nn.max_pool2d(h, 3, stride=2, padding=1)
    h = h + gj.nn.avg_pool2d(h, 3, stride=1, padding=1)
    return gj.square(gj.nn.conv2d(h, gj.constant(W2), stride=2, padding=1))


PROGRAMS = {  # what a model does along its batch axis; each compiles once for all sizes
    "conv_pool": ([1, 12, 12], lambda x: gj.nn.max_pool2d(gj.nn.conv2d(x, gj.constant(W)), 2)),
    "conv_pool_grad": ([1, 12, 12], lambda x: gj.gradients(gj.reduce_sum(_cnn(x)), [x])[0]),
    "attention": ([8, 64], _attention),
    "attention_grad": (
        [8, 64],
        lambda x: gj.gradients(gj.reduce_sum(gj.square(_attention(x))), [x])[0],
    ),
    "slices": ([8], lambda x: x[1:, 2:5] * 2 + x[:-1, :3]),
    "split_concat": ([8], lambda x: gj.concat(gj.split(x, 2, axis=1)[::-1], axis=0)),
    "stack": ([8], lambda x: gj.stack([x, x * 2], axis=1)),
    # ops that walk or index the batch axis itself (each once pinned it: one compile a size)
    "gather_rows": ([8], lambda x: x[gj.constant(np.array([0, 2, -1, 0]))]),
    "tf_gather_rows": ([8], lambda x: gj.gather(x, gj.constant(np.array([0, 2, 1, 0])))),
    "index_add_rows": ([8], lambda x: gj.index_add(x, 0, gj.constant(np.array([2, 0, 2])), x[:3])),
    "index_add_all_rows": ([8], lambda x: gj.index_add(x, 0, gj.argsort(x[:, 0]), x * 2)),
    "cumsum": ([8], lambda x: gj.cumsum(x, axis=0) - gj.cumsum(x, axis=0, reverse=True)),
    "sort": ([8], lambda x: gj.sort(x, axis=0) + gj.cast(gj.argsort(x, axis=0), gj.float32)),
    "sort_descending": ([3], lambda x: gj.cast(gj.argsort(x, axis=0, descending=True), gj.float32)),
    # (no slice of length 1 at these sizes: a length of 1 is compiled as it is)
    "strided_slices": ([8], lambda x: gj.concat([x[::2], x[::-1], x[::-2], x[1:] * 0], axis=0)),
    "flip": ([8], lambda x: gj.flip(x, [0, 1]) * x),
    "while_loop_grad": ([8], lambda x: gj.gradients(gj.reduce_sum(_recurrence(x)), [x])[0]),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_common_programs_compile_once_for_every_batch_size(compiles, name):
    shape, build = PROGRAMS[name]
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, *shape], name="x")
        out = build(x)
    sess, oracle = gj.Session(g, dynamic=True), gj.Session(g, backend="interpreter")
    rng = np.random.default_rng(5)
    for n in [8, 13, 3, 40]:
        data = {x: rng.normal(size=(n, *shape)).astype(np.float32)}
        np.testing.assert_allclose(sess.run(out, data), oracle.run(out, data), rtol=1e-4, atol=1e-4)
    assert len(compiles) == 1


def test_images_of_any_size_compile_once(compiles):
    """A CNN on images whose batch, height and width are all unknown: its convolutions'
    im2col and col2im and its pooling take the image's sizes from the run (windows that
    do not fit are the op's ShapeError at build time, as for fixed sizes)."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 1, None, None], name="x")
        y = _cnn(x)
        grad = gj.gradients(gj.reduce_sum(y), [x])[0]
    sess, oracle = gj.Session(g, dynamic=True), gj.Session(g, backend="interpreter")
    rng = np.random.default_rng(9)
    for shape in [(2, 1, 13, 11), (3, 1, 24, 17), (5, 1, 8, 31), (4, 1, 40, 9)]:
        data = {x: rng.normal(size=shape).astype(np.float32)}
        for got, want in zip(sess.run([y, grad], data), oracle.run([y, grad], data)):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert len(compiles) == 1


def test_a_sum_over_the_batch_has_the_bits_of_a_compile_for_its_size(compiles):
    """A float sum over the batch axis (a bias's gradient) is cut into blocks of rows
    summed pairwise; for a size of the run the blocks' count and the threads' split are
    computed when it runs: every size gives the bits of a compile for that size alone."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 1024], name="x")
        out = gj.reduce_sum(x * x, axis=0)
    dynamic = gj.Session(g, dynamic=True)
    rng = np.random.default_rng(6)
    for n in [4096, 17, 3, 1552, 5000]:
        data = {x: rng.normal(size=(n, 1024)).astype(np.float32)}
        np.testing.assert_array_equal(
            dynamic.run(out, data), gj.Session(g, dynamic=False).run(out, data)
        )
    assert sum(bool(p.sizes) for p in compiles) == 1


def test_a_size_run_before_takes_the_fast_path_again():
    """A size served by a compile for every size is remembered under its own shapes, so
    its next runs skip the checks (a run plan), as runs of a compiled shape do."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 4], name="x")
        y = x * 2.0 + 1.0
    sess = gj.Session(g, dynamic=True)
    for n in [3, 5, 5, 3]:
        np.testing.assert_array_equal(sess.run(y, {x: np.ones((n, 4), np.float32)}), 3.0)
    assert len(sess._run_plans) == 2
    assert len({id(plan.executable) for plan in sess._run_plans.values()}) == 1


def test_a_batch_too_large_for_max_tensor_bytes_is_refused_as_before():
    """The size limit is a guard: a batch past it compiles again, which refuses it before
    anything is allocated, naming the fed shape; smaller batches still run."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 1024], name="x")
        y = gj.reduce_sum(gj.tanh(x), axis=1)
    sess = gj.Session(g, dynamic=True, max_tensor_bytes=1 << 26)
    assert sess.run(y, {x: np.zeros((8, 1024), np.float32)}).shape == (8,)
    with pytest.raises(gj.ResourceError, match=r"'tanh'.*tensor<100000x1024xf32>"):
        sess.run(y, {x: np.broadcast_to(np.float32(0), (100_000, 1024))})
    np.testing.assert_allclose(
        sess.run(y, {x: np.ones((9, 1024), np.float32)}), 1024 * np.tanh(1.0), rtol=1e-5
    )


# ---- the op table, every dimension unknown ------------------------------------------------

# Records whose lowering still takes sizes of the run as numbers: the Session compiles them
# per size (each compile right). Convolutions of fed filters take the kernel's sizes as
# numbers (its taps are unrolled), and with them every size equal to one (duck sizing);
# the pooling gradients' fed cotangents must have the sizes their input's window gives
# (ShapeEnv.pinned moves one size at a time); broadcast_to's target is a fixed shape the
# input's size must equal anyway; split's -1 part is a derived size of 1 here (a length
# of 1 is compiled as it is); unslice pads into its own fixed shape.
PINNING_RECORDS = {
    "avg_pool2d_grad",
    "broadcast_to",
    "conv1d",
    "conv2d",
    "conv2d_filter_grad",
    "conv2d_strided_dilated_grouped",
    "conv_transpose2d",
    "max_pool2d_grad",
    "split(value, [1, -1, 2], axis=-1)",
    "unslice",
}


def _pinned_by_lowering(case, shapes) -> list[int] | None:
    """The values of the symbols that the llvm lowering of `case` at `shapes`, every
    dimension unknown, took as numbers (ShapeEnv.pinned); None where no compile for every
    size applies (no unknown size, or a program run staged). Lowered only: LLVM does not
    change the guards."""
    arrays = inputs_for(case, shapes, case.dtypes[0])
    g = gj.Graph()
    with g.as_default():
        xs = [gj.placeholder(a.dtype, [None] * a.ndim) for a in arrays]
        out = case.fn(*xs)
    feeds = dict(zip(xs, arrays))
    values = size_class(feeds)[1]
    if not values:
        return None
    types, env = symbolic_feed_types(feeds, values)
    program = build_program(g, list(out) if isinstance(out, (list, tuple)) else [out], [], types)
    if has_runtime_shapes(program.function):
        return None
    optimize(program.function)
    str(Lowering(program.function).lower())  # (llvmlite formats constants here)
    return [values[k] for k in env.pinned()]


def test_the_op_table_lowers_for_every_size_pinning_only_known_records():
    """Every op-table record with every dimension unknown, lowered for every size: none
    but PINNING_RECORDS fixes a size (argmax's axis stride once did, as an ir.Constant
    that llvmlite formatted: a compile per size, found by nothing else since its results
    were right), and each of those still does (remove it from the list once it is fixed)."""
    pinned, lowered = {}, 0
    for case in OP_TABLE:
        for shapes in case.shapes if case.dynamic else ():
            if shapes and all(shape for shape in shapes):
                found = _pinned_by_lowering(case, shapes)
                lowered += found is not None
                if found:
                    pinned.setdefault(case.name, []).append((shapes, found))
    assert lowered > 400
    assert {name: p for name, p in pinned.items() if name not in PINNING_RECORDS} == {}
    assert PINNING_RECORDS <= set(pinned)


def test_sums_over_sizes_of_the_run_have_the_bits_of_static_sums(compiles):
    """A pairwise cascade over an axis of the run's length runs its tree as one loop over
    the blocks (kernel._carried: its code the same for any height, where nested loops
    with spare levels took LLVM 0.8 s): the same additions in the same order as the
    static tree, so the same bits, for lengths of one block to several levels' worth.
    (A sum over the batch too, or over a row alone, takes the general form for any length,
    chunks of 1024 then the cascade, where a static compile folds a short row in
    registers: within NumPy's error of each other, not bit for bit.)"""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 3, None, None], name="x")
        out = gj.reduce_sum(gj.exp(x) * 1e3, axis=[2, 3])
    dynamic = gj.Session(g, dynamic=True)
    rng = np.random.default_rng(10)
    for shape in [(2, 3, 40, 33), (3, 3, 7, 5), (2, 3, 97, 211), (5, 3, 64, 65), (2, 3, 300, 301)]:
        data = {x: rng.normal(size=shape).astype(np.float32) * 3}
        static = gj.Session(g, dynamic=False).run(out, data)
        np.testing.assert_array_equal(dynamic.run(out, data), static)
    assert sum(bool(p.sizes) for p in compiles) == 1

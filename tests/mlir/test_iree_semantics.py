"""Where backend="iree" must agree with the interpreter beyond the op table's draws:
run-time checks raise the same errors (out-of-range indices and slice starts, integer
division by zero, negative integer powers, NaN and infinity), random ops draw the same
numbers, and sorts and scans of NaN, ties and signed zeros match bit for bit.

Each test is one graph run with several feeds of one signature: one IREE compile."""

from __future__ import annotations

import re

import numpy as np
import pytest
from backend_check import assert_matches
from iree_helpers import exported, require_iree

import graphjit as gj
from graphjit.errors import GraphjitError, NumericsError
from graphjit.ir.ops import bind
from graphjit.mlir import iree as iree_backend

require_iree()


def outcome(session, fetches, feed):
    """The results, or (error class, message without location, op name)."""
    try:
        return session.run(fetches, feed)
    except GraphjitError as e:
        return type(e), e.raw_message, e.op.name if e.op is not None else None


def _unnamed(error: tuple) -> tuple:
    """The interpreter names the bad index ("index 5 is out of range"); iree, as llvm,
    says "an index"."""
    kind, message, op = error
    return kind, re.sub(r"^index -?\d+ ", "an index ", message), op


def same_outcome(got, expected, what: str) -> None:
    if isinstance(expected, tuple):
        assert isinstance(got, tuple), f"{what}: iree gave results, the interpreter {expected}"
        assert _unnamed(got) == _unnamed(expected), f"{what}: {got} != {expected}"
        return
    assert not isinstance(got, tuple), f"{what}: iree raised {got}"
    for g, e in zip(got, expected, strict=True):
        assert_matches(g, e, what, signed_zeros=True)


def test_run_time_checks_raise_as_on_the_interpreter():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [5, 3], name="x")
        i = gj.placeholder(gj.int64, [4], name="i")
        j = gj.placeholder(gj.int64, [4], name="j")  # (TF1's gather: no negative index)
        start, clamped = (gj.placeholder(gj.int64, [], name=n) for n in ("start", "clamped"))
        a, b, e = (gj.placeholder(gj.int32, [4], name=n) for n in ("a", "b", "e"))
        f = gj.placeholder(gj.float32, [3], name="f")
        u = gj.placeholder(gj.float32, [4, 3], name="u")
        stride = gj.placeholder(gj.int64, [], name="stride")
        looped = gj.while_loop(  # a gather in a loop body: checked each iteration
            lambda k, acc: k < 3,
            lambda k, acc: (k + 1, acc + gj.gather(x, k * stride)),
            [gj.constant(0, gj.int64), gj.zeros([3])],
        )[1]
        fetches = [
            looped,
            x[i],  # (NumPy's rule: a negative index counts from the end)
            gj.gather(x, j),
            gj.scatter_add(x, j, u),
            x[start : start + 2],  # checked (TF1's slice)
            gj.dynamic_slice(x, [clamped, 0], [2, 3]),  # clamped (JAX's)
            a // b,
            a % b,
            gj.pow(a, e),
            gj.check_numerics(gj.log(f), "log of f"),
        ]
    good = {
        x: np.arange(15, dtype=np.float32).reshape(5, 3),
        i: np.array([0, -1, 4, -5]),
        j: np.array([0, 1, 4, 4]),
        start: np.array(3),
        clamped: np.array(9),
        a: np.array([7, -7, np.iinfo(np.int32).min, 3], np.int32),
        b: np.array([2, 2, -1, -3], np.int32),
        e: np.array([0, 1, 2, 21], np.int32),
        f: np.array([1, 2, 3], np.float32),
        u: np.ones((4, 3), np.float32),
        stride: np.array(2),
    }
    bad = {
        "gather index": {i: np.array([0, 5, 1, 1])},
        "negative index of TF1's gather": {j: np.array([0, -1, 1, 1])},
        "gather index in a loop": {stride: np.array(3)},
        "slice start": {start: np.array(4)},
        "zero divisor": {b: np.array([2, 0, 1, 1], np.int32)},
        "negative power": {e: np.array([1, -1, 0, 0], np.int32)},
        "log of 0": {f: np.array([1, 0, 3], np.float32)},
        "log of -1": {f: np.array([1, -1, 3], np.float32)},
    }
    exported(g, fetches, good)
    with gj.Session(g) as interpreter, gj.Session(g, backend="iree") as iree:
        for what, change in [("in range", {}), *bad.items()]:
            feed = {**good, **change}
            expected = outcome(interpreter, fetches, feed)
            assert isinstance(expected, tuple) == bool(change), what
            same_outcome(outcome(iree, fetches, feed), expected, what)


def test_an_empty_result_checks_no_divisor_or_exponent():
    """NumPy checks an integer divisor or exponent only where it computes: an empty result
    raises nothing, here as on the interpreter and llvm; the check is still made over the
    result's elements where its size is known only when it runs (an export with `?`)."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.int32, [None, None], name="x")
        y = gj.placeholder(gj.int32, [1, 1], name="y")
        fetches = [x // y, x % y, gj.pow(x, y)]
    with gj.Session(g, backend="iree") as sess:
        for bad in (0, -1):
            feed = {x: np.zeros((1, 0), np.int32), y: np.array([[bad]], np.int32)}
            assert [r.shape for r in sess.run(fetches, feed)] == [(1, 0)] * 3
        with pytest.raises(gj.RuntimeCheckError):
            sess.run(fetches[2], {x: np.ones((2, 2), np.int32), y: np.array([[-1]], np.int32)})
    runtime = iree_backend.require_iree().runtime
    config = runtime.Config("local-sync")
    context = runtime.SystemContext(config=config)
    vmfb = iree_backend.compile_module(exported(g, fetches[2]))
    context.add_vm_module(runtime.VmModule.copy_buffer(config.vm_instance, vmfb))
    main = context.modules.module["main"]
    empty = main(np.zeros((1, 0), np.int32), np.array([[-1]], np.int32))
    assert np.asarray(empty.to_host()).shape == (1, 0)
    with pytest.raises(RuntimeError, match="negative integer powers"):
        main(np.ones((2, 2), np.int32), np.array([[-1]], np.int32))


def test_session_check_numerics_names_the_first_op():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [3], name="x")
        y = gj.sqrt(gj.log(x) * 2)
    with (
        gj.Session(g, check_numerics=True) as interpreter,
        gj.Session(g, backend="iree", check_numerics=True) as iree,
    ):
        for values in ([1, 2, 3], [1, 0, 3], [1, -1, 3], [0.5, 2, 3]):
            feed = {x: np.array(values, np.float32)}
            expected = outcome(interpreter, y, feed)
            got = outcome(iree, y, feed)
            if isinstance(expected, tuple):
                assert expected[0] is NumericsError and got == expected, values
            else:
                assert_matches(got, expected, str(values))


def test_random_ops_draw_the_llvm_backends_numbers():
    """Uniforms, dropout and float32 normals bit for bit with the llvm backend's over two
    steps; float64 normals (Box-Muller through mathlib's own log and cosine on both, whose
    multiply-adds LLVM may leave unfused) within an ulp; and all of them within an ulp or
    two of the interpreter's (libm's log and cos). Two draws of one
    shape from different seeds: IREE fused their generics, which read the rng pair
    through constant maps, and the second drew other numbers (fixed by reading the pair
    as scalars before the generic: test_two_draws_of_one_shape_are_not_mixed_up)."""
    g = gj.Graph()
    with g.as_default():
        gj.set_random_seed(7)
        x = gj.placeholder(gj.float32, [6, 5], name="x")
        x64 = gj.placeholder(gj.float64, [9], name="x64")
        exact = [
            gj.random_uniform([3, 4]),
            gj.random_uniform([5], dtype=gj.float64),
            gj.random.dropout(x, 0.3),
            gj.random.dropout(x64, 0.5),
            gj.random_normal([500]),
            gj.truncated_normal([500]),
            gj.random_uniform([]),
        ]
        close = [
            gj.random_normal([64], dtype=gj.float64),
            gj.truncated_normal([64], dtype=gj.float64),
        ]
    feed = {x: np.ones((6, 5), np.float32), x64: np.arange(9.0)}
    exported(g, [exact, close], feed)
    with gj.Session(g) as llvm, gj.Session(g, backend="iree") as iree:
        for step in range(2):
            want, got = (s.run([exact, close], feed) for s in (llvm, iree))
            for k, (a, b) in enumerate(zip(want[0], got[0], strict=True)):
                np.testing.assert_array_equal(b, a, err_msg=f"step {step}, fetch {k}")
            for a, b in zip(want[1], got[1], strict=True):
                np.testing.assert_allclose(b, a, rtol=3e-16, atol=3e-16)
    with gj.Session(g, backend="interpreter") as interpreter, gj.Session(g, backend="iree") as iree:
        want, got = (s.run(exact + close, feed) for s in (interpreter, iree))
        for a, b in zip(want, got, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("kinds", ["uu", "nt", "tn"])
def test_two_draws_of_one_shape_are_not_mixed_up(kinds):
    """Two random ops of one shape, different seeds, alone in a graph: IREE fused their
    generics, which read the rng pair through constant indexing maps, and the second drew
    other numbers than the interpreter's (all 8 or 50 of them)."""
    draw = {"u": gj.random_uniform, "n": gj.random_normal, "t": gj.truncated_normal}
    g = gj.Graph()
    with g.as_default():
        draws = [draw[kind]([50], seed=3 + k) for k, kind in enumerate(kinds)]
    with gj.Session(g, backend="interpreter") as interpreter, gj.Session(g, backend="iree") as iree:
        for want, got in zip(interpreter.run(draws), iree.run(draws), strict=True):
            np.testing.assert_array_equal(got, want)


def test_sorts_scans_and_pools_of_nan_ties_and_signed_zeros():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [3, 6], name="x")
        image = gj.placeholder(gj.float32, [1, 2, 5, 4], name="image")
        cotangent = gj.placeholder(gj.float32, [1, 2, 3, 3], name="cotangent")
        ascending, descending = gj.sort(x, dim=1), gj.sort(x, dim=1, descending=True)
        top = gj.topk(x, 2)
        pool = {"kernel": (2, 2), "stride": (2, 1), "padding": (1, 0)}
        fetches = [
            *ascending,
            *descending,
            *top,
            gj.cumsum(x, 1),
            gj.cumsum(x, 1, reverse=True),
            gj.max_pool2d(image, 2, (2, 1), (1, 0)),
            bind("max_pool2d_grad", image, cotangent, **pool),
            bind("max_pool2d_pick", image, image * 2, **pool),
        ]
    nan, inf = np.nan, np.inf
    rows = np.array(
        [[1, nan, -0.0, 0.0, 1, nan], [3, 2, 1, 3, 2, 1], [inf, -inf, nan, 5, -inf, -0.0]],
        np.float32,
    )
    picture = np.array(
        [[0, 1, 1, 0], [nan, 2, 2, -inf], [-inf, -inf, 3, 3], [1, 1, 1, 1], [0, 0, 0, 0]]
    )
    feed = {
        x: rows,
        image: np.stack([picture, -picture])[None].astype(np.float32),
        cotangent: np.arange(18, dtype=np.float32).reshape(1, 2, 3, 3),
    }
    exported(g, fetches, feed)
    with gj.Session(g) as interpreter, gj.Session(g, backend="iree") as iree:
        same_outcome(iree.run(fetches, feed), interpreter.run(fetches, feed), "sorted")


def test_long_scans_run_in_linear_time_with_the_interpreters_bits():
    """The iree backend's cumsum is IREE's sequential scan, not the O(n²) dense form
    upstream MLIR needs (200k elements: 4e10 additions there): the interpreter's bits,
    forwards and reversed, along a middle axis of unknown length and in integers."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None], name="x")
        grid = gj.placeholder(gj.float64, [2, None, 3], name="grid")
        counts = gj.placeholder(gj.int32, [None], name="counts")
        fetches = [
            gj.cumsum(x, 0),
            gj.cumsum(x, 0, reverse=True),
            gj.cumsum(grid, 1, reverse=True),
            gj.cumsum(counts, 0),
        ]
    rng = np.random.default_rng(0)
    feed = {
        x: rng.normal(size=200_000).astype(np.float32),
        grid: rng.normal(size=(2, 1000, 3)),
        counts: rng.integers(-5, 5, 50_000).astype(np.int32),
    }
    with gj.Session(g) as interpreter, gj.Session(g, backend="iree") as iree:
        for got, want in zip(iree.run(fetches, feed), interpreter.run(fetches, feed), strict=True):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
    assert "iree_linalg_ext" not in gj.mlir.export(fetches, feed, graph=g)  # (upstream: dense)


def test_reshapes_of_a_0d_tensor_export_and_run():
    """A scalar reshaped to (1,) or (1, 1, 1) is a tensor.expand_shape (MLIR rejects a
    collapse_shape into more elements' axes than it has)."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [], name="x")
        fetches = [gj.reshape(x, [1]) * 2.0, gj.reshape(x, [1, 1, 1]) + 1.0]
    feed = {x: np.float32(3.0)}
    exported(g, fetches, feed)  # (verified by MLIR)
    with gj.Session(g, backend="iree") as sess:
        got = sess.run(fetches, feed)
    np.testing.assert_array_equal(got[0], [6.0])
    np.testing.assert_array_equal(got[1], [[[4.0]]])


def test_feeds_at_any_address_are_read_in_place():
    """IREE's kernels assumed 64-byte aligned buffers and crashed on a NumPy array at
    another address; compiled to assume nothing (iree.COMPILE_FLAGS), they read float32
    feeds at every 4-byte offset from a 64-byte boundary, and an odd-address view (not
    even aligned to its element) through a copy."""
    n = 1 << 15
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [n], name="x")
        y = gj.tanh(x) * 2.0 + x
    raw = np.random.default_rng(1).normal(size=n + 32).astype(np.float32)
    first = -raw.ctypes.data % 64 // 4
    with gj.Session(g, backend="iree") as iree, gj.Session(g, backend="llvm") as llvm:
        for offset in range(16):
            feed = raw[first + offset : first + offset + n]
            assert (feed.ctypes.data % 64 == 0) == (offset == 0)
            np.testing.assert_allclose(iree.run(y, {x: feed}), llvm.run(y, {x: feed}), rtol=2e-6)
        odd = raw.view(np.uint8)[1 : 1 + 4 * n].view(np.float32)
        assert not odd.flags.aligned
        np.testing.assert_allclose(iree.run(y, {x: odd}), llvm.run(y, {x: odd}), rtol=2e-6)


def test_large_arrays_cross_without_copies_and_results_outlive_their_feeds():
    """Arrays of 64 KiB and more are read in place, and results are views of IREE's
    buffers. A result that is the feed itself (an identity) must not be a view of memory
    freed after the call; variables trained on the device keep their values."""
    n = 1 << 15  # 128 KiB of float32
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [n], name="x")
        w = gj.Variable(np.zeros(n, np.float32), name="w")
        step = w.assign_add(x * 0.5)
        same = gj.identity(x)
        y = gj.tanh(x) * 2.0
        init = gj.global_variables_initializer()
    interp = gj.Session(g, backend="interpreter")
    iree = gj.Session(g, backend="iree")
    for sess in (interp, iree):
        sess.run(init)
    raw = np.random.default_rng(0).normal(size=n + 1).astype(np.float32)
    for feed in (raw[:n], raw[1:]):  # one of the two is not 64-byte aligned
        fed = feed.copy()
        got = iree.run([y, same, step], {x: fed})
        want = interp.run([y, same, step], {x: fed})
        np.testing.assert_array_equal(fed, feed)  # read in place, never written
        fed[:] = np.nan  # the caller reuses its buffer: results must not change
        del fed
        junk = [np.full(n, 7.0, np.float32) for _ in range(8)]  # reuse freed memory
        for a, b in zip(got, want, strict=True):
            assert_matches(a, b, "in-place transfer", signed_zeros=True)
        assert not any(np.shares_memory(a, junk_a) for a in got for junk_a in junk)
    np.testing.assert_array_equal(iree.run(w), interp.run(w))


def test_long_sorts_run_in_n_log_squared_n_time_stably_with_the_interpreters_results():
    """The iree backend sorts by a bitonic network (upstream ops in loops), not the O(n²)
    dense form an export has (200k elements: 4e10 comparisons there): values and
    positions as the interpreter's, stable through many ties, with NaN and infinities,
    descending, along a middle axis of unknown length, in integers, and for top-k."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None], name="x")
        grid = gj.placeholder(gj.float64, [2, None, 3], name="grid")
        counts = gj.placeholder(gj.int32, [None], name="counts")
        fetches = [
            *gj.sort(x, dim=0),
            *gj.sort(grid, dim=1, descending=True),
            gj.argsort(counts, dim=0),
            gj.argsort(counts, dim=0, descending=True),
            *gj.topk(x, 7),
        ]
    rng = np.random.default_rng(1)
    values = rng.normal(size=200_001).astype(np.float32)
    values[rng.integers(0, 200_001, 500)] = np.nan
    values[:3] = [np.inf, -np.inf, -0.0]
    feed = {
        x: values,
        grid: rng.integers(-3, 3, size=(2, 1001, 3)).astype(np.float64),
        counts: rng.integers(-5, 5, 50_000).astype(np.int32),
    }
    with gj.Session(g) as interpreter, gj.Session(g, backend="iree") as iree:
        for got, want in zip(iree.run(fetches, feed), interpreter.run(fetches, feed), strict=True):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
    assert "scf.for" not in gj.mlir.export(fetches, feed, graph=g)  # (upstream: dense)


def test_float32_sums_are_accurate_over_millions_of_terms():
    """IREE folds a reduction in order into one accumulator: float32 sums are exported
    accumulated in float64 and rounded once (emitters._sum_in_double). The mean of 4M
    terms exp(a + b) was 0.5% low; the column sums, the mean's gradient (a sum_to per
    operand) and a float64 sum stay as they were, and every result is within float32's
    exp and one rounding of the exact value."""
    rng = np.random.default_rng(7)
    n = 2048
    av = rng.normal(size=(n, 1)).astype(np.float32)
    bv = rng.normal(size=(1, n)).astype(np.float32)
    g = gj.Graph()
    with g.as_default():
        a = gj.placeholder(gj.float32, (n, 1), name="a")
        b = gj.placeholder(gj.float32, (1, n), name="b")
        e = gj.exp(a + b)
        mean, columns = gj.reduce_mean(e), gj.reduce_sum(e, axis=0)
        grads = gj.gradients(mean, [a, b])
        wide = gj.reduce_sum(gj.cast(e, gj.float64))
    text = exported(g, [mean, columns, *grads, wide], {a: av, b: bv})
    assert "arith.extf" in text and "arith.truncf" in text
    got = gj.Session(g, backend="iree").run([mean, columns, *grads, wide], {a: av, b: bv})
    exact = np.exp(av.astype(np.float64) + bv)
    want = [
        exact.mean(),
        exact.sum(0),
        exact.sum(1, keepdims=True) / n**2,
        exact.sum(0, keepdims=True) / n**2,
        exact.sum(),
    ]
    for k, (r, w) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(r, w, rtol=2e-7, err_msg=f"fetch {k}")


def test_float16_sums_and_products_accumulate_in_float32_as_the_interpreter():
    """In float16 IREE's sum of 100000 values in [0, 1) stopped at 2048 and a product
    over 8192 terms was 24% off; exported, both accumulate wider and round once, so they
    match the interpreter (float32 accumulation, one rounding: PyTorch's rule)."""
    rng = np.random.default_rng(8)
    xv = rng.uniform(0, 1, size=100_000).astype(np.float16)
    av = rng.uniform(0, 1, size=(4, 8192)).astype(np.float16)
    bv = rng.uniform(0, 1, size=(8192, 3)).astype(np.float16)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float16, xv.shape, name="x")
        a = gj.placeholder(gj.float16, av.shape, name="a")
        b = gj.placeholder(gj.float16, bv.shape, name="b")
        bt = gj.placeholder(gj.float16, bv.T.shape, name="bt")
        fetches = [
            gj.reduce_sum(x),
            gj.reduce_sum(gj.reshape(x, (100, 1000)), axis=1),
            gj.matmul(a, b),
            gj.matmul(a, bt, transpose_b=True),  # (the contraction generic, not linalg.matmul)
        ]
    feed = {x: xv, a: av, b: bv, bt: np.ascontiguousarray(bv.T)}
    got = gj.Session(g, backend="iree").run(fetches, feed)
    want = gj.Session(g, backend="interpreter").run(fetches, feed)
    for k, (r, e) in enumerate(zip(got, want, strict=True)):
        assert r.dtype == np.float16
        np.testing.assert_allclose(r.astype(np.float64), e, rtol=1e-3, err_msg=f"fetch {k}")

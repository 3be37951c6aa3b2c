"""Random ops (ir/ops/random.py, frontend/random.py): Philox against published answers and
NumPy's Philox, the same numbers on every backend and in eager, fresh numbers per run, per
op and per loop iteration (nested loops and dropout gradients in loops included),
distributions (fixed seeds: deterministic bounds, never flaky), dropout and its gradient,
gj.function, seeding."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.special
from autodiff.fd import assert_close, numeric_grad
from simulator import run_script_simulated

import graphjit as gj
from graphjit.frontend.eager.tensor import wrap
from graphjit.ir.ops import bind
from graphjit.ir.ops.random import philox4x32

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ["interpreter", "llvm"]
RANDOM_OPS = ["random_uniform", "random_normal", "random_truncated_normal"]

# ---- Philox itself -------------------------------------------------------------------------

# Random123's kat_vectors for philox4x32-10: (counter, key) -> output
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize("counter, key, expected", KNOWN_ANSWERS)
def test_philox_known_answers(counter, key, expected):
    words = philox4x32([np.array([c]) for c in counter], [np.array([k]) for k in key])
    assert tuple(int(w[0]) for w in words) == expected


# Philox 4xW: (multipliers, Weyl increments) for W = 32 and 64 (Random123's constants).
PHILOX_CONSTANTS = {
    32: ((0xD2511F53, 0xCD9E8D57), (0x9E3779B9, 0xBB67AE85)),
    64: ((0xD2E7470EE14C6C93, 0xCA5A826395121157), (0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B)),
}


def philox_reference(width: int, counter, key) -> tuple:
    """Philox 4xW-10 in plain Python integers, one block: the textbook algorithm."""
    (m0, m1), (w0, w1) = PHILOX_CONSTANTS[width]
    mask = (1 << width) - 1
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for r in range(10):
        if r:
            k0, k1 = (k0 + w0) & mask, (k1 + w1) & mask
        p0, p1 = c0 * m0, c2 * m1
        c0, c1, c2, c3 = (p1 >> width) ^ c1 ^ k0, p1 & mask, (p0 >> width) ^ c3 ^ k1, p0 & mask
    return c0, c1, c2, c3


def test_the_reference_is_numpys_philox_at_64_bits():
    """NumPy ships Philox 4x64-10 only (not 4x32), so it cannot check our words directly;
    it checks the reference algorithm, which then checks ours at 32 bits. NumPy increments
    its counter before each block."""
    for key in [(0, 0), (12345, 2**64 - 1)]:
        bits = np.random.Philox(counter=0, key=key[0] | key[1] << 64)
        assert tuple(int(w) for w in bits.random_raw(4)) == philox_reference(64, (1, 0, 0, 0), key)


def test_vectorised_philox_matches_the_reference():
    rng = np.random.default_rng(0)
    counters = rng.integers(0, 2**32, (4, 50), dtype=np.uint64)
    key = (0xDEADBEEF, 0x01234567)
    words = philox4x32(list(counters), [np.uint64(k) for k in key])
    for j in range(50):
        expected = philox_reference(32, tuple(int(c[j]) for c in counters), key)
        assert tuple(int(w[j]) for w in words) == expected


# ---- the same numbers everywhere -----------------------------------------------------------


def fixed_rng_graph(dtype, shape=(257,), key=1234):
    """A graph whose random ops read a fed (seed, step), and a dropout of a fed x."""
    g = gj.Graph()
    with g.as_default():
        rng = gj.placeholder(gj.int64, [2], name="rng")
        x = gj.placeholder(dtype, list(shape), name="x")
        outs = [bind(n, rng, shape=shape, dtype=dtype.name, key=key) for n in RANDOM_OPS]
        outs.append(bind("dropout", x, rng, p=0.3, key=key))
    return g, rng, x, outs


FEED_RNG = np.array([-(2**40) + 7, 2**33 + 5], np.int64)  # both halves of both words used


def run_fixed(backend, dtype):
    g, rng, x, outs = fixed_rng_graph(dtype)
    x_value = np.linspace(-3, 3, 257).astype(dtype.np)
    with gj.Session(g, backend=backend) as sess:
        return sess.run(outs, {rng: FEED_RNG, x: x_value})


def assert_same_numbers(got, expected, dtype):
    """Uniform and dropout: bit for bit. Normals: float64 Box-Muller rounded to the dtype,
    so equal but for log/cos's last bits."""
    for name, a, b in zip(RANDOM_OPS + ["dropout"], got, expected):
        if name in ("random_uniform", "dropout"):
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-6 if dtype == gj.float32 else 1e-13)


@pytest.mark.parametrize("dtype", [gj.float32, gj.float64], ids=str)
def test_llvm_matches_the_interpreter(dtype):
    assert_same_numbers(run_fixed("llvm", dtype), run_fixed("interpreter", dtype), dtype)


@pytest.mark.parametrize("dtype", [gj.float32, gj.float64], ids=str)
def test_eager_matches_the_interpreter(dtype):
    x_value = np.linspace(-3, 3, 257).astype(dtype.np)
    rng = wrap(FEED_RNG)
    eager = [bind(n, rng, shape=(257,), dtype=dtype.name, key=1234).numpy() for n in RANDOM_OPS]
    eager.append(bind("dropout", gj.tensor(x_value), rng, p=0.3, key=1234).numpy())
    assert_same_numbers(eager, run_fixed("interpreter", dtype), dtype)


CUDA_SCRIPT = """
import json, sys
import numpy as np
sys.path.insert(0, {tests!r})
from static.test_random import run_fixed
import graphjit as gj
from static.test_random import run_loop_draws
out = {{d.name: [a.tolist() for a in run_fixed("cuda", d)] for d in (gj.float32, gj.float64)}}
out["loop"] = [a.tolist() for a in run_loop_draws("cuda")]
print(json.dumps(out))
"""


def test_cuda_simulator_matches_the_interpreter():
    """In a process of its own: the simulator must be chosen before numba is imported."""
    pytest.importorskip("numba")
    done = run_script_simulated(CUDA_SCRIPT.format(tests=str(ROOT / "tests")))
    assert done.returncode == 0, done.stderr[-4000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    for dtype in (gj.float32, gj.float64):
        cuda = [np.array(a, dtype.np) for a in got[dtype.name]]
        assert_same_numbers(cuda, run_fixed("interpreter", dtype), dtype)
    for cuda, interpreted in zip(got["loop"], run_loop_draws("interpreter")):
        np.testing.assert_array_equal(np.array(cuda, np.float32), interpreted)


# ---- steps, ops and seeds in graphs ----------------------------------------------------------


def seeded_graph(graph_seed=None, op_seed=None):
    g = gj.Graph()
    with g.as_default():
        if graph_seed is not None:
            gj.set_random_seed(graph_seed)
        a = gj.random_normal([64], seed=op_seed)
        b = gj.random_uniform([64], seed=op_seed)
        c = gj.random_normal([64])
    return g, a, b, c


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_run_draws_fresh_numbers(backend):
    g, a, _, _ = seeded_graph(graph_seed=1)
    with gj.Session(g, backend=backend) as sess:
        first, second = sess.run(a), sess.run(a)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_ops_of_one_graph_differ(backend):
    g, a, _, c = seeded_graph(graph_seed=1)
    with gj.Session(g, backend=backend) as sess:
        x, y = sess.run([a, c])
    assert not np.allclose(x, y)


@pytest.mark.parametrize("seeds", [(5, None), (None, 9), (5, 9)])
def test_seeded_graphs_repeat_across_sessions_and_graphs(seeds):
    """TF1: a graph or op seed makes the sequence of runs reproducible."""
    runs = []
    for _ in range(2):
        g, a, b, c = seeded_graph(*seeds)
        with gj.Session(g, backend="llvm") as sess:
            runs.append([sess.run([a, b, c]) for _ in range(3)])
    seeded = 3 if seeds[0] is not None else 2  # (c has no op seed: random without a graph's)
    for first, again in zip(runs[0], runs[1]):
        for x, y in zip(first[:seeded], again[:seeded]):
            np.testing.assert_array_equal(x, y)


def test_unseeded_graphs_differ():
    draws = []
    for _ in range(2):
        g, a, _, _ = seeded_graph()
        with gj.Session(g, backend="interpreter") as sess:
            draws.append(sess.run(a))
    assert not np.array_equal(*draws)


def test_a_run_without_random_ops_does_not_advance_the_step():
    g = gj.Graph()
    with g.as_default():
        gj.set_random_seed(2)
        u = gj.random.uniform([8])
        other = gj.constant(1.0) + 1.0
    with gj.Session(g, backend="llvm") as a, gj.Session(g, backend="llvm") as b:
        a.run(other)
        np.testing.assert_array_equal(a.run(u), b.run(u))


def test_random_op_inside_cond():
    g = gj.Graph()
    with g.as_default():
        gj.set_random_seed(3)
        flag = gj.placeholder(gj.bool_, [])
        out = gj.cond(flag, lambda: gj.random.uniform([4]), lambda: gj.zeros([4]))
    for backend in BACKENDS:
        with gj.Session(g, backend=backend) as sess:
            taken = sess.run(out, {flag: True})
            assert np.all((taken >= 0) & (taken < 1)) and np.any(taken > 0)
            np.testing.assert_array_equal(sess.run(out, {flag: False}), np.zeros(4))


# ---- random ops in loops: fresh numbers in every iteration ----------------------------------

LOOP_ROWS = 5


def loop_draws_graph(seed=11, rows=LOOP_ROWS):
    """A while loop that draws a uniform vector per iteration into a TensorArray."""
    g = gj.Graph()
    with g.as_default():
        gj.set_random_seed(seed)

        def body(i, ta):
            return i + 1, ta.write(i, gj.random.uniform([8]))

        ta = gj.TensorArray(gj.float32, size=rows, element_shape=[8])
        _, ta = gj.while_loop(lambda i, ta: i < rows, body, [0, ta])
        stacked = ta.stack()
    return g, stacked


def run_loop_draws(backend):
    """Two runs of the loop: the rows of each, as numbers."""
    g, stacked = loop_draws_graph()
    with gj.Session(g, backend=backend) as sess:
        return [sess.run(stacked), sess.run(stacked)]


def assert_rows_differ(rows):
    flat = np.asarray(rows).reshape(len(rows), -1)
    assert len({r.tobytes() for r in flat}) == len(flat), "some iterations drew the same numbers"


@pytest.mark.parametrize("backend", BACKENDS)
def test_loop_iterations_draw_fresh_numbers(backend):
    first, second = run_loop_draws(backend)
    assert_rows_differ(first)
    assert not np.array_equal(first, second)  # a new run, a new step
    again = run_loop_draws(backend)  # a new Session with the same seed repeats them
    np.testing.assert_array_equal(first, again[0])
    np.testing.assert_array_equal(second, again[1])


def test_loop_draws_are_the_same_on_llvm_and_the_interpreter():
    for a, b in zip(run_loop_draws("llvm"), run_loop_draws("interpreter")):
        np.testing.assert_array_equal(a, b)


def nested_draws_graph(inner_in_cond: bool):
    """Outer loop of 4, inner loop of 3 (directly in the outer body or in a cond branch):
    the inner body writes a draw into row 3 * i + j of `inner`; the outer body draws one
    row before and one after the inner loop."""
    g = gj.Graph()
    with g.as_default():
        gj.set_random_seed(4)

        def inner_loop(i, rows):
            def body(j, rows):
                row = gj.reshape(gj.random.uniform([6]), [1, 6])
                return j + 1, gj.dynamic_update_slice(rows, row, [3 * i + j, 0])

            return gj.while_loop(lambda j, rows: j < 3, body, [0, rows])[1]

        def outer_body(i, rows, before, after):
            before = before.write(i, gj.random.uniform([6]))
            if inner_in_cond:
                rows = gj.cond(i >= 0, lambda: inner_loop(i, rows), lambda: rows)
            else:
                rows = inner_loop(i, rows)
            return i + 1, rows, before, after.write(i, gj.random.uniform([6]))

        outer_rows = [gj.TensorArray(gj.float32, size=4, element_shape=[6]) for _ in range(2)]
        _, rows, before, after = gj.while_loop(
            lambda i, *_: i < 4, outer_body, [0, gj.zeros([12, 6]), *outer_rows]
        )
        fetches = [rows, before.stack(), after.stack()]
    return g, fetches


@pytest.mark.parametrize("inner_in_cond", [False, True], ids=["inner", "inner_in_cond"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_nested_loops_never_repeat_a_draw(backend, inner_in_cond):
    g, fetches = nested_draws_graph(inner_in_cond)
    with gj.Session(g, backend=backend) as sess:
        inner, before, after = sess.run(fetches)
    for rows in (inner, before, after):  # each op: 12 or 4 executions, all different
        assert_rows_differ(rows)
    assert np.all((inner > 0) & (inner < 1))  # every row written (none left at 0)


def while_ops(graph) -> list:
    return [op for op in graph.block.ops if op.name == "while"]


def test_loops_without_random_ops_carry_only_their_own_values():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [3])
        gj.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, y * 2.0), [0, x])
        gj.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, y + gj.random.normal([3])), [0, x])

        def drawing_branch(i, y):
            return i + 1, gj.cond(i > 0, lambda: gj.random.normal([3]), lambda: y)

        gj.while_loop(lambda i, y: i < 3, drawing_branch, [0, x])
    plain, drawing, drawing_in_cond = while_ops(g)
    assert (len(plain.operands), len(plain.results)) == (2, 2)
    assert [len(r.block.args) for r in plain.regions] == [2, 2]
    # a loop that draws carries one more value: the int64 draw counter
    for loop in (drawing, drawing_in_cond):
        assert (len(loop.operands), len(loop.results)) == (3, 3)
        assert str(loop.results[2].type) == "tensor<i64>"
    # a cond whose branch draws but runs no loop passes no count out
    (cond,) = [op for op in drawing_in_cond.regions[1].block.ops if op.name == "cond"]
    assert len(cond.results) == 1


def dropout_loop(x, p=0.5, iterations=3):
    """h <- tanh(dropout(h) * x + 0.1), from h = x, with each iteration's dropped h kept."""

    def body(i, h, kept):
        dropped = gj.random.dropout(h, p)
        return i + 1, gj.tanh(dropped * x + 0.1), kept.write(i, dropped)

    kept = gj.TensorArray(gj.float64, size=iterations, element_shape=[8])
    _, h, kept = gj.while_loop(lambda i, h, kept: i < iterations, body, [0, x, kept])
    return gj.reduce_sum(h), kept.stack()


def dropout_loop_graph():
    g = gj.Graph()
    with g.as_default():
        gj.set_random_seed(6)
        x = gj.placeholder(gj.float64, [8])
        y, kept = dropout_loop(x)
        (dx,) = gj.gradients(y, [x])
    return g, x, y, kept, dx


def first_run_of_dropout_loop(x_value, backend="interpreter"):
    """A fresh Session's first run: step 0, so the masks are the same on every call."""
    g, x, y, kept, dx = dropout_loop_graph()
    with gj.Session(g, backend=backend) as sess:
        return sess.run([y, kept, dx], {x: x_value})


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_in_a_loop_gradient_matches_finite_differences(backend):
    x_value = np.linspace(0.3, 1.1, 8)
    _, kept, dx = first_run_of_dropout_loop(x_value, backend)
    masks = kept != 0
    assert len({m.tobytes() for m in masks}) == len(masks), "iterations reused one mask"
    (expected,) = numeric_grad(lambda v: first_run_of_dropout_loop(v)[0], [x_value])
    assert_close(dx, expected, "d sum(h) / dx", rtol=1e-6, atol=1e-8)


@gj.function
def noisy_rows(n):
    def body(i, rows):
        return i + 1, gj.dynamic_update_slice(rows, gj.random.normal([1, 4]), [i, 0])

    return gj.while_loop(lambda i, rows: i < n, body, [0, gj.zeros([3, 4])])[1]


def test_function_loop_draws_per_iteration_and_repeats_with_a_seed():
    gj.manual_seed(5)
    rows = noisy_rows(np.int32(3))
    assert_rows_differ(rows)
    assert not np.array_equal(rows, noisy_rows(np.int32(3)))  # the next call: a new step
    gj.manual_seed(5)
    np.testing.assert_array_equal(rows, noisy_rows(np.int32(3)))


# ---- distributions (fixed seeds, so the bounds are deterministic) ----------------------------

N = 20_000
KS_BOUND = 0.02  # the KS statistic's 1e-6 quantile is ~0.0138 at N = 20000


def sample(fn, dtype=gj.float32, **kwargs):
    g = gj.Graph()
    with g.as_default():
        gj.set_random_seed(11)
        out = fn([N], dtype=dtype, **kwargs)
    with gj.Session(g, backend="llvm") as sess:
        return sess.run(out).astype(np.float64)


def ks_statistic(samples, cdf) -> float:
    x = np.sort(samples)
    f = cdf(x)
    i = np.arange(1, len(x) + 1)
    return float(max(np.max(i / len(x) - f), np.max(f - (i - 1) / len(x))))


def normal_cdf(x):
    return 0.5 * (1 + scipy.special.erf(x / math.sqrt(2)))


@pytest.mark.parametrize("dtype", [gj.float32, gj.float64], ids=str)
def test_uniform_distribution(dtype):
    u = sample(gj.random_uniform, dtype, minval=-1.0, maxval=3.0)
    assert u.min() >= -1 and u.max() < 3
    assert abs(u.mean() - 1.0) < 0.04 and abs(u.var() - 16 / 12) < 0.05
    assert ks_statistic(u, lambda x: (x + 1) / 4) < KS_BOUND


@pytest.mark.parametrize("dtype", [gj.float32, gj.float64], ids=str)
def test_normal_distribution(dtype):
    z = sample(gj.random_normal, dtype, mean=2.0, stddev=3.0)
    assert abs(z.mean() - 2.0) < 0.1 and abs(z.std() - 3.0) < 0.1
    assert ks_statistic((z - 2) / 3, normal_cdf) < KS_BOUND


def test_truncated_normal_distribution():
    z = sample(gj.truncated_normal, stddev=0.5)
    assert np.all(np.abs(z) <= 1.0)  # 2 standard deviations
    mass = normal_cdf(2) - normal_cdf(-2)
    assert abs(z.std() / 0.5 - 0.8796) < 0.02  # a standard normal truncated to [-2, 2]
    assert ks_statistic(z / 0.5, lambda x: (normal_cdf(x) - normal_cdf(-2)) / mass) < KS_BOUND


def test_uniform_integers():
    g = gj.Graph()
    with g.as_default():
        gj.set_random_seed(4)
        k = gj.random_uniform([N], minval=-3, maxval=7, dtype=gj.int32)
    with gj.Session(g, backend="llvm") as sess:
        values = sess.run(k)
    assert values.dtype == np.int32
    counts = np.bincount(values + 3, minlength=10)
    assert len(counts) == 10 and np.all(np.abs(counts / N - 0.1) < 0.01)


def test_bernoulli_frequency():
    g = gj.Graph()
    with g.as_default():
        gj.set_random_seed(6)
        b = gj.random.bernoulli(0.25, [N])
    with gj.Session(g, backend="llvm") as sess:
        values = sess.run(b)
    assert values.dtype == np.bool_ and abs(values.mean() - 0.25) < 0.015


# ---- dropout -------------------------------------------------------------------------------


def dropout_graph(p=0.4, training=True):
    g = gj.Graph()
    with g.as_default():
        gj.set_random_seed(8)
        x = gj.placeholder(gj.float32, [None])
        y = gj.random.dropout(x, p, training=training)
        (grad,) = gj.gradients(gj.reduce_sum(y), [x])
    return g, x, y, grad


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_keeps_the_expectation_and_reuses_the_mask(backend):
    p = 0.4
    g, x, y, grad = dropout_graph(p)
    ones = np.ones(N, np.float32)
    with gj.Session(g, backend=backend) as sess:
        out, dx = sess.run([y, grad], {x: ones})
    kept = out != 0
    assert abs(kept.mean() - (1 - p)) < 0.015 and abs(out.mean() - 1.0) < 0.03
    scale = np.float32(1 / (1 - p))
    np.testing.assert_array_equal(out, np.where(kept, scale, 0).astype(np.float32))
    np.testing.assert_array_equal(dx, np.where(kept, scale, 0).astype(np.float32))


def test_dropout_is_the_identity_when_not_training():
    g, x, y, grad = dropout_graph(training=False)
    values = np.arange(5, dtype=np.float32)
    with gj.Session(g, backend="llvm") as sess:
        out, dx = sess.run([y, grad], {x: values})
    np.testing.assert_array_equal(out, values)
    np.testing.assert_array_equal(dx, np.ones(5, np.float32))
    t = gj.tensor(values)
    assert gj.random.dropout(t, 0.5, training=False) is t


def test_dropout_with_a_training_tensor():
    g = gj.Graph()
    with g.as_default():
        gj.set_random_seed(1)
        training = gj.placeholder(gj.bool_, [])
        y = gj.random.dropout(gj.ones([1000]), 0.5, training=training)
    with gj.Session(g, backend="llvm") as sess:
        np.testing.assert_array_equal(sess.run(y, {training: False}), np.ones(1000))
        assert np.sum(sess.run(y, {training: True}) == 0) > 400


def test_dropout_edge_probabilities():
    gj.manual_seed(0)
    t = gj.tensor(np.ones(100, np.float32))
    np.testing.assert_array_equal(gj.random.dropout(t, 1.0).numpy(), np.zeros(100))
    with pytest.raises(gj.GraphjitError, match="between 0 and 1"):
        gj.random.dropout(t, 1.5)


def test_eager_dropout_gradient_is_the_mask():
    gj.manual_seed(3)
    x = gj.tensor(np.full(1000, 2.0, np.float32), requires_grad=True)
    y = gj.random.dropout(x, 0.25)
    (y * y).sum().backward()
    mask = (y.numpy() != 0) / np.float32(0.75)
    np.testing.assert_allclose(x.grad.numpy(), 2 * y.numpy() * mask, rtol=1e-6)


# ---- eager and gj.function -----------------------------------------------------------------


def test_manual_seed_repeats_eager_draws():
    gj.manual_seed(42)
    first = [gj.random.normal([5]).numpy(), gj.random.uniform([5]).numpy()]
    gj.manual_seed(42)
    again = [gj.random.normal([5]).numpy(), gj.random.uniform([5]).numpy()]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(gj.random.normal([5]).numpy(), first[0])


@gj.function
def noisy(x):
    return gj.random.dropout(x, 0.5), gj.random.normal([4])


def test_function_draws_fresh_numbers_per_call_and_matches_eager():
    x = np.ones(64, np.float32)
    gj.manual_seed(7)
    calls = [noisy(x), noisy(x)]
    assert not np.array_equal(calls[0][0], calls[1][0])
    gj.manual_seed(7)
    for dropped, z in calls:  # eager, same seed: the same draws in the same order
        np.testing.assert_array_equal(dropped, gj.random.dropout(gj.tensor(x), 0.5).numpy())
        np.testing.assert_array_equal(z, gj.random.normal([4]).numpy())
    assert noisy.trace_count == 1


def test_function_gradient_reuses_the_forward_mask():
    gj.manual_seed(9)
    x = gj.tensor(np.ones(64, np.float32), requires_grad=True)
    dropped, _ = noisy(x)
    noisy(x.detach())  # another call in between draws other numbers
    dropped.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), dropped.numpy())


@gj.function
def dropout_twice_in_a_loop(x):
    def body(i, h):
        return i + 1, gj.random.dropout(h, 0.5)

    return gj.while_loop(lambda i, h: i < 2, body, [0, x])[1]


def test_function_loop_gradient_replays_each_iterations_mask():
    gj.manual_seed(1)
    x = gj.tensor(np.ones(2000), dtype="float64", requires_grad=True)
    y = dropout_twice_in_a_loop(x)
    y.sum().backward()
    # two different masks keep a quarter (one mask drawn twice would keep half) ...
    assert abs(np.mean(y.numpy() != 0) - 0.25) < 0.04
    # ... and the backward trace replays both: on ones, the gradient is y itself
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())

"""Random ops (ir/ops/random.py, frontend/random.py): Philox against published answers and
NumPy's Philox, the same numbers on every backend and in eager, fresh numbers per run and
per op, distributions (fixed seeds: deterministic bounds, never flaky), dropout and its
gradient, gj.function, seeding."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.special

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
print(json.dumps({{d.name: [a.tolist() for a in run_fixed("cuda", d)]
                  for d in (gj.float32, gj.float64)}}))
"""


def test_cuda_simulator_matches_the_interpreter():
    """In a process of its own: the simulator must be chosen before numba is imported."""
    pytest.importorskip("numba")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    script = CUDA_SCRIPT.format(tests=str(ROOT / "tests"))
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    for dtype in (gj.float32, gj.float64):
        cuda = [np.array(a, dtype.np) for a in got[dtype.name]]
        assert_same_numbers(cuda, run_fixed("interpreter", dtype), dtype)


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

"""One Session used from several threads at once (the guarantee is in Session's
docstring): every run returns the right answer for its own feeds; concurrent first calls
on a fresh session may each compile, but all of them are correct and nothing crashes."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from reliability_helpers import BACKENDS

import graphjit as gj

THREADS = 4


def in_threads(work, n: int = THREADS) -> list:
    """Run work(i) on n threads released together; re-raise the first failure."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def main(i):
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as e:  # reported in the main thread
            errors.append(e)

    threads = [threading.Thread(target=main, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


def model():
    """Fused kernels, a matmul, a data-dependent loop and a reduction."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(np.float64, [None, 3], name="x")
        w = gj.constant(np.array([[1.0, -1.0], [0.5, 2.0], [-2.0, 0.25]]))
        h = gj.tanh(x @ w) * 2.0 + 1.0
        _, grown = gj.while_loop(
            lambda i, a: gj.sum(a) < 50.0,
            lambda i, a: (i + 1, a * 1.5 + 0.1),
            [0, gj.abs(h)],
            max_iterations=20,
        )
        out = gj.sum(grown, axis=1)
    return g, x, out


def expected(data: np.ndarray) -> np.ndarray:
    w = np.array([[1.0, -1.0], [0.5, 2.0], [-2.0, 0.25]])
    a = np.abs(np.tanh(data @ w) * 2.0 + 1.0)
    for _ in range(20):
        if a.sum() >= 50.0:
            break
        a = a * 1.5 + 0.1
    return a.sum(axis=1)


def feeds_for(thread: int, step: int) -> np.ndarray:
    """Distinct data per thread and step; two threads share a shape, two have their own."""
    rows = (2, 2, 3, 5)[thread]
    return np.random.default_rng(1000 * thread + step).uniform(-1, 1, (rows, 3))


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_session_from_four_threads_gives_each_its_own_results(backend):
    g, x, out = model()
    with gj.Session(g, backend=backend) as sess:

        def work(i):
            for step in range(150):
                data = feeds_for(i, step)
                got = sess.run(out, {x: data})
                np.testing.assert_allclose(got, expected(data), rtol=1e-12, err_msg=f"{i}/{step}")
            return step + 1

        assert in_threads(work) == [150] * THREADS


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_first_calls_on_a_fresh_session(backend):
    """Four threads make the very first run of a fresh session at once, five times over
    (fresh graphs, so nothing is compiled yet in the session)."""
    for round_ in range(5):
        g, x, out = model()
        with g.as_default():
            doubled = out * 2.0
        with gj.Session(g, backend=backend) as sess:

            def work(i):
                data = feeds_for(i, round_)
                return sess.run([out, doubled], {x: data}), expected(data)

            for (got, twice), want in in_threads(work):
                np.testing.assert_allclose(got, want, rtol=1e-12)
                np.testing.assert_allclose(twice, 2 * want, rtol=1e-12)


def test_concurrent_compiles_of_distinct_programs():
    """Threads compiling different programs at once (LLVM's context is shared)."""

    def work(i):
        for k in range(6):
            g = gj.Graph()
            with g.as_default():
                x = gj.placeholder(np.float32, [None], name="x")
                out = gj.sum(gj.sigmoid(x * float(i + 1)) + float(k))  # distinct constants
            with gj.Session(g) as sess:
                got = sess.run(out, {x: np.zeros(7, np.float32)})
            assert got == pytest.approx(7 * (0.5 + k)), (i, k)
        return True

    assert all(in_threads(work))


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_variable_updates_stay_consistent(backend):
    """Runs that assign a variable from several threads each apply a whole update (some
    may be lost, as in TF1 without locking); the value is never torn or corrupt."""
    g = gj.Graph()
    with g.as_default():
        v = gj.Variable(np.zeros(1000), name="v")
        bump = v.assign_add(1.0)
    with gj.Session(g, backend=backend) as sess:
        in_threads(lambda i: [sess.run(bump) for _ in range(50)])
        final = sess.run(v)
    assert np.all(final == final[0]), "a torn update"
    assert 50 <= final[0] <= 50 * THREADS and final[0] == int(final[0])
